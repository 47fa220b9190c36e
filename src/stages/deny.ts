// The answer a policy gives when it denies or filters a query (`deny_with`), the stage of a
// denying policy, and the verdict shape the filter stages share with `explain`.
import type { DenyWith } from '../config/types.js';
import { synthesize } from '../dns/answer.js';
import { RCODE_NXDOMAIN, RCODE_REFUSED } from '../dns/constants.js';
import type { QueryContext } from '../pipeline/context.js';
import type { Handler, Stage, StageResult } from '../pipeline/stage.js';

/**
 * What a filter found for one query, as a pure value: the live stage acts on `filtered`,
 * `explain` and `test` print the rest. `rule` says which part of the filter decided: an
 * `allow` entry, a `deny` entry, `not-allowed` (an allow-list whose entries all missed),
 * or null when nothing matched and the query passes.
 */
export interface FilterVerdict {
  readonly filtered: boolean;
  readonly rule: 'allow' | 'deny' | 'not-allowed' | null;
  /** The named list holding `entry`; null for an inline entry (or no entry). */
  readonly list: string | null;
  /** The entry that matched, as configured (a name, an RR type mnemonic); null when none did. */
  readonly entry: string | null;
  /** 1-based line of `entry` in its list's file; null for inline entries. */
  readonly line: number | null;
}

/** The RCODE a `deny_with` answers with, or -1 for `drop` (no answer at all). */
export function denyRcode(denyWith: DenyWith): number {
  if (denyWith === 'drop') return -1;
  return denyWith === 'nxdomain' ? RCODE_NXDOMAIN : RCODE_REFUSED;
}

export function denyAnswer(ctx: QueryContext, denyWith: DenyWith, udpMaxPayload: number): StageResult {
  const rcode = denyRcode(denyWith);
  if (rcode < 0) return null;
  return synthesize(ctx.query, ctx.questionEnd, rcode, ctx.ednsUdpSize, udpMaxPayload);
}

/** `action: deny`: every query is denied per `deny_with`; nothing after it runs. */
export class DenyStage implements Stage {
  readonly name = 'action';

  constructor(
    private readonly denyWith: DenyWith,
    private readonly udpMaxPayload: number,
  ) {}

  handle(ctx: QueryContext, _next: Handler): StageResult {
    ctx.decision = 'denied';
    return denyAnswer(ctx, this.denyWith, this.udpMaxPayload);
  }
}
