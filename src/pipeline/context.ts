// The per-query state that travels through the stages: the client's wire bytes, what
// was peeked from them, and what the stages decided (for logs and metrics).
import type { CompiledPolicy } from './policy.js';

export type Transport = 'udp' | 'tcp';
export type Decision = 'allowed' | 'denied' | 'rate_limited' | 'filtered' | 'unmatched';

export interface QueryContext {
  /** The client's message exactly as received (never modified in place). */
  readonly query: Buffer;
  /** Client's 16-bit message ID. */
  readonly id: number;
  /** Query name as sent (case preserved), without trailing dot; "" is the root. */
  readonly qname: string;
  /** Lowercased qname: the key for filters and cache. */
  readonly lname: string;
  readonly qtype: number;
  readonly qclass: number;
  /** Offset just past the question section: query.subarray(12, questionEnd) is the question. */
  readonly questionEnd: number;
  /** Client's EDNS UDP payload size, 0 when the query carries no OPT record. */
  readonly ednsUdpSize: number;
  /** DNSSEC OK bit of the client's OPT record. */
  readonly dnssecOk: boolean;
  readonly clientAddress: string;
  readonly clientPort: number;
  /** The forwarder that named the client (PROXY v2 header or ECS), null for a direct client. */
  readonly via: string | null;
  readonly transport: Transport;
  /** performance.now() at arrival. */
  readonly startedAt: number;
  /** Set by match-policy; null only for unmatched clients. */
  policy: CompiledPolicy | null;
  decision: Decision;
  /**
   * Set only by a policy in `mode: audit`: the decision enforce mode would have taken
   * (denied, rate_limited or filtered) for a query that is answered as allowed instead.
   * null otherwise. `decision` stays what was done, so dns_tool_queries_total counts the
   * query as allowed and dns_tool_audit_total counts `would`.
   */
  would: Decision | null;
  cached: boolean;
  /** Upstream server id that answered, when one did. */
  upstreamServer: string | null;
}
