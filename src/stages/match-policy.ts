// Longest-prefix match of a client address over every policy's CIDRs. The table is
// built once per config generation; a lookup is one Map probe per distinct prefix length.
import { IPv4CidrRange, IPv6CidrRange } from 'ip-num';
import { ADDRESS_INVALID, parseAddress, wordMask } from '../net/ip.js';

/** An IPv6 network of one prefix length; networks whose words hash alike are chained. */
interface V6Entry<T> {
  readonly w0: number;
  readonly w1: number;
  readonly w2: number;
  readonly w3: number;
  value: T;
  next: V6Entry<T> | null;
}

/** The masks and networks of one IPv6 prefix length. */
interface V6Length<T> {
  readonly length: number;
  readonly m0: number;
  readonly m1: number;
  readonly m2: number;
  readonly m3: number;
  /** hash of the network's words → its entries. */
  readonly byHash: Map<number, V6Entry<T>>;
}

/** Scratch for the IPv6 words of the address being looked up: one lookup runs at a time. */
const words = new Uint32Array(4);

/**
 * Prefix table keyed by masked address. Bounded by the number of CIDRs in the config.
 * IPv4 keys are unsigned 32-bit numbers. IPv6 networks are four 32-bit words, found by a
 * 30-bit hash of the masked words and compared word by word: no BigInt and no string is made
 * per lookup (measured in bench/ip-lookup.ts: see the commit that introduced it).
 */
export class PolicyTable<T> {
  /** Longest prefix first: masks and their masked address → value maps. */
  private readonly v4Masks: number[] = [];
  private readonly v4Maps: Map<number, T>[] = [];
  /** The prefix length of each of v4Masks (for `matches`). */
  private readonly v4Lengths: number[] = [];
  /** Longest prefix first. */
  private readonly v6: V6Length<T>[] = [];

  /** `cidrs` are normalised CIDR strings as produced by the config loader. */
  constructor(entries: Iterable<{ readonly cidr: string; readonly value: T }>) {
    const v4 = new Map<number, Map<number, T>>(); // prefix length → masked address → value
    const v6 = new Map<number, V6Length<T>>();
    for (const { cidr, value } of entries) {
      if (cidr.includes(':')) {
        const range = IPv6CidrRange.fromCidr(cidr);
        const len = Number(range.cidrPrefix.getValue());
        let byLen = v6.get(len);
        if (!byLen) {
          byLen = {
            length: len,
            m0: wordMask(len, 0),
            m1: wordMask(len, 1),
            m2: wordMask(len, 2),
            m3: wordMask(len, 3),
            byHash: new Map(),
          };
          v6.set(len, byLen);
        }
        // Config parsing may use BigInt: it runs once per generation.
        const first = range.getFirst().getValue();
        const w0 = Number((first >> 96n) & 0xffffffffn);
        const w1 = Number((first >> 64n) & 0xffffffffn);
        const w2 = Number((first >> 32n) & 0xffffffffn);
        const w3 = Number(first & 0xffffffffn);
        const h = hashWords(w0, w1, w2, w3);
        const head = byLen.byHash.get(h) ?? null;
        // The loader rejects a CIDR listed twice; were one to slip through, the last wins (as for IPv4).
        let dup = head;
        while (dup !== null && !(dup.w0 === w0 && dup.w1 === w1 && dup.w2 === w2 && dup.w3 === w3))
          dup = dup.next;
        if (dup !== null) dup.value = value;
        else byLen.byHash.set(h, { w0, w1, w2, w3, value, next: head });
      } else {
        const range = IPv4CidrRange.fromCidr(cidr);
        const len = Number(range.cidrPrefix.getValue());
        let byAddr = v4.get(len);
        if (!byAddr) {
          byAddr = new Map();
          v4.set(len, byAddr);
        }
        byAddr.set(Number(range.getFirst().getValue()), value);
      }
    }
    for (const len of [...v4.keys()].sort((a, b) => b - a)) {
      this.v4Masks.push(wordMask(len, 0));
      this.v4Lengths.push(len);
      this.v4Maps.push(v4.get(len)!);
    }
    for (const len of [...v6.keys()].sort((a, b) => b - a)) this.v6.push(v6.get(len)!);
  }

  /** The value of the longest prefix containing `address`, or null. Never throws. */
  lookup(address: string): T | null {
    const v4 = parseAddress(address, words);
    if (v4 >= 0) {
      const masks = this.v4Masks;
      const maps = this.v4Maps;
      for (let i = 0; i < masks.length; i++) {
        const hit = maps[i].get((v4 & masks[i]) >>> 0);
        if (hit !== undefined) return hit;
      }
      return null;
    }
    if (v4 === ADDRESS_INVALID) return null;
    // IPv6: the words are in the scratch.
    const w0 = words[0];
    const w1 = words[1];
    const w2 = words[2];
    const w3 = words[3];
    for (const len of this.v6) {
      const a = (w0 & len.m0) >>> 0;
      const b = (w1 & len.m1) >>> 0;
      const c = (w2 & len.m2) >>> 0;
      const d = (w3 & len.m3) >>> 0;
      let e = len.byHash.get(hashWords(a, b, c, d)) ?? null;
      while (e !== null) {
        if (e.w0 === a && e.w1 === b && e.w2 === c && e.w3 === d) return e.value;
        e = e.next;
      }
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
    const v4 = parseAddress(address, words);
    if (v4 >= 0) {
      for (let i = 0; i < this.v4Masks.length; i++) {
        const hit = this.v4Maps[i].get((v4 & this.v4Masks[i]) >>> 0);
        if (hit !== undefined) found.push({ length: this.v4Lengths[i], value: hit });
      }
      return found;
    }
    if (v4 === ADDRESS_INVALID) return found;
    const w0 = words[0];
    const w1 = words[1];
    const w2 = words[2];
    const w3 = words[3];
    for (const len of this.v6) {
      const a = (w0 & len.m0) >>> 0;
      const b = (w1 & len.m1) >>> 0;
      const c = (w2 & len.m2) >>> 0;
      const d = (w3 & len.m3) >>> 0;
      for (let e = len.byHash.get(hashWords(a, b, c, d)) ?? null; e !== null; e = e.next) {
        if (e.w0 === a && e.w1 === b && e.w2 === c && e.w3 === d) {
          found.push({ length: len.length, value: e.value });
          break;
        }
      }
    }
    return found;
  }
}

/** Mixes four 32-bit words into a small integer (a V8 Smi, so the Map probe stays cheap). */
function hashWords(a: number, b: number, c: number, d: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 15) ^ b, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 13) ^ c, 0x27d4eb2f);
  h = Math.imul(h ^ (h >>> 16) ^ d, 0x165667b1);
  return (h ^ (h >>> 15)) & 0x3fffffff;
}
