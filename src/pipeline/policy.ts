// A policy as it runs: its frozen config, its composed stage chain and its counters,
// all built once per config generation.
import type { PolicyConfig } from '../config/types.js';
import type { DecisionCounts } from '../metrics/counters.js';
import type { PolicyRules } from '../policy/rules.js';
import type { Handler } from './stage.js';

export interface CompiledPolicy {
  readonly name: string;
  readonly config: PolicyConfig;
  /** Its stateless rules (the filters), shared with the live stages. */
  readonly rules: PolicyRules;
  /** The policy's stages composed in front of the upstream. */
  readonly handle: Handler;
  readonly counts: DecisionCounts;
  /** Resolved from `log_queries` ?? `log.queries`. */
  readonly logQueries: boolean;
}
