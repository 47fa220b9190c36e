// Properties of the answers the gateway makes itself (src/dns/answer.ts): whatever the query,
// they parse, keep the ID and question, carry our OPT exactly when the client used EDNS, and a
// truncated answer always fits the smallest UDP size a client may have.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import dnsPacket, { type Answer } from 'dns-packet';
import fc from 'fast-check';
import { setId, synthesize, truncateAnswer } from '../../src/dns/answer.js';
import { CLASSIC_UDP_SIZE } from '../../src/dns/constants.js';
import { PEEK_DROP, PEEK_FORMERR, PEEK_NOTIMP, PEEK_OK, peekQuery } from '../../src/dns/wire.js';
import {
  encodeSpec,
  flagsOf,
  hostileBytesArb,
  nameArb,
  optRecord,
  QTYPE_CODES,
  type QuerySpec,
  querySpecArb,
  recordArb,
} from '../helpers/dns-arbitraries.js';

const RUNS = { numRuns: 1000 };

type Decoded = ReturnType<typeof dnsPacket.decode> & { rcode: string; opcode: string };

const RCODES = [
  'NOERROR',
  'FORMERR',
  'SERVFAIL',
  'NXDOMAIN',
  'NOTIMP',
  'REFUSED',
  'YXDOMAIN',
  'YXRRSET',
  'NXRRSET',
  'NOTAUTH',
  'NOTZONE',
];

function decode(msg: Buffer): Decoded {
  return dnsPacket.decode(msg) as Decoded;
}

function checkOpt(d: Decoded, spec: QuerySpec, ourUdpSize: number): void {
  const opts = (d.additionals ?? []).filter((r) => r.type === 'OPT');
  if (spec.edns === null) {
    assert.equal(d.additionals?.length ?? 0, 0, 'no OPT for a client without EDNS');
  } else {
    assert.equal(d.additionals?.length, 1);
    assert.equal(opts.length, 1);
    assert.equal((opts[0] as { udpPayloadSize: number }).udpPayloadSize, ourUdpSize);
  }
}

function checkQuestion(d: Decoded, spec: QuerySpec): void {
  assert.equal(d.questions?.length, 1);
  const q = d.questions?.[0];
  assert.equal(q?.name, spec.name === '' ? '.' : spec.name);
  assert.equal(q?.type, spec.type);
  assert.equal(q?.class, spec.klass);
}

test('synthesize: parses, same ID and question, rcode and TC as asked, RD and CD kept, OPT iff EDNS', () => {
  fc.assert(
    fc.property(
      querySpecArb,
      fc.integer({ min: 0, max: 10 }),
      fc.integer({ min: 512, max: 4096 }),
      fc.boolean(),
      (spec, rcode, ours, tc) => {
        const query = encodeSpec(spec);
        const p = peekQuery(query);
        assert.equal(p.status, PEEK_OK);
        const out = synthesize(query, p.questionEnd, rcode, p.ednsUdpSize, ours, tc);
        const d = decode(out);
        assert.equal(d.id, spec.id);
        assert.equal(d.type, 'response');
        assert.equal(d.opcode, 'QUERY');
        assert.equal(d.rcode, RCODES[rcode]);
        assert.equal(d.flag_tc, tc);
        assert.equal(d.flag_rd, spec.rd);
        assert.equal(d.flag_cd, spec.cd);
        assert.equal(d.flag_aa, false);
        assert.equal(d.flag_ra, true);
        checkQuestion(d, spec);
        assert.equal(d.answers?.length ?? 0, 0);
        assert.equal(d.authorities?.length ?? 0, 0);
        checkOpt(d, spec, ours);
        assert.equal(out.length, p.questionEnd + (spec.edns ? 11 : 0));
        assert.ok(out.length <= CLASSIC_UDP_SIZE, `${out.length} octets`);
      },
    ),
    RUNS,
  );
});

