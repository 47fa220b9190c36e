// Answers the gateway makes itself: refusals, errors and truncated replies. Built
// straight from the query's header and question bytes, never through a full encode.
import { HEADER_SIZE } from './constants.js';
import { OPT_FIXED_SIZE, writeOpt } from './edns.js';

/**
 * A response carrying only the question (when there is one) and `rcode`.
 * `questionEnd` = HEADER_SIZE means "no question" (QDCOUNT 0).
 * When the client sent EDNS (`ednsUdpSize` > 0), an OPT record advertising
 * `ourUdpSize` is added, as RFC 6891 §7 asks.
 */
export function synthesize(
  query: Buffer,
  questionEnd: number,
  rcode: number,
  ednsUdpSize: number,
  ourUdpSize: number,
  truncated = false,
): Buffer {
  const withOpt = ednsUdpSize > 0;
  const out = Buffer.allocUnsafe(questionEnd + (withOpt ? OPT_FIXED_SIZE : 0));
  query.copy(out, 0, 0, questionEnd);
  // QR=1, keep opcode and RD, set TC as asked, AA=0; RA=1 (we offer recursion); Z, AD, CD as queried
  out[2] = (query[2] & 0x79) | 0x80 | (truncated ? 0x02 : 0);
  out[3] = 0x80 | (query[3] & 0x10) | (rcode & 0x0f);
  out.writeUInt16BE(questionEnd > HEADER_SIZE ? 1 : 0, 4);
  out.writeUInt32BE(0, 6);
  out.writeUInt16BE(withOpt ? 1 : 0, 10);
  if (withOpt) writeOpt(out, questionEnd, ourUdpSize, 0, 0, 0);
  return out;
}

/**
 * The TC=1 form of an answer that does not fit the client's UDP size: header and
 * question of the answer (so the RCODE and flags stay), no records, plus our OPT when
 * the client used EDNS. The client retries over TCP.
 */
export function truncateAnswer(
  answer: Buffer,
  questionEnd: number,
  ednsUdpSize: number,
  ourUdpSize: number,
): Buffer {
  const out = synthesize(answer, questionEnd, answer[3] & 0x0f, ednsUdpSize, ourUdpSize, true);
  out[2] = answer[2] | 0x02;
  out[3] = answer[3];
  return out;
}

/** Overwrite the message ID in place. */
export function setId(msg: Buffer, id: number): void {
  msg[0] = id >>> 8;
  msg[1] = id & 0xff;
}
