// The hot-path address parser (src/net/ip.ts) held to ip-num's reading by property tests, and
// the two consumers built on it (the policy table and the rate limiter's keys) held to a
// BigInt reference.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { IPv4, IPv6, Validator } from 'ip-num';
import { ADDRESS_INVALID, ADDRESS_V6, parseAddress, parseIpv4, parseIpv6 } from '../../src/net/ip.js';
import { PolicyTable } from '../../src/stages/match-policy.js';
import { RateLimiter } from '../../src/stages/rate-limit.js';

const RUNS = { numRuns: 2000 };

function wordsOf(value: bigint): number[] {
  return [96n, 64n, 32n, 0n].map((shift) => Number((value >> shift) & 0xffffffffn));
}

/** ip-num's value of an IPv6 literal (zone ignored), or null when it rejects it. */
function ipnumV6(s: string): bigint | null {
  if (!Validator.isValidIPv6String(s)[0]) return null;
  try {
    return IPv6.fromString(s).getValue();
  } catch {
    return null;
  }
}

function ipnumV4(s: string): number | null {
  if (!Validator.isValidIPv4String(s)[0]) return null;
  try {
    return Number(IPv4.fromString(s).getValue());
  } catch {
    return null;
  }
}

/** Random upper/lower case of every hex letter. */
const anyCase = (s: string) =>
  fc
    .array(fc.boolean(), { minLength: s.length, maxLength: s.length })
    .map((upper) => [...s].map((c, i) => (upper[i] ? c.toUpperCase() : c)).join(''));

test('IPv4: every dotted quad reads as ip-num reads it', () => {
  fc.assert(
    fc.property(fc.ipV4(), (s) => {
      const expected = ipnumV4(s);
      assert.notEqual(expected, null);
      assert.equal(parseIpv4(s), expected);
      assert.equal(parseAddress(s, new Uint32Array(4)), expected);
    }),
    RUNS,
  );
});

test('IPv6: every form fast-check writes (compressed, IPv4 tail, any case) reads as ip-num reads it', () => {
  fc.assert(
    fc.property(
      fc.ipV6().chain((s) => anyCase(s)),
      (s) => {
        const expected = ipnumV6(s);
        assert.notEqual(expected, null, `ip-num rejects ${s}`);
        const out = new Uint32Array(4);
        assert.equal(parseIpv6(s, out), true, s);
        assert.deepEqual([...out], wordsOf(expected!), s);
      },
    ),
    RUNS,
  );
});

test('IPv6: a zone index is ignored', () => {
  fc.assert(
    fc.property(fc.ipV6(), fc.stringMatching(/^[a-z0-9.]{1,15}$/), (s, zone) => {
      const plain = new Uint32Array(4);
      const zoned = new Uint32Array(4);
      assert.equal(parseIpv6(s, plain), true);
      assert.equal(parseIpv6(`${s}%${zone}`, zoned), true);
      assert.deepEqual([...zoned], [...plain]);
    }),
    RUNS,
  );
});

