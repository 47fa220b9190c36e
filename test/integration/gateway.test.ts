// The gateway through real sockets: UDP and TCP clients on loopback, an in-process DoT
// upstream with test certificates, per-network policies.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import * as dnsPacket from 'dns-packet';
import { encodeQuery, rcodeName, TcpClient, tcpQuery, udpExchange, udpQuery } from '../helpers/dns-client.js';
import { useDotUpstream } from '../helpers/dot-fixture.js';
import { defaultAnswer } from '../helpers/dot-server.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/ports.js';

const upstream = useDotUpstream();
let gw: TestGateway;
let listenPort: number;

function config(extra = '', port = 0): string {
  return `
version: 1
listeners: [{ name: t, address: 127.0.0.1, port: ${port || listenPort} }]
upstreams:
  default:
    timeout_ms: 500
    connections: 1
    servers:
      - ${upstream.serverEntry()}
  badpin:
    timeout_ms: 300
    servers:
      - ${upstream.serverEntry({ pin: upstream.pki.other.pin })}
policies:
  - { name: lo, clients: [127.0.0.1], upstream: default }
  - { name: two, clients: [127.0.0.2], upstream: default, query_types: { deny: [TXT] }, deny_with: nxdomain }
  - { name: three, clients: [127.0.0.3/32], action: deny, deny_with: refused }
  - { name: five, clients: [127.0.0.5], upstream: badpin }
  - { name: six, clients: [127.0.0.6], action: deny, deny_with: drop }
limits: { timeout_ms: 800, max_tcp_connections: 4, tcp_idle_timeout_ms: 300 }
log: { level: warn }
${extra}`;
}

before(async () => {
  await upstream.ready();
  listenPort = await freePort();
  gw = await startGateway(config());
});

after(async () => {
  await gw?.stop();
});

describe('answers over UDP and TCP', () => {
  test('UDP answer comes from the DoT upstream with the client ID', async () => {
    const res = await udpQuery(gw.port, 'a.example', { id: 1234 });
    assert.ok(res);
    assert.equal(res.id, 1234);
    assert.equal(rcodeName(res), 'NOERROR');
    assert.deepEqual(
      res.answers?.map((a) => (a as { data?: unknown }).data),
      ['192.0.2.1'],
    );
  });

  test('TCP answer equals the UDP answer', async () => {
    const u = await udpQuery(gw.port, 'same.example', { id: 7 });
    const t = await tcpQuery(gw.port, 'same.example', { id: 7 });
    assert.deepEqual(t?.answers, u?.answers);
    assert.deepEqual(t?.questions, u?.questions);
  });

  test('question case is preserved', async () => {
    const res = await udpQuery(gw.port, 'MiXeD.Example', { id: 9 });
    assert.equal(res?.questions?.[0].name, 'MiXeD.Example');
  });
});

describe('per-network policy', () => {
  test('127.0.0.2 has TXT filtered with NXDOMAIN, A allowed', async () => {
    const txt = await udpQuery(gw.port, 'x.example', { from: '127.0.0.2', type: 'TXT' });
    assert.equal(rcodeName(txt), 'NXDOMAIN');
    const a = await udpQuery(gw.port, 'x.example', { from: '127.0.0.2', type: 'A' });
    assert.equal(rcodeName(a), 'NOERROR');
    assert.equal(a?.answers?.length, 1);
  });

  test('127.0.0.3 is denied with REFUSED over UDP and TCP', async () => {
    assert.equal(rcodeName(await udpQuery(gw.port, 'a.example', { from: '127.0.0.3' })), 'REFUSED');
    assert.equal(rcodeName(await tcpQuery(gw.port, 'a.example', { from: '127.0.0.3' })), 'REFUSED');
  });

  test('deny_with drop sends nothing', async () => {
    const res = await udpQuery(gw.port, 'a.example', { from: '127.0.0.6', timeoutMs: 300 });
    assert.equal(res, null);
  });

  test('an unmatched client is REFUSED and counted', async () => {
    const before = gw.gateway.counters.forPolicy('').unmatched;
    assert.equal(rcodeName(await udpQuery(gw.port, 'a.example', { from: '127.0.0.4' })), 'REFUSED');
    assert.equal(gw.gateway.counters.forPolicy('').unmatched, before + 1);
  });

  test('a pin mismatch gives SERVFAIL within limits.timeout_ms', async () => {
    const started = Date.now();
    const res = await udpQuery(gw.port, 'a.example', { from: '127.0.0.5', timeoutMs: 3000 });
    const took = Date.now() - started;
    assert.equal(rcodeName(res), 'SERVFAIL');
    assert.ok(took <= 800 + 200, `took ${took} ms`);
    assert.ok((gw.gateway.counters.pinFailures.get(`127.0.0.1:${upstream.dot.port}`) ?? 0) >= 1);
  });
});

