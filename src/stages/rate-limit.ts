// The rate-limit stage and its token-bucket store: per source prefix or per policy, with a
// bounded number of buckets and an injected clock.
import type { RateLimitConfig } from '../config/types.js';
import { synthesize } from '../dns/answer.js';
import { RCODE_NOERROR, RCODE_REFUSED } from '../dns/constants.js';
import type { QueryContext } from '../pipeline/context.js';
import type { Handler, MaybePromise, Stage, StageResult } from '../pipeline/stage.js';

interface Bucket {
  tokens: number;
  /** Clock reading (ms) `tokens` was computed at. */
  at: number;
}

/**
 * Token buckets holding `burst` tokens, full at start, refilled at `qps`.
 * Scope 'client': one bucket per source prefix (`ipv4Prefix` / `ipv6Prefix`; an
 * IPv4-mapped IPv6 address counts as IPv4). Scope 'policy': one bucket for everyone.
 *
 * Bound: at most `maxBuckets` buckets. When a new prefix arrives at the bound, the store
 * frees an eighth of its room in one sweep, so the sweep's cost is shared by the next
 * eighth of arrivals: first every bucket that has refilled to `burst` (it holds no state:
 * a new one would start exactly the same), then, if that is not enough, the least
 * recently used ones (every take, allowed or not, counts as a use). So a sprayer of
 * source addresses can at most reset its own buckets and those of clients idle for longer
 * than the sprayer needs to fill the store; a client that keeps sending, even while
 * being limited, keeps its bucket as long as anything else can go first.
 */
export class RateLimiter {
  private readonly buckets = new Map<number | string, Bucket>();
  /** The one bucket of scope 'policy'; null for scope 'client'. */
  private readonly shared: Bucket | null;
  private readonly burst: number;
  private readonly tokensPerMs: number;
  private readonly ipv4Mask: number;
  private readonly ipv6Prefix: number;
  private readonly maxBuckets: number;
  /** How many buckets one sweep frees at the bound. */
  private readonly sweepRoom: number;

  constructor(
    cfg: RateLimitConfig,
    maxBuckets: number,
    private readonly now: () => number,
  ) {
    this.burst = cfg.burst;
    this.tokensPerMs = cfg.qps / 1000;
    const v4 = clampPrefix(cfg.ipv4Prefix, 32);
    this.ipv4Mask = v4 === 0 ? 0 : (0xffffffff << (32 - v4)) >>> 0;
    this.ipv6Prefix = clampPrefix(cfg.ipv6Prefix, 128);
    this.maxBuckets = Math.max(1, Math.floor(maxBuckets));
    this.sweepRoom = Math.max(1, Math.floor(this.maxBuckets / 8));
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
    const buckets = this.buckets;
    let bucket = buckets.get(key);
    if (bucket === undefined) {
      if (buckets.size >= this.maxBuckets) this.sweep(now);
      bucket = { tokens: this.burst, at: now };
    } else {
      // Map order is the recency order: re-inserting moves the bucket to the young end.
      buckets.delete(key);
    }
    buckets.set(key, bucket);
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

  private sweep(now: number): void {
    const buckets = this.buckets;
    const target = this.maxBuckets - this.sweepRoom;
    for (const [key, bucket] of buckets) {
      if (bucket.tokens + (now - bucket.at) * this.tokensPerMs >= this.burst) buckets.delete(key);
    }
    if (buckets.size <= target) return;
    for (const key of buckets.keys()) {
      buckets.delete(key);
      if (buckets.size <= target) return;
    }
  }

  /** IPv4 prefixes as numbers, IPv6 prefixes as strings of 16-bit code units. */
  private keyOf(address: string): number | string {
    const v4 = parseIpv4(address, 0, address.length);
    if (v4 >= 0) return (v4 & this.ipv4Mask) >>> 0;
    if (!parseIpv6(address, groups)) return address; // not from a socket; still bounded
    // ::ffff:0:0/96 is an IPv4 client reaching a dual-stack socket.
    if (
      groups[0] === 0 &&
      groups[1] === 0 &&
      groups[2] === 0 &&
      groups[3] === 0 &&
      groups[4] === 0 &&
      groups[5] === 0xffff
    ) {
      return (((groups[6] << 16) | groups[7]) & this.ipv4Mask) >>> 0;
    }
    const prefix = this.ipv6Prefix;
    const whole = prefix >>> 4;
    let key = '';
    for (let i = 0; i < whole; i++) key += String.fromCharCode(groups[i]);
    const rest = prefix & 15;
    if (rest !== 0) key += String.fromCharCode(groups[whole] & (0xffff << (16 - rest)));
    return key;
  }
}

function clampPrefix(prefix: number, max: number): number {
  return prefix < 0 ? 0 : prefix > max ? max : Math.floor(prefix);
}

/** Scratch for parseIpv6: one query is keyed at a time, so one array serves all. */
const groups = new Uint16Array(8);

/** Dotted-quad IPv4 in s[start, end) as an unsigned 32-bit number, or -1. */
function parseIpv4(s: string, start: number, end: number): number {
  let value = 0;
  let parts = 0;
  let i = start;
  while (parts < 4) {
    let octet = 0;
    let digits = 0;
    while (i < end) {
      const c = s.charCodeAt(i) - 48;
      if (c < 0 || c > 9) break;
      octet = octet * 10 + c;
      digits++;
      i++;
    }
    if (digits === 0 || digits > 3 || octet > 255) return -1;
    value = value * 256 + octet;
    parts++;
    if (parts < 4) {
      if (i >= end || s.charCodeAt(i) !== 46) return -1;
      i++;
    }
  }
  return i === end ? value : -1;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** IPv6 text (with '::', an IPv4 tail or a %zone) into `out`; false when not IPv6. */
function parseIpv6(s: string, out: Uint16Array): boolean {
  let end = s.indexOf('%');
  if (end < 0) end = s.length;
  let n = 0;
  let gap = -1;
  let i = 0;
  if (end >= 2 && s.charCodeAt(0) === 58 && s.charCodeAt(1) === 58) {
    gap = 0;
    i = 2;
  }
  while (i < end) {
    if (n >= 8) return false;
    const start = i;
    let value = 0;
    let digits = 0;
    while (i < end) {
      const h = hexValue(s.charCodeAt(i));
      if (h < 0) break;
      value = value * 16 + h;
      digits++;
      i++;
    }
    if (i < end && s.charCodeAt(i) === 46) {
      if (n > 6) return false;
      const v4 = parseIpv4(s, start, end);
      if (v4 < 0) return false;
      out[n++] = v4 >>> 16;
      out[n++] = v4 & 0xffff;
      i = end;
      break;
    }
    if (digits === 0 || digits > 4) return false;
    out[n++] = value;
    if (i === end) break;
    if (s.charCodeAt(i) !== 58) return false;
    i++;
    if (i < end && s.charCodeAt(i) === 58) {
      if (gap >= 0) return false;
      gap = n;
      i++;
    } else if (i === end) {
      return false;
    }
  }
  if (gap < 0) return n === 8;
  if (n > 7) return false;
  const zeros = 8 - n;
  for (let k = n - 1; k >= gap; k--) out[k + zeros] = out[k];
  for (let k = gap; k < gap + zeros; k++) out[k] = 0;
  return true;
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
