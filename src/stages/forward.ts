// The terminal stage: send the query to the policy's upstream set over pinned DoT and
// hand back its answer with the client's ID, or SERVFAIL when no server answered in time.
import { setId, synthesize } from '../dns/answer.js';
import { RCODE_SERVFAIL } from '../dns/constants.js';
import type { QueryContext } from '../pipeline/context.js';
import type { StageResult } from '../pipeline/stage.js';
import type { UpstreamReply, UpstreamSet } from '../upstream/set.js';

// `new Promise(executor)` with a closure per query showed in profiles; this executor is
// shared and hands the resolve function out through a module variable instead.
let capturedResolve: ((value: StageResult) => void) | null = null;
function captureResolve(resolve: (value: StageResult) => void): void {
  capturedResolve = resolve;
}

/** One forwarded query's outcome, turned into the client's answer. */
class ForwardReply implements UpstreamReply {
  constructor(
    private readonly ctx: QueryContext,
    private readonly resolve: (value: StageResult) => void,
    private readonly udpMaxPayload: number,
  ) {}

  onUpstreamAnswer(answer: Buffer, server: string): void {
    setId(answer, this.ctx.id);
    this.ctx.upstreamServer = server;
    this.resolve(answer);
  }

  // Every upstream failure (timeout, pin mismatch everywhere, all servers down) is the
  // same thing to the client: the gateway could not get an answer in time.
  onUpstreamFailure(): void {
    const ctx = this.ctx;
    this.resolve(synthesize(ctx.query, ctx.questionEnd, RCODE_SERVFAIL, ctx.ednsUdpSize, this.udpMaxPayload));
  }
}

export class ForwardStage {
  readonly name = 'forward';

  constructor(
    private readonly upstream: UpstreamSet,
    private readonly timeoutMs: number,
    private readonly udpMaxPayload: number,
  ) {}

  /** Bound as the chain's terminal handler. */
  readonly handle = (ctx: QueryContext): Promise<StageResult> => {
    const promise = new Promise<StageResult>(captureResolve);
    const reply = new ForwardReply(ctx, capturedResolve!, this.udpMaxPayload);
    capturedResolve = null;
    this.upstream.send(ctx.query, ctx.questionEnd, ctx.startedAt + this.timeoutMs, reply);
    return promise;
  };
}
