// The listeners under clients that misbehave and across shutdown and reload, through real
// sockets on loopback: idle and trickling TCP clients, one connection flooding queries, UDP
// queries in flight while a listener closes, and per-packet socket errors.
import assert from 'node:assert/strict';
import type dgram from 'node:dgram';
import net from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import * as dnsPacket from 'dns-packet';
import { TcpListener } from '../../src/listeners/tcp.js';
import { UdpListener } from '../../src/listeners/udp.js';
import { createLogger } from '../../src/log.js';
import type { QueryEntry } from '../../src/pipeline/entry.js';
import { encodeQuery, rcodeName, TcpClient, tcpQuery, udpQuery } from '../helpers/dns-client.js';
import { useDotUpstream } from '../helpers/dot-fixture.js';
import { startGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/ports.js';

const upstream = useDotUpstream();

before(() => upstream.ready());
after(() => {
  upstream.dot.behaviour.delayMs = 0;
});

function config(port: number, limits: string, extraListeners = ''): string {
  return `
version: 1
listeners:
  - { name: a, address: 127.0.0.1, port: ${port} }
${extraListeners}
upstreams:
  default:
    timeout_ms: 2500
    connections: 1
    servers:
      - ${upstream.serverEntry()}
policies:
  - { name: lo, clients: [127.0.0.0/8], upstream: default, cache: false }
limits: { timeout_ms: 3000, ${limits} }
log: { level: warn }
`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Poll `cond` every 10 ms for at most `ms`; true when it held. */
async function within(ms: number, cond: () => boolean): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await sleep(10);
  }
  return true;
}

/**
 * A raw client that never closes its side (allowHalfOpen): after the server's FIN it keeps
 * the connection half open for ever, as a hostile or broken client would.
 */
function stubbornClient(port: number): Promise<{ socket: net.Socket; ended: () => boolean }> {
  return new Promise((resolve, reject) => {
    let ended = false;
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    socket.on('end', () => {
      ended = true;
    });
    socket.on('close', () => {
      ended = true;
    });
    socket.on('error', () => {});
    socket.once('connect', () => resolve({ socket, ended: () => ended }));
    socket.once('error', reject);
  });
}

function framed(msg: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(msg.length);
  return Buffer.concat([len, msg]);
}

describe('TCP idle timeout', () => {
  test('two silent clients that never close do not lock TCP out at max_tcp_connections: 2', async () => {
    const g = await startGateway(
      config(await freePort(), 'max_tcp_connections: 2, tcp_idle_timeout_ms: 300'),
    );
    const silent = [await stubbornClient(g.port), await stubbornClient(g.port)];
    try {
      // Both slots taken: a third connection is closed at once.
      const extra = await TcpClient.connect(g.port);
      await extra.waitFor(1, 1000);
      assert.equal(extra.closed, true, 'over the cap while the silent clients hold the slots');
      // Past the idle timeout the silent connections must be gone from the server, although
      // neither client ever closes its side.
      assert.ok(
        await within(3000, () => silent.every((c) => c.ended())),
        'the server closed both silent connections',
      );
      const res = await tcpQuery(g.port, 'after-idle.example', { id: 77 });
      assert.equal(res?.id, 77, 'a new client is served: the slots were released');
      assert.equal(rcodeName(res), 'NOERROR');
    } finally {
      for (const c of silent) c.socket.destroy();
      await g.stop();
    }
  });

  test('slowloris: a client trickling a frame byte by byte is destroyed at the idle timeout', async () => {
    const g = await startGateway(
      config(await freePort(), 'max_tcp_connections: 1, tcp_idle_timeout_ms: 300'),
    );
    const c = await stubbornClient(g.port);
    try {
      // A frame announcing 512 bytes, then one byte every 40 ms: activity, but never a message.
      c.socket.write(Buffer.from([0x02, 0x00]));
      let sent = 0;
      while (!c.ended() && sent < 100) {
        c.socket.write(Buffer.from([0x41]));
        sent++;
        await sleep(40);
      }
      assert.equal(c.ended(), true, `cut while trickling (after ${sent} of 512 bytes)`);
      assert.ok(sent < 100, 'the trickle did not keep the connection alive');
      const res = await tcpQuery(g.port, 'after-slowloris.example', { id: 78 });
      assert.equal(res?.id, 78, 'its slot (the only one) serves a new client');
    } finally {
      c.socket.destroy();
      await g.stop();
    }
  });

  test('a connection whose query is still in flight is not cut at the idle timeout', async () => {
    const g = await startGateway(config(await freePort(), 'tcp_idle_timeout_ms: 200'));
    upstream.dot.behaviour.delayMs = 700;
    const c = await TcpClient.connect(g.port);
    try {
      c.send(encodeQuery('slow-inflight.example', { id: 79 }));
      const [a] = await c.waitFor(1, 3000);
      assert.ok(a, 'answered after more than the idle timeout');
      assert.equal(dnsPacket.decode(a).id, 79);
      // Idle after the answer: now it goes.
      await c.waitFor(2, 2000);
      assert.equal(c.closed, true, 'closed once idle after the answer');
    } finally {
      upstream.dot.behaviour.delayMs = 0;
      c.close();
      await g.stop();
    }
  });
});

