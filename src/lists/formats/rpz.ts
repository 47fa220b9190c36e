// The `rpz` format: a DNS Response Policy Zone in zone-file syntax, reduced to its QNAME
// triggers. Owners are trigger names under the zone's origin; the record says the action.
import { isIPv4, isIPv6 } from 'node:net';
import { normalizeName } from '../names.js';
import type { LineParser, ListSink } from '../parse.js';
import {
  ACTION_ALLOW,
  ACTION_DROP,
  ACTION_NODATA,
  ACTION_NXDOMAIN,
  type ActionCode,
  type EntryKind,
  type LocalRecord,
} from '../types.js';
import { nameProblem } from './problems.js';

/** TTL used when a record has none and no $TTL or earlier TTL applies. */
const FALLBACK_TTL = 3600;
const MAX_TTL = 0x7fffffff;

/** A record spanning lines in parentheses is abandoned (and reported) past this many tokens,
 *  so an unclosed `(` cannot make the parser hold the rest of the file. */
const MAX_RECORD_TOKENS = 512;

/** The actions spelt as special CNAME targets (draft-vixie-dnsop-dns-rpz section 3). */
const CNAME_ACTIONS: ReadonlyMap<string, ActionCode> = new Map<string, ActionCode>([
  ['.', ACTION_NXDOMAIN],
  ['*.', ACTION_NODATA],
  ['rpz-passthru.', ACTION_ALLOW],
  ['rpz-drop.', ACTION_DROP],
  // Written without the final dot they would be names under the origin; no feed means that.
  ['rpz-passthru', ACTION_ALLOW],
  ['rpz-drop', ACTION_DROP],
]);

const CLASSES: ReadonlySet<string> = new Set(['IN', 'CH', 'HS', 'CS']);

interface Token {
  readonly text: string;
  readonly quoted: boolean;
}

/** `3600`, or BIND's `1h30m`, `2d`, `1w`; null when `text` is not a TTL. */
function parseTtl(text: string): number | null {
  if (/^[0-9]+$/.test(text)) {
    const n = Number(text);
    return n <= MAX_TTL ? n : null;
  }
  if (!/^([0-9]+[wdhms])+$/i.test(text)) return null;
  const unit: Record<string, number> = { w: 604800, d: 86400, h: 3600, m: 60, s: 1 };
  let total = 0;
  for (const m of text.toLowerCase().matchAll(/([0-9]+)([wdhms])/g)) total += Number(m[1]) * unit[m[2]];
  return total <= MAX_TTL ? total : null;
}

/**
 * Parser state across lines: $ORIGIN and $TTL, the previous owner (for lines that start with
 * blank space) and a record still open in parentheses.
 */
export class RpzParser implements LineParser {
  /** Base of relative names: absolute, lowercase, no trailing dot ("" = the root); null until
   *  a $ORIGIN says it. */
  private origin: string | null = null;
  /** The zone's own name, fixed by the first $ORIGIN or else the first SOA owner; triggers are
   *  the owners under it with it removed. */
  private apex: string | null = null;
  private defaultTtl: number | null = null;
  private lastTtl: number | null = null;
  private lastOwner: string | null = null;
  private depth = 0;
  private pending: Token[] | null = null;
  private pendingLine = 0;
  private pendingText = '';
  private pendingIndented = false;

  constructor(private readonly sink: ListSink) {}

  line(text: string, lineNo: number): void {
    const tokens: Token[] = [];
    const problem = this.tokenize(text, tokens);
    if (problem !== null) {
      this.sink.skip(this.pending !== null ? this.pendingLine : lineNo, problem, this.pendingText || text);
      this.pending = null;
      this.pendingText = '';
      this.depth = 0;
      return;
    }
    if (this.pending !== null) {
      for (const t of tokens) this.pending.push(t);
      if (this.pending.length > MAX_RECORD_TOKENS) {
        this.sink.skip(this.pendingLine, 'record too long (is a parenthesis not closed?)', this.pendingText);
        this.pending = null;
        this.pendingText = '';
        this.depth = 0;
        return;
      }
      if (this.depth === 0) {
        const record = this.pending;
        this.pending = null;
        this.record(record, this.pendingIndented, this.pendingLine, this.pendingText);
        this.pendingText = '';
      }
      return;
    }
    const indented = text.length > 0 && (text.charCodeAt(0) === 0x20 || text.charCodeAt(0) === 0x09);
    if (this.depth > 0) {
      this.pending = tokens;
      this.pendingLine = lineNo;
      this.pendingText = text;
      this.pendingIndented = indented;
      return;
    }
    if (tokens.length > 0) this.record(tokens, indented, lineNo, text);
  }

