// Unit tests for the token buckets and the rate-limit stage (src/stages/rate-limit.ts),
// driven by an injected clock and a fake `next`.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RateLimitConfig } from '../../src/config/types.js';
import type { Handler } from '../../src/pipeline/stage.js';
import { RateLimiter, RateLimitStage, SWEEP_SLICE } from '../../src/stages/rate-limit.js';
import { decodeMessage, queryContext } from '../helpers/ctx.js';

function config(over: Partial<RateLimitConfig> = {}): RateLimitConfig {
  return Object.freeze({
    qps: 10,
    burst: 5,
    scope: 'client',
    exceed: 'drop',
    ipv4Prefix: 32,
    ipv6Prefix: 64,
    ...over,
  });
}

function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 50_000;
  return { now: () => t, advance: (ms) => (t += ms) };
}

/** How many of `n` back-to-back takes (no time passing) are allowed. */
function allowedOf(limiter: RateLimiter, address: string, n: number): number {
  let allowed = 0;
  for (let i = 0; i < n; i++) if (limiter.take(address)) allowed++;
  return allowed;
}

test('a bucket starts full at burst and refills at qps', () => {
  const c = clock();
  const limiter = new RateLimiter(config({ qps: 10, burst: 5 }), 100, c.now);
  assert.equal(allowedOf(limiter, '192.0.2.1', 20), 5, 'burst');
  c.advance(99);
  assert.equal(limiter.take('192.0.2.1'), false, 'under one token after 99 ms at 10 qps');
  c.advance(1);
  assert.equal(limiter.take('192.0.2.1'), true, 'one token after 100 ms');
  assert.equal(limiter.take('192.0.2.1'), false);
  c.advance(60_000);
  assert.equal(allowedOf(limiter, '192.0.2.1', 20), 5, 'refill stops at burst');
});

test('fractional qps refills slowly and a clock stepping back mints nothing', () => {
  const c = clock();
  const limiter = new RateLimiter(config({ qps: 0.5, burst: 1 }), 100, c.now);
  assert.equal(limiter.take('192.0.2.1'), true);
  c.advance(1999);
  assert.equal(limiter.take('192.0.2.1'), false);
  c.advance(-10_000);
  assert.equal(limiter.take('192.0.2.1'), false);
  c.advance(2000);
  assert.equal(limiter.take('192.0.2.1'), true);
});

test('scope client gives each address its own bucket; scope policy shares one', () => {
  const c = clock();
  const perClient = new RateLimiter(config({ burst: 2 }), 100, c.now);
  assert.equal(allowedOf(perClient, '192.0.2.1', 5), 2);
  assert.equal(allowedOf(perClient, '192.0.2.2', 5), 2);
  assert.equal(allowedOf(perClient, '2001:db8::1', 5), 2);
  assert.equal(perClient.size, 3);

  const perPolicy = new RateLimiter(config({ burst: 2, scope: 'policy' }), 100, c.now);
  assert.equal(allowedOf(perPolicy, '192.0.2.1', 1), 1);
  assert.equal(allowedOf(perPolicy, '2001:db8::1', 5), 1);
  assert.equal(allowedOf(perPolicy, '192.0.2.3', 5), 0);
  assert.equal(perPolicy.size, 1);
});

test('addresses are cut to ipv4_prefix / ipv6_prefix', () => {
  const c = clock();
  const limiter = new RateLimiter(config({ burst: 3, ipv4Prefix: 24, ipv6Prefix: 56 }), 100, c.now);
  assert.equal(allowedOf(limiter, '198.51.100.1', 2), 2);
  assert.equal(allowedOf(limiter, '198.51.100.254', 5), 1, 'same /24');
  assert.equal(allowedOf(limiter, '198.51.101.1', 5), 3, 'next /24');
  assert.equal(allowedOf(limiter, '2001:db8:0:aa00::1', 2), 2);
  assert.equal(
    allowedOf(limiter, '2001:0db8:0000:aaff:ffff:ffff:ffff:ffff', 5),
    1,
    'same /56, other spelling',
  );
  assert.equal(allowedOf(limiter, '2001:db8:0:ab00::1', 5), 3, 'next /56');
  assert.equal(allowedOf(limiter, 'fe80::1%eth0', 5), 3, 'zone index ignored');
  assert.equal(allowedOf(limiter, 'fe80::2', 5), 0, 'same /56 as fe80::1%eth0');
  assert.equal(limiter.size, 5);
});

test('odd prefixes: /0 is one bucket per family, a /63 keeps a partial group', () => {
  const c = clock();
  const zero = new RateLimiter(config({ burst: 1, ipv4Prefix: 0, ipv6Prefix: 0 }), 100, c.now);
  assert.equal(zero.take('10.0.0.1'), true);
  assert.equal(zero.take('203.0.113.9'), false);
  assert.equal(zero.take('2001:db8::1'), true);
  assert.equal(zero.take('::1'), false);
  const odd = new RateLimiter(config({ burst: 1, ipv6Prefix: 63 }), 100, c.now);
  assert.equal(odd.take('2001:db8:1:2::1'), true);
  assert.equal(odd.take('2001:db8:1:3::1'), false, '...:2 and ...:3 share a /63');
  assert.equal(odd.take('2001:db8:1:4::1'), true);
});

