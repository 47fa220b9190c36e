// Properties of the query peek (src/dns/wire.ts): it never throws, its status follows the
// header alone where the contract says so, and every question dns-packet encodes reads back.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  asciiLower,
  PEEK_DROP,
  PEEK_FORMERR,
  PEEK_NOTIMP,
  PEEK_OK,
  peekQuery,
  sameQuestion,
} from '../../src/dns/wire.js';
import {
  encodeSpec,
  header,
  hostileBytesArb,
  mutate,
  mutationArb,
  nameArb,
  QTYPE_CODES,
  querySpecArb,
  rawLabelsArb,
  wireName,
} from '../helpers/dns-arbitraries.js';

const RUNS = { numRuns: 2000 };

test('peek never throws; status and offsets stay within the message', () => {
  fc.assert(
    fc.property(hostileBytesArb, (buf) => {
      const p = peekQuery(buf);
      assert.ok([PEEK_OK, PEEK_DROP, PEEK_FORMERR, PEEK_NOTIMP].includes(p.status));
      assert.ok(p.questionEnd >= 12);
      if (p.status !== PEEK_DROP) assert.ok(p.questionEnd <= buf.length, 'questionEnd past the end');
      assert.equal(p.lname, asciiLower(p.qname));
      if (p.status === PEEK_OK) {
        assert.ok(p.questionEnd > 12, 'an accepted query has a question');
        assert.equal(p.qtype, buf.readUInt16BE(p.questionEnd - 4));
        assert.equal(p.qclass, buf.readUInt16BE(p.questionEnd - 2));
        assert.ok(p.ednsUdpSize === 0 || p.ednsUdpSize >= 512, `EDNS size ${p.ednsUdpSize}`);
      }
      // FORMERR for a bad count carries no question; for bad records after a good question it may
      if (p.status === PEEK_FORMERR && buf.readUInt16BE(4) !== 1) assert.equal(p.questionEnd, 12);
    }),
    RUNS,
  );
});

test('status follows the header: short or QR=1 drops, opcode ≠ 0 is NOTIMP, QDCOUNT ≠ 1 is FORMERR', () => {
  fc.assert(
    fc.property(hostileBytesArb, (buf) => {
      const p = peekQuery(buf);
      if (buf.length < 12) {
        assert.equal(p.status, PEEK_DROP);
        return;
      }
      assert.equal(p.id, buf.readUInt16BE(0));
      if (buf[2] & 0x80) assert.equal(p.status, PEEK_DROP);
      else if ((buf[2] >> 3) & 0x0f) assert.equal(p.status, PEEK_NOTIMP);
      else if (buf.readUInt16BE(4) !== 1) assert.equal(p.status, PEEK_FORMERR);
      else assert.ok(p.status === PEEK_OK || p.status === PEEK_FORMERR);
    }),
    RUNS,
  );
});

test('every query dns-packet encodes peeks back: id, name, lowercased name, type, class, EDNS, DO', () => {
  fc.assert(
    fc.property(querySpecArb, (spec) => {
      const wire = encodeSpec(spec);
      const p = peekQuery(wire);
      assert.equal(p.status, PEEK_OK);
      assert.equal(p.id, spec.id);
      assert.equal(p.qname, spec.name);
      assert.equal(p.lname, spec.name.toLowerCase());
      assert.equal(p.qtype, QTYPE_CODES[spec.type]);
      assert.equal(p.qclass, spec.klass === 'IN' ? 1 : 3);
      assert.equal(p.ednsUdpSize, spec.edns ? Math.max(spec.edns.udpSize, 512) : 0);
      assert.equal(p.dnssecOk, spec.edns?.dnssecOk ?? false);
      assert.equal(p.questionEnd, 12 + (spec.name === '' ? 1 : spec.name.length + 2) + 4);
    }),
    RUNS,
  );
});

/** Split a peeked name on its unescaped dots and undo the escapes. */
function unescapeLabels(qname: string): Buffer[] {
  if (qname === '') return [];
  const labels: Buffer[] = [];
  let current: number[] = [];
  for (let i = 0; i < qname.length; i++) {
    const c = qname.charCodeAt(i);
    if (c === 0x5c) current.push(qname.charCodeAt(++i));
    else if (c === 0x2e) {
      labels.push(Buffer.from(current));
      current = [];
    } else current.push(c);
  }
  labels.push(Buffer.from(current));
  return labels;
}

test('labels with any octet (dots and backslashes too) read back unambiguously', () => {
  fc.assert(
    fc.property(rawLabelsArb, fc.integer({ min: 0, max: 0xffff }), (labels, qtype) => {
      const wire = Buffer.concat([
        header(7, 0x0100, 1, 0, 0, 0),
        wireName(labels),
        Buffer.from([0, 0, 0, 1]),
      ]);
      wire.writeUInt16BE(qtype, wire.length - 4);
      const p = peekQuery(wire);
      assert.equal(p.status, PEEK_OK);
      assert.equal(p.qtype, qtype);
      assert.deepEqual(
        unescapeLabels(p.qname),
        labels.map((l) => Buffer.from(l)),
      );
      assert.deepEqual(
        unescapeLabels(p.lname),
        labels.map((l) => Buffer.from(l.map((c) => (c >= 0x41 && c <= 0x5a ? c | 0x20 : c)))),
      );
    }),
    RUNS,
  );
});