describe('bad input', () => {
  test('QR=1 and garbage are dropped and counted; the process keeps serving', async () => {
    const before = gw.gateway.counters.malformed;
    const response = encodeQuery('a.example');
    response[2] |= 0x80;
    assert.equal(await udpExchange(gw.port, response, { timeoutMs: 200 }), null);
    assert.equal(await udpExchange(gw.port, Buffer.from([1, 2, 3]), { timeoutMs: 200 }), null);
    assert.equal(gw.gateway.counters.malformed, before + 2);
    assert.equal(rcodeName(await udpQuery(gw.port, 'still.example')), 'NOERROR');
  });

  test('QDCOUNT 2 → FORMERR, opcode NOTIFY → NOTIMP', async () => {
    const two = dnsPacket.encode({
      type: 'query',
      id: 5,
      questions: [
        { type: 'A', name: 'a.example' },
        { type: 'A', name: 'b.example' },
      ],
    });
    const r1 = await udpExchange(gw.port, two);
    assert.ok(r1);
    assert.equal(r1[3] & 0x0f, 1);
    assert.equal(r1.readUInt16BE(0), 5);
    const notify = encodeQuery('a.example', { id: 6 });
    notify[2] = (notify[2] & 0x87) | (4 << 3);
    const r2 = await udpExchange(gw.port, notify);
    assert.ok(r2);
    assert.equal(r2[3] & 0x0f, 4);
  });

  test('malformed message on TCP closes the connection', async () => {
    const c = await TcpClient.connect(gw.port);
    c.send(Buffer.from([0, 1, 2]));
    await c.waitFor(1, 1000);
    assert.equal(c.closed, true);
    assert.equal(c.answers.length, 0);
  });
});

describe('TCP per RFC 7766', () => {
  test('20 pipelined queries on one connection, each answered with its own ID', async () => {
    const c = await TcpClient.connect(gw.port);
    try {
      const ids = Array.from({ length: 20 }, (_, i) => 1000 + i);
      // one write holding all 20 framed queries
      const framed = Buffer.concat(
        ids.map((id) => {
          const q = encodeQuery(`p${id}.example`, { id });
          const len = Buffer.alloc(2);
          len.writeUInt16BE(q.length);
          return Buffer.concat([len, q]);
        }),
      );
      c.socket.write(framed);
      const answers = await c.waitFor(20, 3000);
      assert.equal(answers.length, 20);
      const got = answers.map((a) => dnsPacket.decode(a)).map((p) => [p.id, p.questions?.[0].name]);
      assert.deepEqual(
        got.sort((a, b) => (a[0] as number) - (b[0] as number)),
        ids.map((id) => [id, `p${id}.example`]),
      );
    } finally {
      c.close();
    }
  });

  test('a message split across many chunks is reassembled', async () => {
    const c = await TcpClient.connect(gw.port);
    try {
      const q = encodeQuery('split.example', { id: 4321 });
      const len = Buffer.alloc(2);
      len.writeUInt16BE(q.length);
      const all = Buffer.concat([len, q]);
      for (let i = 0; i < all.length; i++) {
        c.socket.write(all.subarray(i, i + 1));
        await new Promise((r) => setTimeout(r, 1));
      }
      const [a] = await c.waitFor(1);
      assert.equal(dnsPacket.decode(a).id, 4321);
    } finally {
      c.close();
    }
  });

  test('idle connections are closed after tcp_idle_timeout_ms', async () => {
    const c = await TcpClient.connect(gw.port);
    await c.waitFor(1, 1500);
    assert.equal(c.closed, true);
  });

  test('connections over the cap are closed at once', async () => {
    const clients = await Promise.all(Array.from({ length: 4 }, () => TcpClient.connect(gw.port)));
    try {
      const extra = await TcpClient.connect(gw.port);
      await extra.waitFor(1, 500);
      assert.equal(extra.closed, true);
      // the ones under the cap still answer
      clients[0].send(encodeQuery('cap.example', { id: 3 }));
      const [a] = await clients[0].waitFor(1);
      assert.equal(dnsPacket.decode(a).id, 3);
    } finally {
      for (const c of clients) c.close();
    }
  });
});

