// Owns the vocabulary every config check shares — a positioned problem, a path into the
// config data, how a path is found in the source and how it is spelled in messages — so
// load, schema and semantic all look down to it and never at each other.

/** One thing wrong with a config. line/col are 1-based; 0/0 means "no position" (e.g. flags). */
export interface ConfigProblem {
  line: number;
  col: number;
  message: string;
}

/** A path into the config data: map keys and sequence indexes, as ajv's instancePath spells them. */
export type ConfigPath = readonly (string | number)[];

/**
 * Finds where a path is written. `key` asks for the key of the last segment (for unknown keys);
 * `value` for its value. A path that is not in the source (a default, a missing key) resolves to
 * the nearest written ancestor.
 */
export type Locator = (path: ConfigPath, at: 'key' | 'value') => { line: number; col: number };

/** Used where there is no source text to point into. */
export const NO_POSITION: Locator = () => ({ line: 0, col: 0 });

/** ["policies", 0, "rate_limit"] -> "policies[0].rate_limit"; the root reads "config". */
export function describePath(path: ConfigPath): string {
  if (path.length === 0) return 'config';
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out === '' ? segment : `.${segment}`;
  }
  return out;
}
