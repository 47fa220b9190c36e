// Longest-prefix match of a client address over every policy's CIDRs. The table is
// built once per config generation; a lookup is one Map probe per distinct prefix length.
import { IPv4CidrRange, IPv6, IPv6CidrRange } from 'ip-num';

/**
 * Prefix table keyed by masked address. Bounded by the number of CIDRs in the config.
 * IPv4 keys are unsigned 32-bit numbers; IPv6 keys are bigints.
 */
export class PolicyTable<T> {
  private readonly v4 = new Map<number, Map<number, T>>(); // prefix length → masked address → value
  private readonly v6 = new Map<number, Map<bigint, T>>();
  private v4Lengths: number[] = [];
  private v6Lengths: number[] = [];

  /** `cidrs` are normalised CIDR strings as produced by the config loader. */
  constructor(entries: Iterable<{ readonly cidr: string; readonly value: T }>) {
    for (const { cidr, value } of entries) {
      if (cidr.includes(':')) {
        const range = IPv6CidrRange.fromCidr(cidr);
        const len = Number(range.cidrPrefix.getValue());
        let byAddr = this.v6.get(len);
        if (!byAddr) {
          byAddr = new Map();
          this.v6.set(len, byAddr);
        }
        byAddr.set(range.getFirst().getValue(), value);
      } else {
        const range = IPv4CidrRange.fromCidr(cidr);
        const len = Number(range.cidrPrefix.getValue());
        let byAddr = this.v4.get(len);
        if (!byAddr) {
          byAddr = new Map();
          this.v4.set(len, byAddr);
        }
        byAddr.set(Number(range.getFirst().getValue()), value);
      }
    }
    this.v4Lengths = [...this.v4.keys()].sort((a, b) => b - a);
    this.v6Lengths = [...this.v6.keys()].sort((a, b) => b - a);
  }

  /** The value of the longest prefix containing `address`, or null. Never throws. */
  lookup(address: string): T | null {
    let v4 = parseIPv4(address);
    if (v4 < 0 && address.startsWith('::ffff:')) v4 = parseIPv4(address.slice(7));
    if (v4 >= 0) {
      for (const len of this.v4Lengths) {
        const masked = len === 0 ? 0 : (v4 & (0xffffffff << (32 - len))) >>> 0;
        const hit = this.v4.get(len)!.get(masked);
        if (hit !== undefined) return hit;
      }
      return null;
    }
    if (this.v6Lengths.length === 0 || !address.includes(':')) return null;
    let value: bigint;
    try {
      value = IPv6.fromString(stripZone(address)).getValue();
    } catch {
      return null;
    }
    for (const len of this.v6Lengths) {
      const masked = len === 0 ? 0n : (value >> BigInt(128 - len)) << BigInt(128 - len);
      const hit = this.v6.get(len)!.get(masked);
      if (hit !== undefined) return hit;
    }
    return null;
  }

  /**
   * Every value whose prefix contains `address`, longest prefix first, with that prefix
   * length: the winner `lookup` returns and the prefixes it beat. For `explain` and
   * `diff`, not the hot path; addresses are read as `lookup` reads them.
   */
  matches(address: string): { length: number; value: T }[] {
    const found: { length: number; value: T }[] = [];
    let v4 = parseIPv4(address);
    if (v4 < 0 && address.startsWith('::ffff:')) v4 = parseIPv4(address.slice(7));
    if (v4 >= 0) {
      for (const len of this.v4Lengths) {
        const masked = len === 0 ? 0 : (v4 & (0xffffffff << (32 - len))) >>> 0;
        const hit = this.v4.get(len)!.get(masked);
        if (hit !== undefined) found.push({ length: len, value: hit });
      }
      return found;
    }
    if (!address.includes(':')) return found;
    let value: bigint;
    try {
      value = IPv6.fromString(stripZone(address)).getValue();
    } catch {
      return found;
    }
    for (const len of this.v6Lengths) {
      const masked = len === 0 ? 0n : (value >> BigInt(128 - len)) << BigInt(128 - len);
      const hit = this.v6.get(len)!.get(masked);
      if (hit !== undefined) found.push({ length: len, value: hit });
    }
    return found;
  }
}

function stripZone(address: string): string {
  const pct = address.indexOf('%');
  return pct < 0 ? address : address.slice(0, pct);
}

/** Dotted-quad to unsigned 32-bit, or -1. Hand-written: it runs for every query. */
export function parseIPv4(s: string): number {
  let value = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || ++dots > 3) return -1;
      value = value * 256 + part;
      part = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return -1;
    } else {
      return -1;
    }
  }
  if (dots !== 3 || digits === 0) return -1;
  return value * 256 + part;
}
