// Unit tests for the answer cache and its stage (src/stages/cache.ts), with an injected
// clock and a fake upstream `next`.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CacheConfig } from '../../src/config/types.js';
import { Counters } from '../../src/metrics/counters.js';
import type { QueryContext } from '../../src/pipeline/context.js';
import type { Handler } from '../../src/pipeline/stage.js';
import { AnswerCache, CacheStage } from '../../src/stages/cache.js';
import {
  answerFor,
  aRecord,
  contextFor,
  decodeMessage,
  queryContext,
  soaRecord,
  ttlsOf,
} from '../helpers/ctx.js';
import { encodeQuery } from '../helpers/dns-client.js';

const CFG: CacheConfig = Object.freeze({
  maxEntries: 100,
  maxBytes: 64 * 1024 * 1024,
  minTtl: 0,
  maxTtl: 86400,
  negativeTtl: 300,
});

function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

test('TTLs count down with the clock and the entry expires at the smallest answer TTL', () => {
  const c = clock();
  const cache = new AnswerCache(CFG, c.now);
  const ctx = queryContext('www.example.com');
  cache.set(
    ctx,
    answerFor(ctx, { answers: [aRecord('www.example.com', 300), aRecord('www.example.com', 120)] }),
  );
  assert.equal(cache.size, 1);
  assert.deepEqual(ttlsOf(cache.get(ctx)!), [300, 120]);
  c.advance(45_900);
  assert.deepEqual(ttlsOf(cache.get(ctx)!), [255, 75], 'whole seconds elapsed');
  c.advance(119_999 - 45_900);
  assert.deepEqual(ttlsOf(cache.get(ctx)!), [181, 1], 'last millisecond before expiry');
  c.advance(1);
  assert.equal(cache.get(ctx), null, 'expired after 120 s');
  assert.equal(cache.size, 0, 'expired entry dropped');
});

test('every section counts down, and a TTL below the elapsed time is served as 0', () => {
  const c = clock();
  const cache = new AnswerCache(CFG, c.now);
  const ctx = queryContext('www.example.com');
  const glue = aRecord('ns.example.com', 10, '192.0.2.53');
  cache.set(ctx, answerFor(ctx, { answers: [aRecord('www.example.com', 300)], additionals: [glue] }));
  c.advance(45_000);
  assert.deepEqual(ttlsOf(cache.get(ctx)!), [255, 0], 'the answer lives on; the glue TTL stops at 0');
});

test("a hit carries the client's ID, RD bit and question case", () => {
  const c = clock();
  const cache = new AnswerCache(CFG, c.now);
  const first = queryContext('www.example.com', { id: 1 });
  cache.set(first, answerFor(first, { answers: [aRecord('www.example.com', 60)] }));
  const second = queryContext('WwW.ExAmple.COM', { id: 0xbeef });
  second.query[2] &= 0xfe; // RD=0
  const hit = cache.get(second);
  assert.ok(hit);
  const d = decodeMessage(hit);
  assert.equal(d.id, 0xbeef);
  assert.equal(d.flag_qr, true);
  assert.equal(d.flag_rd, false);
  assert.equal(d.questions?.[0].name, 'WwW.ExAmple.COM');
  assert.deepEqual(hit.subarray(12, second.questionEnd), second.query.subarray(12, second.questionEnd));
  assert.equal((d.answers![0] as { data: string }).data, '192.0.2.10');
});

test('type, class and DO bit are separate keys', () => {
  const cache = new AnswerCache(CFG, clock().now);
  const plain = queryContext('example.com', { udpSize: 1232 });
  const withDo = queryContext('example.com', { dnssecOk: true });
  const aaaa = queryContext('example.com', { type: 'AAAA' });
  cache.set(plain, answerFor(plain, { answers: [aRecord('example.com', 60)], opt: true }));
  assert.ok(cache.get(plain));
  assert.equal(cache.get(withDo), null, 'DO=1 does not see the DO=0 answer');
  assert.equal(cache.get(aaaa), null);
  cache.set(withDo, answerFor(withDo, { answers: [aRecord('example.com', 60, '192.0.2.99')], opt: true }));
  assert.equal(cache.size, 2);
  const d = decodeMessage(cache.get(withDo)!);
  assert.equal((d.answers![0] as { data: string }).data, '192.0.2.99');
  const opt = d.additionals?.find((r) => r.type === 'OPT') as { flag_do: boolean };
  assert.equal(opt.flag_do, true);
});

