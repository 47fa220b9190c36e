// Client identity behind forwarders: the PROXY v2 header parser and the ECS reader, over
// hand-built headers from the specification's layout, malformed input and generated input.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as dnsPacket from 'dns-packet';
import fc from 'fast-check';
import { peekQuery } from '../../src/dns/wire.js';
import { ECS_MALFORMED, ecsClient } from '../../src/identity/ecs.js';
import {
  encodeProxyV2,
  formatIPv6,
  PROXY_INCOMPLETE,
  PROXY_INVALID,
  PROXY_V2_MAX_SIZE,
  type ProxyHeader,
  parseProxyV2,
} from '../../src/identity/proxy-v2.js';

const SIG = '0d0a0d0a000d0a515549540a';

function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}

test('PROXY v2: TCP over IPv4, the layout of proxy-protocol.txt 2.2', () => {
  // ver 2 / PROXY, AF_INET / STREAM, 12 address bytes: 192.0.2.10:51000 -> 198.51.100.1:53
  const header = hex(`${SIG} 21 11 000c c000020a c6336401 c738 0035`);
  const parsed = parseProxyV2(Buffer.concat([header, Buffer.from([0, 29])]), 'stream') as ProxyHeader;
  assert.deepEqual(parsed, { length: 28, sourceAddress: '192.0.2.10', sourcePort: 51000 });
});

test('PROXY v2: UDP over IPv6 with TLVs (skipped), as dnsdist sends per datagram', () => {
  const tlvs = hex('01 0003 646f74  04 0000'); // ALPN "dot", NOOP
  const header = hex(
    `${SIG} 21 22 ${(36 + tlvs.length).toString(16).padStart(4, '0')}
     20010db8000000000000000000000042 20010db8000000000000000000000001 d431 0035`,
  );
  const parsed = parseProxyV2(Buffer.concat([header, tlvs, Buffer.alloc(12)]), 'dgram') as ProxyHeader;
  assert.deepEqual(parsed, {
    length: 16 + 36 + tlvs.length,
    sourceAddress: '2001:db8::42',
    sourcePort: 54321,
  });
});

test('PROXY v2: LOCAL, UNSPEC and UNIX name nobody (the connection source is the client)', () => {
  for (const [byte12, byte13, len] of [
    ['20', '00', 0],
    ['21', '00', 0],
    ['20', '11', 12],
    ['21', '31', 216],
  ] as const) {
    const header = Buffer.concat([
      hex(`${SIG} ${byte12} ${byte13} ${len.toString(16).padStart(4, '0')}`),
      Buffer.alloc(len),
    ]);
    assert.deepEqual(parseProxyV2(header, 'stream'), {
      length: 16 + len,
      sourceAddress: null,
      sourcePort: 0,
    });
  }
});

test('PROXY v2: malformed headers are invalid', () => {
  const good = `21 11 000c c000020a c6336401 c738 0035`;
  const cases: [string, Buffer, 'stream' | 'dgram'][] = [
    ['version 1 text header', Buffer.from('PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n'), 'stream'],
    [
      'a plain DNS query',
      dnsPacket.encode({ type: 'query', id: 1, questions: [{ type: 'A', name: 'x' }] }),
      'dgram',
    ],
    ['signature off by one bit', hex(`0d0a0d0a000d0a515549540b ${good}`), 'stream'],
    ['version 1 in the binary form', hex(`${SIG} 11 11 000c c000020a c6336401 c738 0035`), 'stream'],
    ['command 2', hex(`${SIG} 22 11 000c c000020a c6336401 c738 0035`), 'stream'],
    ['family 4', hex(`${SIG} 21 41 000c c000020a c6336401 c738 0035`), 'stream'],
    ['transport 3', hex(`${SIG} 21 13 000c c000020a c6336401 c738 0035`), 'stream'],
    ['a STREAM header before a datagram', hex(`${SIG} ${good}`), 'dgram'],
    ['a DGRAM header on a connection', hex(`${SIG} 21 12 000c c000020a c6336401 c738 0035`), 'stream'],
    [
      'PROXY INET with fewer address bytes than the family needs',
      hex(`${SIG} 21 11 0008 c000020a c6336401`),
      'stream',
    ],
    ['a datagram cut inside the addresses', hex(`${SIG} 21 12 000c c000020a c633`), 'dgram'],
    ['a datagram cut inside the fixed part', hex(`${SIG} 21`), 'dgram'],
    ['a length past the bound', hex(`${SIG} 21 11 ffff c000020a c6336401 c738 0035`), 'stream'],
  ];
  for (const [what, bytes, transport] of cases) {
    assert.equal(parseProxyV2(bytes, transport), PROXY_INVALID, what);
  }
});

test('PROXY v2 over a stream: every proper prefix is incomplete, the whole header parses', () => {
  const header = encodeProxyV2(
    { address: '203.0.113.9', port: 4242 },
    { address: '127.0.0.1', port: 53 },
    'stream',
  );
  for (let i = 0; i < header.length; i++) {
    assert.equal(parseProxyV2(header.subarray(0, i), 'stream'), PROXY_INCOMPLETE, `prefix of ${i}`);
  }
  assert.deepEqual(parseProxyV2(header, 'stream'), {
    length: 28,
    sourceAddress: '203.0.113.9',
    sourcePort: 4242,
  });
});

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join('.'));
const ipv6Bytes = fc
  .array(fc.oneof(fc.constant(0), fc.nat(0xffff)), { minLength: 8, maxLength: 8 })
  .map((groups) => {
    const b = Buffer.alloc(16);
    groups.forEach((g, i) => {
      b.writeUInt16BE(g, 2 * i);
    });
    return b;
  });

