// EDNS is hop by hop (RFC 6891 §6.1.1): the gateway writes its own OPT record on each leg
// instead of passing the other side's. This file owns every OPT the gateway writes: the
// padded one on upstream queries and the one on answers to clients.
import { HEADER_SIZE, TYPE_OPT } from './constants.js';
import { skipName } from './wire.js';

/** Root name, type, class (UDP size), TTL (ext-rcode, version, flags), RDLENGTH. */
export const OPT_FIXED_SIZE = 11;
export const OPTION_PADDING = 12;
/** Extended DNS Error (RFC 8914): the one upstream option a client gets to see. */
export const OPTION_EDE = 15;
/** RFC 8467 §4.1: pad queries to a multiple of 128 octets (what Unbound and Knot Resolver use). */
export const QUERY_PADDING_BLOCK = 128;
/**
 * The UDP size advertised upstream. The upstream leg is TLS over TCP, where the field limits
 * nothing (RFC 7766 §6.2.3); 1232 is what a resolver would assume for any client anyway.
 */
export const UPSTREAM_UDP_SIZE = 1232;
const FLAG_DO = 0x8000;

/** A big-endian 16-bit field; the caller has checked the bounds (Buffer's reader checks again per call). */
function u16(buf: Buffer, at: number): number {
  return (buf[at] << 8) | buf[at + 1];
}

/** Write an OPT record's fixed part at `at`: root name, TYPE OPT, the UDP size, ext-rcode, version 0, flags, RDLENGTH. */
export function writeOpt(
  out: Buffer,
  at: number,
  udpSize: number,
  extRcode: number,
  flags: number,
  rdLength: number,
): void {
  out[at] = 0;
  out[at + 1] = 0;
  out[at + 2] = TYPE_OPT;
  out[at + 3] = udpSize >> 8;
  out[at + 4] = udpSize & 0xff;
  out[at + 5] = extRcode;
  out[at + 6] = 0;
  out[at + 7] = flags >> 8;
  out[at + 8] = flags & 0xff;
  out[at + 9] = rdLength >> 8;
  out[at + 10] = rdLength & 0xff;
}

/**
 * The query the gateway sends upstream for a client query: the client's header flags that
 * ask something of the resolver (opcode, RD, AD, CD), its question bytes as sent, no other
 * records, and one OPT of ours: UPSTREAM_UDP_SIZE, the client's DO bit, and a Padding
 * option (RFC 7830) that makes the message a multiple of QUERY_PADDING_BLOCK octets. None
 * of the client's options (ECS, COOKIE, NSID, KEEPALIVE, ...) leave the gateway, and a
 * client without EDNS gets an OPT upstream too, since padding needs one. The message ID is
 * left as the client's: the upstream connection writes its own.
 */
export function upstreamQuery(query: Buffer, questionEnd: number, dnssecOk: boolean): Buffer {
  const optionAt = questionEnd + OPT_FIXED_SIZE;
  const total = Math.ceil((optionAt + 4) / QUERY_PADDING_BLOCK) * QUERY_PADDING_BLOCK;
  const padding = total - optionAt - 4;
  const out = Buffer.allocUnsafe(total);
  query.copy(out, 0, 0, questionEnd);
  // Plain byte stores: this runs for every forwarded query (writeUInt16BE checks its
  // arguments on each call).
  out[2] = query[2] & 0x79; // opcode, RD; QR, AA and TC cleared
  out[3] = query[3] & 0x30; // AD, CD; Z, RA and RCODE cleared
  out[4] = 0;
  out[5] = 1; // QDCOUNT
  out[6] = out[7] = out[8] = out[9] = out[10] = 0;
  out[11] = 1; // ARCOUNT: our OPT
  out[questionEnd] = 0; // root owner
  out[questionEnd + 1] = 0;
  out[questionEnd + 2] = TYPE_OPT;
  out[questionEnd + 3] = UPSTREAM_UDP_SIZE >> 8;
  out[questionEnd + 4] = UPSTREAM_UDP_SIZE & 0xff;
  out[questionEnd + 5] = 0; // extended RCODE
  out[questionEnd + 6] = 0; // version
  out[questionEnd + 7] = dnssecOk ? 0x80 : 0;
  out[questionEnd + 8] = 0;
  out[questionEnd + 9] = (padding + 4) >> 8;
  out[questionEnd + 10] = (padding + 4) & 0xff;
  out[optionAt] = 0;
  out[optionAt + 1] = OPTION_PADDING;
  out[optionAt + 2] = padding >> 8;
  out[optionAt + 3] = padding & 0xff;
  out.fill(0, optionAt + 4);
  return out;
}

/** Offset past the last record walked by the latest lastOptStart call. */
let recordsEnd = 0;

