// The process-wide owner of upstream servers: builds each config generation's sets,
// keeps servers (and their live TLS connections) whose settings did not change, and
// drains the rest once a generation is no longer used.
import { performance } from 'node:perf_hooks';
import type { UpstreamServerConfig, UpstreamSetConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import { type Counters, type UpstreamHealth, upstreamServerKey } from '../metrics/counters.js';
import { UpstreamServer } from './server.js';
import { UpstreamSet } from './set.js';

export interface UpstreamHubDeps {
  logger: Logger;
  counters: Counters;
  /** Milliseconds on the same scale as query deadlines; default performance.now. */
  now?: () => number;
}

/** How long retain() lets a dropped server finish its in-flight queries at most. */
export const DEFAULT_DRAIN_GRACE_MS = 10_000;

/**
 * Every setting that shapes a server's connections. `id` ("address:port") is only a
 * label: a pin, CA or name change under the same id must give new connections.
 */
export function serverKey(server: UpstreamServerConfig, set: UpstreamSetConfig): string {
  return JSON.stringify([
    server.address,
    server.port,
    server.tlsName,
    [...server.pins].sort(),
    server.ca,
    server.verifyCa,
    set.connections,
    set.idleTimeoutMs,
  ]);
}

export class UpstreamHub {
  /**
   * Servers built and not yet dropped by retain(), by serverKey. Bounded by the servers
   * of the generations built since the last retain() (normally two).
   */
  private readonly servers = new Map<string, UpstreamServer>();
  private readonly logger: Logger;
  private readonly counters: Counters;
  private readonly now: () => number;
  /** False until a generation's sets were published to the `dns_tool_upstream_up` gauge. */
  private published = false;

  constructor(deps: UpstreamHubDeps) {
    this.logger = deps.logger;
    this.counters = deps.counters;
    this.now = deps.now ?? (() => performance.now());
  }

  /**
   * Build the runtime upstream sets of a config generation. Servers whose settings are
   * identical to one already held are reused with their live connections; others are
   * created. Nothing is closed here.
   */
  buildSets(configs: ReadonlyMap<string, UpstreamSetConfig>): Map<string, UpstreamSet> {
    const sets = new Map<string, UpstreamSet>();
    for (const [name, setConfig] of configs) {
      const servers = setConfig.servers.map((sc) => {
        const key = serverKey(sc, setConfig);
        let server = this.servers.get(key);
        if (server === undefined) {
          server = new UpstreamServer({
            config: sc,
            key,
            connections: setConfig.connections,
            idleTimeoutMs: setConfig.idleTimeoutMs,
            timeoutMs: setConfig.timeoutMs,
            logger: this.logger,
            counters: this.counters,
            now: this.now,
          });
          this.servers.set(key, server);
        } else {
          server.timeoutMs = setConfig.timeoutMs;
        }
        return server;
      });
      sets.set(name, new UpstreamSet(setConfig, servers, this.counters, this.now));
    }
    // The first generation is the running one as soon as it is built; later ones become
    // it at retain(), which is also told when a reload was abandoned.
    if (!this.published) this.publish(sets.values());
    return sets;
  }

  /** Point the `dns_tool_upstream_up` gauge at the servers of `running`, and only them. */
  private publish(running: Iterable<UpstreamSet>): void {
    this.published = true;
    const up = new Map<string, UpstreamHealth>();
    for (const set of running) for (const s of set.servers) up.set(upstreamServerKey(set.name, s.id), s);
    this.counters.upstreamUp = up;
  }

  /**
   * After a generation swap (or a reload given up, with the old sets): `inUse` is the
   * running generation's sets, which the `dns_tool_upstream_up` gauge now shows; servers
   * they do not reference are drained (in-flight queries finish, bounded by their
   * deadline and at most `graceMs`) and closed.
   */
  async retain(inUse: Iterable<UpstreamSet>, graceMs = DEFAULT_DRAIN_GRACE_MS): Promise<void> {
    const running = [...inUse];
    this.publish(running);
    const keep = new Set<UpstreamServer>();
    for (const set of running) for (const s of set.servers) keep.add(s);
    const dropped: UpstreamServer[] = [];
    for (const [key, server] of this.servers) {
      if (keep.has(server)) continue;
      this.servers.delete(key);
      dropped.push(server);
    }
    if (dropped.length > 0)
      this.logger.debug({ servers: dropped.map((s) => s.id) }, 'draining upstream servers');
    await Promise.all(dropped.map((s) => s.drain(graceMs)));
  }

  /** Close everything (shutdown), after in-flight queries finish or `graceMs` passes. */
  async close(graceMs: number): Promise<void> {
    const all = [...this.servers.values()];
    this.servers.clear();
    await Promise.all(all.map((s) => s.drain(graceMs)));
  }
}
