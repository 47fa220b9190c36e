// The answer cache stage: upstream answers kept as wire bytes, aged on each hit, and
// concurrent identical misses folded into one upstream query.
import type { CacheConfig } from '../config/types.js';
import { setId, synthesize } from '../dns/answer.js';
import { HEADER_SIZE, RCODE_NOERROR, RCODE_NXDOMAIN, RCODE_SERVFAIL } from '../dns/constants.js';
import { lastFormOptStart, OPT_FIXED_SIZE, toEdnsClientForm, withoutOpt, writeOpt } from '../dns/edns.js';
import { layoutOf, minTtl, readTtl } from '../dns/ttl.js';
import { sameQuestion } from '../dns/wire.js';
import type { Counters } from '../metrics/counters.js';
import type { QueryContext } from '../pipeline/context.js';
import type { Handler, MaybePromise, Stage, StageResult } from '../pipeline/stage.js';
import { SlotStore } from './slot-store.js';

/** `limits.udp_max_payload`'s default: the UDP size hits advertise unless told otherwise. */
const DEFAULT_UDP_SIZE = 1232;

/*
 * One cache entry is one slot of the cache's SlotStore, laid out as
 *   [META_SIZE bytes of metadata][ttlCount × uint16 TTL offsets][the answer's wire bytes]
 * and named by a small integer handle, so an entry costs no JavaScript object besides
 * its key string: nothing per entry for the garbage collector to trace, or to collect
 * when the entry is evicted. Measured (see the commit): with a Buffer per entry, a
 * full-speed miss load kept ~4x the live heap in uncollected evicted entries.
 */
const AT_STORED = 0; // float64: now() when stored (ms)
const AT_EXPIRES = 8; // float64: now() when it expires (ms)
const AT_TOUCH = 16; // uint32: value of the cache's touch counter when last moved to the LRU tail
const AT_QEND = 20; // uint16: offset just past the question, within the wire bytes
const AT_OPT = 22; // uint16: offset of the OPT record within the wire bytes; the wire length when none
const AT_TTLS = 24; // uint16: number of TTL offsets
const AT_WIRE_LEN = 26; // uint16: length of the wire bytes
const META_SIZE = 28;

/**
 * Wire-bytes LRU of upstream answers, one instance per upstream set, so it survives
 * reloads while the set is unchanged (the set is implied by the instance, not the key).
 *
 * Bound: at most `maxEntries` entries and `maxBytes` bytes of slab memory (`bytes`: what
 * the SlotStore allocated, free slot tails and kept empty slabs included, not just the
 * answers' length; the keys, the Map and the recency ring are bounded by maxEntries and
 * not counted). A store first evicts least recently used entries while the cache is full
 * or until the new entry fits; an entry whose slab alone exceeds maxBytes is not stored.
 * Expired entries are dropped when looked up.
 * Recency is approximate: a hit moves its entry to the tail only when it was last moved
 * more than a quarter of the cache ago, so a hot entry is never near the head yet most
 * hits cost nothing.
 *
 * The recency order is a ring of (key, touch) records, not the Map's insertion order:
 * taking the oldest key of a Map whose front keeps being deleted walks every deleted
 * slot V8 has not compacted yet, which made stores into a full cache the most expensive
 * line of the miss path (measured, see the commit). A record whose touch no longer
 * matches its entry (moved again, or gone) is skipped when it reaches the front.
 *
 * Answers are stored in the form an EDNS client gets (dns/edns.ts: the gateway's own OPT,
 * last, with the answer's DO bit and EDE options only). A hit for an EDNS client gets those
 * bytes with the current UDP size; a client without EDNS gets them cut before the OPT, as
 * RFC 6891 §7 asks. The miss path serves its client through the same lookup, so a hit and
 * the miss that filled it are the same bytes.
 */
