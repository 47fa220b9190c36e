// The PROXY protocol version 2 header (haproxy's proxy-protocol.txt, section 2.2): what a
// forwarder such as dnsdist puts before each UDP datagram and at the start of each TCP
// connection to name the client it forwards for. Binary version 2 only; TLVs are skipped.

/** The 12-byte signature every version 2 header starts with. */
export const PROXY_V2_SIGNATURE = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);
/** Signature, version/command, family/transport, length. */
export const PROXY_V2_FIXED_SIZE = 16;
/**
 * Largest header accepted (fixed part, addresses and TLVs). dnsdist's headers are tens of
 * bytes; the bound keeps a TCP connection from making the gateway buffer up to 64 KiB of
 * header before the first query.
 */
export const PROXY_V2_MAX_SIZE = 1024;

const COMMAND_LOCAL = 0x0;
const COMMAND_PROXY = 0x1;
const FAMILY_UNSPEC = 0x0;
const FAMILY_INET = 0x1;
const FAMILY_INET6 = 0x2;
const FAMILY_UNIX = 0x3;
const TRANSPORT_UNSPEC = 0x0;
const TRANSPORT_STREAM = 0x1;
const TRANSPORT_DGRAM = 0x2;
const ADDRESS_BYTES = [0, 12, 36, 216];

export type ProxyTransport = 'stream' | 'dgram';

/** A parsed header. */
export interface ProxyHeader {
  /** Bytes the header takes, TLVs included: the DNS message starts after them. */
  readonly length: number;
  /**
   * The client's address and port, or null when the header names nobody (LOCAL, an
   * UNSPEC or UNIX family): then the connection's own source is the client.
   */
  readonly sourceAddress: string | null;
  readonly sourcePort: number;
}

/** More bytes are needed to decide (only for stream input that is still arriving). */
export const PROXY_INCOMPLETE = 0;
/** Not a valid version 2 header: the datagram is dropped or the connection closed. */
export const PROXY_INVALID = -1;

export type ProxyParse = ProxyHeader | typeof PROXY_INCOMPLETE | typeof PROXY_INVALID;

/**
 * Parse the header at the start of `buf`. A datagram must hold its whole header, so for
 * 'dgram' a short buffer is INVALID; for 'stream' it is INCOMPLETE as long as the bytes so
 * far can still be the start of a valid header. A header for the other transport (a STREAM
 * header before a datagram) is INVALID; UNSPEC is accepted for either.
 */
export function parseProxyV2(buf: Buffer, transport: ProxyTransport): ProxyParse {
  const have = buf.length;
  const short = transport === 'stream' ? PROXY_INCOMPLETE : PROXY_INVALID;
  const signatureBytes = Math.min(have, PROXY_V2_SIGNATURE.length);
  for (let i = 0; i < signatureBytes; i++) if (buf[i] !== PROXY_V2_SIGNATURE[i]) return PROXY_INVALID;
  if (have < PROXY_V2_FIXED_SIZE) {
    if (have >= 13 && !validVersionCommand(buf[12])) return PROXY_INVALID;
    return short;
  }
  const versionCommand = buf[12];
  if (!validVersionCommand(versionCommand)) return PROXY_INVALID;
  const family = buf[13] >> 4;
  const proto = buf[13] & 0x0f;
  if (family > FAMILY_UNIX || proto > TRANSPORT_DGRAM) return PROXY_INVALID;
  if (proto !== TRANSPORT_UNSPEC && proto !== (transport === 'stream' ? TRANSPORT_STREAM : TRANSPORT_DGRAM)) {
    return PROXY_INVALID;
  }
  const length = PROXY_V2_FIXED_SIZE + ((buf[14] << 8) | buf[15]);
  if (length > PROXY_V2_MAX_SIZE) return PROXY_INVALID;
  const command = versionCommand & 0x0f;
  // A PROXY header must carry the addresses its family says; LOCAL may carry anything.
  if (command === COMMAND_PROXY && length < PROXY_V2_FIXED_SIZE + ADDRESS_BYTES[family]) return PROXY_INVALID;
  if (have < length) return short;
  if (command === COMMAND_LOCAL || family === FAMILY_UNSPEC || family === FAMILY_UNIX) {
    return { length, sourceAddress: null, sourcePort: 0 };
  }
  const at = PROXY_V2_FIXED_SIZE;
  if (family === FAMILY_INET) {
    return {
      length,
      sourceAddress: `${buf[at]}.${buf[at + 1]}.${buf[at + 2]}.${buf[at + 3]}`,
      sourcePort: (buf[at + 8] << 8) | buf[at + 9],
    };
  }
  return {
    length,
    sourceAddress: formatIPv6(buf, at),
    sourcePort: (buf[at + 32] << 8) | buf[at + 33],
  };
}