/** The WHATWG URL serializer compresses IPv6 per RFC 5952; Node writes mapped addresses dotted. */
function referenceIPv6(b: Buffer): string {
  const full = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(2 * i).toString(16)).join(':');
  if (b.subarray(0, 10).every((x) => x === 0) && b.readUInt16BE(10) === 0xffff) {
    return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  }
  return new URL(`http://[${full}]/`).hostname.slice(1, -1);
}

test('formatIPv6 writes RFC 5952 text', () => {
  fc.assert(
    fc.property(ipv6Bytes, (b) => {
      assert.equal(formatIPv6(b, 0), referenceIPv6(b));
    }),
    { numRuns: 3000 },
  );
});

test('PROXY v2: encode/parse round trip for any address, port, transport and TLVs', () => {
  fc.assert(
    fc.property(
      fc.oneof(
        ipv4,
        ipv6Bytes.map((b) => formatIPv6(b, 0)),
      ),
      fc.nat(65535),
      fc.constantFrom('stream' as const, 'dgram' as const),
      fc.uint8Array({ maxLength: 64 }),
      (address, port, transport, tlvs) => {
        const dst = address.includes(':') ? '::1' : '127.0.0.1';
        const header = encodeProxyV2(
          { address, port },
          { address: dst, port: 53 },
          transport,
          Buffer.from(tlvs),
        );
        const parsed = parseProxyV2(
          Buffer.concat([header, Buffer.from([1, 2, 3])]),
          transport,
        ) as ProxyHeader;
        assert.equal(parsed.length, header.length);
        assert.equal(parsed.sourceAddress, address);
        assert.equal(parsed.sourcePort, port);
      },
    ),
  );
});

test('PROXY v2: arbitrary and mutated bytes never throw and never claim more than they hold', () => {
  const valid = encodeProxyV2({ address: '192.0.2.1', port: 1 }, { address: '192.0.2.2', port: 53 }, 'dgram');
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
        fc.tuple(fc.nat(valid.length - 1), fc.nat(255), fc.nat(valid.length)).map(([at, value, cut]) => {
          const b = Buffer.from(valid);
          b[at] = value;
          return b.subarray(0, Math.max(cut, at + 1));
        }),
      ),
      fc.constantFrom('stream' as const, 'dgram' as const),
      (bytes, transport) => {
        const parsed = parseProxyV2(bytes, transport);
        if (typeof parsed === 'object') {
          assert.ok(
            parsed.length >= 16 && parsed.length <= bytes.length && parsed.length <= PROXY_V2_MAX_SIZE,
          );
        } else if (transport === 'dgram') {
          assert.equal(parsed, PROXY_INVALID);
        }
      },
    ),
    { numRuns: 5000 },
  );
});

/** A query whose OPT carries the given raw ECS option data (family, prefixes, address). */
function queryWithEcs(...ecs: Buffer[]): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id: 1,
    questions: [{ type: 'A', name: 'example.com' }],
    additionals: [
      {
        type: 'OPT',
        name: '.',
        udpPayloadSize: 1232,
        options: [{ code: 10, data: Buffer.alloc(8, 7) }, ...ecs.map((data) => ({ code: 8, data }))],
      } as unknown as dnsPacket.Answer,
    ],
  });
}

function ecsOf(msg: Buffer): ReturnType<typeof ecsClient> {
  return ecsClient(msg, peekQuery(msg).optStart);
}

test('ECS: the network address of the source prefix names the client', () => {
  assert.equal(ecsOf(queryWithEcs(hex('0001 20 00 c0000207'))), '192.0.2.7', 'CoreDNS: set 32');
  assert.equal(ecsOf(queryWithEcs(hex('0001 18 00 c00002'))), '192.0.2.0', '/24');
  assert.equal(ecsOf(queryWithEcs(hex('0001 11 00 0a0180'))), '10.1.128.0', '/17');
  assert.equal(
    ecsOf(queryWithEcs(hex('0002 80 00 20010db8000100000000000000000007'))),
    '2001:db8:1::7',
    'CoreDNS: set 128',
  );
  assert.equal(ecsOf(queryWithEcs(hex('0002 30 00 20010db80001'))), '2001:db8:1::');
  assert.equal(ecsOf(queryWithEcs(hex('0001 00 00'))), null, 'prefix 0 names nobody');
  assert.equal(ecsOf(queryWithEcs()), null, 'no ECS option');
  const noEdns = dnsPacket.encode({ type: 'query', id: 1, questions: [{ type: 'A', name: 'x' }] });
  assert.equal(ecsOf(noEdns), null);
});

test('ECS: malformed options are FORMERR material (RFC 7871 §7.1.1)', () => {
  for (const [what, data] of [
    ['family 3', hex('0003 18 00 c00002')],
    ['IPv4 prefix 33', hex('0001 21 00 c000020700')],
    ['address longer than the prefix', hex('0001 18 00 c0000207')],
    ['address shorter than the prefix', hex('0001 18 00 c000')],
    ['bits past the prefix', hex('0001 17 00 c00003')],
    ['too short for the fixed fields', hex('0001 18')],
  ] as const) {
    assert.equal(ecsOf(queryWithEcs(data)), ECS_MALFORMED, what);
  }
  assert.equal(
    ecsOf(queryWithEcs(hex('0001 18 00 c00002'), hex('0001 18 00 c63364'))),
    ECS_MALFORMED,
    'two ECS options',
  );
});

test('ECS: never throws on arbitrary option bytes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 40 }), (data) => {
      const result = ecsOf(queryWithEcs(Buffer.from(data)));
      assert.ok(result === null || result === ECS_MALFORMED || typeof result === 'string');
    }),
    { numRuns: 3000 },
  );
});
