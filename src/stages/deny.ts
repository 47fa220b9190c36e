// The answer a policy gives when it denies or filters a query (`deny_with`).
import type { DenyWith } from '../config/types.js';
import { synthesize } from '../dns/answer.js';
import { RCODE_NXDOMAIN, RCODE_REFUSED } from '../dns/constants.js';
import type { QueryContext } from '../pipeline/context.js';
import type { StageResult } from '../pipeline/stage.js';

export function denyAnswer(ctx: QueryContext, denyWith: DenyWith, udpMaxPayload: number): StageResult {
  if (denyWith === 'drop') return null;
  const rcode = denyWith === 'nxdomain' ? RCODE_NXDOMAIN : RCODE_REFUSED;
  return synthesize(ctx.query, ctx.questionEnd, rcode, ctx.ednsUdpSize, udpMaxPayload);
}
