// Plain-number counters the hot path increments. No label strings are built per query:
// each policy and upstream server gets its counter object once per config generation,
// and the admin server turns these into Prometheus text at scrape time.
//
// Bounded: one entry per configured policy / upstream server / list / listener name ever
// loaded (names come from the config file, never from traffic).
import type { Decision } from '../pipeline/context.js';

export type DecisionCounts = Record<Decision, number>;

/** The decisions a policy in `mode: audit` suspends (answering as allowed instead). */
export type AuditDecision = 'denied' | 'rate_limited' | 'filtered';
export const AUDIT_DECISIONS: readonly AuditDecision[] = ['denied', 'rate_limited', 'filtered'];
/** Queries a policy in audit mode let through, by the decision enforce mode would have taken. */
export type AuditCounts = Record<AuditDecision, number>;

export interface UpstreamCounts {
  ok: number;
  error: number;
  timeout: number;
}

/** What the `dns_tool_upstream_up` gauge reads at scrape time: a server's live health. */
export interface UpstreamHealth {
  readonly up: boolean;
}

/** Key of one server of one upstream set in `upstreamUp` (the same form as `upstream`'s keys). */
export function upstreamServerKey(set: string, server: string): string {
  return `${set}\u0000${server}`;
}

/** Fixed-bucket histogram (seconds), cheap to observe. */
export class Histogram {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(readonly buckets: readonly number[]) {
    this.counts = new Float64Array(buckets.length);
  }
  observe(value: number): void {
    this.sum += value;
    this.count++;
    const b = this.buckets;
    for (let i = 0; i < b.length; i++) {
      if (value <= b[i]) {
        this.counts[i]++;
        return;
      }
    }
  }
}

export const UPSTREAM_DURATION_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
];

/** Hits of one domain list, by effective mode (audit when the list or the policy audits). */
export interface ListHitCounts {
  enforce: number;
  audit: number;
}

/** Reads and fetches of one domain list, by outcome. */
export interface ListRefreshCounts {
  success: number;
  failure: number;
  not_modified: number;
}

/** Attempts of one kind, by outcome. */
export interface ResultCounts {
  success: number;
  failure: number;
}

/** Policy name under which unmatched clients are counted. */
export const UNMATCHED_POLICY = '';

export class Counters {
  readonly decisions = new Map<string, DecisionCounts>();
  /** Policy name → audit counts; an entry exists once the policy ran in audit mode. */
  readonly audit = new Map<string, AuditCounts>();
  /** Responses sent, by RCODE (index 0..15). */
  readonly responses = new Float64Array(16);
  cacheHits = 0;
  cacheMisses = 0;
  malformed = 0;
  /** Upstream answers rejected because their question did not match (or unknown id). */
  upstreamMismatched = 0;
  readonly upstream = new Map<string, UpstreamCounts>();
  readonly pinFailures = new Map<string, number>();
  /** Unix seconds of the verified leaf certificate's notAfter, by server id. */
  readonly certExpiry = new Map<string, number>();
  readonly reloads = { success: 0, failure: 0 };
  /**
   * Health of every server of every upstream set of the running config, by
   * upstreamServerKey. Replaced as a whole when a config generation becomes the running
   * one, so servers that left are no longer exposed; bounded by the configured servers.
   */
  upstreamUp: ReadonlyMap<string, UpstreamHealth> = new Map();
  readonly upstreamDuration = new Histogram(UPSTREAM_DURATION_BUCKETS);

  // Lists, client identity and encrypted listeners. Keyed by list or listener name from the
  // config, like the maps above; each family is exposed (without series) before any is set.
  /** Names each list holds now. */
  readonly listEntries = new Map<string, number>();
  readonly listHits = new Map<string, ListHitCounts>();
  readonly listRefreshes = new Map<string, ListRefreshCounts>();
  /** Unix seconds of each list's last successful read or fetch. */
  readonly listLastSuccess = new Map<string, number>();
  /** Datagrams dropped and connections closed for a missing or invalid PROXY v2 header. */
  proxyProtocolErrors = 0;
  /** Certificate and key reloads of each encrypted listener. */
  readonly listenerCertReloads = new Map<string, ResultCounts>();
  /** Unix seconds of the notAfter of each encrypted listener's leaf certificate. */
  readonly listenerCertExpiry = new Map<string, number>();

  forPolicy(name: string): DecisionCounts {
    let c = this.decisions.get(name);
    if (c === undefined) {
      c = { allowed: 0, denied: 0, rate_limited: 0, filtered: 0, unmatched: 0 };
      this.decisions.set(name, c);
    }
    return c;
  }

  /** Audit counter object for one policy (made when a generation puts it in audit mode). */
  forAudit(name: string): AuditCounts {
    let c = this.audit.get(name);
    if (c === undefined) {
      c = { denied: 0, rate_limited: 0, filtered: 0 };
      this.audit.set(name, c);
    }
    return c;
  }

  /** Counter object for one server of one upstream set. */
  forUpstream(set: string, server: string): UpstreamCounts {
    const key = `${set}\u0000${server}`;
    let c = this.upstream.get(key);
    if (c === undefined) {
      c = { ok: 0, error: 0, timeout: 0 };
      this.upstream.set(key, c);
    }
    return c;
  }

  forListHits(list: string): ListHitCounts {
    let c = this.listHits.get(list);
    if (c === undefined) {
      c = { enforce: 0, audit: 0 };
      this.listHits.set(list, c);
    }
    return c;
  }

  forListRefreshes(list: string): ListRefreshCounts {
    let c = this.listRefreshes.get(list);
    if (c === undefined) {
      c = { success: 0, failure: 0, not_modified: 0 };
      this.listRefreshes.set(list, c);
    }
    return c;
  }

  forListenerCertReloads(listener: string): ResultCounts {
    let c = this.listenerCertReloads.get(listener);
    if (c === undefined) {
      c = { success: 0, failure: 0 };
      this.listenerCertReloads.set(listener, c);
    }
    return c;
  }

  pinFailure(server: string): void {
    this.pinFailures.set(server, (this.pinFailures.get(server) ?? 0) + 1);
  }
}
