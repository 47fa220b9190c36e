import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as dnsPacket from 'dns-packet';
import { setId, synthesize, truncateAnswer } from '../../src/dns/answer.js';
import {
  PEEK_DROP,
  PEEK_FORMERR,
  PEEK_NOTIMP,
  PEEK_OK,
  peekQuery,
  sameQuestion,
} from '../../src/dns/wire.js';
import { encodeQuery } from '../helpers/dns-client.js';

test('peek reads id, question, EDNS size and DO bit', () => {
  const q = encodeQuery('WwW.Example.COM', { id: 4242, type: 'AAAA', edns: 1400, dnssecOk: true });
  const p = peekQuery(q);
  assert.equal(p.status, PEEK_OK);
  assert.equal(p.id, 4242);
  assert.equal(p.qname, 'WwW.Example.COM');
  assert.equal(p.qtype, 28);
  assert.equal(p.qclass, 1);
  assert.equal(p.ednsUdpSize, 1400);
  assert.equal(p.dnssecOk, true);
  const plain = peekQuery(encodeQuery('a.test'));
  assert.equal(plain.ednsUdpSize, 0);
  assert.equal(plain.dnssecOk, false);
});

test('peek of the root name', () => {
  const p = peekQuery(encodeQuery('.', { type: 'NS' }));
  assert.equal(p.status, PEEK_OK);
  assert.equal(p.qname, '');
});

test('bad input maps to drop / FORMERR / NOTIMP, never throws', () => {
  assert.equal(peekQuery(Buffer.alloc(5)).status, PEEK_DROP);
  const response = encodeQuery('a.test');
  response[2] |= 0x80;
  assert.equal(peekQuery(response).status, PEEK_DROP);
  const two = dnsPacket.encode({
    type: 'query',
    id: 1,
    questions: [
      { type: 'A', name: 'a.test' },
      { type: 'A', name: 'b.test' },
    ],
  });
  assert.equal(peekQuery(two).status, PEEK_FORMERR);
  const none = Buffer.from(encodeQuery('a.test').subarray(0, 12));
  none.writeUInt16BE(0, 4);
  assert.equal(peekQuery(none).status, PEEK_FORMERR);
  const notify = encodeQuery('a.test');
  notify[2] = (notify[2] & 0x87) | (4 << 3);
  assert.equal(peekQuery(notify).status, PEEK_NOTIMP);
  const cut = encodeQuery('long.name.example');
  assert.equal(peekQuery(cut.subarray(0, 20)).status, PEEK_FORMERR);
  // random bytes: any status, no throw
  for (let i = 0; i < 2000; i++) {
    const junk = Buffer.alloc(12 + (i % 64));
    for (let j = 0; j < junk.length; j++) junk[j] = (i * 31 + j * 17) & 0xff;
    assert.doesNotThrow(() => peekQuery(junk));
  }
});

test('synthesize keeps the question and sets flags and rcode', () => {
  const q = encodeQuery('a.test', { id: 77, edns: 1232 });
  const p = peekQuery(q);
  const r = synthesize(q, p.questionEnd, 5, p.ednsUdpSize, 1232);
  const d = dnsPacket.decode(r);
  assert.equal(d.id, 77);
  assert.equal(d.type, 'response');
  assert.equal((d as { rcode?: string }).rcode, 'REFUSED');
  assert.equal(d.questions?.[0].name, 'a.test');
  assert.equal(d.additionals?.[0].type, 'OPT');
  const noEdns = dnsPacket.decode(synthesize(encodeQuery('a.test'), p.questionEnd, 3, 0, 1232));
  assert.equal((noEdns as { rcode?: string }).rcode, 'NXDOMAIN');
  assert.equal(noEdns.additionals?.length, 0);
});

test('truncateAnswer sets TC and drops records', () => {
  const q = encodeQuery('big.test', { id: 9 });
  const p = peekQuery(q);
  const answer = dnsPacket.encode({
    type: 'response',
    id: 9,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
    questions: [{ type: 'A', name: 'big.test' }],
    answers: Array.from({ length: 60 }, (_, i) => ({
      type: 'A' as const,
      name: 'big.test',
      ttl: 60,
      data: `192.0.2.${i}`,
    })),
  });
  const t = truncateAnswer(answer, p.questionEnd, 0, 1232);
  const d = dnsPacket.decode(t);
  assert.equal(d.flag_tc, true);
  assert.equal(d.answers?.length, 0);
  assert.equal(d.questions?.[0].name, 'big.test');
  setId(t, 0xbeef);
  assert.equal(t.readUInt16BE(0), 0xbeef);
});

test('sameQuestion compares names case-insensitively, type and class exactly', () => {
  const q = encodeQuery('MiXeD.test', { type: 'A' });
  const p = peekQuery(q);
  const a = encodeQuery('mixed.TEST', { type: 'A' });
  assert.equal(sameQuestion(a, q, p.questionEnd), true);
  assert.equal(sameQuestion(encodeQuery('mixed.test', { type: 'AAAA' }), q, p.questionEnd), false);
  assert.equal(sameQuestion(encodeQuery('other.test'), q, p.questionEnd), false);
});