export class AnswerCache {
  /** Key → SlotStore handle. */
  private readonly entries = new Map<string, number>();
  private store: SlotStore;
  /** Counts inserts and moves; wraps at 2^32 (the distance check is done modulo). */
  private touch = 0;
  /** A quarter of the entries a full cache holds (see the end of set). */
  private touchDistance: number;
  /**
   * Recency ring, oldest at `head`. Bound: 2 × maxEntries records; a store into a full
   * ring first evicts from the front.
   */
  private readonly ringKeys: (string | undefined)[] = [];
  private readonly ringTouch: Uint32Array;
  private head = 0;
  private count = 0;

  constructor(
    private readonly cfg: CacheConfig,
    private readonly now: () => number,
  ) {
    this.touchDistance = Math.max(1, Math.floor(cfg.maxEntries / 4));
    this.ringTouch = new Uint32Array(Math.max(2, 2 * cfg.maxEntries));
    this.store = new SlotStore(cfg.maxBytes);
  }

  /** Append a recency record; the ring never overflows because store() evicts first. */
  private record(key: string, touch: number): void {
    const capacity = this.ringTouch.length;
    if (this.count === capacity) this.evictOldest();
    const at = (this.head + this.count) % capacity;
    this.ringKeys[at] = key;
    this.ringTouch[at] = touch;
    this.count++;
  }

  /** Drop the least recently used live entry (skipping stale records). */
  private evictOldest(): void {
    const capacity = this.ringTouch.length;
    const store = this.store;
    while (this.count > 0) {
      const at = this.head;
      const key = this.ringKeys[at]!;
      const touch = this.ringTouch[at];
      this.ringKeys[at] = undefined;
      this.head = (at + 1) % capacity;
      this.count--;
      const handle = this.entries.get(key);
      if (
        handle !== undefined &&
        store.bufferOf(handle).readUInt32LE(store.offsetOf(handle) + AT_TOUCH) === touch
      ) {
        this.entries.delete(key);
        store.release(handle);
        return;
      }
    }
  }

  get size(): number {
    return this.entries.size;
  }

  /** Bytes of slab memory held: what counts against maxBytes. */
  get bytes(): number {
    return this.store.bytes;
  }

  clear(): void {
    this.entries.clear();
    this.ringKeys.length = 0;
    this.head = 0;
    this.count = 0;
    this.store = new SlotStore(this.cfg.maxBytes);
  }

  /**
   * The question's wire bytes (name, type, class) with ASCII letters lowercased, then the
   * DO and CD bits: one flat string, unambiguous because wire names are length-prefixed.
   * CD is in the key so an answer fetched with checking disabled is never served to a
   * client that asked for validation (and the other way round).
   */
  keyOf(ctx: QueryContext): string {
    const query = ctx.query;
    const n = ctx.questionEnd - HEADER_SIZE;
    for (let i = 0; i < n; i++) {
      const c = query[HEADER_SIZE + i];
      keyScratch[i] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
    }
    keyScratch[n] = 0x30 | (ctx.dnssecOk ? 1 : 0) | (query[3] & 0x10 ? 2 : 0);
    return keyScratch.toString('latin1', 0, n + 1);
  }

  /**
   * Answer with TTLs counted down, the client's ID, RD bit and question bytes (case)
   * copied in, and an OPT advertising `udpSize` when the client sent EDNS; null on miss or
   * expiry.
   */
  get(ctx: QueryContext, udpSize = DEFAULT_UDP_SIZE): Buffer | null {
    return this.lookup(ctx, this.keyOf(ctx), udpSize);
  }