describe('UDP size', () => {
  test('an answer larger than 512 without EDNS is truncated; TCP gets it whole', async () => {
    upstream.dot.behaviour.answer = (query) => {
      const q = query.questions?.[0];
      if (q?.name !== 'big.example') return defaultAnswer(query);
      return {
        type: 'response',
        id: query.id,
        flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
        questions: query.questions,
        answers: Array.from({ length: 40 }, (_, i) => ({
          name: q.name,
          type: 'A' as const,
          ttl: 60,
          data: `198.51.100.${i}`,
        })),
      };
    };
    try {
      const udp = await udpQuery(gw.port, 'big.example', { id: 11 });
      assert.equal((udp as { flag_tc?: boolean } | null)?.flag_tc, true);
      assert.equal(udp?.answers?.length, 0);
      const withEdns = await udpQuery(gw.port, 'big.example', { id: 12, edns: 1232 });
      assert.equal((withEdns as { flag_tc?: boolean } | null)?.flag_tc, false);
      assert.equal(withEdns?.answers?.length, 40);
      const tcp = await tcpQuery(gw.port, 'big.example', { id: 13 });
      assert.equal(tcp?.answers?.length, 40);
    } finally {
      upstream.dot.behaviour.answer = defaultAnswer;
    }
  });
});

describe('lifecycle', () => {
  test('a port already in use is a clear error', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      await assert.rejects(
        startGateway(config('', port)),
        /cannot listen on tcp 127\.0\.0\.1:\d+: address already in use/,
      );
    } finally {
      blocker.close();
    }
  });

  test('stop() lets in-flight UDP queries finish: the answer goes out before the socket closes', async () => {
    const g = await startGateway(config('', await freePort()));
    upstream.dot.behaviour.delayMs = 150;
    try {
      const seen = upstream.dot.queries;
      const pending = udpQuery(g.port, 'slow.example', { id: 4242, timeoutMs: 2000 });
      // Stop once the query is surely in flight: the upstream has it.
      for (let i = 0; i < 200 && upstream.dot.queries === seen; i++)
        await new Promise((r) => setTimeout(r, 5));
      assert.equal(g.gateway.inFlight, 1, 'the query is in flight when stop() begins');
      const stopping = g.stop();
      const res = await pending;
      await stopping;
      assert.ok(res, 'answered, not dropped by a closed socket');
      assert.equal(res.id, 4242);
      assert.equal(rcodeName(res), 'NOERROR');
    } finally {
      upstream.dot.behaviour.delayMs = 0;
    }
  });

  test('stop() drains TCP in-flight queries before closing', async () => {
    const g = await startGateway(config('', await freePort()));
    upstream.dot.behaviour.delayMs = 150;
    try {
      const c = await TcpClient.connect(g.port);
      c.send(encodeQuery('drain.example', { id: 99 }));
      await new Promise((r) => setTimeout(r, 30));
      const stopping = g.stop();
      const [a] = await c.waitFor(1, 2000);
      await stopping;
      assert.ok(a, 'answer before close');
      assert.equal(dnsPacket.decode(a).id, 99);
    } finally {
      upstream.dot.behaviour.delayMs = 0;
    }
  });
});
