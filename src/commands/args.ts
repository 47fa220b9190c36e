// The small flag parser the offline commands (explain, test, diff) share: `--flag VALUE`,
// `--flag=VALUE`, boolean switches and positional arguments, with usage errors as values.

export class UsageError extends Error {}

export interface ParsedArgs {
  readonly values: Map<string, string>;
  readonly switches: Set<string>;
  readonly positional: string[];
}

/**
 * `valued`: flags taking a value (`--config`); `switches`: flags without one (`--json`).
 * Anything else starting with `-` is a usage error; `--` ends the flags.
 */
export function parseArgs(
  argv: readonly string[],
  valued: readonly string[],
  switches: readonly string[],
): ParsedArgs {
  const values = new Map<string, string>();
  const on = new Set<string>();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = (eq < 0 ? arg : arg.slice(0, eq)).replace(/^--?/, '');
    if (valued.includes(flag)) {
      const value = eq < 0 ? argv[++i] : arg.slice(eq + 1);
      if (value === undefined) throw new UsageError(`--${flag} needs a value`);
      if (values.has(flag)) throw new UsageError(`--${flag} given twice`);
      values.set(flag, value);
    } else if (switches.includes(flag) && eq < 0) {
      on.add(flag);
    } else {
      throw new UsageError(`unknown option ${arg}`);
    }
  }
  return { values, switches: on, positional };
}

/** Exit codes of the offline commands (explain, test, diff), as listed in the README. */
export const EXIT_OK = 0;
/** test: a case failed; diff: the configs differ. */
export const EXIT_DIFFERENT = 1;
/** Invalid input: usage, a config or a test file that does not load. */
export const EXIT_INVALID = 2;