test('the OPT record follows the client, not the stored answer', () => {
  const cache = new AnswerCache(CFG, clock().now);
  const edns = queryContext('example.com', { udpSize: 4096 });
  const upstreamAnswer = answerFor(edns, { answers: [aRecord('example.com', 60)], opt: true });
  cache.set(edns, upstreamAnswer);
  const forEdns = decodeMessage(cache.get(edns)!);
  assert.equal(forEdns.additionals?.length, 1);
  assert.equal(forEdns.additionals?.[0].type, 'OPT');
  assert.equal((forEdns.additionals![0] as { udpPayloadSize: number }).udpPayloadSize, 1232);
  const classic = queryContext('example.com');
  const forClassic = cache.get(classic)!;
  assert.equal(forClassic.readUInt16BE(10), 0, 'no OPT for a client without EDNS');
  assert.equal(forClassic.length, upstreamAnswer.length - 11);
});

test('negative answers live min(SOA TTL, SOA MINIMUM) capped by negative_ttl', () => {
  const c = clock();
  const cache = new AnswerCache(CFG, c.now);
  const nx = queryContext('missing.example.com');
  cache.set(nx, answerFor(nx, { rcode: 3, authorities: [soaRecord('example.com', 3600, 900)] }));
  const hit = cache.get(nx)!;
  assert.equal(decodeMessage(hit).rcode, 'NXDOMAIN');
  assert.deepEqual(ttlsOf(hit), [300], 'SOA TTL served as the capped negative TTL');
  c.advance(299_000);
  assert.deepEqual(ttlsOf(cache.get(nx)!), [1]);
  c.advance(1_000);
  assert.equal(cache.get(nx), null, 'capped at negative_ttl = 300 s');

  const nodata = queryContext('example.com', { type: 'AAAA' });
  cache.set(nodata, answerFor(nodata, { authorities: [soaRecord('example.com', 3600, 60)] }));
  assert.deepEqual(ttlsOf(cache.get(nodata)!), [60], 'SOA MINIMUM below the cap wins');
  c.advance(60_000);
  assert.equal(cache.get(nodata), null);

  const soaTtlLow = queryContext('other.example.com');
  cache.set(soaTtlLow, answerFor(soaTtlLow, { rcode: 3, authorities: [soaRecord('example.com', 30, 900)] }));
  c.advance(30_000);
  assert.equal(cache.get(soaTtlLow), null, 'SOA TTL below MINIMUM wins');

  const noSoa = queryContext('nosoa.example.com');
  cache.set(noSoa, answerFor(noSoa, { rcode: 3 }));
  assert.equal(cache.get(noSoa), null, 'negative answer without SOA is not cached (RFC 2308 §5)');
});

test('SERVFAIL, REFUSED, truncated and mismatched answers are not stored', () => {
  const cache = new AnswerCache(CFG, clock().now);
  const ctx = queryContext('example.com');
  const rec = [aRecord('example.com', 300)];
  cache.set(ctx, answerFor(ctx, { rcode: 2 }));
  cache.set(ctx, answerFor(ctx, { rcode: 5, answers: rec }));
  cache.set(ctx, answerFor(ctx, { truncated: true, answers: rec }));
  cache.set(ctx, answerFor(queryContext('example.org'), { answers: rec }));
  cache.set(ctx, answerFor(ctx, { answers: [aRecord('example.com', 0)] }));
  cache.set(ctx, Buffer.from(ctx.query));
  assert.equal(cache.size, 0);
  cache.set(ctx, answerFor(ctx, { answers: rec }));
  assert.equal(cache.size, 1);
});

