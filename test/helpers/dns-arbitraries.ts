// fast-check arbitraries for property tests of the wire helpers: names, queries and answers
// encoded with dns-packet (an independent encoder), wire names built by hand from raw label
// bytes, and mutations (bit flips, truncation, appended junk) of any of them.
import dnsPacket, { type Answer, type RecordType } from 'dns-packet';
import fc from 'fast-check';

const LDH = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_';

/** A label of letters, digits, '-' and '_' (what dns-packet can encode from a string), 1..63 chars. */
export const labelArb: fc.Arbitrary<string> = fc
  .array(fc.constantFrom(...LDH.split('')), { minLength: 1, maxLength: 63 })
  .map((chars) => chars.join(''));

/**
 * A presentation name of 1..8 such labels whose wire form fits 255 octets (253 characters),
 * or '' (the root) now and then.
 */
export const nameArb: fc.Arbitrary<string> = fc
  .oneof(
    { weight: 20, arbitrary: fc.array(labelArb, { minLength: 1, maxLength: 8 }).map((l) => l.join('.')) },
    { weight: 1, arbitrary: fc.constant('') },
  )
  .filter((n) => n.length <= 253);

/** Record types dns-packet encodes and decodes by name. */
export const QTYPES: readonly RecordType[] = [
  'A',
  'AAAA',
  'CAA',
  'CNAME',
  'DNSKEY',
  'DS',
  'MX',
  'NAPTR',
  'NS',
  'NSEC',
  'PTR',
  'SOA',
  'SRV',
  'TXT',
];

/** Numeric value of each of QTYPES (RFC 1035, 3596, 4034, 6844, 3403, 2782). */
export const QTYPE_CODES: Readonly<Record<string, number>> = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  NAPTR: 35,
  DS: 43,
  NSEC: 47,
  DNSKEY: 48,
  CAA: 257,
};

export interface QuerySpec {
  id: number;
  name: string;
  type: RecordType;
  klass: 'IN' | 'CH';
  rd: boolean;
  cd: boolean;
  ad: boolean;
  /** null = no OPT record. */
  edns: { udpSize: number; dnssecOk: boolean } | null;
}

export const querySpecArb: fc.Arbitrary<QuerySpec> = fc.record({
  id: fc.integer({ min: 0, max: 0xffff }),
  name: nameArb,
  type: fc.constantFrom(...QTYPES),
  klass: fc.constantFrom('IN' as const, 'CH' as const),
  rd: fc.boolean(),
  cd: fc.boolean(),
  ad: fc.boolean(),
  edns: fc.option(
    // from 1: dns-packet encodes a payload size of 0 as 4096
    fc.record({ udpSize: fc.integer({ min: 1, max: 0xffff }), dnssecOk: fc.boolean() }),
    { nil: null },
  ),
});

export function optRecord(udpSize: number, dnssecOk: boolean): Answer {
  return {
    type: 'OPT',
    name: '.',
    udpPayloadSize: udpSize,
    flags: dnssecOk ? dnsPacket.DNSSEC_OK : 0,
  } as unknown as Answer;
}

export function flagsOf(spec: Pick<QuerySpec, 'rd' | 'cd' | 'ad'>): number {
  return (
    (spec.rd ? dnsPacket.RECURSION_DESIRED : 0) |
    (spec.cd ? dnsPacket.CHECKING_DISABLED : 0) |
    (spec.ad ? dnsPacket.AUTHENTIC_DATA : 0)
  );
}

/** The query `spec` describes, encoded by dns-packet. */
export function encodeSpec(spec: QuerySpec): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id: spec.id,
    flags: flagsOf(spec),
    questions: [{ name: spec.name, type: spec.type, class: spec.klass }],
    additionals: spec.edns ? [optRecord(spec.edns.udpSize, spec.edns.dnssecOk)] : [],
  });
}

export const queryArb: fc.Arbitrary<Buffer> = querySpecArb.map(encodeSpec);

