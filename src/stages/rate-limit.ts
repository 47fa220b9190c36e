// The rate-limit stage and its token-bucket store: per source prefix or per policy, with a
// bounded number of buckets and an injected clock.
import type { RateLimitConfig } from '../config/types.js';
import { synthesize } from '../dns/answer.js';
import { RCODE_NOERROR, RCODE_REFUSED } from '../dns/constants.js';
import { ADDRESS_INVALID, parseAddress, wordMask } from '../net/ip.js';
import type { QueryContext } from '../pipeline/context.js';
import type { Handler, MaybePromise, Stage, StageResult } from '../pipeline/stage.js';

interface Bucket {
  tokens: number;
  /** Clock reading (ms) `tokens` was computed at. */
  at: number;
}

/** A bucket of scope 'client', linked in recency order. */
interface KeyedBucket extends Bucket {
  readonly key: number | string;
  /** Neighbours in recency order; null at the ends. */
  older: KeyedBucket | null;
  newer: KeyedBucket | null;
}

/** Buckets one new prefix's arrival examines while the store is at least half full. */
export const SWEEP_SLICE = 4;
/** The key all non-address strings share (longer than any IPv6 key, so never one of them). */
const INVALID_KEY = 'not an IP address';

/** Scratch for the IPv6 words of the address being keyed: one take runs at a time. */
const words = new Uint32Array(4);

/**
 * Token buckets holding `burst` tokens, full at start, refilled at `qps`.
 * Scope 'client': one bucket per source prefix (`ipv4Prefix` / `ipv6Prefix`; an
 * IPv4-mapped IPv6 address counts as IPv4). Scope 'policy': one bucket for everyone.
 *
 * Bound: at most `maxBuckets` buckets. Eviction, in order: buckets that have refilled to
 * `burst` (they hold no state: a new one would start exactly the same), then the least
 * recently used (every take, allowed or not, counts as a use). The work is spread over the
 * takes, so no query pays for a scan of the store: once the store is half full, each new
 * prefix advances a sweep by SWEEP_SLICE buckets, oldest first, dropping the refilled ones it
 * meets (a pass ends early at a bucket used too recently to have refilled, as every younger
 * one is). A pass thus ends within about maxBuckets / 3 new prefixes, before the store can fill up
 * from half; a new prefix that still finds the store full evicts the one least recently used
 * bucket. A take examines at most SWEEP_SLICE + 1 buckets. So a sprayer of source addresses
 * can at most reset its own buckets and those of clients idle for longer than the sprayer
 * needs to fill the store; a client that keeps sending, even while being limited, keeps its
 * bucket as long as anything else can go first.
 *
 * Recency is a doubly linked list rather than the Map's insertion order: moving a bucket to
 * the young end is a few pointer writes instead of a Map delete and set, and evicting the
 * oldest never walks the holes that deletes leave at the front of a Map.
 */
export class RateLimiter {
  private readonly buckets = new Map<number | string, KeyedBucket>();
  /** Ends of the recency list. */
  private oldest: KeyedBucket | null = null;
  private newest: KeyedBucket | null = null;
  /** The next bucket the sweep examines; null = start a pass at the oldest. */
  private cursor: KeyedBucket | null = null;
  /** The one bucket of scope 'policy'; null for scope 'client'. */
  private readonly shared: Bucket | null;
  private readonly burst: number;
  private readonly tokensPerMs: number;
  private readonly ipv4Mask: number;
  private readonly ipv6Masks: readonly [number, number, number, number];
  /** 16-bit groups an IPv6 key holds: the prefix rounded up. */
  private readonly ipv6Groups: number;
  private readonly maxBuckets: number;
  /** Above this many buckets, new prefixes advance the sweep. */
  private readonly lowMark: number;
  /**
   * No bucket refills sooner than this after its last take: an allowed take leaves at most
   * burst - 1 tokens, a refused one less than 1.
   */
  private readonly minRefillMs: number;

  constructor(
    cfg: RateLimitConfig,
    maxBuckets: number,
    private readonly now: () => number,
  ) {
    this.burst = cfg.burst;
    this.tokensPerMs = cfg.qps / 1000;
    this.ipv4Mask = wordMask(clampPrefix(cfg.ipv4Prefix, 32), 0);
    const v6 = clampPrefix(cfg.ipv6Prefix, 128);
    this.ipv6Masks = [wordMask(v6, 0), wordMask(v6, 1), wordMask(v6, 2), wordMask(v6, 3)];
    this.ipv6Groups = Math.ceil(v6 / 16);
    this.maxBuckets = Math.max(1, Math.floor(maxBuckets));
    this.lowMark = Math.ceil(this.maxBuckets / 2);
    this.minRefillMs = Math.min(1, cfg.burst - 1) / this.tokensPerMs;
    this.shared = cfg.scope === 'policy' ? { tokens: cfg.burst, at: now() } : null;
  }

  /** Buckets held. */
  get size(): number {
    return this.shared === null ? this.buckets.size : 1;
  }

