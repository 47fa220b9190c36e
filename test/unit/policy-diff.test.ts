// `diff` by effect (src/policy/diff.ts) and the exact client ranges whose policy changes
// (src/policy/ranges.ts), checked against the live policy table address by address.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { parseConfig } from '../../src/config/load.js';
import { parseCidr } from '../../src/config/semantic.js';
import type { GatewayConfig, PolicyConfig } from '../../src/config/types.js';
import {
  configDiff,
  isEmptyDiff,
  reloadSummary,
  SUMMARY_NAMES,
  summaryLines,
} from '../../src/policy/diff.js';
import { blocks, clientRangeChanges } from '../../src/policy/ranges.js';
import { PolicyTable } from '../../src/stages/match-policy.js';

function configOf(body: string): GatewayConfig {
  const result = parseConfig(`version: 1\n${body}`, 'test.yaml', process.cwd());
  if ('problems' in result) throw new Error(JSON.stringify(result.problems));
  return result.config;
}

/** Base64 of 32 bytes whose padding bits are zero (canonical, as the checks demand). */
const PIN_B = `${'B'.repeat(42)}E=`;

const BASE = `
listeners: [{ name: lan, address: 127.0.0.1, port: 5353 }]
upstreams:
  default:
    servers:
      - { address: 192.0.2.53, tls_name: dns.example, pins: ["${'A'.repeat(43)}="] }
policies:
  - name: office
    clients: [10.1.0.0/16, "2001:db8:1::/48"]
    domains: { deny: [ads.example] }
  - name: guests
    clients: [192.0.2.0/24]
    action: deny
`;

describe('diff by effect', () => {
  test('the same effect written differently is no change', () => {
    const reordered = configOf(`
upstreams:
  default:
    strategy: failover
    servers:
      - { tls_name: dns.example, address: 192.0.2.53, port: 853, pins: ["${'A'.repeat(43)}="] }
# comments and order do not matter
policies:
  - name: guests
    action: deny
    clients: [192.0.2.9/24]
  - name: office
    clients: ["2001:DB8:1:0::/48", 10.1.0.0/16]
    domains: { deny: [ADS.example.] }
    cache: true
listeners: [{ name: lan, address: 127.0.0.1, port: 5353, protocols: [tcp, udp] }]
`);
    const d = configDiff(configOf(BASE), reordered);
    assert.ok(isEmptyDiff(d), JSON.stringify(d));
    assert.deepEqual(summaryLines(d), []);
  });

  test('every kind of change, one line each', () => {
    const after = configOf(`
listeners: [{ name: lan, address: 127.0.0.1, port: 5354 }, { name: lan6, address: "::1", port: 5353 }]
upstreams:
  default:
    timeout_ms: 900
    servers:
      - { address: 192.0.2.53, tls_name: dns.example, pins: ["${PIN_B}"] }
      - { address: 192.0.2.54, tls_name: dns2.example }
  corp:
    servers: [{ address: 10.0.0.53, tls_name: corp.example }]
policies:
  - name: office
    clients: [10.1.0.0/16]
    mode: audit
    deny_with: nxdomain
    domains: { deny: [ads.example, tracker.example] }
    rate_limit: { qps: 10 }
  - name: guests
    clients: [192.0.2.0/25, 10.1.5.0/24]
    action: deny
cache: { max_entries: 500 }
`);
    assert.deepEqual(summaryLines(configDiff(configOf(BASE), after)), [
      'listener added: lan6 [::1]:5353 udp,tcp',
      'listener lan: port 5353 -> 5354',
      'upstream set added: corp',
      'upstream default: timeout_ms 1500 -> 900',
      'upstream default: server added 192.0.2.54:853 (dns2.example)',
      `upstream default: server 192.0.2.53:853 pins added ${PIN_B}; removed ${'A'.repeat(43)}=`,
      'policy office: clients removed 2001:db8:1::/48',
      'policy office: mode enforce -> audit',
      'policy office: deny_with refused -> nxdomain',
      'policy office: rate_limit (none) -> qps 10, burst 10, scope client, exceed drop',
      'policy office: domains.deny added tracker.example',
      'policy guests: clients added 192.0.2.0/25, 10.1.5.0/24; removed 192.0.2.0/24',
      'setting cache.max_entries 100000 -> 500',
      '10.1.5.0/24: office -> guests',
      '192.0.2.128/25: guests -> (unmatched)',
      '2001:db8:1::/48: office -> (unmatched)',
    ]);
  });

  test('long sets name the first entries and count them; the JSON form has them all', () => {
    const names = Array.from({ length: 50 }, (_, i) => `n${i}.example`);
    const after = configOf(BASE.replace('deny: [ads.example]', `deny: [ads.example, ${names.join(', ')}]`));
    const d = configDiff(configOf(BASE), after);
    const [line] = summaryLines(d);
    assert.match(line, /^policy office: domains.deny added 50: n0.example, .* n19.example, \.\.\.$/);
    assert.equal(line.split(', ').length, SUMMARY_NAMES + 1);
    assert.equal(d.policies.changed[0].changes[0].added?.length, 50);
  });

  test('a reload summary is bounded', () => {
    const many = (n: number, name: string) =>
      Array.from(
        { length: n },
        (_, i) => `  - { name: ${name}${i}, clients: [10.${i >> 8}.${i & 255}.0/24] }`,
      ).join('\n');
    const head = `listeners: [{ name: lan, address: 127.0.0.1, port: 5353 }]
upstreams: { default: { servers: [{ address: 192.0.2.53, tls_name: dns.example }] } }
policies:
`;
    const lines = reloadSummary(configOf(head + many(300, 'a')), configOf(head + many(300, 'b')));
    assert.equal(lines.length, 200);
    assert.match(lines[199], /^\.\.\. and \d+ more \(dns-tool diff shows them all\)$/);
  });
});

