// The shapes the lists module expects from the config and hands to its callers: what a list is
// (name, format, sources, refresh, mode), what a lookup returns, and the action vocabulary.

export type ListFormat = 'domains' | 'hosts' | 'adblock' | 'rpz';
export const LIST_FORMATS: readonly ListFormat[] = Object.freeze(['domains', 'hosts', 'adblock', 'rpz']);

/** `audit`: hits are reported, nothing is blocked (the stages decide; the list only carries it). */
export type ListMode = 'enforce' | 'audit';

/** One named list as the config describes it (parsed and validated before it gets here). */
export interface ListConfig {
  readonly name: string;
  readonly format: ListFormat;
  /** Absolute or cwd-relative paths; watched, and a change reloads this list alone. */
  readonly files: readonly string[];
  /** http: or https: URLs, fetched at start and every `refreshMs`. */
  readonly urls: readonly string[];
  /** Period of the URL refresh; null: URLs are fetched at start only. At least 1000. */
  readonly refreshMs: number | null;
  readonly mode: ListMode;
}

/** Everything the lists module needs from a config generation. */
export interface ListsConfig {
  readonly lists: readonly ListConfig[];
  /** Where the last good copy of every URL list is kept; null: no copies. */
  readonly stateDir: string | null;
}

/**
 * What a matching entry asks for. `deny`: a plain list entry, answered per the policy's
 * `deny_with`; `allow`: an adblock `@@` exception or an RPZ PASSTHRU; the rest are RPZ actions,
 * `local` meaning the entry's own records (see {@link LocalRecord}).
 */
export type ListAction = 'deny' | 'allow' | 'nxdomain' | 'nodata' | 'drop' | 'local';

/** Numeric codes of {@link ListAction}, as stored per entry (one byte). */
export const ACTION_DENY = 0;
export const ACTION_ALLOW = 1;
export const ACTION_NXDOMAIN = 2;
export const ACTION_NODATA = 3;
export const ACTION_DROP = 4;
export const ACTION_LOCAL = 5;
/** No entry in this slot. */
export const ACTION_NONE = 255;
export type ActionCode = 0 | 1 | 2 | 3 | 4 | 5;

export const ACTION_NAMES: readonly ListAction[] = Object.freeze([
  'deny',
  'allow',
  'nxdomain',
  'nodata',
  'drop',
  'local',
]);

/**
 * `exact`: the name only (hosts lines, RPZ bare owners); `subtree`: the name and every name under
 * it (domains, adblock `||name^`); `wildcard`: names under it but not the name itself (`*.name`).
 */
export type EntryKind = 'exact' | 'subtree' | 'wildcard';

/** One record of an RPZ local-data answer. A name with records answers NODATA for other types. */
export type LocalRecord =
  | { readonly type: 'A'; readonly ttl: number; readonly address: string }
  | { readonly type: 'AAAA'; readonly ttl: number; readonly address: string }
  | { readonly type: 'TXT'; readonly ttl: number; readonly strings: readonly string[] }
  /** `name CNAME target.` in an RPZ zone: answered with this CNAME, not chased. */
  | { readonly type: 'CNAME'; readonly ttl: number; readonly target: string };

/** The entry a query name matched, with where it came from (for explain, logs and metrics). */
export interface ListHit {
  readonly list: string;
  readonly action: ListAction;
  /** The entry as listed, lowercased: `example.com`, `*.example.com`, or `*` for the whole tree. */
  readonly entry: string;
  readonly kind: EntryKind;
  /** The file path or URL the entry was read from. */
  readonly source: string;
  /** 1-based line of the entry (for a multi-line record, its first line). */
  readonly line: number;
  /** The records of a `local` action, in file order; null for every other action. */
  readonly local: readonly LocalRecord[] | null;
}

/** One line a parser could not use, for the once-per-load warning. */
export interface SkippedLine {
  /** File path or URL. */
  readonly source: string;
  readonly line: number;
  readonly reason: string;
  /** The line as read, cut to {@link SKIPPED_TEXT_MAX} characters. */
  readonly text: string;
}

/** Skipped lines are reported as a count plus this many examples per load. */
export const SKIPPED_SAMPLES_MAX = 5;
/** Characters of a skipped line kept in its example. */
export const SKIPPED_TEXT_MAX = 120;

export interface SkipReport {
  readonly count: number;
  readonly samples: readonly SkippedLine[];
}

/** How one load (start, refresh, file change) of a list or source ended; the metric label. */
export type RefreshResult = 'success' | 'not_modified' | 'failure';

const REFRESH_UNITS: Readonly<Record<string, number>> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Shortest refresh period accepted. */
export const MIN_REFRESH_MS = 1000;

/**
 * `<n>s|m|h|d` → milliseconds (`30s`, `15m`, `1h`, `1d`); n is a positive integer and the
 * period at least 1 s. Throws a RangeError that names the value and the accepted form.
 */
export function parseRefresh(value: string): number {
  const m = /^([1-9][0-9]{0,8})([smhd])$/.exec(value);
  const ms = m === null ? Number.NaN : Number(m[1]) * REFRESH_UNITS[m[2]];
  if (!(ms >= MIN_REFRESH_MS) || !Number.isSafeInteger(ms))
    throw new RangeError(
      `refresh ${JSON.stringify(value)} is not <n>s|m|h|d of at least 1s (e.g. 30s, 15m, 1h, 1d)`,
    );
  return ms;
}
