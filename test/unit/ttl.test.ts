// Unit tests for the wire TTL walk and aging in src/dns/ttl.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { layoutOf, minTtl, readTtl } from '../../src/dns/ttl.js';
import { answerFor, aRecord, queryContext, soaRecord } from '../helpers/ctx.js';

/**
 * www.Example.com A, answered with a CNAME and an A whose owner names are compression
 * pointers (dns-packet itself never compresses), plus an OPT record.
 */
function compressedAnswer(): Buffer {
  const header = Buffer.from([0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 1]);
  const question = Buffer.from([
    3, 0x77, 0x77, 0x77, 7, 0x45, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 3, 0x63, 0x6f, 0x6d, 0, 0, 1, 0, 1,
  ]);
  // CNAME: owner -> question name (offset 12); target "cdn" + pointer to "Example.com" (offset 16)
  const cnameRdata = Buffer.from([3, 0x63, 0x64, 0x6e, 0xc0, 16]);
  const cname = Buffer.concat([
    Buffer.from([0xc0, 12, 0, 5, 0, 1, 0, 0, 0x01, 0x2c, 0, cnameRdata.length]),
    cnameRdata,
  ]);
  const cnameTargetOffset = header.length + question.length + cname.length - cnameRdata.length;
  const a = Buffer.from([0xc0, cnameTargetOffset, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 10]);
  // OPT: its TTL field carries ext-rcode/version/DO and must never be aged
  const opt = Buffer.from([0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0]);
  return Buffer.concat([header, question, cname, a, opt]);
}

test('walks compressed names and skips OPT', () => {
  const msg = compressedAnswer();
  const layout = layoutOf(msg);
  assert.ok(layout);
  assert.equal(layout.questionEnd, 12 + 21);
  assert.equal(layout.end, msg.length);
  assert.equal(layout.ttlOffsets.length, 2);
  assert.equal(layout.answerTtls, 2);
  assert.equal(layout.optEnd, msg.length);
  assert.equal(layout.optEnd - layout.optStart, 11);
  assert.equal(layout.soaTtlOffset, -1);
  assert.equal(minTtl(msg, layout.ttlOffsets, layout.answerTtls), 60);
});

test('finds the SOA TTL and MINIMUM in the authority section', () => {
  const ctx = queryContext('nope.example.com');
  const msg = answerFor(ctx, { rcode: 3, authorities: [soaRecord('example.com', 900, 120)], opt: true });
  const layout = layoutOf(msg);
  assert.ok(layout);
  assert.equal(layout.answerTtls, 0);
  assert.equal(readTtl(msg, layout.soaTtlOffset), 900);
  assert.equal(msg.readUInt32BE(layout.soaMinimumOffset), 120);
  assert.equal(minTtl(msg, layout.ttlOffsets, 0), Number.POSITIVE_INFINITY);
});

test('a TTL with the top bit set reads as 0', () => {
  const ctx = queryContext('example.com');
  const msg = answerFor(ctx, { answers: [aRecord('example.com', 300)] });
  const layout = layoutOf(msg);
  assert.ok(layout);
  msg.writeUInt32BE(0x80000001, layout.ttlOffsets[0]);
  assert.equal(readTtl(msg, layout.ttlOffsets[0]), 0);
});

test('rejects messages it cannot walk', () => {
  const ctx = queryContext('example.com');
  const msg = answerFor(ctx, { answers: [aRecord('example.com', 300), aRecord('example.com', 300)] });
  assert.ok(layoutOf(msg));
  assert.equal(layoutOf(msg.subarray(0, msg.length - 3)), null, 'record runs past the end');
  assert.equal(layoutOf(msg.subarray(0, 11)), null, 'short header');
  const noQuestion = Buffer.from(msg);
  noQuestion.writeUInt16BE(0, 4);
  assert.equal(layoutOf(noQuestion), null, 'QDCOUNT 0');
  const badLabel = Buffer.from(msg);
  badLabel[12] = 0x80; // reserved label type
  assert.equal(layoutOf(badLabel), null);
});
