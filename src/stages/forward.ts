// The terminal stage: send the query to the policy's upstream set over pinned DoT and
// hand back its answer with the client's ID, or SERVFAIL when no server answered in time.

import { setId, synthesize } from '../dns/answer.js';
import { RCODE_SERVFAIL } from '../dns/constants.js';
import type { QueryContext } from '../pipeline/context.js';
import type { StageResult } from '../pipeline/stage.js';
import type { UpstreamSet } from '../upstream/set.js';

export class ForwardStage {
  readonly name = 'forward';

  constructor(
    private readonly upstream: UpstreamSet,
    private readonly timeoutMs: number,
    private readonly udpMaxPayload: number,
  ) {}

  /** Bound as the chain's terminal handler. */
  readonly handle = (ctx: QueryContext): Promise<StageResult> =>
    this.upstream.query(ctx.query, ctx.questionEnd, ctx.startedAt + this.timeoutMs).then(
      (res) => {
        setId(res.answer, ctx.id);
        ctx.upstreamServer = res.server;
        return res.answer;
      },
      // Every upstream failure (timeout, pin mismatch everywhere, all servers down) is the
      // same thing to the client: the gateway could not get an answer in time.
      () => synthesize(ctx.query, ctx.questionEnd, RCODE_SERVFAIL, ctx.ednsUdpSize, this.udpMaxPayload),
    );
}
