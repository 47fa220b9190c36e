// The OPT records the gateway writes (dns/edns.ts): the padded upstream query and the
// answer forms, as invariants over generated messages (fast-check) plus the odd cases.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as dnsPacket from 'dns-packet';
import fc from 'fast-check';
import {
  lastOptStart,
  OPTION_EDE,
  OPTION_PADDING,
  toClientForm,
  toEdnsClientForm,
  upstreamQuery,
} from '../../src/dns/edns.js';
import { peekQuery } from '../../src/dns/wire.js';

type Option = { code: number; data: Buffer };
type Opt = {
  type: 'OPT';
  udpPayloadSize: number;
  flag_do: boolean;
  extendedRcode: number;
  options: Option[];
};

const label = fc.stringMatching(/^[a-zA-Z0-9-]{1,20}$/);
const name = fc.array(label, { minLength: 1, maxLength: 6 }).map((labels) => labels.join('.'));
const rrType = fc.constantFrom('A', 'AAAA', 'TXT', 'MX', 'NS', 'SOA', 'CNAME', 'SRV');
/**
 * Options as (code, data) pairs: NSID, EXPIRE, COOKIE, EDE, a private one. (dns-packet
 * encodes ECS, KEEPALIVE and Padding from fields of their own, not raw data; the
 * integration test sends those.)
 */
const option = fc.record({
  code: fc.constantFrom(3, 9, 10, 15, 20, 65001),
  data: fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)),
});

function encodeQuery(q: {
  id: number;
  name: string;
  type: string;
  rd: boolean;
  cd: boolean;
  ad: boolean;
  edns: boolean;
  dnssecOk: boolean;
  options: Option[];
}): Buffer {
  const flags =
    (q.rd ? dnsPacket.RECURSION_DESIRED : 0) |
    (q.cd ? dnsPacket.CHECKING_DISABLED : 0) |
    (q.ad ? dnsPacket.AUTHENTIC_DATA : 0);
  return dnsPacket.encode({
    type: 'query',
    id: q.id,
    flags,
    questions: [{ name: q.name, type: q.type as dnsPacket.RecordType, class: 'IN' }],
    additionals: q.edns
      ? [
          {
            type: 'OPT',
            name: '.',
            udpPayloadSize: 4096,
            flags: q.dnssecOk ? dnsPacket.DNSSEC_OK : 0,
            options: q.options,
          } as unknown as dnsPacket.Answer,
        ]
      : [],
  });
}

const query = fc.record({
  id: fc.integer({ min: 0, max: 0xffff }),
  name,
  type: rrType,
  rd: fc.boolean(),
  cd: fc.boolean(),
  ad: fc.boolean(),
  edns: fc.boolean(),
  dnssecOk: fc.boolean(),
  options: fc.array(option, { maxLength: 5 }),
});

test('upstream query: a multiple of 128 octets, our OPT with only Padding, the client DO/RD/CD/AD', () => {
  fc.assert(
    fc.property(query, (q) => {
      const client = encodeQuery(q);
      const peek = peekQuery(client);
      const out = upstreamQuery(client, peek.questionEnd, peek.dnssecOk);
      assert.equal(out.length % 128, 0);
      assert.ok(out.length >= 128 && out.length <= 384);
      assert.deepEqual(
        out.subarray(12, peek.questionEnd),
        client.subarray(12, peek.questionEnd),
        'question bytes as sent',
      );
      const decoded = dnsPacket.decode(out) as dnsPacket.DecodedPacket & Record<string, unknown>;
      assert.equal(decoded.id, q.id);
      assert.equal(decoded.type, 'query');
      assert.equal(decoded.flag_rd, q.rd);
      assert.equal(decoded.flag_cd, q.cd);
      assert.equal(decoded.flag_ad, q.ad);
      assert.equal(decoded.answers?.length ?? 0, 0);
      assert.equal(decoded.authorities?.length ?? 0, 0);
      assert.equal(decoded.additionals?.length, 1);
      const opt = decoded.additionals![0] as unknown as Opt;
      assert.equal(opt.type, 'OPT');
      assert.equal(opt.flag_do, q.edns && q.dnssecOk);
      assert.deepEqual(
        opt.options.map((o) => o.code),
        [OPTION_PADDING],
      );
      assert.ok(
        opt.options[0].data.every((b) => b === 0),
        'padding is zeros (RFC 7830 §3)',
      );
    }),
  );
});

