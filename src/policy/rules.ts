// A policy's stateless rules, compiled once per config generation: the filters the live
// stages run and `explain` queries. Stateful parts (rate-limit buckets, the cache) are not
// here; the live build adds them around these.
import type { PolicyConfig } from '../config/types.js';
import { DomainFilter } from '../stages/domain.js';
import { QueryTypeFilter } from '../stages/query-type.js';

export interface PolicyRules {
  readonly policy: PolicyConfig;
  /** null when the policy has no query_types filter. */
  readonly queryTypes: QueryTypeFilter | null;
  /** null when the policy has no domain filter. */
  readonly domains: DomainFilter | null;
}

export function compileRules(policy: PolicyConfig): PolicyRules {
  return {
    policy,
    queryTypes: policy.queryTypes ? new QueryTypeFilter(policy.queryTypes) : null,
    domains: policy.domains ? new DomainFilter(policy.domains) : null,
  };
}