/** Raw label bytes (any octet, '.' and '\\' included), wire name within 255 octets. */
export const rawLabelsArb: fc.Arbitrary<Uint8Array[]> = fc
  .array(fc.uint8Array({ minLength: 1, maxLength: 63 }), { minLength: 0, maxLength: 8 })
  .filter((labels) => labels.reduce((n, l) => n + l.length + 1, 1) <= 255);

/** Wire form of a name from raw labels. */
export function wireName(labels: readonly Uint8Array[]): Buffer {
  const parts: Buffer[] = [];
  for (const l of labels) parts.push(Buffer.from([l.length]), Buffer.from(l));
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

/** A 12-octet header: `flags` is the 16-bit flags word, counts as given. */
export function header(id: number, flags: number, qd: number, an: number, ns: number, ar: number): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(id, 0);
  h.writeUInt16BE(flags, 2);
  h.writeUInt16BE(qd, 4);
  h.writeUInt16BE(an, 6);
  h.writeUInt16BE(ns, 8);
  h.writeUInt16BE(ar, 10);
  return h;
}

/** Record data for the answer types the TTL tests use; TTLs span the whole 32-bit range. */
export function recordArb(owner: fc.Arbitrary<string>): fc.Arbitrary<Answer> {
  const ttl = fc.integer({ min: 0, max: 0xffffffff });
  return fc.oneof(
    fc.record({
      type: fc.constant('A' as const),
      name: owner,
      ttl,
      data: fc.ipV4(),
    }),
    fc.record({
      type: fc.constant('AAAA' as const),
      name: owner,
      ttl,
      data: fc.constantFrom('2001:db8::1', '::1', 'fe80::1:2:3:4'),
    }),
    fc.record({
      type: fc.constant('TXT' as const),
      name: owner,
      ttl,
      data: fc.array(fc.string({ maxLength: 60 }), { minLength: 1, maxLength: 3 }),
    }),
    fc.record({ type: fc.constant('CNAME' as const), name: owner, ttl, data: nameArb }),
    fc.record({ type: fc.constant('NS' as const), name: owner, ttl, data: nameArb }),
    fc.record({
      type: fc.constant('MX' as const),
      name: owner,
      ttl,
      data: fc.record({ preference: fc.integer({ min: 0, max: 0xffff }), exchange: nameArb }),
    }),
    soaArb(owner),
  ) as fc.Arbitrary<Answer>;
}

export function soaArb(owner: fc.Arbitrary<string>): fc.Arbitrary<Answer> {
  const u32 = fc.integer({ min: 0, max: 0xffffffff });
  return fc.record({
    type: fc.constant('SOA' as const),
    name: owner,
    ttl: u32,
    data: fc.record({
      mname: nameArb,
      rname: nameArb,
      serial: u32,
      refresh: u32,
      retry: u32,
      expire: u32,
      minimum: u32,
    }),
  }) as fc.Arbitrary<Answer>;
}

export interface Mutation {
  /** Bit positions (modulo the message's bit length) to flip. */
  flips: number[];
  /** Keep at most this many octets (modulo length + 1), or null to keep all. */
  cut: number | null;
  /** Octets appended after the cut. */
  tail: Uint8Array;
}

export const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  flips: fc.array(fc.nat(), { maxLength: 8 }),
  cut: fc.option(fc.nat(), { nil: null }),
  tail: fc.uint8Array({ maxLength: 16 }),
});

/** `msg` with `m` applied; never modifies `msg`. */
export function mutate(msg: Buffer, m: Mutation): Buffer {
  let out = Buffer.from(msg);
  if (out.length > 0) {
    for (const bit of m.flips) {
      const at = bit % (out.length * 8);
      out[at >> 3] ^= 1 << (at & 7);
    }
  }
  if (m.cut !== null) out = out.subarray(0, m.cut % (out.length + 1));
  return m.tail.length > 0 ? Buffer.concat([out, m.tail]) : out;
}

/** Random octets, and valid queries with mutations applied: what a hostile client sends. */
export const hostileBytesArb: fc.Arbitrary<Buffer> = fc.oneof(
  fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a)),
  fc.tuple(queryArb, mutationArb).map(([q, m]) => mutate(q, m)),
);