test('positive TTLs are clamped to [min_ttl, max_ttl]', () => {
  const c = clock();
  const cache = new AnswerCache({ ...CFG, minTtl: 60, maxTtl: 3600 }, c.now);
  const low = queryContext('low.example.com');
  cache.set(low, answerFor(low, { answers: [aRecord('low.example.com', 5)] }));
  assert.deepEqual(ttlsOf(cache.get(low)!), [60]);
  c.advance(59_000);
  assert.ok(cache.get(low), 'kept for min_ttl');
  const high = queryContext('high.example.com');
  cache.set(high, answerFor(high, { answers: [aRecord('high.example.com', 86400)] }));
  assert.deepEqual(ttlsOf(cache.get(high)!), [3600]);
  c.advance(3600_000);
  assert.equal(cache.get(high), null, 'dropped at max_ttl');
});

test('the store is an LRU bounded by max_entries', () => {
  const cache = new AnswerCache({ ...CFG, maxEntries: 3 }, clock().now);
  const ctxs = ['a', 'b', 'c', 'd'].map((l) => queryContext(`${l}.example.com`));
  for (const ctx of ctxs.slice(0, 3)) cache.set(ctx, answerFor(ctx, { answers: [aRecord(ctx.qname, 60)] }));
  assert.ok(cache.get(ctxs[0]), 'touch a: b is now the least recently used');
  cache.set(ctxs[3], answerFor(ctxs[3], { answers: [aRecord(ctxs[3].qname, 60)] }));
  assert.equal(cache.size, 3);
  assert.equal(cache.get(ctxs[1]), null, 'b evicted');
  assert.ok(cache.get(ctxs[0]));
  assert.ok(cache.get(ctxs[2]));
  assert.ok(cache.get(ctxs[3]));
  cache.clear();
  assert.equal(cache.size, 0);
});

test('a full cache keeps its bound and its hot entries through heavy churn', () => {
  const cache = new AnswerCache({ ...CFG, maxEntries: 1000 }, clock().now);
  const hot = queryContext('hot.example.com');
  cache.set(hot, answerFor(hot, { answers: [aRecord(hot.qname, 60)] }));
  const started = performance.now();
  for (let i = 0; i < 50_000; i++) {
    const ctx = queryContext(`n${i}.example.com`);
    cache.set(ctx, answerFor(ctx, { answers: [aRecord(ctx.qname, 60)] }));
    if (i % 100 === 0) assert.ok(cache.get(hot), `hot entry still cached after ${i} stores`);
    assert.ok(cache.size <= 1000);
  }
  assert.equal(cache.size, 1000);
  // a cold entry from the start is long gone
  assert.equal(cache.get(queryContext('n0.example.com')), null);
  // Stores into a full cache cost the same as into an empty one (no walk over deleted
  // slots): 50k stores take well under a few seconds even on a slow machine.
  assert.ok(performance.now() - started < 10_000);
});

function upstreamFake(answer: (ctx: QueryContext) => Buffer | null): {
  next: Handler;
  calls: () => number;
  release: () => void;
  fail: (err: Error) => void;
} {
  let calls = 0;
  const waiting: { ctx: QueryContext; resolve: (b: Buffer | null) => void; reject: (e: Error) => void }[] =
    [];
  return {
    next: (ctx) => {
      calls++;
      return new Promise((resolve, reject) => waiting.push({ ctx, resolve, reject }));
    },
    calls: () => calls,
    release: () => {
      for (const w of waiting.splice(0)) w.resolve(answer(w.ctx));
    },
    fail: (err) => {
      for (const w of waiting.splice(0)) w.reject(err);
    },
  };
}