  /** true = allowed (a token was taken). */
  take(clientAddress: string): boolean {
    const now = this.now();
    if (this.shared !== null) return this.takeFrom(this.shared, now);
    const key = this.keyOf(clientAddress);
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      if (this.buckets.size >= this.lowMark) {
        this.sweep(now);
        if (this.buckets.size >= this.maxBuckets) this.remove(this.oldest!);
      }
      bucket = { key, tokens: this.burst, at: now, older: null, newer: null };
      this.buckets.set(key, bucket);
      this.append(bucket);
    } else if (bucket !== this.newest) {
      this.unlink(bucket);
      this.append(bucket);
    }
    return this.takeFrom(bucket, now);
  }

  private takeFrom(bucket: Bucket, now: number): boolean {
    const elapsed = now - bucket.at;
    // A clock that steps back must not mint tokens, nor stall refills forever.
    if (elapsed > 0) {
      const tokens = bucket.tokens + elapsed * this.tokensPerMs;
      bucket.tokens = Math.min(tokens, this.burst);
    }
    bucket.at = now;
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return true;
    }
    return false;
  }

  /** Examine the next SWEEP_SLICE buckets (at most one pass), dropping those refilled to burst. */
  private sweep(now: number): void {
    // Buckets used since then cannot have refilled, nor can any younger one: the pass ends there.
    const youngest = now - this.minRefillMs;
    let node = this.cursor ?? this.oldest;
    let restarted = this.cursor === null;
    for (let i = 0; i < SWEEP_SLICE; i++) {
      if (node === null) {
        if (restarted) break; // the whole store was seen in this call
        node = this.oldest;
        restarted = true;
        if (node === null) break;
      }
      if (node.at > youngest) {
        node = null;
        break;
      }
      const next = node.newer;
      if (node.tokens + (now - node.at) * this.tokensPerMs >= this.burst) this.remove(node);
      node = next;
    }
    this.cursor = node;
  }

  private append(bucket: KeyedBucket): void {
    bucket.older = this.newest;
    bucket.newer = null;
    if (this.newest === null) this.oldest = bucket;
    else this.newest.newer = bucket;
    this.newest = bucket;
  }

  private unlink(bucket: KeyedBucket): void {
    if (this.cursor === bucket) this.cursor = bucket.newer;
    if (bucket.older === null) this.oldest = bucket.newer;
    else bucket.older.newer = bucket.newer;
    if (bucket.newer === null) this.newest = bucket.older;
    else bucket.newer.older = bucket.older;
  }

  private remove(bucket: KeyedBucket): void {
    this.unlink(bucket);
    // A dead bucket that still pointed at its young neighbour would keep it, and through it
    // every bucket made since, alive across young-generation collections (measured: scavenges
    // three times slower under a flood of new prefixes).
    bucket.older = null;
    bucket.newer = null;
    this.buckets.delete(bucket.key);
  }

  /** IPv4 prefixes as numbers, IPv6 prefixes as strings of 16-bit code units. */
  private keyOf(address: string): number | string {
    const v4 = parseAddress(address, words);
    if (v4 >= 0) return (v4 & this.ipv4Mask) >>> 0;
    if (v4 === ADDRESS_INVALID) return INVALID_KEY; // not from a socket
    // Only the groups the prefix covers: a /64 key is four code units.
    const m = this.ipv6Masks;
    const groups = this.ipv6Groups;
    let key = '';
    for (let g = 0; g < groups; g++) {
      const w = words[g >>> 1] & m[g >>> 1];
      key += String.fromCharCode((g & 1) === 0 ? w >>> 16 : w & 0xffff);
    }
    return key;
  }
}

function clampPrefix(prefix: number, max: number): number {
  return prefix < 0 ? 0 : prefix > max ? max : Math.floor(prefix);
}

/**
 * Over the limit: 'drop' sends nothing, 'refused' answers REFUSED, 'truncate' answers
 * UDP with an empty TC=1 NOERROR so a real client retries over TCP (which a spoofed
 * source cannot), and TCP with REFUSED since TC means nothing there.
 */
export class RateLimitStage implements Stage {
  readonly name = 'rate-limit';

  constructor(
    private readonly limiter: RateLimiter,
    private readonly cfg: RateLimitConfig,
    private readonly udpMaxPayload: number,
  ) {}

  handle(ctx: QueryContext, next: Handler): MaybePromise<StageResult> {
    if (this.limiter.take(ctx.clientAddress)) return next(ctx);
    ctx.decision = 'rate_limited';
    const exceed = this.cfg.exceed;
    if (exceed === 'drop') return null;
    const truncate = exceed === 'truncate' && ctx.transport === 'udp';
    return synthesize(
      ctx.query,
      ctx.questionEnd,
      truncate ? RCODE_NOERROR : RCODE_REFUSED,
      ctx.ednsUdpSize,
      this.udpMaxPayload,
      truncate,
    );
  }
}