  /** `get` for a key the caller already computed with `keyOf(ctx)`. */
  lookup(ctx: QueryContext, key: string, udpSize = DEFAULT_UDP_SIZE): Buffer | null {
    const handle = this.entries.get(key);
    if (handle === undefined) return null;
    const store = this.store;
    const slab = store.bufferOf(handle);
    const base = store.offsetOf(handle);
    const now = this.now();
    if (now >= slab.readDoubleLE(base + AT_EXPIRES)) {
      this.entries.delete(key);
      store.release(handle);
      return null;
    }
    const questionEnd = slab.readUInt16LE(base + AT_QEND);
    const ttlCount = slab.readUInt16LE(base + AT_TTLS);
    const wireStart = base + META_SIZE + 2 * ttlCount;
    const wireLength = slab.readUInt16LE(base + AT_WIRE_LEN);
    // Guards the key: lname folds only ASCII, but compare the wire to be sure.
    if (questionEnd !== ctx.questionEnd || !sameQuestion(slab, ctx.query, questionEnd, wireStart)) {
      return null;
    }
    const touched = slab.readUInt32LE(base + AT_TOUCH);
    if ((this.touch - touched) >>> 0 > this.touchDistance) {
      this.touch = (this.touch + 1) >>> 0;
      slab.writeUInt32LE(this.touch, base + AT_TOUCH);
      this.record(key, this.touch);
    }

    const optAt = slab.readUInt16LE(base + AT_OPT);
    const hasOpt = optAt < wireLength;
    const edns = ctx.ednsUdpSize > 0;
    const outLength = edns ? (hasOpt ? wireLength : wireLength + OPT_FIXED_SIZE) : optAt;
    const out = Buffer.allocUnsafe(outLength);
    slab.copy(out, 0, wireStart, wireStart + Math.min(wireLength, outLength));
    setId(out, ctx.id);
    ctx.query.copy(out, HEADER_SIZE, HEADER_SIZE, questionEnd);
    out[2] = (out[2] & 0xfe) | (ctx.query[2] & 0x01);
    const elapsed = Math.floor((now - slab.readDoubleLE(base + AT_STORED)) / 1000);
    if (elapsed > 0) {
      for (let i = 0, at = base + META_SIZE; i < ttlCount; i++, at += 2) {
        const offset = slab.readUInt16LE(at);
        const ttl = readTtl(out, offset) - elapsed;
        out.writeUInt32BE(Math.max(ttl, 0), offset);
      }
    }
    if (edns) {
      if (hasOpt) {
        out.writeUInt16BE(udpSize, optAt + 3);
      } else {
        out.writeUInt16BE(out.readUInt16BE(10) + 1, 10);
        writeOpt(out, wireLength, udpSize, 0, 0, 0);
      }
    } else if (hasOpt) {
      out.writeUInt16BE(out.readUInt16BE(10) - 1, 10);
    }
    return out;
  }