const answerCase = fc.record({
  q: query,
  ttl: fc.integer({ min: 0, max: 86400 }),
  upstreamOpt: fc.boolean(),
  upstreamDo: fc.boolean(),
  options: fc.array(option, { maxLength: 6 }),
  extraGlue: fc.boolean(),
  udpSize: fc.integer({ min: 512, max: 4096 }),
});

type AnswerCase = typeof answerCase extends fc.Arbitrary<infer T> ? T : never;

function encodeAnswer(c: AnswerCase): Buffer {
  const additionals: dnsPacket.Answer[] = [];
  if (c.extraGlue) additionals.push({ type: 'A', name: `ns.${c.q.name}`, ttl: c.ttl, data: '192.0.2.53' });
  if (c.upstreamOpt) {
    additionals.push({
      type: 'OPT',
      name: '.',
      udpPayloadSize: 1232,
      flags: c.upstreamDo ? dnsPacket.DNSSEC_OK : 0,
      options: c.options,
    } as unknown as dnsPacket.Answer);
  }
  return dnsPacket.encode({
    type: 'response',
    id: c.q.id,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
    questions: [{ name: c.q.name, type: 'A', class: 'IN' }],
    answers: [{ type: 'A', name: c.q.name, ttl: c.ttl, data: '192.0.2.1' }],
    additionals,
  });
}

test('client forms: our OPT (UDP size, DO as answered, EDE only) or none; records untouched', () => {
  fc.assert(
    fc.property(answerCase, fc.boolean(), (c, ednsClient) => {
      const upstream = encodeAnswer(c);
      const questionEnd = peekQuery(encodeQuery({ ...c.q, type: 'A', edns: false })).questionEnd;
      const original = dnsPacket.decode(upstream);
      const out = toClientForm(Buffer.from(upstream), questionEnd, ednsClient, c.udpSize);
      assert.ok(out !== null);
      const decoded = dnsPacket.decode(out);
      assert.deepEqual(decoded.answers, original.answers);
      const opts = (decoded.additionals ?? []).filter((r) => r.type === 'OPT') as unknown as Opt[];
      const others = (decoded.additionals ?? []).filter((r) => r.type !== 'OPT');
      assert.deepEqual(
        others,
        (original.additionals ?? []).filter((r) => r.type !== 'OPT'),
      );
      if (!ednsClient) {
        assert.equal(opts.length, 0);
        return;
      }
      assert.equal(opts.length, 1);
      assert.equal(opts[0].udpPayloadSize, c.udpSize);
      assert.equal(opts[0].flag_do, c.upstreamOpt && c.upstreamDo);
      const ede = c.upstreamOpt ? c.options.filter((o) => o.code === OPTION_EDE) : [];
      assert.deepEqual(
        opts[0].options.map((o) => [o.code, Buffer.from(o.data)]),
        ede.map((o) => [o.code, o.data]),
      );
    }),
  );
});

test('the forms never throw on arbitrary bytes, and what they return can be walked', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 300 }),
      fc.integer({ min: 0, max: 300 }),
      fc.boolean(),
      (bytes, questionEnd, edns) => {
        const out = toClientForm(Buffer.from(bytes), questionEnd, edns, 1232);
        if (out !== null && edns) assert.ok(lastOptStart(out, questionEnd) >= 0);
      },
    ),
    { numRuns: 2000 },
  );
});

test('an OPT followed by another record, or two OPTs, cannot be rebuilt: null', () => {
  const base = {
    type: 'response' as const,
    id: 1,
    questions: [{ name: 'x.example', type: 'A' as const, class: 'IN' as const }],
  };
  const opt = {
    type: 'OPT',
    name: '.',
    udpPayloadSize: 1232,
    flags: 0,
    options: [],
  } as unknown as dnsPacket.Answer;
  const glue: dnsPacket.Answer = { type: 'A', name: 'ns.x.example', ttl: 60, data: '192.0.2.2' };
  const questionEnd = 12 + 11 + 4;
  assert.equal(
    toEdnsClientForm(dnsPacket.encode({ ...base, additionals: [opt, glue] }), questionEnd, 1232),
    null,
  );
  assert.equal(
    toEdnsClientForm(dnsPacket.encode({ ...base, additionals: [opt, opt] }), questionEnd, 1232),
    null,
  );
  assert.ok(toEdnsClientForm(dnsPacket.encode({ ...base, additionals: [glue, opt] }), questionEnd, 1232));
});