/**
 * Where the OPT record of a message starts, found by walking its records; -1 when it has
 * none, -2 when the message cannot be walked, has two OPT records, an OPT outside the
 * additional section, an OPT whose owner is not the root, or records after the OPT (OPT
 * is written last by every resolver in use; cutting it out of the middle would move
 * records that compression pointers may point into).
 */
export function lastOptStart(msg: Buffer, questionEnd: number): number {
  const length = msg.length;
  if (length < HEADER_SIZE) return -2;
  const before = u16(msg, 6) + u16(msg, 8);
  const total = before + u16(msg, 10);
  let pos = questionEnd;
  let optStart = -1;
  for (let i = 0; i < total; i++) {
    const start = pos;
    pos = skipName(msg, pos, length);
    if (pos < 0 || pos + 10 > length) return -2;
    const end = pos + 10 + u16(msg, pos + 8);
    if (end > length) return -2;
    if (u16(msg, pos) === TYPE_OPT) {
      if (optStart >= 0 || i < before || pos !== start + 1) return -2;
      optStart = start;
    } else if (optStart >= 0) {
      return -2;
    }
    pos = end;
  }
  recordsEnd = pos;
  return optStart;
}

/**
 * Where the OPT of the buffer last returned by toEdnsClientForm starts. A module variable
 * rather than a result object: this runs once per forwarded answer.
 */
let formOptStart = 0;

/**
 * Turn an upstream answer, in place, into the form an EDNS client gets: its OPT replaced by
 * the gateway's (UDP size `udpSize`, the answer's extended RCODE and DO bit, only its EDE
 * options), appended when the upstream sent none. Returns the answer (a view of the same
 * memory, or a new buffer when an OPT had to be appended), or null when the answer's OPT
 * cannot be rebuilt (see lastOptStart). Every other upstream option (NSID, Padding, COOKIE,
 * KEEPALIVE, ...) is dropped: they describe the upstream hop, not the data.
 */
export function toEdnsClientForm(answer: Buffer, questionEnd: number, udpSize: number): Buffer | null {
  const optStart = lastOptStart(answer, questionEnd);
  if (optStart === -2) return null;
  if (optStart === -1) {
    const end = recordsEnd;
    const out = Buffer.allocUnsafe(end + OPT_FIXED_SIZE);
    answer.copy(out, 0, 0, end);
    out.writeUInt16BE(u16(out, 10) + 1, 10);
    writeOpt(out, end, udpSize, 0, 0, 0);
    formOptStart = end;
    return out;
  }
  const rdStart = optStart + OPT_FIXED_SIZE;
  const rdEnd = rdStart + u16(answer, optStart + 9);
  let write = rdStart;
  for (let read = rdStart; read < rdEnd; ) {
    if (read + 4 > rdEnd) return null;
    const next = read + 4 + u16(answer, read + 2);
    if (next > rdEnd) return null;
    if (u16(answer, read) === OPTION_EDE) {
      if (write !== read) answer.copyWithin(write, read, next);
      write += next - read;
    }
    read = next;
  }
  const flags = answer[optStart + 7] & 0x80 ? FLAG_DO : 0;
  writeOpt(answer, optStart, udpSize, answer[optStart + 5], flags, write - rdStart);
  formOptStart = optStart;
  return write === answer.length ? answer : answer.subarray(0, write);
}

/** Where the OPT of the buffer last returned by toEdnsClientForm starts. */
export function lastFormOptStart(): number {
  return formOptStart;
}

/**
 * The form a client without EDNS gets from an EDNS-client-form answer whose OPT starts at
 * `optStart`: the same bytes up to the OPT, ARCOUNT one less. In place (a view of the same
 * memory) unless `copy`.
 */
export function withoutOpt(answer: Buffer, optStart: number, copy: boolean): Buffer {
  const out = copy ? Buffer.from(answer.subarray(0, optStart)) : answer.subarray(0, optStart);
  out.writeUInt16BE(out.readUInt16BE(10) - 1, 10);
  return out;
}

/**
 * An upstream answer made the client's: the EDNS-client form when the client sent EDNS,
 * else the same without any OPT. In place where possible unless `copy` (then `answer` is
 * left as it was). Null when the answer's OPT cannot be rebuilt (the caller answers SERVFAIL).
 */
export function toClientForm(
  answer: Buffer,
  questionEnd: number,
  ednsClient: boolean,
  udpSize: number,
  copy = false,
): Buffer | null {
  const source = copy ? Buffer.from(answer) : answer;
  const edns = toEdnsClientForm(source, questionEnd, udpSize);
  if (edns === null || ednsClient) return edns;
  return withoutOpt(edns, formOptStart, false);
}
