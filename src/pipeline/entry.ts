// Where every client message enters: peek, reject bad input, pick the policy, run its
// chain on the current generation, then count, log and size the answer for its transport.
import { performance } from 'node:perf_hooks';
import { rrTypeName as typeName } from '../config/rrtypes.js';
import { synthesize, truncateAnswer } from '../dns/answer.js';
import {
  CLASSIC_UDP_SIZE,
  RCODE_FORMERR,
  RCODE_NAMES,
  RCODE_NOTIMP,
  RCODE_REFUSED,
  RCODE_SERVFAIL,
} from '../dns/constants.js';
import { PEEK_DROP, PEEK_FORMERR, PEEK_NOTIMP, peekQuery } from '../dns/wire.js';
import { ECS_MALFORMED, ecsClient } from '../identity/ecs.js';
import type { Logger } from '../log.js';
import type { Counters } from '../metrics/counters.js';
import type { Generation } from './build.js';
import type { QueryContext, Transport } from './context.js';
import type { StageResult } from './stage.js';

/** Returned for input that must be dropped as malformed; TCP listeners close the connection. */
export const MALFORMED = Symbol('malformed');
export type EntryResult = StageResult | typeof MALFORMED;
/** Returned by `handle` when the answer will come later, through the sink. */
export const PENDING = Symbol('pending');

/** Where an answer that was not ready at once goes (the listener that took the query). */
export type ReplySink = (answer: StageResult, address: string, port: number) => void;

export class QueryEntry {
  private inflight = 0;
  /** Stage failures; follows `log.level` like every other component. */
  private readonly queryLog: Logger;
  /**
   * Query lines. `log.queries` / `log_queries` is their switch, so they carry a level of
   * their own: an operator who turns them on with `log.level: warn` still gets them.
   */
  private readonly queryLines: Logger;

  constructor(
    private readonly generation: () => Generation,
    private readonly counters: Counters,
    logger: Logger,
  ) {
    this.queryLog = logger.child({ component: 'query' });
    this.queryLines = logger.child({ component: 'query' }, { level: 'info' });
  }

  /** A datagram dropped, or a connection closed, for a missing or invalid PROXY v2 header. */
  proxyProtocolError(): void {
    this.counters.proxyProtocolErrors++;
  }

  /** Client queries currently waiting on a stage (the upstream, usually). */
  get inFlight(): number {
    return this.inflight;
  }

