// Owns the Prometheus view of the gateway's plain-number Counters: a per-gateway
// prom-client Registry whose metrics copy their values from Counters at scrape time.
//
// The hot path never touches prom-client (label hashing per increment costs more than
// the query itself); each metric below resets and refills itself in `collect()`, so a
// scrape always shows the Counters' exact current values. Label sets are bounded by
// what Counters holds: policy, server, list and listener names from the config, RCODEs 0..15.
import { Counter, collectDefaultMetrics, Gauge, type Metric, Registry } from 'prom-client';
import { RCODE_NAMES } from '../dns/constants.js';
import { AUDIT_DECISIONS, type Counters, UNMATCHED_POLICY } from '../metrics/counters.js';
import type { Decision } from '../pipeline/context.js';

/** Label value for clients that matched no policy (Counters keeps them under ""). */
export const UNMATCHED_POLICY_LABEL = '(unmatched)';

const POLICY_DECISIONS: readonly Decision[] = ['allowed', 'denied', 'rate_limited', 'filtered'];
const ALL_DECISIONS: readonly Decision[] = ['allowed', 'denied', 'rate_limited', 'filtered', 'unmatched'];

/** Separator of set and server in Counters.upstream keys (see Counters.forUpstream). */
const UPSTREAM_KEY_SEPARATOR = '\u0000';

