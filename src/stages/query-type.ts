// The query-type filter stage: a policy's allow- or deny-list of RR types, checked with
// one bit test per query. The check itself is a pure filter that `explain` calls too.
import { rrTypeName } from '../config/rrtypes.js';
import type { DenyWith, QueryTypeFilterConfig } from '../config/types.js';
import type { QueryContext } from '../pipeline/context.js';
import type { Handler, MaybePromise, Stage, StageResult } from '../pipeline/stage.js';
import { denyAnswer, type FilterVerdict } from './deny.js';

const PASS_UNLISTED: FilterVerdict = Object.freeze({
  filtered: false,
  rule: null,
  list: null,
  entry: null,
  line: null,
});
const NOT_ALLOWED: FilterVerdict = Object.freeze({
  filtered: true,
  rule: 'not-allowed',
  list: null,
  entry: null,
  line: null,
});

/** With `allow`, only the listed types pass; with `deny`, the listed types are filtered. */
export class QueryTypeFilter {
  /**
   * One bit per RR type up to the highest one listed, built once per config generation:
   * 32 bytes for the usual lists (ANY is 255), 8 KiB at most. Sized to the list rather
   * than to all 65536 types, so 10,000 policies do not cost 80 MB of zeroed bitmaps.
   */
  private readonly listed: Uint8Array;
  /** true: the list is an allow-list; false: a deny-list. */
  private readonly allowList: boolean;

  constructor(cfg: QueryTypeFilterConfig) {
    this.allowList = cfg.allow !== null;
    const types = (cfg.allow ?? cfg.deny ?? []).filter((t) => Number.isInteger(t) && t >= 0 && t <= 0xffff);
    const highest = types.reduce((max, t) => Math.max(t, max), -1);
    this.listed = new Uint8Array(highest < 0 ? 0 : (highest >>> 3) + 1);
    for (const type of types) this.listed[type >>> 3] |= 1 << (type & 7);
  }

  private isListed(type: number): boolean {
    const byte = type >>> 3;
    // Past the highest listed type nothing is listed; checked, not read out of bounds.
    return byte < this.listed.length && (this.listed[byte] & (1 << (type & 7))) !== 0;
  }

  /** true when a query of this type is filtered. The hot path: no allocation. */
  filters(type: number): boolean {
    return this.isListed(type) !== this.allowList;
  }

  /** The same decision as `filters`, with the entry that made it. */
  verdict(type: number): FilterVerdict {
    const filtered = this.filters(type);
    if (!this.isListed(type)) return filtered ? NOT_ALLOWED : PASS_UNLISTED;
    return {
      filtered,
      rule: this.allowList ? 'allow' : 'deny',
      list: null,
      entry: rrTypeName(type),
      line: null,
    };
  }
}

/** Filtered queries get the policy's `deny_with` answer and ctx.decision = 'filtered'. */
export class QueryTypeStage implements Stage {
  readonly name = 'query-type';
  readonly filter: QueryTypeFilter;

  constructor(
    cfg: QueryTypeFilterConfig | QueryTypeFilter,
    private readonly denyWith: DenyWith,
    private readonly udpMaxPayload: number,
  ) {
    this.filter = cfg instanceof QueryTypeFilter ? cfg : new QueryTypeFilter(cfg);
  }

  handle(ctx: QueryContext, next: Handler): MaybePromise<StageResult> {
    if (!this.filter.filters(ctx.qtype)) return next(ctx);
    ctx.decision = 'filtered';
    return denyAnswer(ctx, this.denyWith, this.udpMaxPayload);
  }
}