  /**
   * Answer one client message. Returns the answer synchronously when no stage waits
   * (refusals, cache hits), so those paths allocate no promise; otherwise returns PENDING
   * and hands the answer to `sink` later. Never throws; `sink` is called at most once.
   */
  handle(
    msg: Buffer,
    address: string,
    port: number,
    transport: Transport,
    sink: ReplySink,
    /** Who the query is for: `address` unless a PROXY header named someone else. */
    client: string = address,
    /** The forwarder that named `client`, or null for a direct client. */
    via: string | null = null,
    /** The listener trusts the source's ECS option to name the client (ecs_client.from). */
    ecsTrusted = false,
  ): EntryResult | typeof PENDING {
    const gen = this.generation();
    const udpMax = gen.config.limits.udpMaxPayload;
    const peek = peekQuery(msg);
    if (peek.status === PEEK_DROP) {
      this.counters.malformed++;
      return MALFORMED;
    }
    if (peek.status === PEEK_FORMERR || peek.status === PEEK_NOTIMP) {
      if (peek.status === PEEK_FORMERR) this.counters.malformed++;
      const rcode = peek.status === PEEK_FORMERR ? RCODE_FORMERR : RCODE_NOTIMP;
      this.counters.responses[rcode]++;
      return synthesize(msg, peek.questionEnd, rcode, peek.ednsUdpSize, udpMax);
    }
    let clientAddress = client;
    let forwarder = via;
    if (ecsTrusted && peek.optStart >= 0) {
      const named = ecsClient(msg, peek.optStart);
      if (named === ECS_MALFORMED) {
        // RFC 7871 §7.1.1; and a malformed identity must never fall back to the forwarder's.
        this.counters.malformed++;
        this.counters.responses[RCODE_FORMERR]++;
        return synthesize(msg, peek.questionEnd, RCODE_FORMERR, peek.ednsUdpSize, udpMax);
      }
      if (named !== null) {
        forwarder = clientAddress;
        clientAddress = named;
      }
    }
    const ctx: QueryContext = {
      query: msg,
      id: peek.id,
      qname: peek.qname,
      lname: peek.lname,
      qtype: peek.qtype,
      qclass: peek.qclass,
      questionEnd: peek.questionEnd,
      ednsUdpSize: peek.ednsUdpSize,
      dnssecOk: peek.dnssecOk,
      clientAddress,
      clientPort: port,
      via: forwarder,
      transport,
      startedAt: performance.now(),
      policy: null,
      decision: 'allowed',
      would: null,
      cached: false,
      upstreamServer: null,
    };
    const policy = gen.table.lookup(clientAddress);
    if (policy === null) {
      ctx.decision = 'unmatched';
      gen.unmatchedCounts.unmatched++;
      const refused = synthesize(msg, ctx.questionEnd, RCODE_REFUSED, ctx.ednsUdpSize, udpMax);
      return this.finish(ctx, refused, gen.logUnmatched, udpMax);
    }
    ctx.policy = policy;
    if (this.inflight >= gen.config.limits.maxInflight) {
      // Overloaded: refuse new work at once rather than queue without bound. The query was
      // allowed by its policy; the SERVFAIL in dns_tool_responses_total tells the rest.
      policy.counts[ctx.decision]++;
      return this.finish(
        ctx,
        synthesize(msg, ctx.questionEnd, RCODE_SERVFAIL, ctx.ednsUdpSize, udpMax),
        policy.logQueries,
        udpMax,
      );
    }
    let result: StageResult | Promise<StageResult>;
    try {
      result = policy.handle(ctx);
    } catch (err) {
      result = this.stageFailed(ctx, err, udpMax);
    }
    if (!(result instanceof Promise)) {
      policy.counts[ctx.decision]++;
      return this.finish(ctx, result, policy.logQueries, udpMax);
    }
    this.inflight++;
    // The sink is called from here rather than the listener chaining its own `then`:
    // one promise hop per query instead of two.
    result.then(
      (answer) => {
        this.inflight--;
        policy.counts[ctx.decision]++;
        sink(this.finish(ctx, answer, policy.logQueries, udpMax), address, port);
      },
      (err: unknown) => {
        this.inflight--;
        policy.counts[ctx.decision]++;
        sink(this.finish(ctx, this.stageFailed(ctx, err, udpMax), policy.logQueries, udpMax), address, port);
      },
    );
    return PENDING;
  }

  private stageFailed(ctx: QueryContext, err: unknown, udpMax: number): Buffer {
    // A stage bug must cost one SERVFAIL, never the process.
    this.queryLog.error({ err, qname: ctx.qname, policy: ctx.policy?.name }, 'stage failed');
    return synthesize(ctx.query, ctx.questionEnd, RCODE_SERVFAIL, ctx.ednsUdpSize, udpMax);
  }

  private finish(ctx: QueryContext, answer: StageResult, log: boolean, udpMax: number): StageResult {
    let out = answer;
    if (out !== null) {
      if (ctx.transport === 'udp') {
        const limit = ctx.ednsUdpSize > 0 ? Math.min(ctx.ednsUdpSize, udpMax) : CLASSIC_UDP_SIZE;
        if (out.length > limit) out = truncateAnswer(out, ctx.questionEnd, ctx.ednsUdpSize, udpMax);
      }
      this.counters.responses[out[3] & 0x0f]++;
    }
    // An audited query is logged whatever log_queries says: the line is the audit record.
    if (log || ctx.would !== null) this.logQuery(ctx, out);
    return out;
  }

  private logQuery(ctx: QueryContext, answer: StageResult): void {
    const audit = ctx.would === null ? null : { audit: true, would: ctx.would };
    this.queryLines.info(
      {
        client: ctx.clientAddress,
        qname: ctx.qname === '' ? '.' : ctx.qname,
        qtype: typeName(ctx.qtype),
        policy: ctx.policy ? ctx.policy.name : null,
        decision: ctx.decision,
        rcode: answer === null ? null : RCODE_NAMES[answer[3] & 0x0f],
        cached: ctx.cached,
        upstream: ctx.upstreamServer,
        duration_ms: Math.round((performance.now() - ctx.startedAt) * 1000) / 1000,
        transport: ctx.transport,
        ...(ctx.via === null ? null : { via: ctx.via }),
        ...audit,
      },
      'query',
    );
  }
}