describe('client ranges', () => {
  test('blocks are the minimal CIDR cover', () => {
    assert.deepEqual(blocks(0n, 0xffffffffn, 32), ['0.0.0.0/0']);
    assert.deepEqual(blocks(0x0a010500n, 0x0a0105ffn, 32), ['10.1.5.0/24']);
    assert.deepEqual(blocks(0x0a000001n, 0x0a000006n, 32), [
      '10.0.0.1/32',
      '10.0.0.2/31',
      '10.0.0.4/31',
      '10.0.0.6/32',
    ]);
    assert.deepEqual(blocks(0n, (1n << 128n) - 1n, 128), ['::/0']);
  });

  test('IPv4-mapped IPv6 addresses are never reported as IPv6 ranges', () => {
    const before = [policy('all6', ['::/0'])];
    const after = [policy('other6', ['::/0'])];
    const ranges = clientRangeChanges(before, after).map((r) => r.range);
    // ::/0 minus ::ffff:0:0/96, as minimal blocks: one sibling per level above the /96.
    assert.equal(ranges.length, 96);
    assert.ok(!ranges.includes('::/0'));
    assert.ok(
      ranges.every((r) => !cover(r).contains(0xffff00000001n)),
      'no block holds ::ffff:0.0.0.1',
    );
    assert.ok(ranges.some((r) => cover(r).contains(0xfffe00000001n)));
    assert.ok(ranges.some((r) => cover(r).contains(0x1_0000_0000_0000n)));
  });

  test('exact: an address changes policy if and only if a reported range holds it, with from and to', () => {
    const cidr4 = fc
      .tuple(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 16, max: 32 }))
      .map(([low, len]) => parseCidr(`10.0.${low >> 8}.${low & 255}/${len}`) as string);
    const cidr6 = fc
      .tuple(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 96, max: 128 }))
      .map(([low, len]) => parseCidr(`2001:db8::${low.toString(16)}/${len}`) as string);
    const wide = fc.constantFrom('0.0.0.0/0', '10.0.0.0/8', '::/0', '2001:db8::/32', '::/64');
    const table = fc.array(fc.tuple(fc.oneof(cidr4, cidr6, wide), fc.constantFrom('a', 'b', 'c')), {
      maxLength: 12,
    });
    fc.assert(
      fc.property(
        table,
        table,
        fc.array(fc.bigInt({ min: 0n, max: 0xffffn }), { maxLength: 20 }),
        (x, y, extra) => {
          const before = toPolicies(x);
          const after = toPolicies(y);
          const changes = clientRangeChanges(before, after).map((r) => ({ ...r, cover: cover(r.range) }));
          const lookBefore = tableOf(before);
          const lookAfter = tableOf(after);
          // Probe every boundary of either table (and its neighbours), plus random addresses.
          const probes: { v6: boolean; value: bigint }[] = [];
          for (const cidr of [...before, ...after].flatMap((p) => p.clients)) {
            const c = cover(cidr);
            for (const v of [c.start - 1n, c.start, c.end, c.end + 1n]) probes.push({ v6: c.v6, value: v });
          }
          for (const e of extra) {
            probes.push({ v6: false, value: 0x0a000000n | e });
            probes.push({ v6: true, value: (0x20010db8n << 96n) | e });
          }
          for (const p of probes) {
            const max = p.v6 ? (1n << 128n) - 1n : 0xffffffffn;
            if (p.value < 0n || p.value > max) continue;
            if (p.v6 && p.value >> 32n === 0xffffn) continue; // mapped: looked up as IPv4
            const address = format(p.value, p.v6);
            const from = lookBefore.lookup(address);
            const to = lookAfter.lookup(address);
            const hits = changes.filter((r) => r.cover.v6 === p.v6 && r.cover.contains(p.value));
            assert.ok(hits.length <= 1, `${address} is in ${hits.length} reported ranges`);
            if (from === to) assert.equal(hits.length, 0, `${address} did not change but is reported`);
            else assert.deepEqual([hits[0]?.from, hits[0]?.to], [from, to], address);
          }
          // Minimal: two reported blocks with the same change are never mergeable siblings.
          for (let i = 1; i < changes.length; i++) {
            const a = changes[i - 1];
            const b = changes[i];
            if (a.from !== b.from || a.to !== b.to || a.cover.v6 !== b.cover.v6) continue;
            const size = a.cover.end - a.cover.start + 1n;
            const mergeable =
              b.cover.start === a.cover.end + 1n &&
              b.cover.end - b.cover.start + 1n === size &&
              a.cover.start % (2n * size) === 0n;
            assert.ok(!mergeable, `${a.range} and ${b.range} should be one block`);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

function policy(name: string, clients: string[]): PolicyConfig {
  return { name, clients } as unknown as PolicyConfig;
}

/** Random (cidr, policy) pairs as policies; a CIDR taken twice keeps its first policy, as the checks demand. */
function toPolicies(pairs: [string, string][]): PolicyConfig[] {
  const seen = new Set<string>();
  const byName = new Map<string, string[]>();
  for (const [cidr, name] of pairs) {
    if (seen.has(cidr)) continue;
    seen.add(cidr);
    byName.set(name, [...(byName.get(name) ?? []), cidr]);
  }
  return [...byName].map(([name, clients]) => policy(name, clients));
}

function tableOf(policies: PolicyConfig[]): PolicyTable<string> {
  return new PolicyTable(policies.flatMap((p) => p.clients.map((cidr) => ({ cidr, value: p.name }))));
}

function cover(cidr: string): { v6: boolean; start: bigint; end: bigint; contains(v: bigint): boolean } {
  const [address, len] = cidr.split('/');
  const v6 = address.includes(':');
  const bits = v6 ? 128 : 32;
  const start = v6 ? v6Value(address) : address.split('.').reduce((a, o) => (a << 8n) | BigInt(o), 0n);
  const end = start | ((1n << BigInt(bits - Number(len))) - 1n);
  return { v6, start, end, contains: (v) => v >= start && v <= end };
}

function v6Value(address: string): bigint {
  const [head, tail] = address.includes('::') ? address.split('::') : [address, ''];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  return groups.reduce((a: bigint, g: string) => (a << 16n) | BigInt(`0x${g}`), 0n);
}

function format(value: bigint, v6: boolean): string {
  if (!v6) return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 255n)).join('.');
  const groups: string[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) groups.push(((value >> s) & 0xffffn).toString(16));
  return groups.join(':');
}