test('synthesize on what the peek answers FORMERR or NOTIMP: parses, keeps the ID, opcode and question count', () => {
  fc.assert(
    fc.property(hostileBytesArb, fc.boolean(), (buf, tc) => {
      const p = peekQuery(buf);
      if (p.status !== PEEK_FORMERR && p.status !== PEEK_NOTIMP) return;
      const rcode = p.status === PEEK_FORMERR ? 1 : 4;
      const out = synthesize(buf, p.questionEnd, rcode, p.ednsUdpSize, 1232, tc);
      const d = decode(out);
      assert.equal(d.id, buf.readUInt16BE(0));
      assert.equal(d.type, 'response');
      assert.equal(out[2] & 0x78, buf[2] & 0x78, 'opcode kept');
      assert.equal(out[3] & 0x0f, rcode);
      assert.equal(d.questions?.length ?? 0, p.questionEnd > 12 ? 1 : 0);
      assert.equal((d.answers?.length ?? 0) + (d.authorities?.length ?? 0), 0);
      assert.equal(d.additionals?.length ?? 0, p.ednsUdpSize > 0 ? 1 : 0);
    }),
    { numRuns: 5000 },
  );
  // the filter above must not make the property vacuous
  const statuses = fc.sample(hostileBytesArb, { numRuns: 2000, seed: 1 }).map((b) => peekQuery(b).status);
  assert.ok(statuses.filter((s) => s === PEEK_FORMERR).length > 50);
  assert.ok(statuses.filter((s) => s === PEEK_NOTIMP).length > 50);
  assert.ok(statuses.filter((s) => s === PEEK_DROP).length > 50);
});

interface UpstreamAnswer {
  spec: QuerySpec;
  flags: number;
  rcode: number;
  answers: Answer[];
  authorities: Answer[];
  opt: boolean;
}

const upstreamAnswerArb: fc.Arbitrary<UpstreamAnswer> = querySpecArb.chain((spec) =>
  fc.record({
    spec: fc.constant(spec),
    // AA, RA, AD in any combination, RD and CD as queried
    flags: fc
      .subarray([dnsPacket.AUTHORITATIVE_ANSWER, dnsPacket.RECURSION_AVAILABLE, dnsPacket.AUTHENTIC_DATA])
      .map((bits) => bits.reduce((a, b) => a | b, flagsOf(spec))),
    rcode: fc.integer({ min: 0, max: 5 }),
    answers: fc.array(recordArb(fc.constant(spec.name)), { maxLength: 40 }),
    authorities: fc.array(recordArb(nameArb), { maxLength: 4 }),
    opt: fc.boolean(),
  }),
);

function encodeAnswer(a: UpstreamAnswer): Buffer {
  return dnsPacket.encode({
    type: 'response',
    id: a.spec.id,
    flags: a.flags | a.rcode,
    questions: [{ name: a.spec.name, type: a.spec.type, class: a.spec.klass }],
    answers: a.answers,
    authorities: a.authorities,
    additionals: a.opt ? [optRecord(4096, true)] : [],
  });
}

test('truncateAnswer: parses, TC set, ID, question, rcode and flags kept, no records, fits 512 octets', () => {
  fc.assert(
    fc.property(upstreamAnswerArb, fc.integer({ min: 512, max: 4096 }), (a, ours) => {
      const query = encodeSpec(a.spec);
      const p = peekQuery(query);
      const answer = encodeAnswer(a);
      const out = truncateAnswer(answer, p.questionEnd, p.ednsUdpSize, ours);
      const d = decode(out);
      assert.equal(d.id, a.spec.id);
      assert.equal(d.flag_tc, true);
      assert.equal(d.rcode, RCODES[a.rcode]);
      assert.equal(out[2], answer[2] | 0x02, 'flags of the answer kept (QR, opcode, AA, RD)');
      assert.equal(out[3], answer[3], 'RA, AD, CD and rcode kept');
      checkQuestion(d, a.spec);
      assert.equal((d.answers?.length ?? 0) + (d.authorities?.length ?? 0), 0);
      checkOpt(d, a.spec, ours);
      // every client limit is at least 512, so the truncated form always fits
      assert.ok(out.length <= CLASSIC_UDP_SIZE, `${out.length} octets`);
      assert.ok(out.length <= answer.length + 11);
    }),
    RUNS,
  );
});

test('setId writes the ID and nothing else', () => {
  fc.assert(
    fc.property(querySpecArb, fc.integer({ min: 0, max: 0xffff }), (spec, id) => {
      const msg = encodeSpec(spec);
      const copy = Buffer.from(msg);
      setId(copy, id);
      assert.equal(copy.readUInt16BE(0), id);
      assert.deepEqual(copy.subarray(2), msg.subarray(2));
      assert.equal(peekQuery(copy).qtype, QTYPE_CODES[spec.type]);
    }),
    RUNS,
  );
});
