// Turns the bytes of one list source into its name sets: hash (to skip unchanged content),
// decode, parse, build. Written as a generator that yields every few thousand lines, so the
// same code runs to completion for offline tools and in slices of about a millisecond on a
// serving process, where a million-name build must not hold up queries.
import { createHash } from 'node:crypto';
import { ListError } from './errors.js';
import { type NameSet, NameSetBuilder } from './name-set.js';
import { excerpt } from './names.js';
import { createParser, type ListSink } from './parse.js';
import {
  ACTION_ALLOW,
  type ActionCode,
  type EntryKind,
  type ListFormat,
  type LocalRecord,
  SKIPPED_SAMPLES_MAX,
  SKIPPED_TEXT_MAX,
  type SkippedLine,
  type SkipReport,
} from './types.js';

/** What one source's content became. */
export interface SourceBuild {
  /** sha256 of the bytes, hex. */
  readonly hash: string;
  /** Every entry but adblock exceptions. */
  readonly main: NameSet;
  /** adblock `@@` exceptions; null for other formats. */
  readonly exceptions: NameSet | null;
  /** Distinct names held by both sets. */
  readonly entries: number;
  readonly skipped: SkipReport;
  /** Lines valid but not entries (hosts mappings to real addresses, `localhost`). */
  readonly ignored: number;
  /** Entries repeating an earlier one. */
  readonly duplicates: number;
  /** Lines read (the last line number). */
  readonly lines: number;
}

/** Bytes hashed or decoded between yields. */
const BYTE_SLICE = 256 * 1024;
/** Lines parsed between yields. */
const LINE_SLICE = 1024;
/** A longer line is skipped unread: nothing a list holds is this long, and holding it would
 *  cost memory and time quadratic in its length. */
export const MAX_LINE_LENGTH = 64 * 1024;

class SourceSink implements ListSink {
  readonly main: NameSetBuilder;
  readonly exceptions: NameSetBuilder | null;
  skippedCount = 0;
  ignored = 0;
  readonly samples: SkippedLine[] = [];
  readonly conflict = (line: number, reason: string): void => this.skip(line, reason, '');

  constructor(
    format: ListFormat,
    private readonly source: string,
    records: number,
    bytes: number,
  ) {
    this.main = new NameSetBuilder(records, bytes);
    this.exceptions = format === 'adblock' ? new NameSetBuilder(16, 64) : null;
  }

  add(name: string, kind: EntryKind, action: ActionCode, line: number): void {
    const target = action === ACTION_ALLOW && this.exceptions !== null ? this.exceptions : this.main;
    target.add(name, kind, action, line, this.conflict);
  }

  addLocal(name: string, kind: EntryKind, record: LocalRecord, line: number): void {
    this.main.addLocal(name, kind, record, line, this.conflict);
  }

  skip(line: number, reason: string, text: string): void {
    this.skippedCount++;
    if (this.samples.length < SKIPPED_SAMPLES_MAX)
      this.samples.push({ source: this.source, line, reason, text: excerpt(text, SKIPPED_TEXT_MAX) });
  }

  ignore(): void {
    this.ignored++;
  }
}

/** The content cut into views of at most `size` bytes, in order (no copying). */
function slices(chunks: readonly Uint8Array[], size: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const chunk of chunks)
    for (let offset = 0; offset < chunk.length; offset += size)
      out.push(chunk.subarray(offset, Math.min(chunk.length, offset + size)));
  return out;
}

/** sha256 (hex) of the content, with a yield between slices. */
export function* hashChunks(chunks: readonly Uint8Array[]): Generator<void, string, void> {
  const hasher = createHash('sha256');
  for (const part of slices(chunks, BYTE_SLICE)) {
    hasher.update(part);
    yield;
  }
  return hasher.digest('hex');
}

function countNewlines(bytes: Uint8Array): number {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let n = 0;
  for (let at = view.indexOf(10); at >= 0; at = view.indexOf(10, at + 1)) n++;
  return n;
}

/**
 * Builds the sets of one source from its content, given as chunks in order (UTF-8; a
 * byte-order mark is dropped; invalid sequences become U+FFFD and so fail as names). Returns
 * null, having done no more than hash the content, when its sha256 equals `previousHash`.
 * `source` names the file or URL in skip reports. Yields often; drive it with {@link runSync}
 * or {@link runSliced}.
 */
