// The order in which a query tries a set's servers: failover, round_robin or fastest,
// always healthy servers first and down ones only when every server is down.
import type { Strategy } from '../config/types.js';

/** What a strategy needs to know about a server. */
export interface Candidate {
  readonly up: boolean;
  /** Moving average of answer latency in ms; 0 = not measured yet. */
  readonly latencyMs: number;
}

/** `fastest` puts another server first once every this many queries, to re-measure it. */
export const EXPLORE_EVERY = 32;

/**
 * The servers to try for query number `seq`, best first. The result is a new array of
 * at most `servers.length` entries.
 */
export function orderServers<T extends Candidate>(
  strategy: Strategy,
  servers: readonly T[],
  seq: number,
): readonly T[] {
  // The common case, every server up under failover (or one server): the configured order
  // as it is, with no array made per query.
  if (strategy === 'failover' || servers.length === 1) {
    let allUp = true;
    for (const s of servers) allUp &&= s.up;
    if (allUp) return servers;
  }
  let pool = servers.filter((s) => s.up);
  // All down: try them anyway (in configured order) rather than fail without asking.
  if (pool.length === 0) pool = servers.slice();
  const n = pool.length;
  if (n < 2) return pool;
  switch (strategy) {
    case 'failover':
      return pool;
    case 'round_robin':
      return rotate(pool, seq % n);
    case 'fastest': {
      // Unmeasured servers (0) sort first, so each gets measured once.
      pool.sort((a, b) => a.latencyMs - b.latencyMs);
      if (seq % EXPLORE_EVERY === EXPLORE_EVERY - 1) {
        // Explore: a server other than the current best goes first, in turn.
        const pick = 1 + (Math.floor(seq / EXPLORE_EVERY) % (n - 1));
        const [explored] = pool.splice(pick, 1);
        pool.unshift(explored);
      }
      return pool;
    }
  }
}

function rotate<T>(list: T[], by: number): T[] {
  if (by === 0) return list;
  return list.slice(by).concat(list.slice(0, by));
}
