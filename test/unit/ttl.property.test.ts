// Properties of the TTL walk (src/dns/ttl.ts): it never throws, every offset it returns lies
// inside the message, and on any answer built from dns-packet records (owner names compressed
// or not, OPT anywhere in the additional section) its offsets are exactly the TTL fields.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import dnsPacket, { type Answer } from 'dns-packet';
import fc from 'fast-check';
import { layoutOf, minTtl, readTtl } from '../../src/dns/ttl.js';
import {
  hostileBytesArb,
  mutate,
  mutationArb,
  nameArb,
  optRecord,
  recordArb,
  soaArb,
} from '../helpers/dns-arbitraries.js';

const RUNS = { numRuns: 1000 };

interface Built {
  msg: Buffer;
  /** Where the TTL of each non-OPT record is, in message order (computed while building). */
  ttlOffsets: number[];
  answers: number;
  optStart: number;
  optEnd: number;
  soaTtlOffset: number;
  soaMinimumOffset: number;
  records: Answer[];
}

/** A record's wire form, from dns-packet (which never compresses): the bytes after a bare header. */
function recordBytes(rr: Answer): Buffer {
  return dnsPacket.encode({ type: 'response', answers: [rr] }).subarray(12);
}

function nameLength(name: string): number {
  return name === '' || name === '.' ? 1 : Buffer.byteLength(name) + 2;
}

interface AnswerSpec {
  qname: string;
  answers: Answer[];
  authorities: Answer[];
  additionals: Answer[];
  /** Index in the additional section where an OPT record goes; null for none. */
  optAt: number | null;
  /** Replace owner names equal to the question name by a pointer to offset 12. */
  compress: boolean;
}

/**
 * An answer assembled record by record, so where each TTL lies is known from the assembly,
 * not from any walk of the result.
 */
function build(spec: AnswerSpec): Built {
  const additionals = [...spec.additionals];
  if (spec.optAt !== null)
    additionals.splice(spec.optAt % (additionals.length + 1), 0, optRecord(1232, true));
  const question = dnsPacket
    .encode({ type: 'query', questions: [{ name: spec.qname, type: 'A', class: 'IN' }] })
    .subarray(12);
  const head = Buffer.alloc(12);
  head.writeUInt16BE(0x4242, 0);
  head.writeUInt16BE(0x8180, 2);
  head.writeUInt16BE(1, 4);
  head.writeUInt16BE(spec.answers.length, 6);
  head.writeUInt16BE(spec.authorities.length, 8);
  head.writeUInt16BE(additionals.length, 10);
  const parts: Buffer[] = [head, question];
  let at = 12 + question.length;
  const built: Built = {
    msg: Buffer.alloc(0),
    ttlOffsets: [],
    answers: spec.answers.length,
    optStart: -1,
    optEnd: -1,
    soaTtlOffset: -1,
    soaMinimumOffset: -1,
    records: [...spec.answers, ...spec.authorities, ...additionals],
  };
  built.records.forEach((rr, i) => {
    let bytes = recordBytes(rr);
    let ownerLength = nameLength(rr.name);
    if (spec.compress && rr.type !== 'OPT' && rr.name === spec.qname) {
      bytes = Buffer.concat([Buffer.from([0xc0, 12]), bytes.subarray(ownerLength)]);
      ownerLength = 2;
    }
    if (rr.type === 'OPT') {
      built.optStart = at;
      built.optEnd = at + bytes.length;
    } else {
      built.ttlOffsets.push(at + ownerLength + 4);
      const inAuthority = i >= spec.answers.length && i < spec.answers.length + spec.authorities.length;
      if (rr.type === 'SOA' && inAuthority && built.soaTtlOffset < 0) {
        built.soaTtlOffset = at + ownerLength + 4;
        built.soaMinimumOffset = at + bytes.length - 4; // MINIMUM is the last field of SOA rdata
      }
    }
    parts.push(bytes);
    at += bytes.length;
  });
  built.msg = Buffer.concat(parts);
  return built;
}

const answerSpecArb: fc.Arbitrary<AnswerSpec> = nameArb.chain((qname) => {
  const owner = fc.oneof(fc.constant(qname), nameArb);
  return fc.record({
    qname: fc.constant(qname),
    answers: fc.array(recordArb(owner), { maxLength: 6 }),
    authorities: fc.array(fc.oneof(soaArb(owner), recordArb(owner)), { maxLength: 3 }),
    additionals: fc.array(recordArb(owner), { maxLength: 3 }),
    optAt: fc.option(fc.nat(), { nil: null }),
    compress: fc.boolean(),
  });
});

