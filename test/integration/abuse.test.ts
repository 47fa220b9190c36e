// Client abuse over real loopback sockets: thousands of idle TCP connections, slowloris,
// connection floods past the cap and a UDP flood from many source addresses under a rate
// limit. Throughout each, well-behaved UDP and TCP clients must get every answer. Only
// correctness is asserted; bench/abuse.ts reports loss and latency for the same attacks.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  connectionFlood,
  idleConnections,
  loopbackSources,
  type Probe,
  slowloris,
  tcpProbe,
  udpFlood,
  udpProbe,
} from '../helpers/abuse.js';
import { rcodeName, tcpQuery } from '../helpers/dns-client.js';
import { useDotUpstream } from '../helpers/dot-fixture.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/ports.js';

const upstream = useDotUpstream();
before(() => upstream.ready());

function config(port: number, limits: string, rateLimit = ''): string {
  return `
version: 1
listeners:
  - { name: v4, address: 127.0.0.1, port: ${port} }
  - { name: v6, address: "::1", port: ${port} }
upstreams:
  default:
    connections: 2
    servers:
      - ${upstream.serverEntry()}
policies:
  - { name: lo, clients: [127.0.0.0/8, "::1"], upstream: default ${rateLimit} }
limits: { timeout_ms: 2000, ${limits} }
log: { level: error }
`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function within(ms: number, cond: () => boolean): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}

/** The most TCP connections the gateway held at any sample while `run` ran. */
async function sampleConnections<T>(gw: TestGateway, run: Promise<T>): Promise<{ result: T; max: number }> {
  let max = 0;
  let running = true;
  const sampler = (async () => {
    while (running) {
      for (const l of gw.gateway.boundListeners()) max = Math.max(max, l.connections ?? 0);
      await sleep(5);
    }
  })();
  const result = await run;
  running = false;
  await sampler;
  return { result, max };
}

/** The well-behaved clients: UDP from 127.0.0.2 and a persistent TCP connection from 127.0.0.3. */
async function startProbes(port: number): Promise<Probe[]> {
  return [
    await udpProbe(port, { qps: 20, from: '127.0.0.2', maxQueries: 400 }),
    await tcpProbe(port, { qps: 20, from: '127.0.0.3', maxQueries: 400 }),
  ];
}

async function assertAllAnswered(probes: Probe[]): Promise<void> {
  const [udp, tcp] = await Promise.all(probes.map((p) => p.stop()));
  for (const [name, s] of [
    ['UDP', udp],
    ['TCP', tcp],
  ] as const) {
    assert.ok(s.sent >= 10, `${name} probe sent ${s.sent}`);
    assert.equal(s.answered, s.sent, `${name}: every query of the well-behaved client answered`);
    assert.equal(s.errors, 0, `${name}: every answer NOERROR`);
  }
}

