// Unit tests for the once-per-kind-per-interval warning (src/log-throttle.ts) with a real
// pino logger writing into memory.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLogger } from '../../src/log.js';
import { ThrottledLog } from '../../src/log-throttle.js';

function capture(): { lines: Record<string, unknown>[]; log: (intervalMs: number) => ThrottledLog } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line.trim()) lines.push(JSON.parse(line));
      cb();
    },
  });
  const logger = createLogger('warn', sink);
  return { lines, log: (intervalMs) => new ThrottledLog(logger, 'socket error', intervalMs) };
}

const tick = () => new Promise((r) => setImmediate(r));

async function until(cond: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
}

test('the first of a kind is logged at once; the rest of the interval is one line with the count', async () => {
  const { lines, log } = capture();
  const t = log(60_000);
  for (let i = 0; i < 100; i++) t.warn('EMSGSIZE', { n: i });
  await tick();
  assert.equal(lines.length, 1);
  assert.equal(lines[0].kind, 'EMSGSIZE');
  assert.equal(lines[0].count, 1);
  assert.equal(lines[0].n, 0);
  t.flush();
  await tick();
  assert.equal(lines.length, 2);
  assert.equal(lines[1].count, 99);
  assert.equal(lines[1].n, 99, 'the latest occurrence is shown');
  assert.equal(lines[1].msg, 'socket error (repeated)');
});

test('each kind has its own interval', async () => {
  const { lines, log } = capture();
  const t = log(60_000);
  for (let i = 0; i < 10; i++) {
    t.warn('A', {});
    t.warn('B', {});
  }
  await tick();
  assert.deepEqual(
    lines.map((l) => l.kind),
    ['A', 'B'],
  );
  t.flush();
});

test('a kind still occurring is reported every interval; a quiet kind logs its next one at once', async () => {
  const { lines, log } = capture();
  const t = log(40);
  t.warn('X', {});
  t.warn('X', {});
  t.warn('X', {});
  await until(() => lines.length >= 2, 2000);
  assert.equal(lines.length, 2, 'the interval ended with one line');
  assert.equal(lines[1].count, 2);
  // A new interval counts on: nothing more happened, so it ends without a line, and the next
  // occurrence after it is logged at once.
  await new Promise((r) => setTimeout(r, 120));
  t.warn('X', { again: true });
  await tick();
  assert.equal(lines.length, 3);
  assert.equal(lines[2].count, 1);
  assert.equal(lines[2].again, true);
  t.flush();
});

test('kinds are bounded: beyond 32 they share "other"', async () => {
  const { lines, log } = capture();
  const t = log(60_000);
  for (let i = 0; i < 100; i++) t.warn(`E${i}`, {});
  await tick();
  assert.equal(lines.length, 33);
  assert.equal(lines[32].kind, 'other');
  t.flush();
  await tick();
  assert.equal(lines.at(-1)?.count, 67);
});