test('IPv4-mapped IPv6 counts as IPv4', () => {
  const c = clock();
  const limiter = new RateLimiter(config({ burst: 3, ipv4Prefix: 24 }), 100, c.now);
  assert.equal(allowedOf(limiter, '::ffff:192.0.2.1', 1), 1);
  assert.equal(allowedOf(limiter, '192.0.2.77', 1), 1);
  assert.equal(allowedOf(limiter, '::FFFF:c000:0263', 1), 1, 'hex form of 192.0.2.99');
  assert.equal(allowedOf(limiter, '0:0:0:0:0:ffff:192.0.2.200', 5), 0);
  assert.equal(limiter.size, 1);
});

test('at the bound, refilled buckets go first, then the least recently used', () => {
  const c = clock();
  const limiter = new RateLimiter(config({ qps: 1, burst: 5 }), 4, c.now);
  assert.equal(allowedOf(limiter, '10.0.0.1', 10), 5, 'A drained');
  for (const a of ['10.0.0.2', '10.0.0.3', '10.0.0.4']) assert.equal(limiter.take(a), true);
  c.advance(1500); // B, C, D refilled to burst; A holds 1.5 tokens
  assert.equal(limiter.take('10.0.0.5'), true);
  assert.equal(limiter.size, 2, 'the three full buckets were dropped, the stateful one kept');
  assert.equal(allowedOf(limiter, '10.0.0.1', 5), 1, 'A kept its state: not reset to burst');

  // No bucket full: the least recently used goes.
  const lru = new RateLimiter(config({ qps: 1, burst: 5 }), 2, c.now);
  lru.take('10.0.1.1');
  lru.take('10.0.1.2');
  lru.take('10.0.1.1'); // 10.0.1.2 is now the least recently used
  lru.take('10.0.1.3');
  assert.equal(lru.size, 2);
  assert.equal(allowedOf(lru, '10.0.1.1', 10), 3, '10.0.1.1 kept (5 - 2 taken)');
  assert.equal(allowedOf(lru, '10.0.1.2', 10), 5, '10.0.1.2 evicted, starts full again');
});

test('a take does a bounded slice of the sweep: a full store of refilled buckets is not emptied by one arrival', () => {
  const c = clock();
  const bound = 1000;
  const limiter = new RateLimiter(config({ qps: 1, burst: 5 }), bound, c.now);
  for (let i = 0; i < bound; i++) limiter.take(`10.1.${i >>> 8}.${i & 255}`);
  assert.equal(limiter.size, bound);
  c.advance(10_000); // every bucket refilled
  limiter.take('10.2.0.1');
  assert.ok(
    limiter.size >= bound - SWEEP_SLICE,
    `one arrival examined at most ${SWEEP_SLICE} buckets, so at most that many went (size ${limiter.size})`,
  );
  // Later arrivals go on where the sweep stopped: the refilled buckets keep making room and
  // the store never passes its bound.
  for (let i = 0; i < 2 * bound; i++) {
    limiter.take(`10.3.${i >>> 8}.${i & 255}`);
    assert.ok(limiter.size <= bound);
  }
});

test('with nothing refilled, an arrival at the bound evicts exactly the least recently used bucket', () => {
  const c = clock();
  const bound = 80;
  const limiter = new RateLimiter(config({ qps: 1, burst: 5 }), bound, c.now);
  for (let i = 0; i < bound; i++) {
    limiter.take(`10.0.0.${i}`);
    c.advance(1);
  }
  limiter.take('10.0.0.0'); // 10.0.0.1 is now the least recently used
  limiter.take('10.0.1.1'); // a new prefix at the bound
  assert.equal(limiter.size, bound, 'one out, one in: no batch eviction');
  // The next oldest kept its state: 4 tokens left, not a fresh 5.
  assert.equal(allowedOf(limiter, '10.0.0.2', 10), 4);
  assert.equal(allowedOf(limiter, '10.0.0.79', 10), 4);
  assert.equal(allowedOf(limiter, '10.0.0.1', 10), 5, 'the least recently used was evicted (full again)');
});

