// The terminal stage: send the query to the policy's upstream set over pinned DoT and
// hand back its answer with the client's ID, or SERVFAIL when no server answered in time.
// What leaves is the gateway's own query (dns/edns.ts: our OPT, padded, none of the
// client's options); what comes back has the gateway's OPT in place of the upstream's.
import { setId, synthesize } from '../dns/answer.js';
import { RCODE_SERVFAIL } from '../dns/constants.js';
import { toClientForm, toEdnsClientForm, upstreamQuery } from '../dns/edns.js';
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
    private readonly stage: ForwardStage,
  ) {}

  onUpstreamAnswer(answer: Buffer, server: string): void {
    const ctx = this.ctx;
    const stage = this.stage;
    // In place: the answer is a view of the upstream read that nothing else holds.
    const out = stage.ednsForm
      ? toEdnsClientForm(answer, ctx.questionEnd, stage.udpMaxPayload)
      : toClientForm(answer, ctx.questionEnd, ctx.ednsUdpSize > 0, stage.udpMaxPayload);
    if (out === null) {
      // An OPT we cannot rebuild (records after it, malformed options): pass nothing on.
      this.onUpstreamFailure();
      return;
    }
    setId(out, ctx.id);
    ctx.upstreamServer = server;
    this.resolve(out);
  }

  // Every upstream failure (timeout, pin mismatch everywhere, all servers down) is the
  // same thing to the client: the gateway could not get an answer in time.
  onUpstreamFailure(): void {
    const ctx = this.ctx;
    const stage = this.stage;
    const edns = stage.ednsForm ? 1 : ctx.ednsUdpSize;
    this.resolve(synthesize(ctx.query, ctx.questionEnd, RCODE_SERVFAIL, edns, stage.udpMaxPayload));
  }
}

export class ForwardStage {
  readonly name = 'forward';

  constructor(
    private readonly upstream: UpstreamSet,
    private readonly timeoutMs: number,
    /** `limits.udp_max_payload`: the UDP size of the OPT on answers to EDNS clients. */
    readonly udpMaxPayload: number,
    /**
     * true: answer in the EDNS-client form whatever the client sent, for the cache stage in
     * front, which stores that form and makes each client's answer from it; false: answer
     * in the client's own form.
     */
    readonly ednsForm = false,
  ) {}

  /** Bound as the chain's terminal handler. */
  readonly handle = (ctx: QueryContext): Promise<StageResult> => {
    const promise = new Promise<StageResult>(captureResolve);
    const reply = new ForwardReply(ctx, capturedResolve!, this);
    capturedResolve = null;
    const query = upstreamQuery(ctx.query, ctx.questionEnd, ctx.dnssecOk);
    this.upstream.send(query, ctx.questionEnd, ctx.startedAt + this.timeoutMs, reply);
    return promise;
  };
}