export function* buildSource(
  format: ListFormat,
  chunks: readonly Uint8Array[],
  source: string,
  previousHash: string | null,
): Generator<void, SourceBuild | null, void> {
  const hash = yield* hashChunks(chunks);
  if (hash === previousHash) return null;

  // One entry per line and names no longer than the input are the estimates; hosts lines
  // with several names, or RPZ owners expanded from $ORIGIN, make the arrays grow.
  const parts = slices(chunks, BYTE_SLICE);
  let newlines = 0;
  let total = 0;
  for (const part of parts) {
    newlines += countNewlines(part);
    total += part.length;
    yield;
  }
  const sink = new SourceSink(format, source, newlines + 1, total - newlines);
  const parser = createParser(format, sink);
  const decoder = new TextDecoder('utf-8');
  let carry = '';
  /** The line being read is over MAX_LINE_LENGTH: drop it up to its end. */
  let overlong = false;
  let lineNo = 0;
  let sinceYield = 0;
  for (let p = 0; p <= parts.length; p++) {
    const last = p === parts.length;
    // The final call (no bytes, not streaming) flushes a sequence cut at the end.
    const text = last ? decoder.decode() : decoder.decode(parts[p], { stream: true });
    let start = 0;
    for (;;) {
      const nl = text.indexOf('\n', start);
      if (nl < 0) break;
      lineNo++;
      if (overlong) {
        overlong = false;
      } else {
        let line = carry === '' ? text.slice(start, nl) : carry + text.slice(start, nl);
        carry = '';
        if (line.charCodeAt(line.length - 1) === 0x0d) line = line.slice(0, -1);
        if (line.length > MAX_LINE_LENGTH)
          sink.skip(lineNo, `line longer than ${MAX_LINE_LENGTH} characters`, line);
        else parser.line(line, lineNo);
      }
      start = nl + 1;
      if (++sinceYield === LINE_SLICE) {
        sinceYield = 0;
        yield;
      }
    }
    if (!overlong && start < text.length) {
      carry = carry === '' ? text.slice(start) : carry + text.slice(start);
      if (carry.length > MAX_LINE_LENGTH) {
        sink.skip(lineNo + 1, `line longer than ${MAX_LINE_LENGTH} characters`, carry);
        carry = '';
        overlong = true;
      }
    }
    if (!last) yield;
  }
  if (overlong) {
    lineNo++;
  } else if (carry !== '') {
    lineNo++;
    parser.line(carry.charCodeAt(carry.length - 1) === 0x0d ? carry.slice(0, -1) : carry, lineNo);
  }
  parser.end(lineNo);

  const main = yield* sink.main.finish(sink.conflict);
  const exceptions = sink.exceptions === null ? null : yield* sink.exceptions.finish(sink.conflict);
  return {
    hash,
    main,
    exceptions,
    entries: main.size + (exceptions?.size ?? 0),
    skipped: { count: sink.skippedCount, samples: sink.samples },
    ignored: sink.ignored,
    duplicates: sink.main.duplicates + (sink.exceptions?.duplicates ?? 0),
    lines: lineNo,
  };
}

/** Runs a build generator to completion at once (offline tools, small inputs). */
export function runSync<T>(steps: Generator<void, T, void>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/** Default slice of a build on a serving process: the longest it holds the event loop. */
export const DEFAULT_SLICE_MS = 1;

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

// Builds run one at a time per process, in arrival order, on this thread or on a worker: two
// large builds at once would hold both sets' scratch memory and finish no sooner. Bound: the
// queue holds at most one build per list source (a source never queues a second while one is
// pending).
let queue: Promise<unknown> = Promise.resolve();

/** Runs `job` after every build queued before it. */
export function enqueueBuild<T>(job: () => Promise<T>): Promise<T> {
  const result = queue.then(job, job);
  queue = result.then(
    () => undefined,
    () => undefined,
  );
  return result;
}

/**
 * Runs a build generator in slices of about `sliceMs`, giving the event loop a turn (I/O
 * first: setImmediate) between slices, after every build queued before it. An abort of
 * `signal` stops it between slices (rejecting with LIST_CLOSED).
 */
export function runSliced<T>(
  steps: Generator<void, T, void>,
  sliceMs = DEFAULT_SLICE_MS,
  signal?: AbortSignal,
): Promise<T> {
  return enqueueBuild(async (): Promise<T> => {
    for (;;) {
      if (signal?.aborted) {
        steps.return(undefined as T);
        throw new ListError('LIST_CLOSED', 'the list was closed while loading');
      }
      const started = performance.now();
      do {
        const r = steps.next();
        if (r.done) return r.value;
      } while (performance.now() - started < sliceMs);
      await nextTurn();
    }
  });
}

/** The content copied into one new buffer (to transfer to a worker), a slice per turn of the
 *  event loop: one 30 MB copy would hold it for milliseconds. */
export async function copyForTransfer(chunks: readonly Uint8Array[]): Promise<ArrayBuffer> {
  let total = 0;
  for (const c of chunks) total += c.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const part of slices(chunks, 4 * BYTE_SLICE)) {
    out.set(part, at);
    at += part.length;
    await nextTurn();
  }
  return out.buffer;
}