function validVersionCommand(byte: number): boolean {
  const command = byte & 0x0f;
  return byte >> 4 === 2 && (command === COMMAND_LOCAL || command === COMMAND_PROXY);
}

/**
 * 16 bytes at `at` as RFC 5952 text (lowercase, the longest run of two or more zero groups
 * as "::", the first such run on a tie), with an IPv4-mapped address as `::ffff:a.b.c.d`:
 * the same text Node gives a socket's remote address, so policies and logs see one form.
 */
export function formatIPv6(buf: Buffer, at: number): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push((buf[at + 2 * i] << 8) | buf[at + 2 * i + 1]);
  if (groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0) {
    if (groups[5] === 0xffff) {
      return `::ffff:${buf[at + 12]}.${buf[at + 13]}.${buf[at + 14]}.${buf[at + 15]}`;
    }
  }
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number) =>
    groups
      .slice(from, to)
      .map((g) => g.toString(16))
      .join(':');
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLength, 8)}`;
}

/** A version 2 header for tests and tools: PROXY (or LOCAL when `source` is null) over `transport`. */
export function encodeProxyV2(
  source: { address: string; port: number } | null,
  destination: { address: string; port: number },
  transport: ProxyTransport,
  tlvs: Buffer = Buffer.alloc(0),
): Buffer {
  const proto = transport === 'stream' ? TRANSPORT_STREAM : TRANSPORT_DGRAM;
  if (source === null) {
    const out = Buffer.alloc(PROXY_V2_FIXED_SIZE + tlvs.length);
    PROXY_V2_SIGNATURE.copy(out);
    out[12] = 0x20 | COMMAND_LOCAL;
    out[13] = 0;
    out.writeUInt16BE(tlvs.length, 14);
    tlvs.copy(out, PROXY_V2_FIXED_SIZE);
    return out;
  }
  const v6 = source.address.includes(':');
  const addressBytes = v6 ? 36 : 12;
  const out = Buffer.alloc(PROXY_V2_FIXED_SIZE + addressBytes + tlvs.length);
  PROXY_V2_SIGNATURE.copy(out);
  out[12] = 0x20 | COMMAND_PROXY;
  out[13] = ((v6 ? FAMILY_INET6 : FAMILY_INET) << 4) | proto;
  out.writeUInt16BE(addressBytes + tlvs.length, 14);
  const at = PROXY_V2_FIXED_SIZE;
  if (v6) {
    ipv6Bytes(source.address).copy(out, at);
    ipv6Bytes(destination.address).copy(out, at + 16);
    out.writeUInt16BE(source.port, at + 32);
    out.writeUInt16BE(destination.port, at + 34);
  } else {
    Buffer.from(source.address.split('.').map(Number)).copy(out, at);
    Buffer.from(destination.address.split('.').map(Number)).copy(out, at + 4);
    out.writeUInt16BE(source.port, at + 8);
    out.writeUInt16BE(destination.port, at + 10);
  }
  tlvs.copy(out, at + addressBytes);
  return out;
}

/** An IPv6 literal (no zone) as 16 bytes; off the hot path (encoder and tests only). */
function ipv6Bytes(address: string): Buffer {
  const out = Buffer.alloc(16);
  let text = address;
  const dotted = text.match(/(\d+\.\d+\.\d+\.\d+)$/);
  if (dotted) {
    const parts = dotted[1].split('.').map(Number);
    text = `${text.slice(0, -dotted[1].length)}${((parts[0] << 8) | parts[1]).toString(16)}:${((parts[2] << 8) | parts[3]).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, null];
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === null || tail === '' ? [] : tail.split(':');
  const groups = [
    ...headGroups,
    ...new Array(8 - headGroups.length - tailGroups.length).fill('0'),
    ...tailGroups,
  ];
  groups.forEach((g, i) => {
    out.writeUInt16BE(Number.parseInt(g, 16), 2 * i);
  });
  return out;
}
