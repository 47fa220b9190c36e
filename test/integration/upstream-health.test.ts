// A server that fails TLS or its pin check is not re-handshaken per client query: it gets
// no queries until its background probe succeeds, its set fails over or answers SERVFAIL at
// once, and the log says so once per change of state. dns_tool_upstream_up follows it.
// Over real sockets: a UDP client, the gateway, in-process DoT servers behind TCP relays
// that count every connection the gateway opens.
import assert from 'node:assert/strict';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import { BACKOFF_MAX_MS } from '../../src/upstream/server.js';
import { makeCerts, type TestPki } from '../helpers/certs.js';
import { rcodeName, udpQuery } from '../helpers/dns-client.js';
import { serverEntry } from '../helpers/dot-fixture.js';
import { type DotServer, startDotServer } from '../helpers/dot-server.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { httpGet } from '../helpers/http.js';

/**
 * A TCP relay on loopback in front of a DoT server. `pipe` passes bytes both ways (TLS is
 * untouched: the gateway checks the real server's certificate), `reset` closes each
 * connection at once, `hold` accepts and never answers (a handshake that never ends).
 */
interface Relay {
  readonly port: number;
  readonly id: string;
  mode: 'pipe' | 'reset' | 'hold';
  /** TCP connections accepted so far. */
  readonly accepted: number;
  close(): Promise<void>;
}