test('refilled buckets anywhere in the store go before any stateful one', () => {
  const c = clock();
  const bound = 1000;
  const limiter = new RateLimiter(config({ qps: 1, burst: 5 }), bound, c.now);
  // Interleaved: even prefixes drained (stateful), odd ones took a single token.
  for (let i = 0; i < bound; i++) {
    const address = `10.4.${i >>> 8}.${i & 255}`;
    allowedOf(limiter, address, i % 2 === 0 ? 10 : 1);
  }
  c.advance(1500); // odd ones refilled; even ones hold 1.5 tokens
  for (let i = 0; i < bound / 2; i++) limiter.take(`10.5.${i >>> 8}.${i & 255}`);
  assert.ok(limiter.size <= bound);
  for (let i = 0; i < bound; i += 2) {
    assert.equal(
      allowedOf(limiter, `10.4.${i >>> 8}.${i & 255}`, 10),
      1,
      `drained bucket ${i} kept its state`,
    );
  }
});

test('1,000,000 distinct sources stay within the bound, fast, and an active client keeps its bucket', () => {
  const c = clock();
  const bound = 10_000;
  const limiter = new RateLimiter(config({ qps: 0.5, burst: 5 }), bound, c.now);
  const active = '2001:db8:ffff:1::53';
  assert.equal(allowedOf(limiter, active, 5), 5);
  const started = performance.now();
  let maxSize = 0;
  for (let i = 0; i < 1_000_000; i++) {
    // 9 in 10 are distinct IPv6 /64s, the rest distinct IPv4 /32s
    const address =
      i % 10 === 9
        ? `10.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}`
        : `2001:db8:${(i >>> 16).toString(16)}:${(i & 0xffff).toString(16)}::1`;
    limiter.take(address);
    if (i % 1000 === 0) {
      assert.equal(limiter.take(active), false, `active client still limited at ${i}`);
      c.advance(1); // 1 s over the run: half a token at 0.5 qps, so it stays limited
    }
    if (limiter.size > maxSize) maxSize = limiter.size;
  }
  const elapsed = performance.now() - started;
  console.log(
    `1,000,000 distinct sources: ${elapsed.toFixed(0)} ms, max buckets ${maxSize} (bound ${bound})`,
  );
  assert.ok(maxSize <= bound);
  assert.ok(elapsed < 10_000, `took ${elapsed} ms`);
});

function passThrough(): { next: Handler; calls: () => number } {
  let calls = 0;
  const answer = Buffer.from('passed');
  return {
    next: () => {
      calls++;
      return answer;
    },
    calls: () => calls,
  };
}

function stageWith(exceed: RateLimitConfig['exceed']): RateLimitStage {
  const cfg = config({ burst: 1, exceed });
  return new RateLimitStage(new RateLimiter(cfg, 100, clock().now), cfg, 1232);
}

test('stage: within the limit passes on, untouched', () => {
  const stage = stageWith('drop');
  const fake = passThrough();
  const ctx = queryContext('example.com');
  assert.equal(String(stage.handle(ctx, fake.next)), 'passed');
  assert.equal(ctx.decision, 'allowed');
  assert.equal(fake.calls(), 1);
});

test('stage: exceed drop sends nothing', () => {
  const stage = stageWith('drop');
  const fake = passThrough();
  stage.handle(queryContext('example.com'), fake.next);
  const ctx = queryContext('example.com');
  assert.equal(stage.handle(ctx, fake.next), null);
  assert.equal(ctx.decision, 'rate_limited');
  assert.equal(fake.calls(), 1);
});

test('stage: exceed refused answers REFUSED on both transports', () => {
  const stage = stageWith('refused');
  const fake = passThrough();
  stage.handle(queryContext('example.com'), fake.next);
  for (const transport of ['udp', 'tcp'] as const) {
    const ctx = queryContext('Example.com', { id: 99, transport, udpSize: 4096 });
    const d = decodeMessage(stage.handle(ctx, fake.next) as Buffer);
    assert.equal(d.rcode, 'REFUSED');
    assert.equal(d.id, 99);
    assert.equal(d.flag_tc, false);
    assert.equal(d.questions?.[0].name, 'Example.com');
    assert.equal(ctx.decision, 'rate_limited');
  }
  assert.equal(fake.calls(), 1);
});

test('stage: exceed truncate sends TC=1 NOERROR over UDP and REFUSED over TCP', () => {
  const stage = stageWith('truncate');
  const fake = passThrough();
  stage.handle(queryContext('example.com'), fake.next);
  const udp = queryContext('example.com', { udpSize: 1232 });
  const overUdp = decodeMessage(stage.handle(udp, fake.next) as Buffer);
  assert.equal(overUdp.flag_tc, true);
  assert.equal(overUdp.rcode, 'NOERROR');
  assert.equal(overUdp.answers?.length, 0);
  assert.equal(overUdp.additionals?.[0].type, 'OPT', 'EDNS client gets an OPT back');
  assert.equal(udp.decision, 'rate_limited');
  const tcp = queryContext('example.com', { transport: 'tcp' });
  const overTcp = decodeMessage(stage.handle(tcp, fake.next) as Buffer);
  assert.equal(overTcp.flag_tc, false);
  assert.equal(overTcp.rcode, 'REFUSED');
  assert.equal(fake.calls(), 1);
});
