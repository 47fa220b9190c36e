// Integration tests of the pinned DoT upstream layer against in-process DoT servers on
// loopback, with certificates made by openssl at test time.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import dnsPacket from 'dns-packet';
import type { UpstreamServerConfig, UpstreamSetConfig } from '../../src/config/types.js';
import { peekQuery } from '../../src/dns/wire.js';
import { createLogger } from '../../src/log.js';
import { Counters } from '../../src/metrics/counters.js';
import { UpstreamHub } from '../../src/upstream/hub.js';
import { UpstreamError, type UpstreamSet } from '../../src/upstream/set.js';
import { makeCerts, type TestPki } from '../helpers/certs.js';
import { type DotServer, type DotServerOptions, startDotServer } from '../helpers/dot-server.js';

let pki: TestPki;
/** Closed after each test by `harness`. */
const open: { hubs: UpstreamHub[]; servers: DotServer[] } = { hubs: [], servers: [] };

before(async () => {
  pki = await makeCerts();
});
after(async () => {
  await pki.cleanup();
});

/** Log lines written by the hub, parsed. */
function logSink(): { lines: Record<string, unknown>[]; stream: Writable } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { lines, stream };
}

async function withHarness(fn: (h: Harness) => Promise<void>): Promise<void> {
  const h = new Harness();
  try {
    await fn(h);
  } finally {
    await Promise.all(open.hubs.map((hub) => hub.close(0)));
    await Promise.all(open.servers.map((s) => s.close()));
    open.hubs = [];
    open.servers = [];
  }
}

class Harness {
  readonly counters = new Counters();
  readonly log = logSink();
  readonly hub = new UpstreamHub({ logger: createLogger('debug', this.log.stream), counters: this.counters });
  constructor() {
    open.hubs.push(this.hub);
  }

  async dot(opts: Partial<DotServerOptions> = {}): Promise<DotServer> {
    const s = await startDotServer({ key: pki.server.keyPem, cert: pki.serverChainPem, ...opts });
    open.servers.push(s);
    return s;
  }

  server(dot: { port: number }, over: Partial<UpstreamServerConfig> = {}): UpstreamServerConfig {
    return {
      address: '127.0.0.1',
      port: dot.port,
      tlsName: 'dns.test',
      pins: [pki.server.pin],
      ca: pki.ca.certPem,
      caFile: null,
      verifyCa: true,
      id: `127.0.0.1:${dot.port}`,
      ...over,
    };
  }

  set(servers: UpstreamServerConfig[], over: Partial<UpstreamSetConfig> = {}): UpstreamSet {
    const config: UpstreamSetConfig = {
      name: 'default',
      strategy: 'failover',
      timeoutMs: 1000,
      connections: 1,
      idleTimeoutMs: 30_000,
      servers,
      ...over,
    };
    const set = this.hub.buildSets(new Map([[config.name, config]])).get(config.name);
    assert.ok(set);
    return set;
  }

  counts(server: string) {
    return this.counters.forUpstream('default', server);
  }
}

function makeQuery(
  name: string,
  type: 'A' | 'AAAA' | 'NS' = 'A',
  id = 4242,
): { wire: Buffer; questionEnd: number } {
  const wire = dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type, class: 'IN' }],
  });
  return { wire, questionEnd: peekQuery(wire).questionEnd };
}

async function ask(set: UpstreamSet, name: string, timeoutMs = 2000) {
  const q = makeQuery(name);
  const res = await set.query(q.wire, q.questionEnd, performance.now() + timeoutMs);
  const decoded = dnsPacket.decode(res.answer);
  return { ...res, decoded };
}

/** Each answer carries the question of the query at the same index. */
function assertNames(
  results: readonly { decoded: dnsPacket.DecodedPacket }[],
  names: readonly string[],
): void {
  assert.deepEqual(
    results.map((r) => r.decoded.questions?.[0].name),
    names,
  );
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<UpstreamError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof UpstreamError, `expected UpstreamError, got ${String(err)}`);
    assert.equal(err.code, code);
    return err;
  }
  assert.fail('expected the query to be rejected');
}

