// Acceptance of /healthz and /readyz over real HTTP: readiness follows whether an upstream
// server can be reached (503 in an outage, 200 again within the probe backoff), liveness
// stays 200 throughout.
import assert from 'node:assert/strict';
import net from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { createLogger } from '../../src/log.js';
import { Counters } from '../../src/metrics/counters.js';
import { BACKOFF_MAX_MS, BACKOFF_MIN_MS, UpstreamServer } from '../../src/upstream/server.js';
import { rcodeName, udpQuery } from '../helpers/dns-client.js';
import { useDotUpstream } from '../helpers/dot-fixture.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { httpGet } from '../helpers/http.js';
import { freePort } from '../helpers/ports.js';

const get = httpGet;

/**
 * A TCP relay on a fixed loopback port in front of the DoT server: closing it is an
 * upstream outage (connections cut, then refused), listening again on the same port is the
 * upstream coming back. TLS passes through untouched, so the gateway still verifies the
 * DoT server's certificate and pin.
 */
interface Relay {
  readonly port: number;
  close(): Promise<void>;
}

function startRelay(port: number, target: number): Promise<Relay> {
  /** Both ends of every relayed connection; bounded by what the test opens (a few). */
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
  };
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: target });
    track(client);
    track(upstream);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () =>
      resolve({
        port,
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      }),
    );
  });
}

/** Poll `probe` until it returns a value `accept`s, or fail after `withinMs`. */
async function waitUntil<T>(
  what: string,
  probe: () => Promise<T>,
  accept: (v: T) => boolean,
  withinMs: number,
  everyMs = 25,
): Promise<{ value: T; elapsedMs: number }> {
  const started = Date.now();
  let last: T | undefined;
  while (Date.now() - started <= withinMs) {
    last = await probe();
    if (accept(last)) return { value: last, elapsedMs: Date.now() - started };
    await new Promise((r) => setTimeout(r, everyMs));
  }
  assert.fail(`${what}: not within ${withinMs} ms (last: ${JSON.stringify(last)})`);
}

const upstream = useDotUpstream();

function config(upstreamPort: number): string {
  return `
version: 1
listeners: [{ name: t, address: 127.0.0.1, port: 0, protocols: [udp] }]
upstreams:
  default:
    timeout_ms: 300
    connections: 1
    servers:
      - ${upstream.serverEntry({ port: upstreamPort })}
policies:
  - { name: lo, clients: [127.0.0.1], upstream: default }
limits: { timeout_ms: 600 }
log: { level: warn }
admin: { address: 127.0.0.1, port: 0 }
`;
}

/** Time a recovered upstream may take to show: the longest probe backoff plus a handshake. */
const RECOVERY_BOUND_MS = BACKOFF_MAX_MS + 1000;

describe('/readyz follows upstream reachability', () => {
  let relayPort: number;
  let relay: Relay | null = null;
  let gw: TestGateway;
  let admin: number;

  before(async () => {
    relayPort = await freePort();
    relay = await startRelay(relayPort, upstream.dot.port);
    gw = await startGateway(config(relayPort));
    const address = gw.gateway.adminAddress();
    assert.ok(address, 'admin server bound');
    admin = address.port;
  });

  after(async () => {
    await gw?.stop();
    await relay?.close();
  });

  test('200 with a verified server, 503 when it goes away, 200 again once it returns', async () => {
    // Each readiness poll also checks liveness: /healthz must not waver during the outage.
    const readyz = async () => {
      const health = await get(admin, '/healthz');
      assert.equal(health.status, 200, '/healthz stays 200');
      return get(admin, '/readyz');
    };

    await waitUntil('ready at start', readyz, (r) => r.status === 200, 3000);

    // The outage: no traffic flows, so readiness itself has to notice it.
    await relay?.close();
    relay = null;
    const down = await waitUntil('503 after the outage', readyz, (r) => r.status === 503, 3000);
    assert.match(down.value.body, /no verified upstream server in set\(s\): default/);

    relay = await startRelay(relayPort, upstream.dot.port);
    const back = await waitUntil('200 after the return', readyz, (r) => r.status === 200, RECOVERY_BOUND_MS);
    assert.deepEqual(JSON.parse(back.value.body), { ready: true });

    // Ready means usable: a query goes through at once.
    const answer = await udpQuery(gw.port, 'back.example');
    assert.equal(rcodeName(answer), 'NOERROR');
  });
});

