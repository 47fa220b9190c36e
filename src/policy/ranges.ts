// Which client addresses change policy between two configs, computed exactly from the two
// CIDR tables: the longest-prefix match is constant between consecutive CIDR boundaries, so
// comparing both tables on the boundaries of either covers every address, IPv4 and IPv6.
import { canonicalIp } from '../config/semantic.js';
import type { PolicyConfig } from '../config/types.js';

/** A block of client addresses whose policy changes: `10.1.5.0/24: office -> guests`. */
export interface RangeChange {
  /** Minimal CIDR block, canonical. */
  readonly range: string;
  /** Policy name before and after; null = no policy (the client is answered REFUSED). */
  readonly from: string | null;
  readonly to: string | null;
}

interface Prefix {
  readonly start: bigint;
  readonly end: bigint;
  readonly length: number;
  readonly policy: string;
}

interface Family {
  readonly bits: number;
  /** Address blocks the family's table never decides (matched in the other family). */
  readonly holes: readonly { start: bigint; end: bigint }[];
}

const V4: Family = { bits: 32, holes: [] };
// IPv4-mapped IPv6 clients (::ffff:0:0/96) are matched as IPv4, never by an IPv6 CIDR.
const V6: Family = { bits: 128, holes: [{ start: 0xffffn << 32n, end: (0xffffn << 32n) | 0xffffffffn }] };

/**
 * Every client range whose policy differs between `before` and `after`, as minimal CIDR
 * blocks in address order, IPv4 first. Work and output are O(n log n) and O(n) in the
 * number of CIDRs (each changed segment needs at most 2 × address-bits blocks).
 */
export function clientRangeChanges(
  before: readonly PolicyConfig[],
  after: readonly PolicyConfig[],
): RangeChange[] {
  const out: RangeChange[] = [];
  for (const [family, v6] of [
    [V4, false],
    [V6, true],
  ] as const) {
    const a = prefixes(before, v6);
    const b = prefixes(after, v6);
    const max = (1n << BigInt(family.bits)) - 1n;
    // An array sorted then deduplicated, not a Set: V8 hashes BigInts by their low bits, so
    // a Set of IPv6 prefixes (low 64 bits zero) degrades to a list and this to O(n²).
    const points: bigint[] = [0n];
    for (const p of [...a, ...b, ...family.holes]) {
      points.push(p.start);
      if (p.end < max) points.push(p.end + 1n);
    }
    points.sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
    const sorted = points.filter((p, i) => i === 0 || p !== points[i - 1]);
    const fromA = deepestAt(sorted, a);
    const fromB = deepestAt(sorted, b);
    // Coalesce consecutive segments with the same change before cutting them into blocks.
    let run: { start: bigint; from: string | null; to: string | null } | null = null;
    const flush = (end: bigint): void => {
      if (run !== null) {
        for (const range of blocks(run.start, end, family.bits))
          out.push({ range, from: run.from, to: run.to });
      }
      run = null;
    };
    for (let i = 0; i < sorted.length; i++) {
      const start = sorted[i];
      const inHole = family.holes.some((h) => start >= h.start && start <= h.end);
      const from = fromA[i];
      const to = fromB[i];
      if (inHole || from === to) {
        flush(start - 1n);
        continue;
      }
      if (run !== null && (run.from !== from || run.to !== to)) flush(start - 1n);
      run ??= { start, from, to };
    }
    flush(max);
  }
  return out;
}

/** The policy of the longest prefix holding each point (points sorted ascending). */
function deepestAt(points: readonly bigint[], prefixes: readonly Prefix[]): (string | null)[] {
  // Outer prefixes first at equal starts, so the stack holds a chain of nested prefixes.
  // CIDRs never partly overlap, and the config holds no CIDR twice, so the chain is exact.
  const sorted = [...prefixes].sort((x, y) =>
    x.start < y.start ? -1 : x.start > y.start ? 1 : x.length - y.length,
  );
  const stack: Prefix[] = [];
  const result: (string | null)[] = [];
  let next = 0;
  for (const point of points) {
    while (stack.length > 0 && stack[stack.length - 1].end < point) stack.pop();
    // Every start is a point, so each prefix is pushed exactly at its own start.
    while (next < sorted.length && sorted[next].start <= point) stack.push(sorted[next++]);
    result.push(stack.length > 0 ? stack[stack.length - 1].policy : null);
  }
  return result;
}

function prefixes(policies: readonly PolicyConfig[], v6: boolean): Prefix[] {
  const out: Prefix[] = [];
  for (const policy of policies) {
    for (const cidr of policy.clients) {
      const range = cidrRange(cidr);
      if (range.v6 === v6) out.push({ ...range, policy: policy.name });
    }
  }
  return out;
}

/** A canonical CIDR (as freeze writes them) as the first and last address it holds. */
export function cidrRange(cidr: string): { v6: boolean; start: bigint; end: bigint; length: number } {
  const v6 = cidr.includes(':');
  const slash = cidr.indexOf('/');
  const length = Number(cidr.slice(slash + 1));
  const start = addressValue(cidr.slice(0, slash), v6);
  const end = start | ((1n << BigInt((v6 ? 128 : 32) - length)) - 1n);
  return { v6, start, end, length };
}

/** A canonical address (as freeze writes CIDRs) as an integer. */
export function addressValue(address: string, v6: boolean): bigint {
  if (!v6) return address.split('.').reduce((acc, octet) => (acc << 8n) | BigInt(Number(octet)), 0n);
  const [head, tail] = address.includes('::') ? address.split('::') : [address, null];
  const left = head === '' ? [] : head.split(':');
  const right = tail === null || tail === '' ? [] : tail.split(':');
  const groups = [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(Number.parseInt(g, 16)), 0n);
}

/** [start, end] as the fewest CIDR blocks covering exactly it. */
export function blocks(start: bigint, end: bigint, bits: number): string[] {
  const out: string[] = [];
  let at = start;
  while (at <= end) {
    // The largest block aligned at `at` that does not run past `end`.
    let size = at === 0n ? 1n << BigInt(bits) : at & -at;
    while (at + size - 1n > end) size >>= 1n;
    let length = bits;
    for (let s = size; s > 1n; s >>= 1n) length--;
    out.push(`${formatAddress(at, bits)}/${length}`);
    at += size;
  }
  return out;
}

function formatAddress(value: bigint, bits: number): string {
  if (bits === 32) {
    const n = Number(value);
    return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  }
  const groups: string[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push(((value >> shift) & 0xffffn).toString(16));
  return canonicalIp(groups.join(':'));
}
