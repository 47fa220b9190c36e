// The answer cache's byte bound (cache.max_bytes): the slab memory it holds, counted as
// allocated, never passes the bound; least recently used answers go first.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CacheConfig } from '../../src/config/types.js';
import type { QueryContext } from '../../src/pipeline/context.js';
import { AnswerCache } from '../../src/stages/cache.js';
import { answerFor, aRecord, queryContext } from '../helpers/ctx.js';

const MiB = 1024 * 1024;
const CFG: CacheConfig = Object.freeze({
  maxEntries: 100_000,
  maxBytes: 64 * MiB,
  minTtl: 0,
  maxTtl: 86400,
  negativeTtl: 300,
});

function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

/** A NOERROR answer to ctx of exactly `size` octets: one TXT record of 255-octet strings. */
function answerOfSize(ctx: QueryContext, size: number, ttl = 300): Buffer {
  const txt = (data: string[]) =>
    answerFor(ctx, { answers: [{ type: 'TXT', name: ctx.qname, ttl, class: 'IN', data }] });
  // Each string costs its length plus one octet.
  let rdata = size - (txt(['']).length - 1);
  const data: string[] = [];
  while (rdata > 0) {
    const n = Math.min(255, rdata - 1);
    data.push('x'.repeat(n));
    rdata -= n + 1;
  }
  const out = txt(data);
  assert.equal(out.length, size);
  return out;
}

const names = (prefix: string, n: number) =>
  Array.from({ length: n }, (_, i) => queryContext(`${prefix}${i}.example.com`));

test('1,000 answers of 16,385 octets under max_bytes 8 MiB: never more than 8 MiB, the newest kept', () => {
  const maxBytes = 8 * MiB;
  const cache = new AnswerCache({ ...CFG, maxBytes }, clock().now);
  const ctxs = names('big', 1000);
  for (const ctx of ctxs) {
    cache.set(ctx, answerOfSize(ctx, 16_385));
    assert.ok(cache.bytes <= maxBytes, `${cache.bytes} bytes held after ${cache.size} entries`);
  }
  // Slots waste less than a quarter: most of the bound holds answers.
  assert.ok(cache.size * 16_385 >= 0.75 * maxBytes, `${cache.size} answers in 8 MiB`);
  assert.ok(cache.size < 1000);
  const kept = ctxs.map((ctx) => cache.get(ctx) !== null);
  const first = kept.indexOf(true);
  assert.equal(first, 1000 - cache.size, 'the least recently stored went first');
  assert.ok(kept.slice(first).every(Boolean), 'every newer answer is still there');
});

test('a hot answer survives a churn of large answers that keeps the cache at max_bytes (LRU, not FIFO)', () => {
  const cache = new AnswerCache({ ...CFG, maxBytes: 4 * MiB }, clock().now);
  const hot = queryContext('hot.example.com');
  cache.set(hot, answerFor(hot, { answers: [aRecord(hot.qname, 300)] }));
  for (let i = 0; i < 2000; i++) {
    const ctx = queryContext(`churn${i}.example.com`);
    cache.set(ctx, answerOfSize(ctx, 16_385));
    assert.ok(cache.bytes <= 4 * MiB);
    if (i % 10 === 0) assert.ok(cache.get(hot), `hot answer still cached after ${i} stores`);
  }
  assert.ok(cache.size < 300, 'the byte bound, not max_entries, was what evicted');
});

test('whichever of max_entries and max_bytes is reached first evicts', () => {
  const small = new AnswerCache({ ...CFG, maxEntries: 60, maxBytes: MiB }, clock().now);
  for (const ctx of names('s', 500)) small.set(ctx, answerFor(ctx, { answers: [aRecord(ctx.qname, 300)] }));
  assert.equal(small.size, 60, 'small answers: max_entries bounds the cache');
  assert.ok(small.bytes < MiB / 4);

  const large = new AnswerCache({ ...CFG, maxEntries: 60, maxBytes: MiB }, clock().now);
  for (const ctx of names('l', 500)) large.set(ctx, answerOfSize(ctx, 16_385));
  assert.ok(large.size < 60, 'large answers: max_bytes bounds the cache');
  assert.ok(large.bytes <= MiB);
  assert.ok(large.size * 16_385 >= 0.75 * MiB - 64 * 1024);
});

test('an answer whose slot alone is larger than max_bytes is not stored and evicts nothing', () => {
  const maxBytes = 64 * 1024;
  const cache = new AnswerCache({ ...CFG, maxBytes }, clock().now);
  const smalls = names('keep', 3);
  for (const ctx of smalls) cache.set(ctx, answerFor(ctx, { answers: [aRecord(ctx.qname, 300)] }));
  const before = cache.bytes;
  const huge = queryContext('huge.example.com');
  cache.set(huge, answerOfSize(huge, 65_000));
  assert.equal(cache.get(huge), null);
  assert.equal(cache.size, 3);
  assert.equal(cache.bytes, before);
  for (const ctx of smalls) assert.ok(cache.get(ctx));

  // One that fits once the small ones are gone is stored, within the bound.
  const big = queryContext('big.example.com');
  cache.set(big, answerOfSize(big, 40_000));
  assert.ok(cache.get(big));
  assert.ok(cache.bytes <= maxBytes);
  for (const ctx of smalls) assert.equal(cache.get(ctx), null);
});

test('replacing, expiring and clearing entries give their memory back', () => {
  const c = clock();
  const cache = new AnswerCache(CFG, c.now);
  const ctx = queryContext('one.example.com');
  cache.set(ctx, answerOfSize(ctx, 30_000, 60));
  const one = cache.bytes;
  cache.set(ctx, answerOfSize(ctx, 30_000, 60));
  assert.equal(cache.size, 1);
  assert.equal(cache.bytes, one, 'a replaced answer frees its slot');
  for (const other of names('short', 100)) cache.set(other, answerOfSize(other, 1000, 60));
  assert.ok(cache.bytes > one);
  c.advance(60_000);
  assert.equal(cache.get(ctx), null);
  for (const other of names('short', 100)) assert.equal(cache.get(other), null);
  assert.equal(cache.size, 0);
  assert.equal(cache.bytes, 0, 'expired entries free their slabs');
  cache.set(ctx, answerOfSize(ctx, 30_000, 60));
  cache.clear();
  assert.equal(cache.bytes, 0);
  cache.set(ctx, answerOfSize(ctx, 30_000, 60));
  assert.equal(cache.bytes, one, 'a cleared cache keeps its bound and stores again');
});