describe('TCP framing', () => {
  test('30 queries cut into pieces of 1 to 7 bytes, across message boundaries, are all answered', async () => {
    const g = await startGateway(config(await freePort(), 'tcp_idle_timeout_ms: 5000'));
    const c = await TcpClient.connect(g.port);
    try {
      c.socket.setNoDelay(true);
      const ids = Array.from({ length: 30 }, (_, i) => 700 + i);
      const stream = Buffer.concat(ids.map((id) => framed(encodeQuery(`piece${id}.example`, { id }))));
      let seed = 7;
      for (let at = 0; at < stream.length; ) {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        const size = 1 + (seed % 7);
        c.socket.write(stream.subarray(at, at + size));
        at += size;
        await sleep(1);
      }
      const answers = await c.waitFor(30, 5000);
      assert.deepEqual(answers.map((a) => dnsPacket.decode(a).id).sort(), ids);
    } finally {
      c.close();
      await g.stop();
    }
  });
});

describe('TCP queries in flight per connection', () => {
  test('past max_tcp_inflight_per_connection the connection is not read until answers drain', async () => {
    const g = await startGateway(
      config(await freePort(), 'max_tcp_inflight_per_connection: 2, tcp_idle_timeout_ms: 5000'),
    );
    upstream.dot.behaviour.delayMs = 600;
    const c = await TcpClient.connect(g.port);
    try {
      const ids = [501, 502, 503, 504, 505, 506];
      const names = ids.map((id) => `cap${id}.example`);
      const seenBefore = upstream.dot.names.length;
      const seen = () => upstream.dot.names.slice(seenBefore);
      // All six in one write: the gateway has them in one read.
      c.socket.write(Buffer.concat(ids.map((id, i) => framed(encodeQuery(names[i], { id })))));
      assert.ok(await within(2000, () => seen().length >= 2), 'the first two reach the upstream');
      await sleep(150); // well inside the upstream's 600 ms: nothing is answered yet
      assert.deepEqual(
        [...new Set(seen())].sort(),
        names.slice(0, 2),
        'only two queries of the connection in flight',
      );
      const answers = await c.waitFor(6, 8000);
      assert.equal(answers.length, 6, 'every query answered once answers drained');
      assert.deepEqual(answers.map((a) => dnsPacket.decode(a).id).sort(), ids);
      assert.equal(c.closed, false);
    } finally {
      upstream.dot.behaviour.delayMs = 0;
      c.close();
      await g.stop();
    }
  });
});