  /**
   * Store an upstream answer to ctx's question. Kept: NOERROR and NXDOMAIN answers that
   * are not truncated and whose question is ctx's. Positive lifetime: the smallest TTL of
   * the answer section, clamped to [minTtl, maxTtl]. Negative (NXDOMAIN, or no answer
   * records): min(SOA TTL, SOA MINIMUM) capped by negativeTtl (RFC 2308 §5), and not
   * stored at all without a SOA. A lifetime of 0 is not stored.
   */
  set(ctx: QueryContext, answer: Buffer): void {
    const cfg = this.cfg;
    if (cfg.maxEntries <= 0 || answer.length < HEADER_SIZE) return;
    const flags = answer[2];
    // QR must be set, opcode QUERY, TC clear: a truncated answer is incomplete by definition.
    if ((flags & 0xfa) !== 0x80) return;
    const rcode = answer[3] & 0x0f;
    if (rcode !== RCODE_NOERROR && rcode !== RCODE_NXDOMAIN) return;
    const layout = layoutOf(answer);
    if (layout === null || layout.end !== answer.length) return;
    if (layout.questionEnd !== ctx.questionEnd || !sameQuestion(answer, ctx.query, ctx.questionEnd)) return;

    let optAt = answer.length;
    if (layout.optStart >= 0) {
      // Hits cut the OPT off for clients without EDNS, which only works when it is last;
      // dns/edns.ts puts it there.
      if (layout.optEnd !== answer.length || answer[layout.optStart] !== 0) return;
      // A non-zero extended RCODE (BADVERS, BADCOOKIE, ...) is an error answer.
      if (answer[layout.optStart + 5] !== 0) return;
      optAt = layout.optStart;
    }
    const storedLength = answer.length;

    let lifetime = Number.POSITIVE_INFINITY;
    if (layout.answerTtls > 0) {
      lifetime = clamp(minTtl(answer, layout.ttlOffsets, layout.answerTtls), cfg.minTtl, cfg.maxTtl);
    }
    // A SOA in the authority section marks a negative answer (also NXDOMAIN/NODATA behind a CNAME).
    let cap = Number.POSITIVE_INFINITY;
    if (layout.soaTtlOffset >= 0) {
      cap = Math.min(
        readTtl(answer, layout.soaTtlOffset),
        readTtl(answer, layout.soaMinimumOffset),
        cfg.negativeTtl,
        cfg.maxTtl,
      );
      lifetime = Math.min(lifetime, cap);
    } else if (layout.answerTtls === 0 || rcode === RCODE_NXDOMAIN) {
      return;
    }
    if (!(lifetime > 0) || lifetime === Number.POSITIVE_INFINITY) return;

    const offsets = layout.ttlOffsets;
    const store = this.store;
    const size = META_SIZE + 2 * offsets.length + storedLength;
    if (!store.canHold(size)) return;
    const key = this.keyOf(ctx);
    const entries = this.entries;
    // Replacing an entry leaves its old record stale (its touch differs). Evict before
    // allocating, so the store never holds more than maxBytes.
    const previous = entries.get(key);
    if (previous !== undefined) {
      entries.delete(key);
      store.release(previous);
    }
    let handle = entries.size < cfg.maxEntries ? store.allocate(size) : -1;
    while (handle < 0 && this.count > 0) {
      this.evictOldest();
      if (entries.size < cfg.maxEntries) handle = store.allocate(size);
    }
    if (handle < 0) return;
    const slab = store.bufferOf(handle);
    const base = store.offsetOf(handle);
    const wireStart = base + META_SIZE + 2 * offsets.length;
    answer.copy(slab, wireStart, 0, storedLength);
    for (let i = 0; i < offsets.length; i++) {
      const at = wireStart + offsets[i];
      const ttl = Math.min(clamp(readTtl(slab, at), cfg.minTtl, cfg.maxTtl), cap);
      slab.writeUInt32BE(ttl, at);
      slab.writeUInt16LE(offsets[i], base + META_SIZE + 2 * i);
    }
    const storedAt = this.now();
    this.touch = (this.touch + 1) >>> 0;
    slab.writeDoubleLE(storedAt, base + AT_STORED);
    slab.writeDoubleLE(storedAt + lifetime * 1000, base + AT_EXPIRES);
    slab.writeUInt32LE(this.touch, base + AT_TOUCH);
    slab.writeUInt16LE(layout.questionEnd, base + AT_QEND);
    slab.writeUInt16LE(optAt, base + AT_OPT);
    slab.writeUInt16LE(offsets.length, base + AT_TTLS);
    slab.writeUInt16LE(storedLength, base + AT_WIRE_LEN);

    entries.set(key, handle);
    this.record(key, this.touch);
    // A quarter of a full cache: maxEntries, or what maxBytes holds at the bytes per entry
    // so far if that is fewer (else hot entries would not move before the head: FIFO).
    this.touchDistance = Math.max(
      1,
      Math.min(cfg.maxEntries, (entries.size * cfg.maxBytes) / store.bytes) >>> 2,
    );
  }
}

/** A question is at most 255 name bytes + type + class; one more for the DO bit. */
const keyScratch = Buffer.allocUnsafe(512);

function clamp(value: number, min: number, max: number): number {
  return value < min ? min : Math.min(value, max);
}

/** A fetch under way for one key: its settled answer is shared by the waiters. */
interface PendingFetch {
  readonly fetch: Promise<StageResult>;
  /** The leader, so waiters can report the upstream server that answered. */
  readonly leader: QueryContext;
  /** The answer in EDNS-client form once the fetch settled; null for none (drop). */
  answer: Buffer | null;
}

