// Property of the TCP listener's framing (RFC 7766 §8) through a real connection: a stream of
// length-prefixed queries cut at arbitrary points, sent piece by piece, is answered message by
// message, each exactly once, whatever mix of upstream, cached, filtered and FORMERR answers.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import dnsPacket from 'dns-packet';
import fc from 'fast-check';
import { header } from '../helpers/dns-arbitraries.js';
import { encodeQuery, TcpClient } from '../helpers/dns-client.js';
import { useDotUpstream } from '../helpers/dot-fixture.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/ports.js';

const upstream = useDotUpstream();
let gw: TestGateway;

before(async () => {
  await upstream.ready();
  const port = await freePort();
  gw = await startGateway(`
version: 1
listeners: [{ name: t, address: 127.0.0.1, port: ${port}, protocols: [tcp] }]
upstreams:
  default:
    timeout_ms: 1000
    servers:
      - ${upstream.serverEntry()}
policies:
  - { name: lo, clients: [127.0.0.1], query_types: { deny: [TXT] }, deny_with: nxdomain }
limits: { timeout_ms: 1500, max_tcp_connections: 64, tcp_idle_timeout_ms: 5000 }
log: { level: warn }
`);
});

after(async () => {
  await gw?.stop();
});

/** What a message is, and so what its answer must be. */
type Kind = 'upstream' | 'filtered' | 'formerr';

interface Message {
  kind: Kind;
  name: string;
}

const messageArb: fc.Arbitrary<Message> = fc.record({
  kind: fc.constantFrom<Kind>('upstream', 'upstream', 'filtered', 'formerr'),
  // a small pool, so some answers come from the cache (synchronously) and some from the upstream
  name: fc.integer({ min: 0, max: 30 }).map((n) => `n${n}.framing.example`),
});

function wire(m: Message, id: number): Buffer {
  if (m.kind === 'formerr') return header(id, 0x0100, 0, 0, 0, 0); // QDCOUNT 0
  return encodeQuery(m.name, { id, type: m.kind === 'filtered' ? 'TXT' : 'A' });
}

function frame(msg: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(msg.length);
  return Buffer.concat([len, msg]);
}

/** How the pieces are spaced: back to back, one event-loop turn apart, or a millisecond apart. */
type Gap = 'none' | 'immediate' | 'timer';

function pause(gap: Gap): Promise<void> {
  if (gap === 'none') return Promise.resolve();
  if (gap === 'immediate') return new Promise((r) => setImmediate(r));
  return new Promise((r) => setTimeout(r, 1));
}

test('a framed stream split at arbitrary points is answered message by message, each once', async () => {
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(messageArb, { minLength: 1, maxLength: 24 }),
      fc.array(fc.nat(), { maxLength: 40 }),
      fc.constantFrom<Gap>('none', 'immediate', 'timer'),
      fc.integer({ min: 0, max: 0xffff - 24 }),
      async (messages, cuts, gap, firstId) => {
        runs++;
        const ids = messages.map((_, i) => firstId + i);
        const stream = Buffer.concat(messages.map((m, i) => frame(wire(m, ids[i]))));
        const points = [...new Set(cuts.map((c) => c % stream.length))].sort((a, b) => a - b);
        const client = await TcpClient.connect(gw.port);
        try {
          client.socket.setNoDelay(true);
          let from = 0;
          for (const to of [...points, stream.length]) {
            if (to <= from) continue;
            client.socket.write(stream.subarray(from, to));
            from = to;
            await pause(gap);
          }
          await client.waitFor(messages.length, 4000);
          // anything answered twice would arrive by now
          await new Promise((r) => setTimeout(r, 20));
          assert.equal(client.closed, false, 'the gateway kept the connection');
          assert.equal(client.answers.length, messages.length, 'one answer per message');
          const seen = new Set<number>();
          for (const raw of client.answers) {
            const d = dnsPacket.decode(raw) as ReturnType<typeof dnsPacket.decode> & { rcode: string };
            const id = d.id ?? -1;
            const i = id - firstId;
            assert.ok(
              i >= 0 && i < messages.length && !seen.has(id),
              `answer ID ${id} unexpected or repeated`,
            );
            seen.add(id);
            const m = messages[i];
            if (m.kind === 'formerr') {
              assert.equal(d.rcode, 'FORMERR');
              continue;
            }
            assert.equal(d.questions?.[0]?.name, m.name);
            if (m.kind === 'filtered') {
              assert.equal(d.rcode, 'NXDOMAIN');
            } else {
              assert.equal(d.rcode, 'NOERROR');
              assert.deepEqual(
                d.answers?.map((a) => (a as { data?: unknown }).data),
                ['192.0.2.1'],
              );
            }
          }
        } finally {
          client.close();
        }
      },
    ),
    { numRuns: 60 },
  );
  assert.equal(runs >= 60, true);
});
