// Builds one config generation: the policy table, each policy's composed stage chain and
// the upstream sets, plus the state carried over from the previous generation
// (rate-limit buckets, caches) where the config that owns it did not change.
import type { GatewayConfig, PolicyConfig, RateLimitConfig, UpstreamSetConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import { type Counters, type DecisionCounts, UNMATCHED_POLICY } from '../metrics/counters.js';
import { AuditStage } from '../policy/audit.js';
import { POLICY_STEPS, type PolicyStep } from '../policy/order.js';
import { compileRules, type PolicyRules } from '../policy/rules.js';
import { AnswerCache, CacheStage } from '../stages/cache.js';
import { DenyStage } from '../stages/deny.js';
import { DomainStage } from '../stages/domain.js';
import { ForwardStage } from '../stages/forward.js';
import { PolicyTable } from '../stages/match-policy.js';
import { QueryTypeStage } from '../stages/query-type.js';
import { RateLimiter, RateLimitStage } from '../stages/rate-limit.js';
import type { UpstreamHub } from '../upstream/hub.js';
import type { UpstreamSet } from '../upstream/set.js';
import type { CompiledPolicy } from './policy.js';
import { compose, type Handler, type Stage } from './stage.js';

/** State that outlives a generation, keyed by the config it was built from. */
export interface CarriedState {
  /** policy name → limiter, kept while the policy's rate_limit (and the bucket bound) is unchanged. */
  readonly limiters: Map<string, { key: string; limiter: RateLimiter }>;
  /** upstream set name → cache, kept while the set and the cache settings are unchanged. */
  readonly caches: Map<string, { key: string; cache: AnswerCache }>;
}

export interface BuildDeps {
  readonly counters: Counters;
  readonly logger: Logger;
  readonly hub: UpstreamHub;
  readonly carried: CarriedState;
  /** Milliseconds; injected so stages are testable without sleeping. */
  readonly now: () => number;
  /**
   * Processes sharing the listening sockets (the `workers` setting, 1 when absent). Each
   * enforces qps/N with a burst of ceil(burst/N), so together they approximate the
   * configured rate when the kernel spreads a client's packets over them.
   */
  readonly rateDivisor?: number;
}

export interface Generation {
  readonly config: GatewayConfig;
  readonly table: PolicyTable<CompiledPolicy>;
  readonly upstreamSets: ReadonlyMap<string, UpstreamSet>;
  readonly unmatchedCounts: DecisionCounts;
  readonly logUnmatched: boolean;
  /** The carried state this generation uses; the store keeps only these after a swap. */
  readonly carried: CarriedState;
}

export function buildGeneration(config: GatewayConfig, deps: BuildDeps): Generation {
  const upstreamSets = deps.hub.buildSets(config.upstreams);
  const carried: CarriedState = { limiters: new Map(), caches: new Map() };
  const entries: { cidr: string; value: CompiledPolicy }[] = [];
  for (const policy of config.policies) {
    const compiled = compilePolicy(policy, config, upstreamSets, deps, carried);
    for (const cidr of policy.clients) entries.push({ cidr, value: compiled });
  }
  return {
    config,
    table: new PolicyTable(entries),
    upstreamSets,
    unmatchedCounts: deps.counters.forPolicy(UNMATCHED_POLICY),
    logUnmatched: config.log.queries,
    carried,
  };
}

function compilePolicy(
  policy: PolicyConfig,
  config: GatewayConfig,
  upstreamSets: ReadonlyMap<string, UpstreamSet>,
  deps: BuildDeps,
  carried: CarriedState,
): CompiledPolicy {
  const udpMax = config.limits.udpMaxPayload;
  const counts = deps.counters.forPolicy(policy.name);
  const logQueries = policy.logQueries ?? config.log.queries;
  const rules = compileRules(policy);
  const base = { name: policy.name, config: policy, rules, counts, logQueries };

  if (policy.action === 'deny' && policy.mode === 'enforce') {
    // A denying policy has no other stage: nothing after the refusal could run.
    const deny = new DenyStage(policy.denyWith, udpMax);
    return { ...base, handle: (ctx) => deny.handle(ctx, forbidden) };
  }

  const upstream = upstreamSets.get(policy.upstream);
  if (!upstream) throw new Error(`policy ${policy.name}: upstream set ${policy.upstream} not built`);

  // The steps in the one order of src/policy/order.ts (which says why each sits where it
  // does). In audit mode each is wrapped so that it records what it would block instead.
  const audit = policy.mode === 'audit' ? deps.counters.forAudit(policy.name) : null;
  const stages: Stage[] = [];
  for (const step of POLICY_STEPS) {
    const stage = policyStage(step, rules, policy, config, deps, carried);
    if (stage !== null) stages.push(audit === null ? stage : new AuditStage(stage, audit));
  }
  // The cache last before the upstream: only queries that passed every check get here.
  if (policy.cache) {
    const cache = carriedCache(policy.upstream, config, deps, carried);
    stages.push(new CacheStage(cache, deps.counters, udpMax));
  }
  const forward = new ForwardStage(upstream, config.limits.timeoutMs, udpMax, policy.cache);
  return { ...base, handle: compose(stages, forward.handle) };
}

/** The live stage of one policy step, or null when the policy does not use the step. */
function policyStage(
  step: PolicyStep,
  rules: PolicyRules,
  policy: PolicyConfig,
  config: GatewayConfig,
  deps: BuildDeps,
  carried: CarriedState,
): Stage | null {
  const udpMax = config.limits.udpMaxPayload;
  switch (step) {
    case 'action':
      return policy.action === 'deny' ? new DenyStage(policy.denyWith, udpMax) : null;
    case 'rate-limit':
      return policy.rateLimit
        ? new RateLimitStage(carriedLimiter(policy, config, deps, carried), policy.rateLimit, udpMax)
        : null;
    case 'query-type':
      return rules.queryTypes ? new QueryTypeStage(rules.queryTypes, policy.denyWith, udpMax) : null;
    case 'domain':
      return rules.domains ? new DomainStage(rules.domains, policy.denyWith, udpMax) : null;
  }
}

/** The `next` of a stage that never passes a query on. */
const forbidden: Handler = () => {
  throw new Error('a denying stage passed a query on');
};

function carriedLimiter(
  policy: PolicyConfig,
  config: GatewayConfig,
  deps: BuildDeps,
  carried: CarriedState,
): RateLimiter {
  const rl = dividedRate(policy.rateLimit!, deps.rateDivisor ?? 1);
  const key = JSON.stringify([rl, config.limits.maxRateLimitBuckets]);
  const existing = carried.limiters.get(policy.name) ?? deps.carried.limiters.get(policy.name);
  if (existing && existing.key === key) {
    carried.limiters.set(policy.name, existing);
    return existing.limiter;
  }
  const limiter = new RateLimiter(rl, config.limits.maxRateLimitBuckets, deps.now);
  carried.limiters.set(policy.name, { key, limiter });
  return limiter;
}

/** One process's share of a rate limit shared by `divisor` processes. */
function dividedRate(rl: RateLimitConfig, divisor: number): RateLimitConfig {
  if (divisor <= 1) return rl;
  return { ...rl, qps: rl.qps / divisor, burst: Math.ceil(rl.burst / divisor) };
}

function carriedCache(
  setName: string,
  config: GatewayConfig,
  deps: BuildDeps,
  carried: CarriedState,
): AnswerCache {
  const setConfig = config.upstreams.get(setName) as UpstreamSetConfig;
  const key = JSON.stringify([setConfig, config.cache]);
  const existing = carried.caches.get(setName) ?? deps.carried.caches.get(setName);
  if (existing && existing.key === key) {
    carried.caches.set(setName, existing);
    return existing.cache;
  }
  const cache = new AnswerCache(config.cache, deps.now);
  carried.caches.set(setName, { key, cache });
  return cache;
}
