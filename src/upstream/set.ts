// A named upstream set of one config generation: picks servers per its strategy, runs
// each query's attempts (per-attempt timeout, retry, overall deadline) and counts them.
import type { Strategy, UpstreamSetConfig } from '../config/types.js';
import type { Counters, UpstreamCounts } from '../metrics/counters.js';
import type { FailureKind, UpstreamConnection, UpstreamExchange } from './connection.js';
import type { UpstreamServer, UpstreamServerState } from './server.js';
import { orderServers } from './strategy.js';
import { TimerWheel, type WheelTimer } from './timer-wheel.js';

export type UpstreamErrorCode = 'UPSTREAM_TIMEOUT' | 'UPSTREAM_UNAVAILABLE';

/** No server answered: before the deadline (TIMEOUT) or every try failed early (UNAVAILABLE). */
export class UpstreamError extends Error {
  override readonly name = 'UpstreamError';
  constructor(
    readonly code: UpstreamErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface UpstreamAnswer {
  /** A fresh buffer the caller may modify; its ID is unspecified. */
  answer: Buffer;
  /** id ("address:port") of the server that answered. */
  server: string;
}

/** Receives the outcome of UpstreamSet.send: exactly one of the two calls, once. */
export interface UpstreamReply {
  /** `answer` is a fresh buffer the receiver may modify; its ID is unspecified. */
  onUpstreamAnswer(answer: Buffer, server: string): void;
  onUpstreamFailure(error: UpstreamError): void;
}

/** Adapts the callback form to a promise, for callers off the hot path. */
class PromiseReply implements UpstreamReply {
  constructor(
    private readonly resolve: (a: UpstreamAnswer) => void,
    private readonly reject: (e: UpstreamError) => void,
  ) {}
  onUpstreamAnswer(answer: Buffer, server: string): void {
    this.resolve({ answer, server });
  }
  onUpstreamFailure(error: UpstreamError): void {
    this.reject(error);
  }
}

export class UpstreamSet {
  readonly name: string;
  readonly strategy: Strategy;
  readonly timeoutMs: number;
  readonly servers: readonly UpstreamServer[];
  /** Counter objects, index-aligned with `servers`, fetched once per generation. */
  private readonly counts: readonly UpstreamCounts[];
  private seq = 0;
  /** @internal attempt and deadline timers of this set's queries */
  readonly wheel: TimerWheel;

  constructor(
    config: UpstreamSetConfig,
    servers: readonly UpstreamServer[],
    private readonly counters: Counters,
    private readonly now: () => number,
  ) {
    this.wheel = new TimerWheel(now);
    this.name = config.name;
    this.strategy = config.strategy;
    this.timeoutMs = config.timeoutMs;
    this.servers = servers;
    this.counts = servers.map((s) => counters.forUpstream(config.name, s.id));
  }

  /**
   * Send one query (the client's wire message; its ID is ignored) and resolve with the
   * first answer whose question matches. Rejects with UpstreamError when no server
   * answered before `deadline` (performance.now() ms, or the injected clock).
   */
  query(query: Buffer, questionEnd: number, deadline: number): Promise<UpstreamAnswer> {
    return new Promise((resolve, reject) => {
      this.send(query, questionEnd, deadline, new PromiseReply(resolve, reject));
    });
  }

  /**
   * `query` without a promise: the outcome goes to `reply`. The forwarding stage uses this
   * so a pass-through query allocates no promise or closure here.
   */
  send(query: Buffer, questionEnd: number, deadline: number, reply: UpstreamReply): void {
    const order = orderServers(this.strategy, this.servers, this.seq++);
    new ForwardedQuery(this, order, query, questionEnd, deadline, reply).start();
  }

  /** True when a server is up and verified, or up and not yet tried (presumed reachable). */
  isReady(): boolean {
    return this.servers.some((s) => s.up && (s.verified || !s.tried));
  }

  states(): UpstreamServerState[] {
    return this.servers.map((s) => s.state());
  }

  /** Open every server's connections now instead of at the first query. */
  warm(): void {
    for (const s of this.servers) s.warm();
  }

  /** @internal */
  countsOf(server: UpstreamServer): UpstreamCounts {
    return this.counts[this.servers.indexOf(server)];
  }

  /** @internal */
  get clock(): () => number {
    return this.now;
  }

  /** @internal */
  get metrics(): Counters {
    return this.counters;
  }
}

/** Bound on re-sends of one query after connections closed under it. */
const MAX_CLOSED_RETRIES = 3;

/** One try of one query on one server. */
class Attempt implements UpstreamExchange {
  conn: UpstreamConnection | null = null;
  id = 0;
  /** Each attempt is counted once: ok, error or timeout, whichever comes first. */
  counted = false;

  constructor(
    private readonly run: ForwardedQuery,
    readonly server: UpstreamServer,
    readonly counts: UpstreamCounts,
    readonly query: Buffer,
    readonly questionEnd: number,
    readonly startedAt: number,
  ) {}

  onAnswer(answer: Buffer): void {
    this.run.answered(this, answer);
  }

  onFailure(reason: string, kind: FailureKind): void {
    this.run.failed(this, reason, kind);
  }
}

/** The attempts of one query; settles exactly once. */
class ForwardedQuery {
  /** Attempts sent and not yet answered or failed: at most `maxAttempts`. */
  private readonly live: Attempt[] = [];
  private latest: Attempt | null = null;
  private next = 0;
  /** Attempts counted against `maxAttempts` (retries after a closed connection are not). */
  private started = 0;
  /**
   * Every server in `order` once, then another round over those still up (a server that
   * timed out or failed its handshake is down and not asked again for this query).
   */
  private readonly maxAttempts: number;
  /** Retries after an established connection closed under the query, which is not the server's fault. */
  private closedRetries = 0;
  private timer: WheelTimer | null = null;
  private settled = false;

  constructor(
    private readonly set: UpstreamSet,
    private readonly order: readonly UpstreamServer[],
    private readonly query: Buffer,
    private readonly questionEnd: number,
    private readonly deadline: number,
    private readonly reply: UpstreamReply,
  ) {
    this.maxAttempts = order.length * 2;
  }

  start(): void {
    this.tryNext();
  }

  answered(attempt: Attempt, answer: Buffer): void {
    if (this.settled) return;
    const now = this.set.clock();
    const ms = now - attempt.startedAt;
    if (!attempt.counted) {
      attempt.counted = true;
      attempt.counts.ok++;
    }
    this.set.metrics.upstreamDuration.observe(ms / 1000);
    attempt.server.answered(ms);
    this.remove(attempt);
    this.settle();
    this.reply.onUpstreamAnswer(answer, attempt.server.id);
  }

  failed(attempt: Attempt, _reason: string, kind: FailureKind): void {
    if (this.settled) return;
    if (kind === 'closed' && this.closedRetries < MAX_CLOSED_RETRIES) {
      this.closedRetries++;
      this.started--;
    }
    if (!attempt.counted) {
      attempt.counted = true;
      attempt.counts.error++;
    }
    const wasLatest = attempt === this.latest;
    this.remove(attempt);
    // An older, already timed-out attempt failing changes nothing; the current one failing
    // means moving on now rather than waiting for its timer.
    if (wasLatest || this.live.length === 0) this.tryNext();
  }

  private tryNext(): void {
    const now = this.set.clock();
    while (this.started < this.maxAttempts && now < this.deadline && this.order.length > 0) {
      const server = this.order[this.next];
      this.next = (this.next + 1) % this.order.length;
      this.started++;
      if (this.started > this.order.length && !server.up) continue;
      const attempt = new Attempt(this, server, this.set.countsOf(server), this.query, this.questionEnd, now);
      if (!server.send(attempt)) continue;
      this.live.push(attempt);
      this.latest = attempt;
      this.arm(Math.min(now + this.set.timeoutMs, this.deadline) - now);
      return;
    }
    this.latest = null;
    if (this.live.length > 0) {
      // Nothing left to try: an earlier attempt may still answer before the deadline.
      this.arm(this.deadline - now);
      return;
    }
    this.settle();
    if (now >= this.deadline) {
      this.reply.onUpstreamFailure(
        new UpstreamError('UPSTREAM_TIMEOUT', `no answer from upstream set ${this.set.name} in time`),
      );
    } else {
      this.reply.onUpstreamFailure(
        new UpstreamError(
          'UPSTREAM_UNAVAILABLE',
          `every server of upstream set ${this.set.name} failed; check their addresses, pins and CA`,
        ),
      );
    }
  }

  private arm(ms: number): void {
    this.timer?.cancel();
    // Rounded up: a timer must not fire before the attempt's time is really over.
    this.timer = this.set.wheel.schedule(this, this.set.clock() + Math.max(0, Math.ceil(ms)));
  }

  onTimer(): void {
    this.timer = null;
    if (this.settled) return;
    const now = this.set.clock();
    const timeoutMs = this.set.timeoutMs;
    if (now >= this.deadline - 0.5 || this.latest === null) {
      for (const a of this.live) this.timedOut(a, now - a.startedAt >= timeoutMs - 0.5);
      this.settle();
      this.reply.onUpstreamFailure(
        new UpstreamError('UPSTREAM_TIMEOUT', `no answer from upstream set ${this.set.name} in time`),
      );
      return;
    }
    // The current attempt had its timeout_ms: leave it listening, try the next server.
    this.timedOut(this.latest, true);
    this.tryNext();
  }

  private timedOut(a: Attempt, serverAtFault: boolean): void {
    if (a.counted) return;
    a.counted = true;
    a.counts.timeout++;
    if (serverAtFault) a.server.markDown(`no answer within ${this.set.timeoutMs} ms`);
  }

  private remove(attempt: Attempt): void {
    const i = this.live.indexOf(attempt);
    if (i >= 0) this.live.splice(i, 1);
    if (this.latest === attempt) this.latest = null;
  }

  private settle(): void {
    this.settled = true;
    this.timer?.cancel();
    this.timer = null;
    for (const a of this.live) a.conn?.cancel(a);
    this.live.length = 0;
  }
}
