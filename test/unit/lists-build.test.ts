// Building a source (src/lists/build.ts): content split into chunks anywhere reads the same as
// whole, unchanged content is not rebuilt, and a sliced build gives the event loop its turns.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { buildSource, MAX_LINE_LENGTH, runSliced, runSync, type SourceBuild } from '../../src/lists/build.js';
import { ListError } from '../../src/lists/errors.js';
import { parseList } from '../../src/lists/parse.js';
import type { ListFormat } from '../../src/lists/types.js';

const build = (format: ListFormat, chunks: Uint8Array[], previous: string | null = null) =>
  runSync(buildSource(format, chunks, 'src', previous));

/** `bytes` cut at the given offsets (sorted, deduplicated, inside the buffer). */
function cut(bytes: Buffer, at: number[]): Uint8Array[] {
  const points = [...new Set(at.map((a) => a % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let from = 0;
  for (const p of [...points, bytes.length]) {
    out.push(bytes.subarray(from, p));
    from = p;
  }
  return out;
}

const line = fc.oneof(
  fc.constantFrom(
    'a.test',
    'B.Test.',
    'xn--bcher-kva.test',
    'bücher.test',
    'bad name',
    '# note',
    '',
    'c.test # x',
  ),
  fc.stringMatching(/^[a-z]{1,8}(\.[a-z]{1,8}){0,2}$/),
);

test('content cut into chunks anywhere (inside CRLF, inside a UTF-8 character) builds as whole', () => {
  fc.assert(
    fc.property(
      fc.array(line, { maxLength: 40 }),
      fc.constantFrom('\n', '\r\n'),
      fc.boolean(),
      fc.array(fc.nat(), { maxLength: 12 }),
      (lines, eol, bom, cuts) => {
        const text = (bom ? '\uFEFF' : '') + lines.join(eol);
        const bytes = Buffer.from(text, 'utf8');
        const whole = build('domains', [bytes])!;
        const pieces = build('domains', cut(bytes, cuts))!;
        const parsed = parseList('domains', text);
        assert.equal(pieces.hash, whole.hash);
        assert.equal(pieces.entries, whole.entries);
        assert.equal(pieces.lines, whole.lines);
        assert.deepEqual(pieces.skipped, whole.skipped);
        assert.equal(pieces.skipped.count, parsed.skipped.length);
        for (const e of parsed.entries) {
          const slot = pieces.main.lookup(e.name);
          assert.ok(slot >= 0, e.name);
        }
        assert.deepEqual(
          whole.skipped.samples.map((s) => s.line),
          parsed.skipped.slice(0, 5).map((s) => s.line),
        );
      },
    ),
    { numRuns: 300 },
  );
});

test('the same content as before is hashed, not rebuilt', () => {
  const bytes = Buffer.from('a.test\nb.test\n');
  const first = build('domains', [bytes])!;
  assert.equal(build('domains', [bytes.subarray(0, 3), bytes.subarray(3)], first.hash), null);
  assert.notEqual(build('domains', [Buffer.from('a.test\n')], first.hash), null);
});

test('a line over the length cap is skipped without being held; the lines after keep their numbers', () => {
  const long = 'x'.repeat(MAX_LINE_LENGTH + 10);
  const bytes = Buffer.from(`a.test\n${long}\nb.test\n${long}`);
  // chunked so the long line spans several chunks
  const chunks = cut(bytes, [7, 20_000, 40_000, 60_000, 65_600, 70_000]);
  const b = build('domains', chunks)!;
  assert.deepEqual(
    b.skipped.samples.map((s) => [s.line, s.reason]),
    [
      [2, `line longer than ${MAX_LINE_LENGTH} characters`],
      [4, `line longer than ${MAX_LINE_LENGTH} characters`],
    ],
  );
  assert.ok(b.skipped.samples[0].text.length <= 120);
  assert.equal(b.lines, 4);
  assert.ok(b.main.lookup('b.test') >= 0);
  assert.equal(b.main.line(b.main.lookup('b.test')), 3);
});

test('empty content is an empty list, not an error', () => {
  const b = build('hosts', [])!;
  assert.equal(b.entries, 0);
  assert.equal(b.lines, 0);
  assert.equal(build('rpz', [Buffer.alloc(0)])!.entries, 0);
});

test('a sliced build lets the event loop run between slices and gives the same result', async () => {
  const text = Array.from({ length: 60_000 }, (_, i) => `host${i}.example`).join('\n');
  let turns = 0;
  let ticking = true;
  const tick = (): void => {
    turns++;
    if (ticking) setImmediate(tick);
  };
  setImmediate(tick);
  const sliced = (await runSliced(
    buildSource('domains', [Buffer.from(text)], 'src', null),
    0.5,
  )) as SourceBuild;
  ticking = false;
  assert.equal(sliced.entries, 60_000);
  assert.ok(turns >= 10, `the loop got ${turns} turns during the build`);
  assert.equal(sliced.hash, build('domains', [Buffer.from(text)])!.hash);
});

test('an aborted sliced build stops with LIST_CLOSED', async () => {
  const controller = new AbortController();
  const text = Array.from({ length: 50_000 }, (_, i) => `host${i}.example`).join('\n');
  const pending = runSliced(buildSource('domains', [Buffer.from(text)], 'src', null), 0.2, controller.signal);
  setImmediate(() => controller.abort());
  await assert.rejects(pending, (err: unknown) => err instanceof ListError && err.code === 'LIST_CLOSED');
  // The queue goes on with the next build.
  const next = await runSliced(buildSource('domains', [Buffer.from('a.test')], 'src', null));
  assert.equal(next?.entries, 1);
});