test('stage: a hit is synchronous and counted, a miss is counted and stored', async () => {
  const counters = new Counters();
  const stage = new CacheStage(new AnswerCache(CFG, clock().now), counters);
  const up = upstreamFake((ctx) => answerFor(ctx, { answers: [aRecord(ctx.qname, 60)] }));
  const first = queryContext('example.com', { id: 7 });
  const pending = stage.handle(first, up.next);
  assert.ok(pending instanceof Promise);
  up.release();
  assert.equal(decodeMessage((await pending)!).id, 7);
  assert.equal(first.cached, false);

  const again = queryContext('EXAMPLE.com', { id: 8 });
  const hit = stage.handle(again, up.next);
  assert.ok(Buffer.isBuffer(hit), 'answered without a promise');
  assert.equal(again.cached, true);
  assert.equal(decodeMessage(hit).id, 8);
  assert.equal(up.calls(), 1);
  assert.equal(counters.cacheHits, 1);
  assert.equal(counters.cacheMisses, 1);
});

test('stage: 50 concurrent identical misses make one upstream call, each answer its own', async () => {
  const counters = new Counters();
  const stage = new CacheStage(new AnswerCache(CFG, clock().now), counters);
  const up = upstreamFake((ctx) => answerFor(ctx, { answers: [aRecord(ctx.qname, 60)] }));
  const names = Array.from({ length: 50 }, (_, i) => (i % 2 ? 'www.example.com' : 'WWW.Example.Com'));
  const ctxs = names.map((name, i) => queryContext(name, { id: 1000 + i }));
  const results = ctxs.map((ctx) => stage.handle(ctx, up.next));
  assert.equal(up.calls(), 1);
  up.release();
  const answers = await Promise.all(results);
  assert.equal(up.calls(), 1);
  answers.forEach((answer, i) => {
    const d = decodeMessage(answer!);
    assert.equal(d.id, 1000 + i);
    assert.equal(d.questions?.[0].name, names[i]);
    assert.equal(d.answers?.length, 1);
  });
  assert.equal(new Set(answers).size, 50, 'no buffer shared between clients');
  assert.equal(counters.cacheMisses, 50);
  assert.ok(Buffer.isBuffer(stage.handle(queryContext('www.example.com'), up.next)), 'stored');
});

test('stage: waiters share a null or a thrown outcome, and nothing is stored', async () => {
  const cache = new AnswerCache(CFG, clock().now);
  const stage = new CacheStage(cache, new Counters());
  const dropping = upstreamFake(() => null);
  const dropped = [1, 2, 3].map((id) => stage.handle(queryContext('example.com', { id }), dropping.next));
  dropping.release();
  assert.deepEqual(await Promise.all(dropped), [null, null, null]);
  assert.equal(dropping.calls(), 1);

  const failing = upstreamFake(() => null);
  const failed = [1, 2, 3].map((id) => stage.handle(queryContext('example.com', { id }), failing.next));
  failing.fail(new Error('upstream exploded'));
  for (const p of failed) await assert.rejects(Promise.resolve(p), /upstream exploded/);
  assert.equal(failing.calls(), 1);
  assert.equal(cache.size, 0);

  const servfail = upstreamFake((ctx) => answerFor(ctx, { rcode: 2 }));
  const sf = [1, 2].map((id) => stage.handle(queryContext('example.com', { id }), servfail.next));
  servfail.release();
  const sfAnswers = await Promise.all(sf);
  assert.deepEqual(
    sfAnswers.map((a) => [decodeMessage(a!).id, decodeMessage(a!).rcode]),
    [
      [1, 'SERVFAIL'],
      [2, 'SERVFAIL'],
    ],
  );
  assert.equal(cache.size, 0, 'SERVFAIL not stored');

  const later = upstreamFake((ctx) => answerFor(ctx, { answers: [aRecord(ctx.qname, 60)] }));
  const fresh = stage.handle(queryContext('example.com'), later.next);
  assert.equal(later.calls(), 1, 'a settled fetch is not joined again');
  later.release();
  await fresh;
});