test('parseAddress: IPv4-mapped IPv6 is its IPv4 address, however it is spelled; other IPv6 is ADDRESS_V6', () => {
  fc.assert(
    fc.property(fc.ipV6(), (s) => {
      const out = new Uint32Array(4);
      const value = ipnumV6(s)!;
      const mapped = value >> 32n === 0xffffn;
      const got = parseAddress(s, out);
      if (mapped) assert.equal(got, Number(value & 0xffffffffn), s);
      else {
        assert.equal(got, ADDRESS_V6, s);
        assert.deepEqual([...out], wordsOf(value), s);
      }
    }),
    RUNS,
  );
  fc.assert(
    fc.property(fc.ipV4(), fc.boolean(), (v4, dotted) => {
      const n = ipnumV4(v4)!;
      const text = dotted
        ? `::ffff:${v4}`
        : `0:0:0:0:0:FFFF:${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
      assert.equal(parseAddress(text, new Uint32Array(4)), n, text);
    }),
    RUNS,
  );
});

/** Strings over the characters of addresses, mutated from valid ones or built at random. */
const addressLike = fc.oneof(
  fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF:.%'), maxLength: 48 }),
  fc
    .tuple(fc.oneof(fc.ipV6(), fc.ipV4()), fc.nat(), fc.constantFrom('drop', 'dup', 'insert', 'cut'))
    .map(([s, at, how]) => {
      const i = s.length === 0 ? 0 : at % s.length;
      if (how === 'drop') return s.slice(0, i) + s.slice(i + 1);
      if (how === 'dup') return s.slice(0, i) + s[i] + s.slice(i);
      if (how === 'insert') return `${s.slice(0, i)}${'0:.'[at % 3]}${s.slice(i)}`;
      return s.slice(0, i);
    }),
);

test('garbage and near-misses: accepted exactly when ip-num accepts (zone aside), with the same value', () => {
  fc.assert(
    fc.property(addressLike, (s) => {
      const out = new Uint32Array(4);
      const ok6 = parseIpv6(s, out);
      // The zone is ignored whatever it says (interface names may hold '.', '-', '_'; ip-num
      // allows only letters and digits); it must not be empty.
      const pct = s.indexOf('%');
      const expected6 = pct < 0 ? ipnumV6(s) : pct === s.length - 1 ? null : ipnumV6(s.slice(0, pct));
      assert.equal(ok6, expected6 !== null, `IPv6 ${JSON.stringify(s)}: parser ${ok6}, ip-num ${expected6}`);
      if (ok6) assert.deepEqual([...out], wordsOf(expected6!), s);
      const v4 = parseIpv4(s);
      const expected4 = ipnumV4(s);
      assert.equal(v4, expected4 ?? -1, `IPv4 ${JSON.stringify(s)}`);
    }),
    { numRuns: 10_000 },
  );
});

test('never throws, whatever the string', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 64 }), (s) => {
      const got = parseAddress(s, new Uint32Array(4));
      assert.ok(got === ADDRESS_V6 || got === ADDRESS_INVALID || (got >= 0 && got <= 0xffffffff));
    }),
    RUNS,
  );
  for (const bad of ['', ':', ':::', '1::2::3', '::1:', '1.2.3.4.', '%eth0', '::1%', '1:2:3:4:5:6:7:8:9']) {
    assert.equal(parseAddress(bad, new Uint32Array(4)), ADDRESS_INVALID, bad);
  }
});

// ---- the consumers ------------------------------------------------------------------------

const v6Network = fc.tuple(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), fc.integer({ min: 0, max: 128 }));

function maskOf(len: number): bigint {
  return len === 0 ? 0n : ((1n << 128n) - 1n) ^ ((1n << BigInt(128 - len)) - 1n);
}

function v6Text(value: bigint): string {
  return IPv6.fromBigInt(value).toString();
}

test('policy table: IPv6 longest-prefix match equals a BigInt reference', () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(v6Network, {
        minLength: 1,
        maxLength: 12,
        selector: ([v, len]) => `${v & maskOf(len)}/${len}`,
      }),
      fc.array(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), { maxLength: 8 }),
      fc.nat(),
      (networks, randoms, pick) => {
        // Not IPv4-mapped: such clients are matched as IPv4 (tested apart).
        const nets = networks
          .map(([v, len]) => ({ network: v & maskOf(len), len }))
          .filter(({ network, len }) => !(len >= 96 && network >> 32n === 0xffffn));
        const table = new PolicyTable(
          nets.map(({ network, len }, i) => ({ cidr: `${v6Text(network)}/${len}`, value: i })),
        );
        // Addresses inside some network (so hits are exercised) and random ones.
        const inside = nets.map(
          ({ network, len }) => network | ((randoms[pick % (randoms.length || 1)] ?? 0n) & ~maskOf(len)),
        );
        for (const address of [...inside, ...randoms]) {
          if (address >> 32n === 0xffffn) continue;
          let best = -1;
          let bestLen = -1;
          nets.forEach(({ network, len }, i) => {
            if ((address & maskOf(len)) === network && len > bestLen) {
              best = i;
              bestLen = len;
            }
          });
          assert.equal(table.lookup(v6Text(address)), best === -1 ? null : best, v6Text(address));
        }
      },
    ),
    { numRuns: 300 },
  );
});

test('rate limiter: two IPv6 clients share a bucket exactly when they share the configured prefix', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 128 }),
      fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }),
      fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }),
      fc.integer({ min: 0, max: 128 }),
      (prefix, a, noise, keep) => {
        // b agrees with a on the first `keep` bits, then is random.
        const b = (a & maskOf(keep)) | (noise & ~maskOf(keep));
        if (a >> 32n === 0xffffn || b >> 32n === 0xffffn) return;
        const limiter = new RateLimiter(
          { qps: 1, burst: 1, scope: 'client', exceed: 'drop', ipv4Prefix: 32, ipv6Prefix: prefix },
          100,
          () => 0,
        );
        assert.equal(limiter.take(v6Text(a)), true);
        const same = (a & maskOf(prefix)) === (b & maskOf(prefix));
        assert.equal(limiter.take(v6Text(b)), !same, `/${prefix}: ${v6Text(a)} vs ${v6Text(b)}`);
      },
    ),
    RUNS,
  );
});