async function startRelay(target: number, mode: Relay['mode']): Promise<Relay> {
  /** Both ends of every open relayed connection; bounded by what the gateway opens (a few). */
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
  };
  let accepted = 0;
  const server = net.createServer((client) => {
    accepted++;
    track(client);
    if (relay.mode === 'reset') {
      client.destroy();
      return;
    }
    if (relay.mode === 'hold') return;
    const upstream = net.connect({ host: '127.0.0.1', port: target });
    track(upstream);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  const relay: Relay = {
    port,
    id: `127.0.0.1:${port}`,
    mode,
    get accepted() {
      return accepted;
    },
    close: () =>
      new Promise<void>((done) => {
        for (const s of sockets) s.destroy();
        server.close(() => done());
      }),
  };
  return relay;
}

const SET_TIMEOUT_MS = 1000;
/** 60 client queries over 3 s, as in the report this fixes. */
const BURST = 60;
const SPACING_MS = 50;
/** The warm-up connection plus the probes that fit in the burst (1 s, then 2 s later), with room. */
const MAX_CONNECTIONS = 5;

let pki: TestPki;
let good: DotServer;
/** Valid certificate, but the gateway pins another key. */
let unpinned: DotServer;
let pairRelay: Relay;
let soloRelay: Relay;
let holdRelay: Relay;
let flakyRelay: Relay;
let gw: TestGateway;
let admin: number;

const CLIENT = { pair: '127.0.0.30', solo: '127.0.0.31', hold: '127.0.0.32', flaky: '127.0.0.33' };

function config(extraSet: 'spare' | 'extra'): string {
  const wrongPin = (port: number) => serverEntry(pki, port, pki.other.pin);
  const right = (port: number) => serverEntry(pki, port);
  const set = (servers: string[]) =>
    `{ timeout_ms: ${SET_TIMEOUT_MS}, connections: 1, servers: [${servers.join(', ')}] }`;
  return `
version: 1
listeners: [{ name: t, address: 127.0.0.1, port: 0, protocols: [udp] }]
upstreams:
  pair: ${set([wrongPin(pairRelay.port), right(good.port)])}
  solo: ${set([wrongPin(soloRelay.port)])}
  hold: ${set([right(holdRelay.port)])}
  flaky: ${set([right(flakyRelay.port)])}
  ${extraSet}: ${set([right(extraSet === 'spare' ? good.port : unpinned.port)])}
policies:
  - { name: pair, clients: [${CLIENT.pair}], upstream: pair, cache: false }
  - { name: solo, clients: [${CLIENT.solo}], upstream: solo, cache: false }
  - { name: hold, clients: [${CLIENT.hold}], upstream: hold, cache: false }
  - { name: flaky, clients: [${CLIENT.flaky}], upstream: flaky, cache: false }
limits: { timeout_ms: 1500 }
log: { level: info }
admin: { address: 127.0.0.1, port: 0 }
`;
}

before(async () => {
  pki = await makeCerts();
  good = await startDotServer({ key: pki.server.keyPem, cert: pki.server.certPem });
  unpinned = await startDotServer({ key: pki.server.keyPem, cert: pki.server.certPem });
  pairRelay = await startRelay(unpinned.port, 'pipe');
  soloRelay = await startRelay(unpinned.port, 'pipe');
  holdRelay = await startRelay(good.port, 'hold');
  flakyRelay = await startRelay(good.port, 'reset');
  gw = await startGateway(config('spare'));
  const address = gw.gateway.adminAddress();
  assert.ok(address, 'admin server bound');
  admin = address.port;
});

after(async () => {
  await gw?.stop();
  await Promise.all([pairRelay, soloRelay, holdRelay, flakyRelay].map((r) => r?.close()));
  await Promise.all([good, unpinned].map((d) => d?.close()));
  await pki?.cleanup();
});

/** dns_tool_upstream_up series as `set server` → value. */
async function upGauge(): Promise<Map<string, number>> {
  const reply = await httpGet(admin, '/metrics');
  assert.equal(reply.status, 200);
  const out = new Map<string, number>();
  for (const line of reply.body.split('\n')) {
    const m = /^dns_tool_upstream_up\{upstream="([^"]*)",server="([^"]*)"\} (\S+)$/.exec(line);
    if (m !== null) out.set(`${m[1]} ${m[2]}`, Number(m[3]));
  }
  return out;
}

/** Poll `cond` every 20 ms, failing after `ms`. */
async function eventually(what: string, cond: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const end = performance.now() + ms;
  while (!(await cond())) {
    if (performance.now() > end) assert.fail(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** `BURST` queries from `client`, one every SPACING_MS, each with its own name; rcodes and times. */
async function burst(client: string, label: string): Promise<{ rcode: string | undefined; ms: number }[]> {
  const pending: Promise<{ rcode: string | undefined; ms: number }>[] = [];
  for (let i = 0; i < BURST; i++) {
    const started = performance.now();
    pending.push(
      udpQuery(gw.port, `q${i}.${label}.example`, { from: client, timeoutMs: 3000 }).then((a) => ({
        rcode: rcodeName(a),
        ms: performance.now() - started,
      })),
    );
    await new Promise((r) => setTimeout(r, SPACING_MS));
  }
  return Promise.all(pending);
}

/** Warn-or-worse log lines about one upstream server. */
const warnings = (id: string) => gw.logs.filter((l) => l.upstream === id && Number(l.level) >= 40);
const infos = (id: string) => gw.logs.filter((l) => l.upstream === id && l.level === 30);

describe('a down server is not re-handshaken per client query', () => {
  test('dns_tool_upstream_up lists every configured server from startup, used or not', async () => {
    const gauge = await upGauge();
    assert.deepEqual(
      [...gauge.keys()].sort(),
      [
        `pair ${pairRelay.id}`,
        `pair ${good.id}`,
        `solo ${soloRelay.id}`,
        `hold ${holdRelay.id}`,
        `flaky ${flakyRelay.id}`,
        `spare ${good.id}`,
      ].sort(),
    );
    for (const value of gauge.values()) assert.ok(value === 0 || value === 1);
  });

  test('wrong pin, a second server in the set: it answers all 60, the failing one sees only probes', async () => {
    await eventually('pair: the wrong-pin server is down', () => warnings(pairRelay.id).length > 0, 3000);
    const before = good.queries;
    const results = await burst(CLIENT.pair, 'pair');
    assert.deepEqual(
      results.map((r) => r.rcode),
      Array(BURST).fill('NOERROR'),
    );
    assert.equal(good.queries - before, BURST, 'every query answered by the good server');
    assert.ok(
      pairRelay.accepted <= MAX_CONNECTIONS,
      `${pairRelay.accepted} connections to the failing server`,
    );
    assert.equal(warnings(pairRelay.id).length, 1, 'one down line');
    const gauge = await upGauge();
    assert.equal(gauge.get(`pair ${pairRelay.id}`), 0);
    assert.equal(gauge.get(`pair ${good.id}`), 1);
  });

  test('wrong pin, the only server: SERVFAIL at once for each of 60 queries, one down line', async () => {
    await eventually('solo: the wrong-pin server is down', () => warnings(soloRelay.id).length > 0, 3000);
    const results = await burst(CLIENT.solo, 'solo');
    assert.deepEqual(
      results.map((r) => r.rcode),
      Array(BURST).fill('SERVFAIL'),
    );
    // "At once": long before the attempt's timeout could have expired.
    const slowest = Math.max(...results.map((r) => r.ms));
    assert.ok(slowest < SET_TIMEOUT_MS / 2, `slowest SERVFAIL after ${slowest.toFixed(0)} ms`);
    assert.ok(
      soloRelay.accepted <= MAX_CONNECTIONS,
      `${soloRelay.accepted} connections to the failing server`,
    );
    const down = warnings(soloRelay.id);
    assert.equal(down.length, 1, `one down line, got ${down.length}`);
    assert.match(String(down[0].msg), /pin mismatch/);
    assert.ok(
      (gw.gateway.counters.pinFailures.get(soloRelay.id) ?? 0) <= MAX_CONNECTIONS,
      'pin failures: one per handshake, not per query',
    );
    assert.equal((await upGauge()).get(`solo ${soloRelay.id}`), 0);
  });

  test('a handshake that never completes: after the first timeout, SERVFAIL at once, not after timeout_ms', async () => {
    await eventually('hold: the handshake timed out', () => warnings(holdRelay.id).length > 0, 3000);
    const results = await burst(CLIENT.hold, 'hold');
    assert.deepEqual(
      results.map((r) => r.rcode),
      Array(BURST).fill('SERVFAIL'),
    );
    const slowest = Math.max(...results.map((r) => r.ms));
    assert.ok(slowest < SET_TIMEOUT_MS / 2, `slowest SERVFAIL after ${slowest.toFixed(0)} ms`);
    assert.ok(
      holdRelay.accepted <= MAX_CONNECTIONS,
      `${holdRelay.accepted} connections to the silent server`,
    );
    assert.equal(warnings(holdRelay.id).length, 1);
  });

  test('the probe brings a server back: queries reach it again, one up line, gauge 1', async () => {
    await eventually('flaky: down', () => warnings(flakyRelay.id).length > 0, 3000);
    assert.equal(
      rcodeName(await udpQuery(gw.port, 'before.flaky.example', { from: CLIENT.flaky })),
      'SERVFAIL',
    );
    assert.equal((await upGauge()).get(`flaky ${flakyRelay.id}`), 0);
    flakyRelay.mode = 'pipe';
    await eventually(
      'flaky: up again',
      async () => (await upGauge()).get(`flaky ${flakyRelay.id}`) === 1,
      BACKOFF_MAX_MS + 1000,
    );
    assert.ok(good.names.includes('.'), 'the probe asked for the root');
    const probes = good.rawQueries.filter((q) => q.length > 12 && q[12] === 0);
    assert.ok(probes.length > 0);
    for (const probe of probes)
      assert.equal(probe.length % 128, 0, 'probes are padded like every upstream query');
    assert.equal(
      rcodeName(await udpQuery(gw.port, 'after.flaky.example', { from: CLIENT.flaky })),
      'NOERROR',
    );
    assert.equal(warnings(flakyRelay.id).length, 1, 'one down line');
    assert.equal(infos(flakyRelay.id).filter((l) => /up again/.test(String(l.msg))).length, 1, 'one up line');
  });

  test('dns_tool_upstream_up follows a reload: servers that left are removed, new ones appear', async () => {
    await gw.write(config('extra'));
    assert.equal((await gw.gateway.reload()).result, 'success');
    const gauge = await upGauge();
    assert.equal(gauge.has(`spare ${good.id}`), false, 'the removed set is gone');
    assert.ok(gauge.has(`extra ${unpinned.id}`), 'the new set is exposed');
    assert.equal(gauge.get(`pair ${good.id}`), 1, 'unchanged servers keep their state');
    assert.equal(gauge.get(`solo ${soloRelay.id}`), 0);
  });
});
