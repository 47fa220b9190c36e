// Acceptance of /metrics over real HTTP: known traffic through the running gateway moves
// exactly the series DESIGN.md names, by exactly the expected amounts, and nothing else;
// label sets stay bounded whatever names and clients the traffic carries.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as dnsPacket from 'dns-packet';
import { BACKOFF_MIN_MS } from '../../src/upstream/server.js';
import { makeCerts, openssl, type TestPki } from '../helpers/certs.js';
import { encodeQuery, rcodeName, udpExchange, udpQuery } from '../helpers/dns-client.js';
import { serverEntry } from '../helpers/dot-fixture.js';
import { type DotServer, startDotServer } from '../helpers/dot-server.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { httpGet } from '../helpers/http.js';

// ---------------------------------------------------------------------------------------
// A tiny Prometheus text-format reader: enough for `name{label="value",...} value` lines.

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Samples keyed by `name{k="v",...}` with labels sorted, so two scrapes compare by key. */
type Scrape = Map<string, Sample>;

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL_PAIR = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g;

function unescapeLabel(raw: string): string {
  return raw.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
}

function parseValue(raw: string): number {
  if (raw === '+Inf') return Number.POSITIVE_INFINITY;
  if (raw === '-Inf') return Number.NEGATIVE_INFINITY;
  return Number(raw);
}

function seriesKey(name: string, labels: Record<string, string>): string {
  const pairs = Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`);
  return `${name}{${pairs.join(',')}}`;
}

function parseMetrics(text: string): Scrape {
  const out: Scrape = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = SAMPLE_LINE.exec(line);
    assert.ok(m, `unparsable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (m[2] ?? '').matchAll(LABEL_PAIR)) labels[pair[1]] = unescapeLabel(pair[2]);
    const sample = { name: m[1], labels, value: parseValue(m[3]) };
    const key = seriesKey(sample.name, labels);
    assert.ok(!out.has(key), `series listed twice: ${key}`);
    out.set(key, sample);
  }
  return out;
}

// ---------------------------------------------------------------------------------------

const get = httpGet;

let pki: TestPki;
/** Answers everything: the `default` set. */
let good: DotServer;
/** Never answers: the `slow` set, for timeouts. */
let silent: DotServer;
/** Presents a certificate the configured CA did not sign: the `badca` set, for errors. */
let impostor: DotServer;
/** A valid certificate whose key is not the pinned one: the `badpin` set. */
let unpinned: DotServer;
let gw: TestGateway;
let admin: number;

function config(extra = ''): string {
  const server = (dot: DotServer, pin: string) => serverEntry(pki, dot.port, pin);
  return `
version: 1
listeners: [{ name: t, address: 127.0.0.1, port: 0, protocols: [udp] }]
upstreams:
  default: { timeout_ms: 500, connections: 1, servers: [${server(good, pki.server.pin)}] }
  slow: { timeout_ms: 150, connections: 1, servers: [${server(silent, pki.server.pin)}] }
  badca: { timeout_ms: 300, connections: 1, servers: [${server(impostor, pki.other.pin)}] }
  badpin: { timeout_ms: 300, connections: 1, servers: [${server(unpinned, pki.other.pin)}] }
policies:
  - { name: lo, clients: [127.0.0.1, 127.0.0.16/28] }
  - { name: blocked, clients: [127.0.0.3], action: deny }
  - { name: limited, clients: [127.0.0.4], cache: false, rate_limit: { qps: 0.001, burst: 2, exceed: refused } }
  - { name: filtering, clients: [127.0.0.5], domains: { deny: [ads.example] }, deny_with: nxdomain }
  - { name: timing-out, clients: [127.0.0.6], upstream: slow, cache: false }
  - { name: wrong-ca, clients: [127.0.0.7], upstream: badca, cache: false }
  - { name: wrong-pin, clients: [127.0.0.8], upstream: badpin, cache: false }
limits: { timeout_ms: 600 }
log: { level: fatal }
admin: { address: 127.0.0.1, port: 0 }
${extra}`;
}

/** 127.0.0.9 matches no policy. */
const UNMATCHED_CLIENT = '127.0.0.9';

async function scrape(): Promise<Scrape> {
  const reply = await get(admin, '/metrics');
  assert.equal(reply.status, 200);
  assert.match(reply.contentType, /^text\/plain/);
  return parseMetrics(reply.body);
}