test('on answers built from dns-packet records, the walk finds exactly the TTL fields', () => {
  fc.assert(
    fc.property(answerSpecArb, (spec) => {
      const b = build(spec);
      // the assembly is a valid message: dns-packet reads every record back
      const decoded = dnsPacket.decode(b.msg);
      assert.equal(
        (decoded.answers?.length ?? 0) +
          (decoded.authorities?.length ?? 0) +
          (decoded.additionals?.length ?? 0),
        b.records.length,
      );
      const layout = layoutOf(b.msg);
      assert.ok(layout, 'a well-formed answer is walked');
      assert.equal(layout.questionEnd, 12 + nameLength(spec.qname) + 4);
      assert.equal(layout.end, b.msg.length);
      assert.deepEqual([...layout.ttlOffsets], b.ttlOffsets);
      assert.equal(layout.answerTtls, b.answers);
      assert.equal(layout.optStart, b.optStart);
      assert.equal(layout.optEnd, b.optEnd);
      assert.equal(layout.soaTtlOffset, b.soaTtlOffset);
      assert.equal(layout.soaMinimumOffset, b.soaMinimumOffset);
    }),
    RUNS,
  );
});

test('writing through the offsets changes the TTLs dns-packet decodes, in order, and nothing else', () => {
  fc.assert(
    fc.property(answerSpecArb, fc.integer({ min: 0, max: 0x7fff0000 }), (spec, base) => {
      const { msg } = build(spec);
      const layout = layoutOf(msg);
      assert.ok(layout);
      const before = dnsPacket.decode(msg);
      const written = Buffer.from(msg);
      layout.ttlOffsets.forEach((offset, i) => {
        written.writeUInt32BE(base + i, offset);
      });
      if (layout.soaMinimumOffset >= 0) written.writeUInt32BE(0x5eed, layout.soaMinimumOffset);
      const after = dnsPacket.decode(written);
      const all = (d: typeof before) => [
        ...(d.answers ?? []),
        ...(d.authorities ?? []),
        ...(d.additionals ?? []),
      ];
      const ttls = all(after)
        .filter((r) => r.type !== 'OPT')
        .map((r) => (r as { ttl: number }).ttl);
      assert.deepEqual(
        ttls,
        ttls.map((_, i) => base + i),
      );
      // OPT (EDNS flags live in its TTL field) is untouched; so is every record's data but SOA MINIMUM
      const strip = (d: typeof before) =>
        all(d).map((r) => {
          const { ttl: _ttl, ...rest } = r as Answer & { ttl?: number };
          if (r.type === 'SOA') return { ...rest, data: { ...(rest as { data: object }).data, minimum: 0 } };
          return rest;
        });
      assert.deepEqual(strip(after), strip(before));
      if (layout.soaMinimumOffset >= 0) {
        const soa = after.authorities?.find((r) => r.type === 'SOA') as { data: { minimum: number } };
        assert.equal(soa.data.minimum, 0x5eed);
      }
      const answerTtls = ttls.slice(0, layout.answerTtls);
      assert.equal(
        minTtl(written, layout.ttlOffsets, layout.answerTtls),
        answerTtls.length === 0 ? Number.POSITIVE_INFINITY : Math.min(...answerTtls),
      );
    }),
    RUNS,
  );
});

test('the walk never throws and every offset it returns lies inside the message', () => {
  const answerBytes = answerSpecArb.map((s) => build(s).msg);
  const input = fc.oneof(
    hostileBytesArb,
    fc.tuple(answerBytes, mutationArb).map(([msg, m]) => mutate(msg, m)),
  );
  fc.assert(
    fc.property(input, (msg) => {
      const layout = layoutOf(msg);
      if (layout === null) return;
      assert.ok(layout.questionEnd >= 12 + 1 + 4);
      assert.ok(layout.questionEnd <= layout.end && layout.end <= msg.length);
      let previous = layout.questionEnd - 1;
      for (const offset of layout.ttlOffsets) {
        assert.ok(offset > previous, 'offsets increase');
        assert.ok(offset + 4 <= layout.end, `TTL at ${offset} runs past ${layout.end}`);
        previous = offset;
        assert.ok(readTtl(msg, offset) <= 0x7fffffff);
      }
      assert.ok(layout.answerTtls <= layout.ttlOffsets.length);
      if (layout.optStart < 0) assert.equal(layout.optEnd, -1);
      else assert.ok(layout.questionEnd <= layout.optStart && layout.optStart + 11 <= layout.optEnd);
      assert.ok(layout.optEnd <= layout.end);
      if (layout.soaTtlOffset < 0) assert.equal(layout.soaMinimumOffset, -1);
      else {
        assert.ok(layout.soaTtlOffset + 4 <= layout.end);
        assert.ok(layout.soaMinimumOffset > layout.soaTtlOffset && layout.soaMinimumOffset + 4 <= layout.end);
      }
    }),
    { numRuns: 5000 },
  );
});

test('a second OPT, or an OPT outside the additional section, is refused', () => {
  fc.assert(
    fc.property(answerSpecArb, fc.boolean(), (spec, inAnswers) => {
      const opt = optRecord(512, false);
      const twice = build(
        inAnswers
          ? { ...spec, answers: [...spec.answers, opt] }
          : { ...spec, additionals: [...spec.additionals, opt], optAt: 0 },
      );
      assert.equal(layoutOf(twice.msg), null);
    }),
    RUNS,
  );
});

test('readTtl: values with the top bit set read as 0 (RFC 2181 §8)', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffffffff }), (ttl) => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(ttl);
      assert.equal(readTtl(b, 0), ttl > 0x7fffffff ? 0 : ttl);
    }),
    RUNS,
  );
});