describe('UDP listeners drain', () => {
  test('a reload that removes a UDP listener answers its queries in flight from it, then closes it', async () => {
    const port = await freePort();
    const gonePort = await freePort();
    const g = await startGateway(
      config(port, 'tcp_idle_timeout_ms: 5000', `  - { name: b, address: 127.0.0.1, port: ${gonePort} }`),
    );
    upstream.dot.behaviour.delayMs = 400;
    try {
      const seen = upstream.dot.queries;
      const pending = udpQuery(gonePort, 'reload-drain.example', { id: 91, timeoutMs: 3000 });
      assert.ok(await within(2000, () => upstream.dot.queries > seen), 'query in flight');
      await g.write(config(port, 'tcp_idle_timeout_ms: 5000'));
      const reloading = g.gateway.reload();
      const res = await pending;
      const result = await reloading;
      assert.equal(result.result, 'success');
      assert.ok(res, 'answered by the removed listener before it closed');
      assert.equal(res.id, 91);
      assert.equal(rcodeName(res), 'NOERROR');
      upstream.dot.behaviour.delayMs = 0;
      assert.equal(await udpQuery(gonePort, 'gone.example', { timeoutMs: 300 }), null, 'then it is closed');
      assert.equal(rcodeName(await udpQuery(port, 'kept.example')), 'NOERROR');
    } finally {
      upstream.dot.behaviour.delayMs = 0;
      await g.stop();
    }
  });
});

/** A logger writing parsed lines into `lines`. */
function capturingLogger(lines: Record<string, unknown>[]) {
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line.trim()) lines.push(JSON.parse(line));
      cb();
    },
  });
  return createLogger('warn', sink);
}

function countsByKind(lines: Record<string, unknown>[], msg: string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const l of lines.filter((l) => String(l.msg).startsWith(msg)))
    counts[String(l.kind)] = (counts[String(l.kind)] ?? 0) + Number(l.count);
  return counts;
}

describe('socket errors', () => {
  const entry = { handle: () => null } as unknown as QueryEntry;

  test('a flood of UDP socket errors logs one line per kind per interval, with the count', async () => {
    const lines: Record<string, unknown>[] = [];
    const listener = new UdpListener('127.0.0.1', 0, entry, capturingLogger(lines), 60_000);
    await listener.listen();
    // The errors the kernel reports per packet (ICMP bursts, EMSGSIZE), emitted on the real socket.
    const socket = (listener as unknown as { socket: dgram.Socket }).socket;
    for (let i = 0; i < 1000; i++) {
      const err: NodeJS.ErrnoException = new Error('send EMSGSIZE');
      err.code = i % 10 === 0 ? 'ECONNREFUSED' : 'EMSGSIZE';
      socket.emit('error', err);
    }
    await listener.close();
    await new Promise((r) => setImmediate(r));
    const errorLines = lines.filter((l) => String(l.msg).startsWith('udp socket error'));
    assert.ok(errorLines.length <= 4, `${errorLines.length} lines for 1000 errors`);
    assert.deepEqual(countsByKind(lines, 'udp socket error'), { EMSGSIZE: 900, ECONNREFUSED: 100 });
  });

  test('a flood of TCP accept errors (EMFILE) logs one line per kind per interval, with the count', async () => {
    const lines: Record<string, unknown>[] = [];
    const limits = () => ({ maxTcpConnections: 10, tcpIdleTimeoutMs: 1000, maxTcpInflightPerConnection: 8 });
    const listener = new TcpListener('127.0.0.1', 0, entry, limits, capturingLogger(lines));
    await listener.listen();
    const server = (listener as unknown as { server: net.Server }).server;
    for (let i = 0; i < 500; i++) {
      const err: NodeJS.ErrnoException = new Error('accept EMFILE');
      err.code = 'EMFILE';
      server.emit('error', err);
    }
    await listener.close();
    await new Promise((r) => setImmediate(r));
    const errorLines = lines.filter((l) => String(l.msg).startsWith('tcp server error'));
    assert.ok(errorLines.length <= 2, `${errorLines.length} lines for 500 errors`);
    assert.deepEqual(countsByKind(lines, 'tcp server error'), { EMFILE: 500 });
  });
});