const q = (policy: string, decision: string) => seriesKey('dns_tool_queries_total', { decision, policy });
const responses = (name: string) => seriesKey('dns_tool_responses_total', { rcode: name });
const upstream = (set: string, server: DotServer, result: 'ok' | 'error' | 'timeout') =>
  seriesKey('dns_tool_upstream_requests_total', { result, server: server.id, upstream: set });
const pinFailures = (server: DotServer) =>
  seriesKey('dns_tool_upstream_pin_failures_total', { server: server.id });
const reloads = (result: string) => seriesKey('dns_tool_config_reloads_total', { result });
const CACHE_HITS = seriesKey('dns_tool_cache_hits_total', {});
const CACHE_MISSES = seriesKey('dns_tool_cache_misses_total', {});
const MALFORMED = seriesKey('dns_tool_malformed_total', {});
const DURATION_COUNT = seriesKey('dns_tool_upstream_duration_seconds_count', {});
const upGauge = (set: string, server: DotServer) =>
  seriesKey('dns_tool_upstream_up', { server: server.id, upstream: set });

/**
 * Series that change without traffic: probes of the down `badpin` server each fail a pin
 * check, the up gauge follows server health (checked by value where it matters), and the
 * duration histogram's buckets and sum are checked on their own.
 */
function movesOnItsOwn(key: string): boolean {
  return (
    key === pinFailures(unpinned) ||
    key.startsWith('dns_tool_upstream_up{') ||
    key.startsWith('dns_tool_upstream_duration_seconds_bucket') ||
    key === seriesKey('dns_tool_upstream_duration_seconds_sum', {})
  );
}

/**
 * Every dns_tool_ series must have moved by exactly `expected` (absent = 0) between the
 * two scrapes; a series that exists only in `after` counts from 0.
 */
function assertDeltas(before: Scrape, after: Scrape, expected: Record<string, number>): void {
  const actual: Record<string, number> = {};
  for (const [key, sample] of after) {
    if (
      !sample.name.startsWith('dns_tool_') ||
      movesOnItsOwn(key) ||
      sample.name.endsWith('_timestamp_seconds')
    ) {
      continue;
    }
    const delta = sample.value - (before.get(key)?.value ?? 0);
    if (delta !== 0) actual[key] = delta;
  }
  for (const key of Object.keys(expected)) {
    assert.ok(after.has(key), `series missing from /metrics: ${key}`);
  }
  const wanted = Object.fromEntries(Object.entries(expected).filter(([, v]) => v !== 0));
  assert.deepEqual(actual, wanted);
}

/** notAfter of a PEM certificate as Unix seconds, read by openssl rather than by Node. */
async function notAfterOf(certPem: string): Promise<number> {
  // Fed on stdin rather than with -in: openssl then reads its stdin to the end, so the
  // helper's write to it cannot fail with EPIPE after openssl has exited.
  const out = (await openssl(['x509', '-enddate', '-noout'], certPem)).toString().trim();
  const m = /^notAfter=(.+)$/.exec(out);
  assert.ok(m, `openssl -enddate said: ${out}`);
  return Date.parse(m[1]) / 1000;
}

before(async () => {
  pki = await makeCerts();
  const leaf = { key: pki.server.keyPem, cert: pki.server.certPem };
  good = await startDotServer(leaf);
  silent = await startDotServer({ ...leaf, drop: true });
  impostor = await startDotServer({ key: pki.other.keyPem, cert: pki.other.certPem });
  // Signed by the CA, so only the pin (of `other`) fails.
  unpinned = await startDotServer(leaf);
  gw = await startGateway(config());
  const address = gw.gateway.adminAddress();
  assert.ok(address, 'admin server bound');
  admin = address.port;
});

after(async () => {
  await gw?.stop();
  await Promise.all([good, silent, impostor, unpinned].map((d) => d?.close()));
  await pki?.cleanup();
});