/** Poll `cond` every 10 ms, at most `ms`. */
async function eventually(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) assert.fail(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A port with nothing listening (a DoT server started and closed). */
async function deadPort(): Promise<number> {
  const s = await startDotServer({ key: pki.server.keyPem, cert: pki.serverChainPem });
  await s.close();
  return s.port;
}

describe('pins and certificate checks', () => {
  test('leaf pin matches: answer returned, cert expiry and state recorded', () =>
    withHarness(async (h) => {
      const dot = await h.dot();
      const set = h.set([h.server(dot)]);
      assert.equal(set.isReady(), true, 'presumed ready before first use');
      assert.equal(dot.connections, 0, 'connections are opened lazily');
      const res = await ask(set, 'Example.COM');
      assert.equal(res.server, dot.id);
      assert.equal(res.decoded.questions?.[0].name, 'Example.COM');
      assert.deepEqual(
        res.decoded.answers?.map((a) => (a as { data: unknown }).data),
        ['192.0.2.1'],
      );
      assert.equal(h.counts(dot.id).ok, 1);
      assert.equal(h.counters.upstreamDuration.count, 1);
      const state = set.servers[0].state();
      assert.equal(state.up, true);
      assert.equal(state.connected, true);
      assert.equal(state.verified, true);
      assert.ok(state.certNotAfter !== null && state.certNotAfter > Date.now() / 1000);
      assert.equal(h.counters.certExpiry.get(dot.id), state.certNotAfter);
      // The answer is the caller's to modify.
      res.answer[0] = 0xff;
    }));

  test('backup pin (second in the list) matches', () =>
    withHarness(async (h) => {
      const dot = await h.dot();
      const set = h.set([h.server(dot, { pins: [pki.other.pin, pki.server.pin] })]);
      assert.equal((await ask(set, 'a.test')).server, dot.id);
    }));

  test('with verify_ca, a pin on the CA of the validated chain matches', () =>
    withHarness(async (h) => {
      const dot = await h.dot();
      const set = h.set([h.server(dot, { pins: [pki.ca.pin] })]);
      assert.equal((await ask(set, 'a.test')).server, dot.id);
    }));

  test('pin mismatch: rejected within the deadline, counted, logged, nothing sent', () =>
    withHarness(async (h) => {
      const dot = await h.dot();
      const set = h.set([h.server(dot, { pins: [pki.other.pin] })]);
      const started = performance.now();
      const q = makeQuery('secret.test');
      await rejectsWith(set.query(q.wire, q.questionEnd, started + 1500), 'UPSTREAM_UNAVAILABLE');
      assert.ok(performance.now() - started < 1500);
      assert.equal(dot.queries, 0, 'no query may be written before the pin check');
      assert.ok((h.counters.pinFailures.get(dot.id) ?? 0) >= 1);
      const state = set.servers[0].state();
      assert.equal(state.up, false);
      assert.equal(state.verified, false);
      assert.equal(state.lastError, 'pin mismatch');
      assert.equal(set.isReady(), false);
      const line = h.log.lines.find((l) => String(l.msg).includes('pin mismatch'));
      assert.ok(line, 'pin mismatch logged');
      assert.equal(line.level, 40);
      assert.deepEqual(line.expected, [pki.other.pin]);
      assert.deepEqual(line.presented, [pki.server.pin, pki.ca.pin]);
    }));

  test('pin mismatch on the first server: the second, good one answers', () =>
    withHarness(async (h) => {
      const bad = await h.dot();
      const good = await h.dot();
      const set = h.set([h.server(bad, { pins: [pki.other.pin] }), h.server(good)]);
      const res = await ask(set, 'b.test');
      assert.equal(res.server, good.id);
      assert.equal(h.counters.pinFailures.get(bad.id), 1);
      assert.equal(h.counts(bad.id).error, 1);
      assert.equal(bad.queries, 0);
      // Down servers are skipped while another is up.
      assert.equal((await ask(set, 'c.test')).server, good.id);
      assert.equal(h.counters.pinFailures.get(bad.id), 1, 'no new handshake with a down server');
    }));

  test('CA mismatch: a certificate not signed by the configured CA is refused', () =>
    withHarness(async (h) => {
      const dot = await h.dot({ key: pki.other.keyPem, cert: pki.other.certPem });
      const set = h.set([h.server(dot, { pins: [pki.other.pin] })]);
      const q = makeQuery('x.test');
      await rejectsWith(set.query(q.wire, q.questionEnd, performance.now() + 1500), 'UPSTREAM_UNAVAILABLE');
      assert.equal(dot.queries, 0);
      assert.equal(h.counters.pinFailures.get(dot.id), undefined, 'a CA failure is not a pin failure');
      assert.match(set.servers[0].state().lastError ?? '', /SELF_SIGNED|UNABLE_TO_VERIFY|certificate/i);
    }));

  test('wrong tls_name fails the name check', () =>
    withHarness(async (h) => {
      const dot = await h.dot();
      const set = h.set([h.server(dot, { tlsName: 'other.test' })]);
      const q = makeQuery('x.test');
      await rejectsWith(set.query(q.wire, q.questionEnd, performance.now() + 1500), 'UPSTREAM_UNAVAILABLE');
      assert.match(set.servers[0].state().lastError ?? '', /ERR_TLS_CERT_ALTNAME_INVALID/);
    }));

  test('tls_name as an IP literal is checked against the IP SAN', () =>
    withHarness(async (h) => {
      const dot = await h.dot();
      const set = h.set([h.server(dot, { tlsName: '127.0.0.1' })]);
      assert.equal((await ask(set, 'ip.test')).server, dot.id);
    }));

  test('verify_ca false: the leaf pin alone admits a self-signed server', () =>
    withHarness(async (h) => {
      const dot = await h.dot({ key: pki.other.keyPem, cert: pki.other.certPem });
      const set = h.set([h.server(dot, { pins: [pki.other.pin], verifyCa: false, ca: null })]);
      assert.equal((await ask(set, 'self.test')).server, dot.id);
    }));

  test('verify_ca false: only the leaf counts, a pin on another chain certificate does not', () =>
    withHarness(async (h) => {
      const dot = await h.dot();
      const set = h.set([h.server(dot, { pins: [pki.ca.pin], verifyCa: false, ca: null })]);
      const q = makeQuery('x.test');
      await rejectsWith(set.query(q.wire, q.questionEnd, performance.now() + 1500), 'UPSTREAM_UNAVAILABLE');
      assert.equal(dot.queries, 0);
      assert.equal(h.counters.pinFailures.get(dot.id), 1);
      const line = h.log.lines.find((l) => String(l.msg).includes('pin mismatch'));
      assert.deepEqual(line?.presented, [pki.server.pin]);
    }));
});

describe('connections and framing', () => {
  test('50 concurrent queries are pipelined on one TLS connection', () =>
    withHarness(async (h) => {
      const dot = await h.dot({ delayMs: 5 });
      const set = h.set([h.server(dot)], { connections: 1 });
      const names = Array.from({ length: 50 }, (_, i) => `q${i}.pipe.test`);
      const results = await Promise.all(names.map((n) => ask(set, n)));
      assertNames(results, names);
      assert.equal(dot.connections, 1);
      assert.equal(dot.queries, 50);
      assert.deepEqual([...dot.names].sort(), [...names].sort());
      assert.equal(h.counts(dot.id).ok, 50);
    }));

  test('each batch goes out as its first byte alone, then the rest', () =>
    withHarness(async (h) => {
      const dot = await h.dot();
      const set = h.set([h.server(dot)]);
      await ask(set, 'one.test');
      await ask(set, 'two.test');
      const q = makeQuery('one.test');
      const frame = 2 + q.wire.length;
      assert.deepEqual(dot.chunkSizes.slice(0, 4), [1, frame - 1, 1, frame - 1]);
    }));

  test('connections: 2 pipelines light load on one connection, opens the second under load, never more', () =>
    withHarness(async (h) => {
      const dot = await h.dot({ delayMs: 20 });
      const set = h.set([h.server(dot)], { connections: 2 });
      await Promise.all(Array.from({ length: 20 }, (_, i) => ask(set, `c${i}.test`)));
      assert.equal(dot.connections, 1, '20 in flight stay on one connection');
      await Promise.all(Array.from({ length: 300 }, (_, i) => ask(set, `d${i}.test`)));
      assert.equal(dot.connections, 2);
    }));

  test('reconnects after the server closes the connection; in-flight queries are retried', () =>
    withHarness(async (h) => {
      const dot = await h.dot({ closeAfter: 1 });
      const set = h.set([h.server(dot)]);
      assert.equal((await ask(set, 'first.test')).server, dot.id);
      await eventually(() => !set.servers[0].state().connected, 2000, 'client sees the close');
      assert.equal((await ask(set, 'second.test')).decoded.questions?.[0].name, 'second.test');
      assert.equal(dot.connections, 2);

      // Queries pipelined past the server's limit are lost with the connection and retried.
      dot.behaviour.closeAfter = 3;
      const names = Array.from({ length: 8 }, (_, i) => `r${i}.test`);
      const results = await Promise.all(names.map((n) => ask(set, n, 5000)));
      assertNames(results, names);
      assert.equal(set.servers[0].state().up, true, 'a closed connection does not mark the server down');
    }));

  test('packed answers (several in one TLS record) are all matched', () =>
    withHarness(async (h) => {
      const dot = await h.dot({ pack: 5 });
      const set = h.set([h.server(dot)]);
      const names = Array.from({ length: 5 }, (_, i) => `p${i}.test`);
      const results = await Promise.all(names.map((n) => ask(set, n)));
      assertNames(results, names);
    }));

  test('an answer split across TLS records is reassembled', () =>
    withHarness(async (h) => {
      const dot = await h.dot({ split: true });
      const set = h.set([h.server(dot)]);
      const names = ['s1.test', 's2.test', 's3.test'];
      const results = await Promise.all(names.map((n) => ask(set, n)));
      assertNames(results, names);
      assert.equal(h.counters.upstreamMismatched, 0);
    }));

  test('an answer to another question is discarded and counted', () =>
    withHarness(async (h) => {
      const dot = await h.dot({ wrongQuestion: 'before' });
      const set = h.set([h.server(dot)]);
      const res = await ask(set, 'right.test');
      assert.equal(res.decoded.questions?.[0].name, 'right.test');
      assert.equal(h.counters.upstreamMismatched, 1);

      dot.behaviour.wrongQuestion = 'instead';
      const q = makeQuery('poison.test');
      await rejectsWith(set.query(q.wire, q.questionEnd, performance.now() + 300), 'UPSTREAM_TIMEOUT');
      assert.equal(h.counters.upstreamMismatched, 2);
    }));

  test('an idle connection is closed after idle_timeout_ms', () =>
    withHarness(async (h) => {
      const dot = await h.dot();
      const set = h.set([h.server(dot)], { idleTimeoutMs: 50 });
      await ask(set, 'idle.test');
      await eventually(() => dot.openConnections === 0, 2000, 'idle connection closed');
      assert.equal(set.servers[0].state().up, true);
      await ask(set, 'again.test');
      assert.equal(dot.connections, 2);
    }));
});

describe('strategies, timeouts and health', () => {
  test('failover: a first server that never answers is left after timeout_ms', () =>
    withHarness(async (h) => {
      const silent = await h.dot({ drop: true });
      const good = await h.dot();
      const set = h.set([h.server(silent), h.server(good)], { timeoutMs: 150 });
      const started = performance.now();
      const res = await ask(set, 'fo.test', 2000);
      const took = performance.now() - started;
      assert.equal(res.server, good.id);
      assert.ok(took >= 140 && took < 1000, `took ${took} ms`);
      assert.equal(h.counts(silent.id).timeout, 1);
      assert.equal(h.counts(good.id).ok, 1);
      assert.equal(set.servers[0].state().up, false);
      assert.match(set.servers[0].state().lastError ?? '', /no answer within 150 ms/);
      // While down it is skipped: the next query goes straight to the good server.
      const t2 = performance.now();
      assert.equal((await ask(set, 'fo2.test')).server, good.id);
      assert.ok(performance.now() - t2 < 140);
      assert.equal(silent.queries, 1);
    }));

  test('failover: a refused connection moves on at once', () =>
    withHarness(async (h) => {
      const good = await h.dot();
      const port = await deadPort();
      const set = h.set([h.server({ port }), h.server(good)], { timeoutMs: 1000 });
      const started = performance.now();
      assert.equal((await ask(set, 'refused.test')).server, good.id);
      assert.ok(performance.now() - started < 900);
      assert.match(set.servers[0].state().lastError ?? '', /ECONNREFUSED/);
    }));

  test('a late answer from the first server is taken if it comes first', () =>
    withHarness(async (h) => {
      const slow = await h.dot({ delayMs: 150 });
      const slower = await h.dot({ delayMs: 1000 });
      const set = h.set([h.server(slow), h.server(slower)], { timeoutMs: 100 });
      const res = await ask(set, 'late.test', 3000);
      assert.equal(res.server, slow.id);
      assert.equal(slower.queries, 1, 'the second server was asked');
    }));

  test('overall deadline: UPSTREAM_TIMEOUT when nothing answers', () =>
    withHarness(async (h) => {
      const a = await h.dot({ drop: true });
      const b = await h.dot({ drop: true });
      const set = h.set([h.server(a), h.server(b)], { timeoutMs: 100 });
      const started = performance.now();
      const q = makeQuery('void.test');
      await rejectsWith(set.query(q.wire, q.questionEnd, started + 400), 'UPSTREAM_TIMEOUT');
      const took = performance.now() - started;
      assert.ok(took >= 395 && took < 800, `took ${took} ms`);
      // Each server once: after its timeout it is down and not asked again for this query.
      assert.deepEqual([h.counts(a.id).timeout, h.counts(b.id).timeout], [1, 1]);
      assert.deepEqual([a.queries, b.queries], [1, 1]);
    }));

  test('round_robin spreads queries over the servers', () =>
    withHarness(async (h) => {
      const a = await h.dot();
      const b = await h.dot();
      const c = await h.dot();
      const set = h.set([h.server(a), h.server(b), h.server(c)], { strategy: 'round_robin' });
      for (let i = 0; i < 9; i++) await ask(set, `rr${i}.test`);
      assert.deepEqual([a.queries, b.queries, c.queries], [3, 3, 3]);
    }));

  test('fastest prefers the lower-latency server', () =>
    withHarness(async (h) => {
      const slow = await h.dot({ delayMs: 40 });
      const fast = await h.dot();
      const set = h.set([h.server(slow), h.server(fast)], { strategy: 'fastest' });
      for (let i = 0; i < 12; i++) await ask(set, `f${i}.test`);
      assert.ok(fast.queries >= 10, `fast got ${fast.queries}, slow ${slow.queries}`);
    }));

  test('a down server is probed with a real query and comes back up', () =>
    withHarness(async (h) => {
      const flaky = await h.dot({ drop: true });
      const good = await h.dot();
      const set = h.set([h.server(flaky), h.server(good)], { timeoutMs: 100 });
      await ask(set, 'down.test');
      assert.equal(set.servers[0].state().up, false);
      flaky.behaviour.drop = false;
      // First probe after the 1 s minimum backoff.
      await eventually(() => set.servers[0].state().up, 3000, 'probe marks the server up');
      assert.ok(flaky.names.includes('.'), 'the probe asked for the root');
      assert.equal((await ask(set, 'up.test')).server, flaky.id);
    }));
});

describe('reload and shutdown', () => {
  test('identical servers are reused across generations; a pin change gives a new server', () =>
    withHarness(async (h) => {
      const dot = await h.dot();
      const first = h.set([h.server(dot)]);
      await ask(first, 'g1.test');
      const same = h.set([h.server(dot)]);
      assert.equal(same.servers[0], first.servers[0]);
      await h.hub.retain([same]);
      await ask(same, 'g2.test');
      assert.equal(dot.connections, 1, 'the live connection was kept');

      const repinned = h.set([h.server(dot, { pins: [pki.server.pin, pki.other.pin] })]);
      assert.notEqual(repinned.servers[0], first.servers[0]);
      const moreConns = h.set([h.server(dot)], { connections: 3 });
      assert.notEqual(moreConns.servers[0], first.servers[0]);
    }));

  test('retain() drains dropped servers: in-flight queries finish, then sockets close', () =>
    withHarness(async (h) => {
      const old = await h.dot({ delayMs: 150 });
      const next = await h.dot();
      const oldSet = h.set([h.server(old)]);
      await ask(oldSet, 'warm.test');
      const inFlight = ask(oldSet, 'inflight.test');
      await eventually(() => old.queries === 2, 1000, 'query reached the old server');
      const newSet = h.set([h.server(next)]);
      const retained = h.hub.retain([newSet]);
      const res = await inFlight;
      assert.equal(res.server, old.id);
      await retained;
      assert.equal(oldSet.servers[0].state().connected, false);
      await eventually(() => old.openConnections === 0, 1000, 'old server sees the close');
      // The old generation's set no longer sends to the drained server.
      const q = makeQuery('after.test');
      await rejectsWith(oldSet.query(q.wire, q.questionEnd, performance.now() + 300), 'UPSTREAM_UNAVAILABLE');
      assert.equal((await ask(newSet, 'new.test')).server, next.id);
    }));

  test('close() waits for in-flight queries up to the grace time', () =>
    withHarness(async (h) => {
      const dot = await h.dot({ delayMs: 100 });
      const set = h.set([h.server(dot)]);
      const inFlight = ask(set, 'closing.test');
      await eventually(() => dot.queries === 1, 1000, 'query sent');
      await h.hub.close(2000);
      assert.equal((await inFlight).server, dot.id);
      assert.equal(set.servers[0].state().connected, false);
    }));
});
