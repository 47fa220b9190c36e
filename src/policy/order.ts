// The order of a policy's decision steps, written once: the live build composes its stages
// in this order and `explain` reports its verdicts in it, so the two cannot drift apart.
//
//  1. action first: a denying policy needs nothing else (in enforce mode nothing after it runs).
//  2. rate limit next: a flooding client must cost as little as possible, and limited queries
//     must not warm the cache or reach the upstream.
//  3. query type before domain: a type check is one bit test, a domain check walks labels.
//  4. domain before the cache: a name filtered now must not be answered from a cache warmed
//     while it was allowed (or by another policy sharing the upstream set).
// After these the live pipeline runs the cache and the upstream; lists, local records and
// routes join as further steps here.
export const POLICY_STEPS = ['action', 'rate-limit', 'query-type', 'domain'] as const;

export type PolicyStep = (typeof POLICY_STEPS)[number];