test('a label longer than 63 octets is never accepted', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 1, max: 63 }), { maxLength: 3 }),
      fc.integer({ min: 64, max: 255 }),
      (lengths, longLabel) => {
        const before = wireName(lengths.map((n) => new Uint8Array(n).fill(0x61)));
        const name = Buffer.concat([
          before.subarray(0, -1),
          Buffer.from([longLabel]),
          Buffer.alloc(longLabel, 0x61),
          Buffer.from([0]),
        ]);
        const wire = Buffer.concat([header(1, 0, 1, 0, 0, 0), name, Buffer.from([0, 1, 0, 1])]);
        assert.equal(peekQuery(wire).status, PEEK_FORMERR);
      },
    ),
    RUNS,
  );
});

// RFC 1035 §3.1: a name is at most 255 octets, length octets and the terminating zero included.
test('a name of more than 255 octets is never accepted', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 63 }), { minLength: 4, maxLength: 12 }), (lengths) => {
      const name = wireName(lengths.map((n) => new Uint8Array(n).fill(0x61)));
      const wire = Buffer.concat([header(1, 0, 1, 0, 0, 0), name, Buffer.from([0, 1, 0, 1])]);
      assert.equal(
        peekQuery(wire).status,
        name.length > 255 ? PEEK_FORMERR : PEEK_OK,
        `wire name of ${name.length} octets`,
      );
    }),
    RUNS,
  );
});

test('a compression pointer in the question or a pointer loop in the records is FORMERR, never a hang', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 0x3fff }),
      fc.integer({ min: 1, max: 0xffff }),
      nameArb,
      (target, arcount, name) => {
        const question = Buffer.concat([
          Buffer.from([0xc0 | (target >> 8), target & 0xff]),
          Buffer.from([0, 1, 0, 1]),
        ]);
        assert.equal(peekQuery(Buffer.concat([header(1, 0, 1, 0, 0, 0), question])).status, PEEK_FORMERR);
        // A record whose owner points at itself, repeated ARCOUNT times at most.
        const q = encodeSpec({
          id: 1,
          name,
          type: 'A',
          klass: 'IN',
          rd: true,
          cd: false,
          ad: false,
          edns: null,
        });
        q.writeUInt16BE(arcount, 10);
        const self = q.length;
        const loop = Buffer.from([0xc0 | (self >> 8), self & 0xff, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]);
        const p = peekQuery(Buffer.concat([q, loop]));
        // one well-formed OPT record and ARCOUNT 1 is fine; anything promising more records is not
        assert.equal(p.status, arcount === 1 ? PEEK_OK : PEEK_FORMERR);
      },
    ),
    RUNS,
  );
});

test('sameQuestion: equal up to ASCII case and nothing else', () => {
  fc.assert(
    fc.property(querySpecArb, mutationArb, fc.boolean(), (spec, m, flipCase) => {
      const query = encodeSpec(spec);
      const p = peekQuery(query);
      const name = flipCase
        ? spec.name.replace(/[a-zA-Z]/g, (c) => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase()))
        : spec.name;
      const answer = encodeSpec({ ...spec, name, id: spec.id ^ 1, edns: null });
      answer[2] |= 0x80;
      assert.equal(sameQuestion(answer, query, p.questionEnd), true);
      const other = mutate(answer, m);
      const expected =
        other.length >= p.questionEnd &&
        other.readUInt16BE(4) === 1 &&
        asciiLower(other.subarray(12, p.questionEnd).toString('latin1')) ===
          asciiLower(query.subarray(12, p.questionEnd).toString('latin1'));
      assert.equal(sameQuestion(other, query, p.questionEnd), expected);
    }),
    RUNS,
  );
});

test('flags do not change what is peeked, except QR and opcode', () => {
  fc.assert(
    fc.property(querySpecArb, fc.integer({ min: 0, max: 0xffff }), (spec, flags) => {
      const wire = encodeSpec(spec);
      wire.writeUInt16BE(flags, 2);
      const p = peekQuery(wire);
      if (flags & 0x8000) assert.equal(p.status, PEEK_DROP);
      else if ((flags >> 11) & 0x0f) assert.equal(p.status, PEEK_NOTIMP);
      else {
        assert.equal(p.status, PEEK_OK);
        assert.equal(p.qname, spec.name);
      }
    }),
    RUNS,
  );
});

test('the 255-octet bound is exact: 255 octets pass, 256 are FORMERR', () => {
  // Three 63-octet labels and one of `last` octets: 3 × 64 + (1 + last) + the root octet.
  for (const [last, status] of [
    [61, PEEK_OK],
    [62, PEEK_FORMERR],
  ] as const) {
    const name = wireName(
      [...Array(3)].map(() => new Uint8Array(63).fill(0x61)).concat([new Uint8Array(last).fill(0x62)]),
    );
    assert.equal(name.length, 193 + last + 1);
    const wire = Buffer.concat([header(1, 0, 1, 0, 0, 0), name, Buffer.from([0, 1, 0, 1])]);
    assert.equal(peekQuery(wire).status, status, `wire name of ${name.length} octets`);
  }
});