test('stage: clients with and without EDNS share one fetch, each gets its own OPT form', async () => {
  // The stage behind the cache answers in the EDNS-client form whatever the client sent
  // (forward with ednsForm), so one fetch serves both kinds of client.
  const stage = new CacheStage(new AnswerCache(CFG, clock().now), new Counters(), 1400);
  const up = upstreamFake((ctx) => answerFor(ctx, { answers: [aRecord(ctx.qname, 60)], opt: true }));
  const classic = stage.handle(queryContext('example.com'), up.next);
  const edns = stage.handle(queryContext('example.com', { udpSize: 4096 }), up.next);
  assert.equal(up.calls(), 1);
  up.release();
  const forClassic = (await classic)!;
  const forEdns = (await edns)!;
  assert.equal(forClassic.readUInt16BE(10), 0, 'no OPT for the client without EDNS');
  assert.equal(forEdns.readUInt16BE(10), 1);
  const opt = decodeMessage(forEdns).additionals?.[0] as { type: string; udpPayloadSize: number };
  assert.equal(opt.type, 'OPT');
  assert.equal(opt.udpPayloadSize, 1400, "the gateway's UDP size, not the upstream's or the client's");
  const upToOpt = Buffer.from(forEdns.subarray(0, forClassic.length));
  upToOpt.writeUInt16BE(0, 10);
  assert.deepEqual(forClassic, upToOpt, 'the same bytes up to the OPT');
});

test('stage: a synchronous answer from next is stored, and served as a hit is', () => {
  const stage = new CacheStage(new AnswerCache(CFG, clock().now), new Counters());
  const ctx = queryContext('example.com');
  const answer = answerFor(ctx, { answers: [aRecord('example.com', 60)] });
  assert.deepEqual(
    stage.handle(ctx, () => answer),
    answer,
  );
  const hit = stage.handle(queryContext('example.com', { id: ctx.id }), () => assert.fail('must hit'));
  assert.deepEqual(hit, answer);
});

/** A query for one label `first` under "example" (raw bytes, so any octet can be used). */
function rawLabelContext(first: number[], id: number): QueryContext {
  const base = encodeQuery('x.example', { id });
  const query = Buffer.concat([
    base.subarray(0, 12),
    Buffer.from([first.length, ...first, 7, ...Buffer.from('example'), 0]),
    base.subarray(base.length - 4),
  ]);
  return contextFor(query);
}

/** An A answer built on the query's own bytes (dns-packet does not round-trip such names). */
function rawAnswer(ctx: QueryContext): Buffer {
  const out = Buffer.concat([
    ctx.query.subarray(0, ctx.questionEnd),
    Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 10]),
  ]);
  out[2] |= 0x80;
  out.writeUInt16BE(1, 6);
  out.writeUInt16BE(0, 10);
  return out;
}

test('names equal only under non-ASCII case folding never share an answer', async () => {
  // 0xC0 and 0xE0 differ only by Latin-1 case; DNS folds ASCII only (RFC 4343), so these
  // are different names: different keys, no shared answer, no shared fetch.
  const upper = rawLabelContext([0x61, 0xc0], 1);
  const lower = rawLabelContext([0x61, 0xe0], 2);
  assert.notEqual(upper.lname, lower.lname);
  const cache = new AnswerCache(CFG, clock().now);
  assert.notEqual(cache.keyOf(upper), cache.keyOf(lower));
  cache.set(upper, rawAnswer(upper));
  assert.ok(cache.get(upper));
  assert.equal(cache.get(lower), null);

  const stage = new CacheStage(new AnswerCache(CFG, clock().now), new Counters());
  let calls = 0;
  let releaseFirst = (): void => {};
  const next: Handler = (ctx) => {
    calls++;
    if (calls > 1) return Promise.resolve(rawAnswer(ctx));
    return new Promise((resolve) => {
      releaseFirst = () => resolve(rawAnswer(ctx));
    });
  };
  const first = stage.handle(rawLabelContext([0x61, 0xc0], 3), next);
  const second = stage.handle(rawLabelContext([0x61, 0xe0], 4), next);
  assert.equal(calls, 2, 'the second name did not join the first fetch');
  releaseFirst();
  await first;
  const own = (await second)!;
  assert.equal(own.readUInt16BE(0), 4);
  assert.equal(own[14], 0xe0, 'its own question bytes');
});
