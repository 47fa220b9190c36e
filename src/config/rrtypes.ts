// RR type names <-> numbers for the config and for logs: dns-packet's table, the IANA
// types it lacks (HTTPS and SVCB matter to operators filtering queries), and RFC 3597 TYPEn.
import { createRequire } from 'node:module';

interface DnsPacketTypes {
  toString(type: number): string;
  toType(name: string): number;
}

// dns-packet ships its type table as a CommonJS file without typings of its own.
const packetTypes = createRequire(import.meta.url)('dns-packet/types.js') as DnsPacketTypes;

/** IANA RR types missing from dns-packet (bounded: a fixed table). */
const EXTRA_TYPES: ReadonlyMap<string, number> = new Map([
  ['MD', 3],
  ['MF', 4],
  ['MB', 7],
  ['MG', 8],
  ['MR', 9],
  ['WKS', 11],
  ['MINFO', 14],
  ['X25', 19],
  ['ISDN', 20],
  ['RT', 21],
  ['NSAP', 22],
  ['PX', 26],
  ['GPOS', 27],
  ['NXT', 30],
  ['A6', 38],
  ['SINK', 40],
  ['SMIMEA', 53],
  ['NINFO', 56],
  ['RKEY', 57],
  ['TALINK', 58],
  ['OPENPGPKEY', 61],
  ['CSYNC', 62],
  ['ZONEMD', 63],
  ['SVCB', 64],
  ['HTTPS', 65],
  ['NID', 104],
  ['L32', 105],
  ['L64', 106],
  ['LP', 107],
  ['EUI48', 108],
  ['EUI64', 109],
  ['MAILB', 253],
  ['MAILA', 254],
  ['URI', 256],
  ['AVC', 258],
  ['DOA', 259],
  ['AMTRELAY', 260],
]);

const EXTRA_NAMES: ReadonlyMap<number, string> = new Map([...EXTRA_TYPES].map(([name, n]) => [n, name]));

const TYPE_N = /^TYPE(\d{1,5})$/;

/** The number of an RR type name (case-insensitive; `TYPEn` for any 0..65535), or null if unknown. */
export function rrTypeNumber(name: string): number | null {
  const upper = name.toUpperCase();
  const numbered = TYPE_N.exec(upper);
  if (numbered) {
    const n = Number(numbered[1]);
    return n <= 0xffff ? n : null;
  }
  const extra = EXTRA_TYPES.get(upper);
  if (extra !== undefined) return extra;
  // dns-packet maps '*' to ANY and parses its own UNKNOWN_n spelling; neither is a type name.
  if (upper === '*' || upper.startsWith('UNKNOWN_')) return null;
  const n = packetTypes.toType(upper);
  return n === 0 ? null : n;
}

/** The mnemonic of an RR type number, or `TYPEn` (RFC 3597) when it has none. */
export function rrTypeName(type: number): string {
  const extra = EXTRA_NAMES.get(type);
  if (extra !== undefined) return extra;
  const name = packetTypes.toString(type);
  return name.startsWith('UNKNOWN_') ? `TYPE${type}` : name;
}
