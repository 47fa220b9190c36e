// The one interface every pipeline stage implements, and how stages are chained.
//
// Contract: a stage's `handle` returns the complete wire answer for the client
// (a Buffer whose ID is the client's), or `null` to send nothing at all (drop).
//  - answer:  return a Buffer built from ctx (see dns/answer.ts) without calling next;
//  - refuse:  return refusal(ctx, ...) — an answer with RCODE REFUSED / NXDOMAIN;
//  - drop:    return null;
//  - pass on: return next(ctx) (possibly post-processing what comes back).
// A stage may return synchronously; the chain only allocates a promise where a stage
// really waits (the upstream), so cache hits and refusals stay on the synchronous path.
import type { QueryContext } from './context.js';

export type StageResult = Buffer | null;
export type MaybePromise<T> = T | Promise<T>;
export type Handler = (ctx: QueryContext) => MaybePromise<StageResult>;

export interface Stage {
  /** Short, stable name used in logs (`rate-limit`, `cache`, ...). */
  readonly name: string;
  handle(ctx: QueryContext, next: Handler): MaybePromise<StageResult>;
}

/** Compose stages (outermost first) in front of a terminal handler, once per config generation. */
export function compose(stages: readonly Stage[], terminal: Handler): Handler {
  let next = terminal;
  for (let i = stages.length - 1; i >= 0; i--) {
    const stage = stages[i];
    const inner = next;
    next = (ctx) => stage.handle(ctx, inner);
  }
  return next;
}