export function createMetricsRegistry(counters: Counters): Registry {
  const registry = new Registry();
  const registers = [registry];

  new Counter({
    name: 'dns_tool_queries_total',
    help: 'Queries received, by matched policy and pipeline decision.',
    labelNames: ['policy', 'decision'] as const,
    registers,
    collect() {
      this.reset();
      let sawUnmatched = false;
      for (const [name, counts] of counters.decisions) {
        if (name === UNMATCHED_POLICY) {
          sawUnmatched = true;
          for (const decision of ALL_DECISIONS) {
            // Only "unmatched" is expected here; other decisions appear only if non-zero.
            if (decision === 'unmatched' || counts[decision] !== 0) {
              this.inc({ policy: UNMATCHED_POLICY_LABEL, decision }, counts[decision]);
            }
          }
          continue;
        }
        // Every expected series is present from the start (at 0) so rate() sees its first increase.
        for (const decision of POLICY_DECISIONS) this.inc({ policy: name, decision }, counts[decision]);
        if (counts.unmatched !== 0) this.inc({ policy: name, decision: 'unmatched' }, counts.unmatched);
      }
      if (!sawUnmatched) this.inc({ policy: UNMATCHED_POLICY_LABEL, decision: 'unmatched' }, 0);
    },
  });

  new Counter({
    name: 'dns_tool_audit_total',
    help: 'Queries a policy in audit mode answered as allowed, by policy and the decision enforce mode would have taken.',
    labelNames: ['policy', 'decision'] as const,
    registers,
    collect() {
      this.reset();
      // Every policy that ran in audit mode has all three series, from 0.
      for (const [policy, counts] of counters.audit) {
        for (const decision of AUDIT_DECISIONS) this.inc({ policy, decision }, counts[decision]);
      }
    },
  });

  new Counter({
    name: 'dns_tool_responses_total',
    help: 'Responses sent to clients, by RCODE.',
    labelNames: ['rcode'] as const,
    registers,
    collect() {
      this.reset();
      const responses = counters.responses;
      for (let rcode = 0; rcode < responses.length; rcode++) {
        if (responses[rcode] !== 0) this.inc({ rcode: RCODE_NAMES[rcode] }, responses[rcode]);
      }
    },
  });

  plainCounter(
    registry,
    'dns_tool_cache_hits_total',
    'Queries answered from the cache.',
    () => counters.cacheHits,
  );
  plainCounter(
    registry,
    'dns_tool_cache_misses_total',
    'Cacheable queries not found in the cache.',
    () => counters.cacheMisses,
  );

  new Counter({
    name: 'dns_tool_upstream_requests_total',
    help: 'Queries sent to upstream servers, by upstream set, server and result.',
    labelNames: ['upstream', 'server', 'result'] as const,
    registers,
    collect() {
      this.reset();
      for (const [key, counts] of counters.upstream) {
        const cut = key.indexOf(UPSTREAM_KEY_SEPARATOR);
        const upstream = cut < 0 ? key : key.slice(0, cut);
        const server = cut < 0 ? '' : key.slice(cut + 1);
        this.inc({ upstream, server, result: 'ok' }, counts.ok);
        this.inc({ upstream, server, result: 'error' }, counts.error);
        this.inc({ upstream, server, result: 'timeout' }, counts.timeout);
      }
    },
  });

  registry.registerMetric(
    new CountersHistogram(
      'dns_tool_upstream_duration_seconds',
      'Time from sending a query upstream to its answer, in seconds.',
      counters.upstreamDuration,
    ) as unknown as Metric,
  );

  new Counter({
    name: 'dns_tool_upstream_pin_failures_total',
    help: 'TLS connections closed because no presented SPKI pin matched, by server.',
    labelNames: ['server'] as const,
    registers,
    collect() {
      this.reset();
      for (const [server, failures] of counters.pinFailures) this.inc({ server }, failures);
    },
  });

  new Gauge({
    name: 'dns_tool_upstream_cert_expiry_timestamp_seconds',
    help: 'Unix time at which the verified leaf certificate of each upstream server expires.',
    labelNames: ['server'] as const,
    registers,
    collect() {
      this.reset();
      for (const [server, notAfter] of counters.certExpiry) this.set({ server }, notAfter);
    },
  });

  new Gauge({
    name: 'dns_tool_upstream_up',
    help: 'Whether each server of each upstream set of the running config is usable (1) or down (0).',
    labelNames: ['upstream', 'server'] as const,
    registers,
    collect() {
      this.reset();
      for (const [key, health] of counters.upstreamUp) {
        const cut = key.indexOf(UPSTREAM_KEY_SEPARATOR);
        this.set({ upstream: key.slice(0, cut), server: key.slice(cut + 1) }, health.up ? 1 : 0);
      }
    },
  });

  new Counter({
    name: 'dns_tool_config_reloads_total',
    help: 'Configuration reload attempts, by result.',
    labelNames: ['result'] as const,
    registers,
    collect() {
      this.reset();
      this.inc({ result: 'success' }, counters.reloads.success);
      this.inc({ result: 'failure' }, counters.reloads.failure);
    },
  });

  plainCounter(
    registry,
    'dns_tool_malformed_total',
    'Client packets dropped or refused because they could not be parsed.',
    () => counters.malformed,
  );
  plainCounter(
    registry,
    'dns_tool_upstream_mismatched_total',
    'Upstream answers discarded because their ID or question did not match a query in flight.',
    () => counters.upstreamMismatched,
  );

  registerListMetrics(registry, counters);
  registerListenerMetrics(registry, counters);

  collectDefaultMetrics({ register: registry });
  // prom-client's gauges named *_total break the convention that only counters end in _total
  // (`promtool check metrics` flags them); nodejs_active_{handles,requests,resources}{type}
  // stay, and sum() over them gives the same totals.
  for (const name of MISNAMED_DEFAULT_GAUGES) registry.removeSingleMetric(name);
  return registry;
}

const MISNAMED_DEFAULT_GAUGES = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
] as const;

