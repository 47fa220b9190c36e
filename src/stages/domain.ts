// The domain filter stage and the suffix set behind it: a policy's allow and deny lists
// of names, matched on label boundaries. The decision is a pure filter `explain` calls too.
import type { DenyWith, DomainFilterConfig } from '../config/types.js';
import { asciiLower } from '../dns/wire.js';
import type { QueryContext } from '../pipeline/context.js';
import type { Handler, MaybePromise, Stage, StageResult } from '../pipeline/stage.js';
import { denyAnswer, type FilterVerdict } from './deny.js';

/**
 * A hash set of names; a query name matches when it or one of its parents is listed.
 * Lookup probes once per label of the query name (at most 127), whatever the size of the
 * list; building it is one Set insert per name. Case-insensitive; a trailing dot on a
 * listed name is ignored; the root ("" or ".") matches every name.
 *
 * Every '.' in the query name counts as a boundary, including one the wire peek wrote as
 * "\." for a dot inside a label, so a name can match a parent it is not really under
 * (never the other way round). Callers that grant something on a match check for '\\'.
 *
 * Bound: the set holds exactly the configured names.
 */
export class DomainSet {
  private readonly names = new Set<string>();
  private readonly matchesAll: boolean;
  /** Length of the longest and shortest listed name: suffixes outside that span are not probed. */
  private readonly longest: number;
  private readonly shortest: number;

  constructor(names: readonly string[]) {
    let matchesAll = false;
    let longest = 0;
    let shortest = Number.POSITIVE_INFINITY;
    for (const raw of names) {
      let name = raw.toLowerCase();
      if (name.endsWith('.')) name = name.slice(0, -1);
      if (name.length === 0) {
        matchesAll = true;
        continue;
      }
      this.names.add(name);
      if (name.length > longest) longest = name.length;
      if (name.length < shortest) shortest = name.length;
    }
    this.matchesAll = matchesAll;
    this.longest = longest;
    this.shortest = shortest;
  }

  get size(): number {
    return this.names.size + (this.matchesAll ? 1 : 0);
  }

  /** true when `lname` or one of its parents is listed. */
  has(lname: string): boolean {
    return this.match(lname) !== null;
  }

  /**
   * The listed name that covers `lname` (itself or its nearest listed parent; "." for the
   * root), or null. The suffix probed is the string returned, so a hit allocates nothing more.
   */
  match(lname: string): string | null {
    if (this.matchesAll) return '.';
    const names = this.names;
    if (names.size === 0) return null;
    const name = asciiLower(lname);
    const length = name.length;
    if (length <= this.longest && names.has(name)) return name;
    for (let dot = name.indexOf('.'); dot >= 0; dot = name.indexOf('.', dot + 1)) {
      const suffixLength = length - dot - 1;
      if (suffixLength < this.shortest) return null;
      if (suffixLength <= this.longest) {
        const suffix = name.slice(dot + 1);
        if (names.has(suffix)) return suffix;
      }
    }
    return null;
  }
}

const PASS_UNLISTED: FilterVerdict = Object.freeze({
  filtered: false,
  rule: null,
  list: null,
  entry: null,
  line: null,
});
const NOT_ALLOWED: FilterVerdict = Object.freeze({
  filtered: true,
  rule: 'not-allowed',
  list: null,
  entry: null,
  line: null,
});

/**
 * A name under `allow` passes; else a name under `deny` is filtered; else it passes,
 * unless the policy lists only `allow` (an allow-list), when every other name is
 * filtered. Named lists (allow_lists, deny_lists) join here as further sets whose
 * verdicts carry the list name and line.
 */
export class DomainFilter {
  /** null when the list is empty, so the hot path skips it with one comparison. */
  private readonly allow: DomainSet | null;
  private readonly deny: DomainSet | null;
  private readonly allowOnly: boolean;

  constructor(cfg: DomainFilterConfig) {
    this.allow = cfg.allow.length > 0 ? new DomainSet(cfg.allow) : null;
    this.deny = cfg.deny.length > 0 ? new DomainSet(cfg.deny) : null;
    this.allowOnly = this.allow !== null && this.deny === null;
  }

  /**
   * The decision for a lowercased query name (as the wire peek spells it). Allocates only
   * when an entry matched; the unmatched outcomes are shared frozen values.
   */
  verdict(lname: string): FilterVerdict {
    // A label holding a dot ("\.") could fake a boundary and pose as a name under the
    // allow-list, so such names never count as allowed; the deny-list may still catch them.
    if (this.allow !== null && !lname.includes('\\')) {
      const allowed = this.allow.match(lname);
      if (allowed !== null) return { filtered: false, rule: 'allow', list: null, entry: allowed, line: null };
    }
    if (this.deny !== null) {
      const denied = this.deny.match(lname);
      if (denied !== null) return { filtered: true, rule: 'deny', list: null, entry: denied, line: null };
      return PASS_UNLISTED;
    }
    return this.allowOnly ? NOT_ALLOWED : PASS_UNLISTED;
  }
}

/** Filtered queries get the policy's `deny_with` answer and ctx.decision = 'filtered'. */
export class DomainStage implements Stage {
  readonly name = 'domain';
  readonly filter: DomainFilter;

  constructor(
    cfg: DomainFilterConfig | DomainFilter,
    private readonly denyWith: DenyWith,
    private readonly udpMaxPayload: number,
  ) {
    this.filter = cfg instanceof DomainFilter ? cfg : new DomainFilter(cfg);
  }

  handle(ctx: QueryContext, next: Handler): MaybePromise<StageResult> {
    if (!this.filter.verdict(ctx.lname).filtered) return next(ctx);
    ctx.decision = 'filtered';
    return denyAnswer(ctx, this.denyWith, this.udpMaxPayload);
  }
}
