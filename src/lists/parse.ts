// The contract between the format parsers and whatever consumes their entries (the name-set
// builder, or a plain array in tests and tools), plus the line splitting they all share.
import { parseAdblockLine } from './formats/adblock.js';
import { parseDomainsLine } from './formats/domains.js';
import { parseHostsLine } from './formats/hosts.js';
import { RpzParser } from './formats/rpz.js';
import { excerpt } from './names.js';
import {
  ACTION_NAMES,
  type ActionCode,
  type EntryKind,
  type ListAction,
  type ListFormat,
  type LocalRecord,
  SKIPPED_TEXT_MAX,
} from './types.js';

/** Receives what a parser found, in line order. Names are already normalized (see names.ts). */
export interface ListSink {
  /** An entry; for `wildcard`, `name` is the part after `*.` ("" for a bare `*`: every name). */
  add(name: string, kind: EntryKind, action: ActionCode, line: number): void;
  /** One record of an RPZ local-data answer; records of one owner arrive one call each. */
  addLocal(name: string, kind: EntryKind, record: LocalRecord, line: number): void;
  /** A line (or part of one) that could not be used, reported with file and line. */
  skip(line: number, reason: string, text: string): void;
  /** A line that is valid but deliberately not an entry (a hosts mapping to a real address,
   *  `localhost`): counted, never reported. */
  ignore(line: number): void;
}

/** A parser fed one line at a time (without its line ending), so input can arrive in chunks. */
export interface LineParser {
  line(text: string, lineNo: number): void;
  /** Input ended after line `lastLine` (a record still open is reported there). */
  end(lastLine: number): void;
}

/** A stateless per-line parser (every format but rpz). */
type LineFn = (text: string, lineNo: number, sink: ListSink) => void;

const LINE_PARSERS: Readonly<Record<Exclude<ListFormat, 'rpz'>, LineFn>> = {
  domains: parseDomainsLine,
  hosts: parseHostsLine,
  adblock: parseAdblockLine,
};

export function createParser(format: ListFormat, sink: ListSink): LineParser {
  if (format === 'rpz') return new RpzParser(sink);
  const fn = LINE_PARSERS[format];
  if (fn === undefined) throw new RangeError(`unknown list format ${JSON.stringify(format)}`);
  return { line: (text, lineNo) => fn(text, lineNo, sink), end: () => {} };
}

/**
 * Calls `fn` for every line of `text` with its 1-based number: `\n` and `\r\n` endings, a
 * leading byte-order mark dropped. Returns the number of the last line.
 */
export function forEachLine(text: string, fn: (line: string, lineNo: number) => void): number {
  let start = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let lineNo = 0;
  while (start <= text.length) {
    let nl = text.indexOf('\n', start);
    if (nl < 0) nl = text.length;
    if (nl === text.length && start === nl) break; // no line after a final newline
    const end = nl > start && text.charCodeAt(nl - 1) === 0x0d ? nl - 1 : nl;
    fn(text.slice(start, end), ++lineNo);
    start = nl + 1;
  }
  return lineNo;
}

/** One entry as a parser emitted it. */
export interface ParsedEntry {
  readonly name: string;
  readonly kind: EntryKind;
  readonly action: ListAction;
  readonly line: number;
  readonly record?: LocalRecord;
}

export interface ParsedList {
  readonly entries: readonly ParsedEntry[];
  readonly skipped: readonly { readonly line: number; readonly reason: string; readonly text: string }[];
  readonly ignored: number;
}

/**
 * The whole text parsed into plain objects: entries in line order (duplicates kept), every
 * skipped line, the ignored count. For tests and offline tools; loading goes through the
 * name-set builder, which keeps no object per entry.
 */
export function parseList(format: ListFormat, text: string): ParsedList {
  const entries: ParsedEntry[] = [];
  const skipped: { line: number; reason: string; text: string }[] = [];
  let ignored = 0;
  const parser = createParser(format, {
    add: (name, kind, action, line) => entries.push({ name, kind, action: ACTION_NAMES[action], line }),
    addLocal: (name, kind, record, line) => entries.push({ name, kind, action: 'local', line, record }),
    skip: (line, reason, lineText) =>
      skipped.push({ line, reason, text: excerpt(lineText, SKIPPED_TEXT_MAX) }),
    ignore: () => {
      ignored++;
    },
  });
  const last = forEachLine(text, (line, lineNo) => parser.line(line, lineNo));
  parser.end(last);
  return { entries, skipped, ignored };
}