describe('/metrics counts known traffic exactly', () => {
  test('a pin mismatch: the down server gets no query (no handshake, no pin failure), SERVFAIL', async () => {
    // The down server is probed with backoff, and each probe fails the pin check too. Start
    // right after a failure: the next probe is at least BACKOFF_MIN_MS away.
    const counted = () => gw.gateway.counters.pinFailures.get(unpinned.id) ?? 0;
    const seen = counted();
    const deadline = Date.now() + 10_000;
    while (counted() === seen && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
    assert.ok(counted() > seen, 'a pin failure from the start-up connection or a probe');
    const windowStart = Date.now();

    const before = await scrape();
    const answer = await udpQuery(gw.port, 'pinned.example', { from: '127.0.0.8' });
    const after = await scrape();
    assert.ok(
      Date.now() - windowStart < BACKOFF_MIN_MS,
      'measured between two probes (else a probe may have added a pin failure)',
    );

    assert.equal(rcodeName(answer), 'SERVFAIL');
    // Pin failures are counted per handshake (start-up and probes); the query adds none.
    assert.equal(after.get(pinFailures(unpinned))?.value, before.get(pinFailures(unpinned))?.value);
    assert.equal(after.get(upGauge('badpin', unpinned))?.value, 0);
    assertDeltas(before, after, {
      [q('wrong-pin', 'allowed')]: 1,
      [responses('SERVFAIL')]: 1,
      [upstream('badpin', unpinned, 'error')]: 0,
      [upstream('badpin', unpinned, 'ok')]: 0,
    });
  });

  test('allowed queries: upstream ok, then a cache hit', async () => {
    const before = await scrape();
    assert.equal(rcodeName(await udpQuery(gw.port, 'allowed.example')), 'NOERROR');
    assert.equal(rcodeName(await udpQuery(gw.port, 'allowed.example')), 'NOERROR');
    const after = await scrape();
    assertDeltas(before, after, {
      [q('lo', 'allowed')]: 2,
      [responses('NOERROR')]: 2,
      [CACHE_MISSES]: 1,
      [CACHE_HITS]: 1,
      [upstream('default', good, 'ok')]: 1,
      [DURATION_COUNT]: 1,
    });
    const bucketInf = seriesKey('dns_tool_upstream_duration_seconds_bucket', { le: '+Inf' });
    assert.equal(after.get(bucketInf)?.value, after.get(DURATION_COUNT)?.value);
    const sum = seriesKey('dns_tool_upstream_duration_seconds_sum', {});
    assert.ok((after.get(sum)?.value ?? 0) > (before.get(sum)?.value ?? 0), 'duration sum grew');
  });

  test('denied, filtered and unmatched clients are answered locally', async () => {
    const before = await scrape();
    assert.equal(rcodeName(await udpQuery(gw.port, 'a.example', { from: '127.0.0.3' })), 'REFUSED');
    assert.equal(rcodeName(await udpQuery(gw.port, 'x.ads.example', { from: '127.0.0.5' })), 'NXDOMAIN');
    assert.equal(rcodeName(await udpQuery(gw.port, 'a.example', { from: UNMATCHED_CLIENT })), 'REFUSED');
    const after = await scrape();
    assertDeltas(before, after, {
      [q('blocked', 'denied')]: 1,
      [q('filtering', 'filtered')]: 1,
      [q('(unmatched)', 'unmatched')]: 1,
      [responses('REFUSED')]: 2,
      [responses('NXDOMAIN')]: 1,
    });
  });

  test('a burst over the rate limit: two allowed, one rate_limited', async () => {
    const before = await scrape();
    const answers = [];
    for (const name of ['r1.example', 'r2.example', 'r3.example']) {
      answers.push(rcodeName(await udpQuery(gw.port, name, { from: '127.0.0.4' })));
    }
    const after = await scrape();
    assert.deepEqual(answers, ['NOERROR', 'NOERROR', 'REFUSED']);
    assertDeltas(before, after, {
      [q('limited', 'allowed')]: 2,
      [q('limited', 'rate_limited')]: 1,
      [responses('NOERROR')]: 2,
      [responses('REFUSED')]: 1,
      [upstream('default', good, 'ok')]: 2,
      [DURATION_COUNT]: 2,
    });
  });

  test('an upstream that never answers: one timeout, SERVFAIL', async () => {
    const before = await scrape();
    const answer = await udpQuery(gw.port, 'slow.example', { from: '127.0.0.6', timeoutMs: 3000 });
    const after = await scrape();
    assert.equal(rcodeName(answer), 'SERVFAIL');
    assertDeltas(before, after, {
      [q('timing-out', 'allowed')]: 1,
      [responses('SERVFAIL')]: 1,
      [upstream('slow', silent, 'timeout')]: 1,
    });
    assert.equal(after.get(upGauge('slow', silent))?.value, 0, 'a timeout takes the server down');
  });

  test('a certificate the CA did not sign: server down, no query sent, no pin failure', async () => {
    const before = await scrape();
    const answer = await udpQuery(gw.port, 'ca.example', { from: '127.0.0.7' });
    const after = await scrape();
    assert.equal(rcodeName(answer), 'SERVFAIL');
    // Its start-up handshake failed: it takes no query until a probe succeeds.
    assert.equal(after.get(upGauge('badca', impostor))?.value, 0);
    assertDeltas(before, after, {
      [q('wrong-ca', 'allowed')]: 1,
      [responses('SERVFAIL')]: 1,
      [upstream('badca', impostor, 'error')]: 0,
    });
    assert.equal(after.get(pinFailures(impostor)), undefined, 'a CA failure is not a pin failure');
  });

  test('malformed input: dropped or FORMERR, counted', async () => {
    const before = await scrape();
    const response = encodeQuery('a.example');
    response[2] |= 0x80;
    assert.equal(await udpExchange(gw.port, response, { timeoutMs: 200 }), null);
    assert.equal(await udpExchange(gw.port, Buffer.from([1, 2, 3]), { timeoutMs: 200 }), null);
    const two = dnsPacket.encode({
      type: 'query',
      id: 5,
      questions: [
        { type: 'A', name: 'a.example' },
        { type: 'A', name: 'b.example' },
      ],
    });
    const formerr = await udpExchange(gw.port, two);
    assert.equal((formerr?.[3] ?? -1) & 0x0f, 1);
    const after = await scrape();
    assertDeltas(before, after, { [MALFORMED]: 3, [responses('FORMERR')]: 1 });
  });

  test('config reloads: a valid file counts success, an invalid one failure', async () => {
    const before = await scrape();
    await gw.write(config('cache: { max_entries: 5000 }'));
    assert.equal((await gw.gateway.reload()).result, 'success');
    await gw.write(`${config()}\nnot_a_key: true\n`);
    assert.equal((await gw.gateway.reload()).result, 'failure');
    const after = await scrape();
    assertDeltas(before, after, { [reloads('success')]: 1, [reloads('failure')]: 1 });
    // Still serving on the valid config.
    assert.equal(rcodeName(await udpQuery(gw.port, 'after-reload.example')), 'NOERROR');
  });

  test('certificate expiry equals the notAfter openssl reads from the test certificate', async () => {
    const expected = await notAfterOf(pki.server.certPem);
    const metrics = await scrape();
    const expiry = (d: DotServer) =>
      metrics.get(seriesKey('dns_tool_upstream_cert_expiry_timestamp_seconds', { server: d.id }))?.value;
    assert.equal(expiry(good), expected);
    assert.equal(expiry(silent), expected);
    // A server whose chain failed validation never reports an expiry.
    assert.equal(expiry(impostor), undefined);
  });
});

describe('label sets are bounded', () => {
  test('100 names from several clients add no series and leak no name or address', async () => {
    const clients = ['127.0.0.17', '127.0.0.18', '127.0.0.19', '127.0.0.3', UNMATCHED_CLIENT];
    // Every series this traffic touches exists already, so any new one would be a leak.
    for (const from of clients) await udpQuery(gw.port, 'warm.example', { from });
    const before = await scrape();

    const names = Array.from({ length: 100 }, (_, i) => `leak-${i}-check.example`);
    const BATCH = 10;
    for (let i = 0; i < names.length; i += BATCH) {
      const answers = await Promise.all(
        names
          .slice(i, i + BATCH)
          .map((name, j) => udpQuery(gw.port, name, { from: clients[(i + j) % clients.length] })),
      );
      assert.ok(
        answers.every((a) => a !== null),
        'every query answered',
      );
    }
    const text = (await get(admin, '/metrics')).body;
    const after = parseMetrics(text);

    const ours = (s: Scrape) => [...s.keys()].filter((k) => k.startsWith('dns_tool_')).sort();
    assert.deepEqual(ours(after), ours(before));
    for (const name of names) assert.ok(!text.includes(name), `${name} appears in /metrics`);
    assert.ok(!text.includes('leak-'), 'no query name in /metrics');
    for (const client of clients) {
      const asValue = [...after.values()].some((s) => Object.values(s.labels).includes(client));
      assert.ok(!asValue, `client ${client} is a label value`);
    }
    for (const client of clients.slice(0, 3))
      assert.ok(!text.includes(client), `${client} appears in /metrics`);

    const allowedLabels = new Set(['policy', 'decision', 'rcode', 'upstream', 'server', 'result', 'le']);
    for (const s of after.values()) {
      if (!s.name.startsWith('dns_tool_')) continue;
      for (const label of Object.keys(s.labels))
        assert.ok(allowedLabels.has(label), `${s.name} has label ${label}`);
    }
    const queryTotal = (s: Scrape) =>
      [...s.values()].filter((x) => x.name === 'dns_tool_queries_total').reduce((sum, x) => sum + x.value, 0);
    assert.equal(queryTotal(after) - queryTotal(before), names.length);
  });
});
