// The query-type filter stage: a policy's allow- or deny-list of RR types, checked with
// one bit test per query.
import type { DenyWith, QueryTypeFilterConfig } from '../config/types.js';
import type { QueryContext } from '../pipeline/context.js';
import type { Handler, MaybePromise, Stage, StageResult } from '../pipeline/stage.js';
import { denyAnswer } from './deny.js';

/**
 * With `allow`, only the listed types pass; with `deny`, the listed types are filtered.
 * Filtered queries get the policy's `deny_with` answer and ctx.decision = 'filtered'.
 */
export class QueryTypeStage implements Stage {
  readonly name = 'query-type';
  /** One bit per possible RR type (65536 bits = 8 KiB), built once per config generation. */
  private readonly listed = new Uint8Array(8192);
  /** true: the list is an allow-list; false: a deny-list. */
  private readonly allowList: boolean;

  constructor(
    cfg: QueryTypeFilterConfig,
    private readonly denyWith: DenyWith,
    private readonly udpMaxPayload: number,
  ) {
    this.allowList = cfg.allow !== null;
    for (const type of cfg.allow ?? cfg.deny ?? []) {
      if (Number.isInteger(type) && type >= 0 && type <= 0xffff) this.listed[type >>> 3] |= 1 << (type & 7);
    }
  }

  handle(ctx: QueryContext, next: Handler): MaybePromise<StageResult> {
    const type = ctx.qtype;
    const isListed = (this.listed[type >>> 3] & (1 << (type & 7))) !== 0;
    if (isListed === this.allowList) return next(ctx);
    ctx.decision = 'filtered';
    return denyAnswer(ctx, this.denyWith, this.udpMaxPayload);
  }
}
