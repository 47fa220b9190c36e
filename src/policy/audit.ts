// Audit mode for one stage: what the stage would deny, filter or rate-limit is let through
// as allowed, remembered on the query (`would`) and counted.
import type { AuditCounts } from '../metrics/counters.js';
import type { Decision, QueryContext } from '../pipeline/context.js';
import type { Handler, MaybePromise, Stage, StageResult } from '../pipeline/stage.js';

/** Stands for "the wrapped stage passed the query on"; never sent anywhere. */
const PASSED: StageResult = Buffer.alloc(0);
const markPassed: Handler = () => PASSED;

/**
 * Wraps a blocking stage: one that either returns `next(ctx)` as it is, or sets
 * ctx.decision and answers itself (deny, rate limit, query type, domain). The stage runs
 * with a `next` that only marks the pass, so the wrapper learns, without a closure per
 * query, whether the stage would have blocked. If it would, its answer is discarded, the
 * first such decision of the query is kept in ctx.would and counted, and the query goes
 * on as allowed. So `would` is the decision enforce mode would have taken: the first
 * stage that blocks, in pipeline order.
 */
export class AuditStage implements Stage {
  readonly name: string;

  constructor(
    private readonly inner: Stage,
    private readonly counts: AuditCounts,
  ) {
    this.name = inner.name;
  }

  handle(ctx: QueryContext, next: Handler): MaybePromise<StageResult> {
    if (this.inner.handle(ctx, markPassed) === PASSED) return next(ctx);
    const would = ctx.decision as Decision;
    if (ctx.would === null && would !== 'allowed' && would !== 'unmatched') {
      ctx.would = would;
      this.counts[would]++;
    }
    ctx.decision = 'allowed';
    return next(ctx);
  }
}