/**
 * Cache in front of the upstream. The stage behind it (forward) hands back answers in the
 * EDNS-client form (dns/edns.ts) whatever the client sent; this stage stores that form and
 * makes every client's answer from it. A hit is answered synchronously (no promise).
 * Misses for the same key that arrive while one is being fetched wait for that fetch
 * instead of querying the upstream again; each gets its own copy with its own ID, RD bit,
 * question case and OPT, and the same outcome when the fetch yields nothing or throws.
 *
 * Bound: one pending entry per distinct key being fetched, so never more than the
 * in-flight queries the listeners admit; entries go when the fetch settles, which the
 * upstream stage's timeout guarantees.
 */
export class CacheStage implements Stage {
  readonly name = 'cache';
  private readonly pending = new Map<string, PendingFetch>();

  constructor(
    private readonly cache: AnswerCache,
    private readonly counters: Counters,
    /** `limits.udp_max_payload`: the UDP size of the OPT on answers to EDNS clients. */
    private readonly udpSize = DEFAULT_UDP_SIZE,
  ) {}

  handle(ctx: QueryContext, next: Handler): MaybePromise<StageResult> {
    const cache = this.cache;
    const key = cache.keyOf(ctx);
    const hit = cache.lookup(ctx, key, this.udpSize);
    if (hit !== null) {
      this.counters.cacheHits++;
      ctx.cached = true;
      return hit;
    }
    this.counters.cacheMisses++;
    const shared = this.pending.get(key);
    if (shared !== undefined) {
      return shared.fetch.then(() => {
        if (shared.answer === null) return null;
        ctx.upstreamServer = shared.leader.upstreamServer;
        return this.answerFor(ctx, key, shared.answer);
      });
    }

    const result = next(ctx);
    if (result === null || Buffer.isBuffer(result)) {
      return result === null ? null : this.store(ctx, key, result);
    }
    // One derived promise per miss, handed to the caller; waiters chain on it and read the
    // settled answer from the entry. The callback stores the answer and clears the entry
    // before anyone downstream sees it, and hands the leader a copy, never the shared buffer.
    const pending = this.pending;
    const entry: PendingFetch = {
      fetch: result.then(
        (answer) => {
          pending.delete(key);
          entry.answer = answer;
          return answer === null ? null : this.store(ctx, key, answer);
        },
        (err: unknown) => {
          pending.delete(key);
          throw err;
        },
      ),
      leader: ctx,
      answer: null,
    };
    pending.set(key, entry);
    return entry.fetch;
  }

  private store(ctx: QueryContext, key: string, answer: Buffer): StageResult {
    this.cache.set(ctx, answer);
    return this.answerFor(ctx, key, answer);
  }

  /**
   * `ctx`'s answer made from a fetched answer (EDNS-client form, to ctx's question: the key
   * says so): through the cache when it was stored, so hit and miss are the same bytes; else
   * a converted copy (the fetched buffer is shared with the waiters, so it is never changed).
   */
  private answerFor(ctx: QueryContext, key: string, answer: Buffer): StageResult {
    const stored = this.cache.lookup(ctx, key, this.udpSize);
    if (stored !== null) return stored;
    let out = toEdnsClientForm(Buffer.from(answer), ctx.questionEnd, this.udpSize);
    if (out === null) {
      return synthesize(ctx.query, ctx.questionEnd, RCODE_SERVFAIL, ctx.ednsUdpSize, this.udpSize);
    }
    if (ctx.ednsUdpSize === 0) out = withoutOpt(out, lastFormOptStart(), false);
    setId(out, ctx.id);
    ctx.query.copy(out, HEADER_SIZE, HEADER_SIZE, ctx.questionEnd);
    out[2] = (out[2] & 0xfe) | (ctx.query[2] & 0x01);
    return out;
  }
}