describe('/readyz after a reload to an unreachable server', () => {
  let gw: TestGateway;
  let admin: number;
  let relay: Relay | null = null;

  before(async () => {
    gw = await startGateway(config(upstream.dot.port));
    const address = gw.gateway.adminAddress();
    assert.ok(address, 'admin server bound');
    admin = address.port;
  });

  after(async () => {
    await gw?.stop();
    await relay?.close();
  });

  test('503 while the configured port is closed, 200 once a DoT server listens there', async () => {
    await waitUntil(
      'ready at start',
      () => get(admin, '/readyz'),
      (r) => r.status === 200,
      3000,
    );

    const closedPort = await freePort();
    await gw.write(config(closedPort));
    const reload = await gw.gateway.reload();
    assert.equal(reload.result, 'success');
    await waitUntil(
      '503 after the reload',
      () => get(admin, '/readyz'),
      (r) => r.status === 503,
      3000,
    );
    assert.equal((await get(admin, '/healthz')).status, 200);

    relay = await startRelay(closedPort, upstream.dot.port);
    await waitUntil(
      '200 once the server listens',
      () => get(admin, '/readyz'),
      (r) => r.status === 200,
      RECOVERY_BOUND_MS,
    );
    assert.equal((await get(admin, '/healthz')).status, 200);
  });
});

describe('probe backoff of a down server', () => {
  test('the default cap keeps a returned upstream from waiting long', () => {
    assert.ok(BACKOFF_MIN_MS <= BACKOFF_MAX_MS);
    assert.ok(BACKOFF_MAX_MS <= 5000, `BACKOFF_MAX_MS is ${BACKOFF_MAX_MS}`);
  });

  test('probes double from the minimum and then stay at the cap', async () => {
    // Every probe of a down server is a new connection here: the listener accepts and
    // closes at once, so the accept times are the probe times.
    const accepted: number[] = [];
    const refuser = net.createServer((s) => {
      accepted.push(performance.now());
      s.destroy();
    });
    await new Promise<void>((resolve) => refuser.listen(0, '127.0.0.1', resolve));
    const port = (refuser.address() as net.AddressInfo).port;
    const sink = new Writable({ write: (_c, _e, cb) => cb() });
    const minMs = 20;
    const maxMs = 80;
    const server = new UpstreamServer({
      config: {
        address: '127.0.0.1',
        port,
        tlsName: 'dns.test',
        pins: [upstream.pki.server.pin],
        ca: upstream.pki.ca.certPem,
        caFile: upstream.pki.ca.certPath,
        verifyCa: true,
        id: `127.0.0.1:${port}`,
      },
      key: 'backoff-test',
      connections: 1,
      idleTimeoutMs: 1000,
      timeoutMs: 500,
      logger: createLogger('silent', sink),
      counters: new Counters(),
      now: () => performance.now(),
      backoff: { minMs, maxMs },
    });
    try {
      server.warm();
      // 20 + 40 + 80 × 6 ms of probing: enough to reach the cap and stay there.
      const wanted = 9;
      await waitUntil(
        'probes',
        async () => accepted.length,
        (n) => n >= wanted,
        3000,
        10,
      );
      assert.equal(server.up, false);
      const gaps = accepted.slice(1, wanted).map((t, i) => t - accepted[i]);
      const expected = gaps.map((_, i) => Math.min(minMs * 2 ** i, maxMs));
      for (let i = 0; i < gaps.length; i++) {
        // Timers never fire early; the slack covers a failed handshake and a busy loop.
        assert.ok(gaps[i] >= expected[i] - 2, `gap ${i}: ${gaps[i].toFixed(1)} ms < ${expected[i]} ms`);
        assert.ok(gaps[i] <= expected[i] + 60, `gap ${i}: ${gaps[i].toFixed(1)} ms > ${expected[i]} + 60 ms`);
      }
    } finally {
      await server.drain(0);
      await new Promise<void>((resolve) => refuser.close(() => resolve()));
    }
  });
});