  end(): void {
    if (this.pending !== null) this.sink.skip(this.pendingLine, 'parenthesis not closed', this.pendingText);
    this.pending = null;
  }

  /** Splits a line into tokens: quoted strings (with \" and \DDD escapes), `;` and `#`
   *  comments, parentheses counted into `depth`. Returns a problem, or null. */
  private tokenize(text: string, out: Token[]): string | null {
    const n = text.length;
    let i = 0;
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0d) {
        i++;
      } else if (c === 0x3b /* ; */ || c === 0x23 /* # */) {
        break;
      } else if (c === 0x28 /* ( */) {
        this.depth++;
        i++;
      } else if (c === 0x29 /* ) */) {
        if (this.depth === 0) return 'unbalanced parenthesis';
        this.depth--;
        i++;
      } else if (c === 0x22 /* " */) {
        let s = '';
        i++;
        for (;;) {
          if (i >= n) return 'unterminated quoted string';
          const q = text.charCodeAt(i);
          if (q === 0x22) {
            i++;
            break;
          }
          if (q === 0x5c /* \ */ && i + 1 < n) {
            const ddd = /^[0-9]{3}/.exec(text.slice(i + 1, i + 4));
            if (ddd !== null) {
              const code = Number(ddd[0]);
              if (code > 255) return 'bad \\DDD escape';
              s += String.fromCharCode(code);
              i += 4;
            } else {
              s += text[i + 1];
              i += 2;
            }
            continue;
          }
          s += text[i];
          i++;
        }
        out.push({ text: s, quoted: true });
      } else {
        let j = i;
        while (j < n) {
          const d = text.charCodeAt(j);
          if (d === 0x20 || d === 0x09 || d === 0x0d || d === 0x3b || d === 0x28 || d === 0x29 || d === 0x22)
            break;
          if (d === 0x23) break;
          // An escaped character belongs to the word; such names are rejected later as names.
          j += d === 0x5c && j + 1 < n ? 2 : 1;
        }
        out.push({ text: text.slice(i, j), quoted: false });
        i = j;
      }
    }
    return null;
  }

  /** `name` made absolute (lowercase, no trailing dot); null when it is relative and no
   *  origin is known for `@`. */
  private absolute(name: string): string | null {
    const lower = name.toLowerCase();
    if (lower === '@') return this.origin;
    if (lower === '.') return '';
    if (lower.endsWith('.')) return lower.slice(0, -1);
    if (this.origin === null || this.origin === '') return lower;
    return `${lower}.${this.origin}`;
  }

  private directive(tokens: Token[], lineNo: number, text: string): void {
    const name = tokens[0].text.toUpperCase();
    if (name === '$ORIGIN') {
      const origin = tokens.length === 2 ? this.absolute(tokens[1].text) : null;
      if (origin === null || (origin !== '' && normalizeName(origin) === null)) {
        this.sink.skip(lineNo, 'bad $ORIGIN', text);
        return;
      }
      this.origin = origin;
    } else if (name === '$TTL') {
      const ttl = tokens.length === 2 ? parseTtl(tokens[1].text) : null;
      if (ttl === null) this.sink.skip(lineNo, 'bad $TTL', text);
      else this.defaultTtl = ttl;
    } else {
      this.sink.skip(lineNo, `unsupported directive ${name}`, text);
    }
  }

  private record(tokens: Token[], indented: boolean, lineNo: number, text: string): void {
    const sink = this.sink;
    if (!indented && !tokens[0].quoted && tokens[0].text.startsWith('$')) {
      this.directive(tokens, lineNo, text);
      return;
    }
    let i = 0;
    let owner: string | null;
    if (indented) {
      owner = this.lastOwner;
      if (owner === null) {
        sink.skip(lineNo, 'record without an owner name', text);
        return;
      }
    } else {
      owner = tokens[0].quoted ? null : this.absolute(tokens[0].text);
      i = 1;
      if (owner === null) {
        sink.skip(lineNo, 'owner is @ but no $ORIGIN was given', text);
        return;
      }
      this.lastOwner = owner;
    }
    let ttl: number | null = null;
    let klass: string | null = null;
    for (let k = 0; k < 2 && i < tokens.length; k++) {
      const word = tokens[i].text;
      const asTtl: number | null = ttl === null ? parseTtl(word) : null;
      if (asTtl !== null) {
        ttl = asTtl;
        i++;
      } else if (klass === null && CLASSES.has(word.toUpperCase())) {
        klass = word.toUpperCase();
        i++;
      } else {
        break;
      }
    }
    if (i >= tokens.length) {
      sink.skip(lineNo, 'record without a type', text);
      return;
    }
    const type = tokens[i].text.toUpperCase();
    const rdata = tokens.slice(i + 1);
    if (ttl !== null) this.lastTtl = ttl;
    const effectiveTtl = ttl ?? this.defaultTtl ?? this.lastTtl ?? FALLBACK_TTL;
    if (klass !== null && klass !== 'IN') {
      sink.skip(lineNo, `class ${klass} is not IN`, text);
      return;
    }

    if (this.apex === null) this.apex = this.origin ?? (type === 'SOA' ? owner : '');
    const apex = this.apex;
    if (owner === apex) {
      // The zone's own SOA and NS say nothing about queries.
      if (type !== 'SOA' && type !== 'NS')
        sink.skip(lineNo, `${type} at the zone apex is not a trigger`, text);
      return;
    }
    let trigger: string;
    if (apex === '') trigger = owner;
    else if (owner.endsWith(`.${apex}`)) trigger = owner.slice(0, owner.length - apex.length - 1);
    else {
      sink.skip(lineNo, `owner is outside the zone ${apex}`, text);
      return;
    }
    const lastLabel = trigger.slice(trigger.lastIndexOf('.') + 1);
    if (lastLabel.startsWith('rpz-')) {
      sink.skip(lineNo, `unsupported trigger ${lastLabel} (only QNAME triggers are)`, text);
      return;
    }
    let kind: EntryKind = 'exact';
    let raw = trigger;
    if (trigger === '*') {
      kind = 'wildcard';
      raw = '';
    } else if (trigger.startsWith('*.')) {
      kind = 'wildcard';
      raw = trigger.slice(2);
    }
    let name = '';
    if (raw !== '') {
      const normalized = normalizeName(raw);
      if (normalized === null) {
        sink.skip(lineNo, nameProblem(raw), text);
        return;
      }
      name = normalized;
    }

    switch (type) {
      case 'CNAME': {
        if (rdata.length !== 1) break;
        const target = rdata[0].text.toLowerCase();
        const action = CNAME_ACTIONS.get(target);
        if (action !== undefined) {
          sink.add(name, kind, action, lineNo);
          return;
        }
        if (target === 'rpz-tcp-only.') {
          sink.skip(lineNo, 'unsupported action rpz-tcp-only', text);
          return;
        }
        if (target.startsWith('*.')) {
          sink.skip(lineNo, 'unsupported action: CNAME rewrite keeping the query name (*.)', text);
          return;
        }
        const absoluteTarget = this.absolute(target);
        // The older spelling of PASSTHRU: a CNAME to the trigger name itself.
        if (kind === 'exact' && absoluteTarget === name) {
          sink.add(name, kind, ACTION_ALLOW, lineNo);
          return;
        }
        const targetName = absoluteTarget === null ? null : normalizeName(absoluteTarget);
        if (targetName === null) {
          sink.skip(lineNo, `CNAME target ${nameProblem(target)}`, text);
          return;
        }
        sink.addLocal(name, kind, { type: 'CNAME', ttl: effectiveTtl, target: targetName }, lineNo);
        return;
      }
      case 'A':
      case 'AAAA': {
        if (rdata.length !== 1) break;
        const address = rdata[0].text.toLowerCase();
        if (!(type === 'A' ? isIPv4(address) : isIPv6(address))) {
          sink.skip(lineNo, `not an IPv${type === 'A' ? 4 : 6} address`, text);
          return;
        }
        sink.addLocal(name, kind, { type, ttl: effectiveTtl, address } as LocalRecord, lineNo);
        return;
      }
      case 'TXT': {
        if (rdata.length === 0) break;
        const strings = rdata.map((t) => t.text);
        if (strings.some((s) => Buffer.byteLength(s, 'latin1') > 255)) {
          sink.skip(lineNo, 'TXT string over 255 bytes', text);
          return;
        }
        sink.addLocal(name, kind, { type: 'TXT', ttl: effectiveTtl, strings }, lineNo);
        return;
      }
      case 'SOA':
      case 'NS':
        sink.skip(lineNo, `${type} below the zone apex is unsupported`, text);
        return;
      default:
        sink.skip(lineNo, `unsupported local-data type ${type}`, text);
        return;
    }
    sink.skip(lineNo, `malformed ${type} record`, text);
  }
}