describe('client abuse', () => {
  let gw: TestGateway | undefined;
  after(async () => {
    await gw?.stop();
  });

  test('2,000 idle connections against max_tcp_connections 500: the cap holds, each is destroyed, clients are served', async () => {
    gw = await startGateway(config(await freePort(), 'max_tcp_connections: 500, tcp_idle_timeout_ms: 1500'));
    const probes = await startProbes(gw.port);
    const sources = loopbackSources(50, 10);
    const { result: idle, max } = await sampleConnections(gw, idleConnections(gw.port, 2000, { sources }));
    try {
      assert.equal(idle.made, 2000, 'every handshake completed (the kernel accepts before the cap)');
      assert.ok(max <= 500, `the gateway held ${max} connections`);
      // Those over the cap were closed at once; the rest when idle — although none closes its side.
      assert.ok(
        await within(10_000, () => idle.closedByServer() === 2000),
        'every idle connection destroyed',
      );
      const res = await tcpQuery(gw.port, 'after-idle.example', { from: '127.0.0.4' });
      assert.equal(rcodeName(res), 'NOERROR', 'a new client is served afterwards');
      await assertAllAnswered(probes);
    } finally {
      idle.close();
      await gw.stop();
      gw = undefined;
    }
  });

  test('slowloris: 400 connections trickling partial frames are destroyed; clients are served', async () => {
    gw = await startGateway(config(await freePort(), 'max_tcp_connections: 450, tcp_idle_timeout_ms: 800'));
    const probes = await startProbes(gw.port);
    const loris = await slowloris(gw.port, 400, {
      everyMs: 100,
      maxMs: 8000,
      sources: loopbackSources(40, 10),
    });
    try {
      assert.equal(loris.made, 400);
      await loris.done;
      assert.equal(loris.closedByServer(), 400, 'every trickling connection destroyed while it trickled');
      const res = await tcpQuery(gw.port, 'after-loris.example', { from: '127.0.0.4' });
      assert.equal(rcodeName(res), 'NOERROR');
      await assertAllAnswered(probes);
    } finally {
      loris.close();
      await gw.stop();
      gw = undefined;
    }
  });

  test('a connection flood past the cap: the cap holds, the excess is closed at once, clients are served', async () => {
    gw = await startGateway(config(await freePort(), 'max_tcp_connections: 50, tcp_idle_timeout_ms: 5000'));
    const probes = await startProbes(gw.port);
    const { result: flood, max } = await sampleConnections(
      gw,
      connectionFlood(gw.port, {
        maxAttempts: 5000,
        durationMs: 6000,
        concurrency: 200,
        holdMs: 300,
        sources: loopbackSources(100, 10),
      }),
    );
    assert.ok(flood.attempts >= 500, `${flood.attempts} attempts`);
    assert.ok(flood.closedByServer > 0, 'connections over the cap were closed by the gateway');
    assert.ok(max <= 50, `the gateway held ${max} connections (cap 50)`);
    const res = await tcpQuery(gw.port, 'after-flood.example', { from: '127.0.0.4' });
    assert.equal(rcodeName(res), 'NOERROR', 'a new client is served after the flood');
    await assertAllAnswered(probes);
    await gw.stop();
    gw = undefined;
  });

  test('a UDP flood from 200 IPv4 sources and ::1 under a per-client rate limit: each flooder is held to its limit, clients are served', async () => {
    gw = await startGateway(
      config(
        await freePort(),
        'max_rate_limit_buckets: 1000',
        ', rate_limit: { qps: 10, burst: 10, scope: client, exceed: drop }',
      ),
    );
    // The well-behaved clients share the flooders' policy and ask at 5 qps, under their own
    // limit of 10. The flood is paced (20 per source per second, twice the limit) so that it
    // tests the limiter, not how many packets a shared event loop can read: bench/abuse.ts
    // floods at full speed against a gateway in its own process.
    const probes = [
      await udpProbe(gw.port, { qps: 5, from: '127.0.0.2', maxQueries: 100 }),
      await tcpProbe(gw.port, { qps: 5, from: '127.0.0.3', maxQueries: 100 }),
    ];
    const sources = [...loopbackSources(200, 10), '::1'];
    const started = Date.now();
    const flood = await udpFlood(gw.port, sources, { maxPackets: 20_000, durationMs: 4000, pps: 4000 });
    const seconds = (Date.now() - started) / 1000;
    assert.ok(flood.sent >= 5000, `${flood.sent} packets sent`);
    assert.ok(flood.answered < flood.sent, 'the limiter dropped part of the flood');
    // burst + qps × duration per source, with a second of slack for timing.
    const allowed = 10 + 10 * (seconds + 1);
    for (const from of sources) {
      const got = flood.answeredBy.get(from) ?? 0;
      assert.ok(got <= allowed, `${from} got ${got} answers, limit ${allowed.toFixed(0)}`);
    }
    assert.ok((flood.answeredBy.get('::1') ?? 0) > 0, 'the IPv6 flooder reached the gateway');
    await assertAllAnswered(probes);
    await gw.stop();
    gw = undefined;
  });
});
