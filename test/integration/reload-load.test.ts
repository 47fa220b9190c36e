// Proves that no query is lost to a reload: a paced UDP and TCP query stream runs while the
// config is rewritten and reloaded every 250 ms, and every query must get a NOERROR answer.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { after, before, test } from 'node:test';
import { encodeQuery, TcpClient } from '../helpers/dns-client.js';
import { useDotUpstream } from '../helpers/dot-fixture.js';
import { replaceFile } from '../helpers/files.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/ports.js';

/** Target rates; together above the 500 qps the contract asks for. */
const UDP_QPS = 300;
const TCP_QPS = 300;
/** The stream's length, and so the bound on queries sent: rate × duration per transport. */
const DURATION_MS = 5000;
const RELOAD_EVERY_MS = 250;
/** TCP queries are spread over this many client connections. */
const TCP_CONNECTIONS = 2;
/** How long stragglers may take once the stream ends. */
const DRAIN_MS = 3000;
/** The pacing timer; each tick sends whatever the target rate says is due by now. */
const TICK_MS = 5;

const RCODE_NOERROR = 0;
const RCODE_SERVFAIL = 2;

const upstream = useDotUpstream();
let gw: TestGateway;
let port: number;

/** Two valid configs that differ in an unrelated denied name and the log level. */
function config(variant: 0 | 1): string {
  return `version: 1
listeners: [{ name: main, address: 127.0.0.1, port: ${port} }]
upstreams:
  default:
    timeout_ms: 1000
    connections: 2
    servers:
      - ${upstream.serverEntry()}
policies:
  - name: lo
    clients: [127.0.0.1]
    upstream: default
    cache: false
    domains: { deny: [${variant === 0 ? 'ads-a.invalid' : 'ads-b.invalid'}] }
limits: { timeout_ms: 2000 }
log: { level: ${variant === 0 ? 'info' : 'warn'} }
`;
}

before(async () => {
  await upstream.ready();
  port = await freePort();
  gw = await startGateway(config(0));
});

after(async () => {
  await gw?.stop();
});

/** Outcome per query index: -1 until answered, then the answer's RCODE. */
function outcomes(n: number): Int8Array {
  return new Int8Array(n).fill(-1);
}

test('a 600 qps UDP+TCP stream through reloads every 250 ms loses nothing', async (t) => {
  const udpTotal = Math.floor((UDP_QPS * DURATION_MS) / 1000);
  const tcpTotal = Math.floor((TCP_QPS * DURATION_MS) / 1000);
  const udpRcodes = outcomes(udpTotal);
  const tcpRcodes = outcomes(tcpTotal);

  // One UDP socket; the query index is the message ID (udpTotal ≤ 65536).
  const udp = dgram.createSocket('udp4');
  udp.on('message', (msg) => {
    const id = msg.readUInt16BE(0);
    if (id < udpTotal && udpRcodes[id] === -1) udpRcodes[id] = msg[3] & 0x0f;
  });
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
  const tcp = await Promise.all(Array.from({ length: TCP_CONNECTIONS }, () => TcpClient.connect(port)));
  t.after(() => {
    udp.close();
    for (const c of tcp) c.close();
  });

  // Names are unique per query, so every one goes to the upstream through the current generation.
  const sendUdp = (i: number) => udp.send(encodeQuery(`u${i}.load.example`, { id: i }), port, '127.0.0.1');
  const sendTcp = (i: number) => tcp[i % TCP_CONNECTIONS].send(encodeQuery(`t${i}.load.example`, { id: i }));

  let reloads = 0;
  let streaming = true;
  const reloader = (async () => {
    while (streaming) {
      await new Promise((r) => setTimeout(r, RELOAD_EVERY_MS));
      if (!streaming) break;
      reloads++;
      await replaceFile(gw.configPath, config((reloads % 2) as 0 | 1));
      const res = await gw.gateway.reload();
      assert.equal(res.result, 'success', JSON.stringify(res));
    }
  })();

  const started = performance.now();
  let udpSent = 0;
  let tcpSent = 0;
  await new Promise<void>((done) => {
    const tick = setInterval(() => {
      const elapsed = performance.now() - started;
      const udpDue = Math.min(udpTotal, Math.floor((elapsed * UDP_QPS) / 1000));
      const tcpDue = Math.min(tcpTotal, Math.floor((elapsed * TCP_QPS) / 1000));
      while (udpSent < udpDue) sendUdp(udpSent++);
      while (tcpSent < tcpDue) sendTcp(tcpSent++);
      // Bounded twice: by the query totals and by the duration (plus one tick of slack).
      if ((udpSent === udpTotal && tcpSent === tcpTotal) || elapsed > DURATION_MS + 1000) {
        clearInterval(tick);
        done();
      }
    }, TICK_MS);
  });
  const sendingMs = performance.now() - started;
  streaming = false;
  await reloader;

  // TCP answers are collected by the clients; decode ID and RCODE from the raw header.
  const collectTcp = () => {
    for (const c of tcp) {
      for (const a of c.answers) {
        const id = a.readUInt16BE(0);
        if (id < tcpTotal && tcpRcodes[id] === -1) tcpRcodes[id] = a[3] & 0x0f;
      }
    }
  };
  const unanswered = () =>
    udpRcodes.filter((r) => r === -1).length + tcpRcodes.filter((r) => r === -1).length;
  const drainDeadline = Date.now() + DRAIN_MS;
  collectTcp();
  while (unanswered() > 0 && Date.now() < drainDeadline) {
    await new Promise((r) => setTimeout(r, 20));
    collectTcp();
  }
  const answeredMs = performance.now() - started;

  const sent = udpSent + tcpSent;
  const rate = Math.round((sent / sendingMs) * 1000);
  t.diagnostic(
    `sent ${udpSent} UDP + ${tcpSent} TCP in ${Math.round(sendingMs)} ms = ${rate} qps; ` +
      `all answered after ${Math.round(answeredMs)} ms; ${reloads} reloads`,
  );

  assert.equal(udpSent, udpTotal);
  assert.equal(tcpSent, tcpTotal);
  assert.ok(rate >= 500, `achieved ${rate} qps`);
  assert.equal(unanswered(), 0, 'unanswered queries');
  const servfail = [...udpRcodes, ...tcpRcodes].filter((r) => r === RCODE_SERVFAIL).length;
  assert.equal(servfail, 0, 'SERVFAIL answers');
  assert.ok(
    [...udpRcodes, ...tcpRcodes].every((r) => r === RCODE_NOERROR),
    'every answer is NOERROR',
  );
  assert.ok(reloads >= Math.floor(DURATION_MS / RELOAD_EVERY_MS) - 3, `only ${reloads} reloads`);
  assert.equal(gw.gateway.counters.reloads.success, reloads);
  assert.equal(gw.gateway.counters.reloads.failure, 0);
  assert.ok(
    tcp.every((c) => !c.closed),
    'no client TCP connection was closed by a reload',
  );
});