/** Domain-list families: series appear per list once the list has been loaded. */
function registerListMetrics(registry: Registry, counters: Counters): void {
  const registers = [registry];
  new Gauge({
    name: 'dns_tool_list_entries',
    help: 'Names each domain list holds now.',
    labelNames: ['list'] as const,
    registers,
    collect() {
      this.reset();
      for (const [list, entries] of counters.listEntries) this.set({ list }, entries);
    },
  });

  new Counter({
    name: 'dns_tool_list_hits_total',
    help: 'Queries that matched an entry of a domain list, by list and effective mode (enforce, audit).',
    labelNames: ['list', 'mode'] as const,
    registers,
    collect() {
      this.reset();
      for (const [list, hits] of counters.listHits) {
        this.inc({ list, mode: 'enforce' }, hits.enforce);
        this.inc({ list, mode: 'audit' }, hits.audit);
      }
    },
  });

  new Counter({
    name: 'dns_tool_list_refreshes_total',
    help: 'Reads and fetches of domain lists, by list and result (success, not_modified, failure).',
    labelNames: ['list', 'result'] as const,
    registers,
    collect() {
      this.reset();
      for (const [list, refreshes] of counters.listRefreshes) {
        this.inc({ list, result: 'success' }, refreshes.success);
        this.inc({ list, result: 'not_modified' }, refreshes.not_modified);
        this.inc({ list, result: 'failure' }, refreshes.failure);
      }
    },
  });

  new Gauge({
    name: 'dns_tool_list_last_success_timestamp_seconds',
    help: 'Unix time of the last successful read or fetch of each domain list.',
    labelNames: ['list'] as const,
    registers,
    collect() {
      this.reset();
      for (const [list, at] of counters.listLastSuccess) this.set({ list }, at);
    },
  });
}

/** Client-identity and encrypted-listener families. */
function registerListenerMetrics(registry: Registry, counters: Counters): void {
  const registers = [registry];
  plainCounter(
    registry,
    'dns_tool_proxy_protocol_errors_total',
    'Datagrams dropped and connections closed for a missing or invalid PROXY protocol v2 header.',
    () => counters.proxyProtocolErrors,
  );

  new Counter({
    name: 'dns_tool_listener_cert_reloads_total',
    help: 'Certificate and key reloads of encrypted listeners, by listener and result.',
    labelNames: ['listener', 'result'] as const,
    registers,
    collect() {
      this.reset();
      for (const [listener, reloads] of counters.listenerCertReloads) {
        this.inc({ listener, result: 'success' }, reloads.success);
        this.inc({ listener, result: 'failure' }, reloads.failure);
      }
    },
  });

  new Gauge({
    name: 'dns_tool_listener_cert_expiry_timestamp_seconds',
    help: 'Unix time at which the leaf certificate of each encrypted listener expires.',
    labelNames: ['listener'] as const,
    registers,
    collect() {
      this.reset();
      for (const [listener, notAfter] of counters.listenerCertExpiry) this.set({ listener }, notAfter);
    },
  });
}

function plainCounter(registry: Registry, name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

interface HistogramSample {
  metricName: string;
  labels: { le?: number | string };
  value: number;
}

/**
 * A histogram whose state lives in a Counters Histogram. prom-client's Histogram can only
 * be fed by observe(), which cannot reproduce an exact sum and counts, so this object
 * implements the part of the metric interface a Registry uses (name, type, get, reset).
 */
class CountersHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly source: Counters['upstreamDuration'],
  ) {}

  async get(): Promise<{
    name: string;
    help: string;
    type: string;
    aggregator: string;
    values: HistogramSample[];
  }> {
    const { buckets, counts } = this.source;
    const bucketName = `${this.name}_bucket`;
    const values: HistogramSample[] = [];
    // Counters keeps per-bucket counts; Prometheus buckets are cumulative ("<= le").
    let cumulative = 0;
    for (let i = 0; i < buckets.length; i++) {
      cumulative += counts[i];
      values.push({ metricName: bucketName, labels: { le: buckets[i] }, value: cumulative });
    }
    // Observations above the last bound are only in count, so +Inf is the total count.
    values.push({ metricName: bucketName, labels: { le: '+Inf' }, value: this.source.count });
    values.push({ metricName: `${this.name}_sum`, labels: {}, value: this.source.sum });
    values.push({ metricName: `${this.name}_count`, labels: {}, value: this.source.count });
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** The values belong to Counters; a registry reset has nothing of its own to clear. */
  reset(): void {}
}
