// Where the TTLs of a wire answer live and how they are aged, found by one hand walk over
// the bytes (names may be compressed), so a cache hit never decodes the message.
import { HEADER_SIZE, TYPE_OPT, TYPE_SOA } from './constants.js';
import { skipName } from './wire.js';

/** The offsets a cache needs from an answer, gathered once when it is stored. */
export interface RecordLayout {
  /** Offset just past the question section. */
  readonly questionEnd: number;
  /** Offset past the last record; equals the message length for a well-formed message. */
  readonly end: number;
  /**
   * Offset of the TTL field of every record except OPT (whose TTL field holds EDNS flags),
   * in message order. Uint16 suffices: a DNS message is at most 65535 bytes.
   */
  readonly ttlOffsets: Uint16Array;
  /** How many of `ttlOffsets` belong to the answer section (they come first). */
  readonly answerTtls: number;
  /** Start and end of the OPT record; -1 when there is none. */
  readonly optStart: number;
  readonly optEnd: number;
  /** TTL field and MINIMUM field of the first SOA in the authority section; -1 when none. */
  readonly soaTtlOffset: number;
  readonly soaMinimumOffset: number;
}

/**
 * Walk a DNS message and return where its TTLs are, or null when it cannot be walked
 * (wrong QDCOUNT, a name or record running past the end, more than one OPT).
 */
export function layoutOf(msg: Buffer): RecordLayout | null {
  const length = msg.length;
  if (length < HEADER_SIZE || length > 0xffff) return null;
  if (msg.readUInt16BE(4) !== 1) return null;
  let pos = skipName(msg, HEADER_SIZE, length);
  if (pos < 0 || pos + 4 > length) return null;
  pos += 4;
  const questionEnd = pos;
  const ancount = msg.readUInt16BE(6);
  const nscount = msg.readUInt16BE(8);
  const total = ancount + nscount + msg.readUInt16BE(10);
  const ttlOffsets = new Uint16Array(total);
  let ttlCount = 0;
  let answerTtls = 0;
  let optStart = -1;
  let optEnd = -1;
  let soaTtlOffset = -1;
  let soaMinimumOffset = -1;
  for (let i = 0; i < total; i++) {
    const start = pos;
    pos = skipName(msg, pos, length);
    if (pos < 0 || pos + 10 > length) return null;
    const type = msg.readUInt16BE(pos);
    const rdataStart = pos + 10;
    const rdataEnd = rdataStart + msg.readUInt16BE(pos + 8);
    if (rdataEnd > length) return null;
    if (type === TYPE_OPT) {
      // OPT is only legal once and only in the additional section (RFC 6891 §6.1.1).
      if (optStart >= 0 || i < ancount + nscount) return null;
      optStart = start;
      optEnd = rdataEnd;
    } else {
      ttlOffsets[ttlCount++] = pos + 4;
      if (i < ancount) answerTtls++;
      if (type === TYPE_SOA && soaTtlOffset < 0 && i >= ancount && i < ancount + nscount) {
        const minimum = soaMinimumAt(msg, rdataStart, rdataEnd);
        if (minimum >= 0) {
          soaTtlOffset = pos + 4;
          soaMinimumOffset = minimum;
        }
      }
    }
    pos = rdataEnd;
  }
  return {
    questionEnd,
    end: pos,
    ttlOffsets: ttlCount === total ? ttlOffsets : ttlOffsets.subarray(0, ttlCount),
    answerTtls,
    optStart,
    optEnd,
    soaTtlOffset,
    soaMinimumOffset,
  };
}

/** Offset of the MINIMUM field in SOA rdata (after MNAME, RNAME and four 32-bit fields), or -1. */
function soaMinimumAt(msg: Buffer, rdataStart: number, rdataEnd: number): number {
  let pos = skipName(msg, rdataStart, rdataEnd);
  if (pos < 0) return -1;
  pos = skipName(msg, pos, rdataEnd);
  if (pos < 0 || pos + 20 > rdataEnd) return -1;
  return pos + 16;
}

/** A TTL field as a number of seconds; values with the top bit set count as 0 (RFC 2181 §8). */
export function readTtl(msg: Buffer, offset: number): number {
  const ttl = msg.readUInt32BE(offset);
  return ttl > 0x7fffffff ? 0 : ttl;
}

/** Smallest TTL among the first `count` of `offsets`; Infinity when count is 0. */
export function minTtl(msg: Buffer, offsets: Uint16Array, count: number): number {
  let min = Number.POSITIVE_INFINITY;
  for (let i = 0; i < count; i++) {
    const ttl = readTtl(msg, offsets[i]);
    if (ttl < min) min = ttl;
  }
  return min;
}
