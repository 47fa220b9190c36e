// Owns moving a worker's Counters across the IPC channel: a plain-JSON snapshot of every
// counter, and the sum of many snapshots written into one Counters the primary's metrics
// registry reads.
import type {
  AuditCounts,
  Counters,
  DecisionCounts,
  UpstreamCounts,
  UpstreamHealth,
} from '../metrics/counters.js';

/**
 * Everything a Counters holds, as JSON-safe data. Sizes are those of Counters: one entry
 * per configured policy / server name, 16 RCODEs, the fixed histogram buckets.
 */
export interface CountersSnapshot {
  readonly decisions: [string, DecisionCounts][];
  readonly audit: [string, AuditCounts][];
  readonly responses: number[];
  readonly cacheHits: number;
  readonly cacheMisses: number;
  readonly malformed: number;
  readonly proxyProtocolErrors: number;
  readonly upstreamMismatched: number;
  readonly upstream: [string, UpstreamCounts][];
  readonly pinFailures: [string, number][];
  readonly certExpiry: [string, number][];
  /** dns_tool_upstream_up: a gauge, like certExpiry. */
  readonly upstreamUp: [string, boolean][];
  readonly reloads: { success: number; failure: number };
  readonly upstreamDuration: { counts: number[]; sum: number; count: number };
}

export function snapshotCounters(c: Counters): CountersSnapshot {
  return {
    decisions: [...c.decisions].map(([name, counts]) => [name, { ...counts }]),
    audit: [...c.audit].map(([name, counts]) => [name, { ...counts }]),
    responses: Array.from(c.responses),
    cacheHits: c.cacheHits,
    cacheMisses: c.cacheMisses,
    malformed: c.malformed,
    proxyProtocolErrors: c.proxyProtocolErrors,
    upstreamMismatched: c.upstreamMismatched,
    upstream: [...c.upstream].map(([key, counts]) => [key, { ...counts }]),
    pinFailures: [...c.pinFailures],
    certExpiry: [...c.certExpiry],
    upstreamUp: [...c.upstreamUp].map(([key, health]) => [key, health.up]),
    reloads: { ...c.reloads },
    upstreamDuration: {
      counts: Array.from(c.upstreamDuration.counts),
      sum: c.upstreamDuration.sum,
      count: c.upstreamDuration.count,
    },
  };
}

/** `s` without its gauges (certificate expiry, server health): what stays of a worker that died. */
export function countsOnly(s: CountersSnapshot): CountersSnapshot {
  return { ...s, certExpiry: [], upstreamUp: [] };
}

/** Sets every counter of `c` back to zero (maps emptied), ready for addSnapshot. */
export function clearCounters(c: Counters): void {
  c.decisions.clear();
  c.audit.clear();
  c.responses.fill(0);
  c.cacheHits = 0;
  c.cacheMisses = 0;
  c.malformed = 0;
  c.proxyProtocolErrors = 0;
  c.upstreamMismatched = 0;
  c.upstream.clear();
  c.pinFailures.clear();
  c.certExpiry.clear();
  c.upstreamUp = new Map();
  c.reloads.success = 0;
  c.reloads.failure = 0;
  c.upstreamDuration.counts.fill(0);
  c.upstreamDuration.sum = 0;
  c.upstreamDuration.count = 0;
}

/**
 * Adds `s` into `c`. Counts are summed; a certificate expiry is a gauge, so the earliest
 * one among the snapshots added wins for a server (the one an operator must act on first).
 * Only live workers' snapshots carry gauges (see countsOnly).
 */
export function addSnapshot(c: Counters, s: CountersSnapshot): void {
  for (const [name, counts] of s.decisions) {
    const into = c.forPolicy(name);
    into.allowed += counts.allowed;
    into.denied += counts.denied;
    into.rate_limited += counts.rate_limited;
    into.filtered += counts.filtered;
    into.unmatched += counts.unmatched;
  }
  for (const [name, counts] of s.audit ?? []) {
    const into = c.forAudit(name);
    into.denied += counts.denied;
    into.rate_limited += counts.rate_limited;
    into.filtered += counts.filtered;
  }
  const n = Math.min(c.responses.length, s.responses.length);
  for (let i = 0; i < n; i++) c.responses[i] += s.responses[i];
  c.cacheHits += s.cacheHits;
  c.cacheMisses += s.cacheMisses;
  c.malformed += s.malformed;
  c.proxyProtocolErrors += s.proxyProtocolErrors ?? 0;
  c.upstreamMismatched += s.upstreamMismatched;
  for (const [key, counts] of s.upstream) {
    let into = c.upstream.get(key);
    if (into === undefined) {
      into = { ok: 0, error: 0, timeout: 0 };
      c.upstream.set(key, into);
    }
    into.ok += counts.ok;
    into.error += counts.error;
    into.timeout += counts.timeout;
  }
  for (const [server, failures] of s.pinFailures)
    c.pinFailures.set(server, (c.pinFailures.get(server) ?? 0) + failures);
  for (const [server, notAfter] of s.certExpiry) {
    const seen = c.certExpiry.get(server);
    if (seen === undefined || notAfter < seen) c.certExpiry.set(server, notAfter);
  }
  // Each worker has its own connections, so a server is reported up only while it is up in
  // every live worker: one worker failing over is worth seeing.
  const up = c.upstreamUp as Map<string, UpstreamHealth>;
  for (const [key, isUp] of s.upstreamUp ?? []) {
    const seen = up.get(key);
    up.set(key, { up: isUp && (seen === undefined || seen.up) });
  }
  c.reloads.success += s.reloads.success;
  c.reloads.failure += s.reloads.failure;
  // Workers run the same build as the primary, so the bucket bounds are the same.
  const hist = c.upstreamDuration;
  for (let i = 0; i < hist.counts.length; i++) hist.counts[i] += s.upstreamDuration.counts[i] ?? 0;
  hist.sum += s.upstreamDuration.sum;
  hist.count += s.upstreamDuration.count;
}
