// `explain` and the running server agree. 1,000 random (client, name, type) triples go
// through real UDP and TCP sockets to a gateway (clients bound across 127.0.0.0/8 and ::1)
// and 1,000 more through the gateway's query entry with addresses no loopback socket can
// have (IPv6 networks, IPv4-mapped IPv6). The server's side is its own query log line;
// the offline side is the decision engine `explain` and `test` use. The config nests
// CIDRs (IPv4 and IPv6), has deny policies, query-type and domain filters, an
// unmatched range and audit policies. Named lists and routes do not exist yet; they join
// this config when they do.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { parseConfig } from '../../src/config/load.js';
import type { GatewayConfig } from '../../src/config/types.js';
import { createLogger } from '../../src/log.js';
import { Counters } from '../../src/metrics/counters.js';
import { buildGeneration } from '../../src/pipeline/build.js';
import { PENDING, QueryEntry } from '../../src/pipeline/entry.js';
import { type Explanation, PolicyEngine } from '../../src/policy/engine.js';
import { UpstreamHub } from '../../src/upstream/hub.js';
import { encodeQuery } from '../helpers/dns-client.js';
import { useDotUpstream } from '../helpers/dot-fixture.js';
import { startGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/ports.js';

const upstream = useDotUpstream();

/** Triples per run. */
const TRIPLES = 1000;
/** Longest wait for one query's log line (a forwarded query waits on the upstream). */
const LOG_WAIT_MS = 3000;

function policies(): string {
  return `
  - name: wide
    clients: [127.0.0.0/9, 10.0.0.0/8]
    rate_limit: { qps: 100000, burst: 100000 }
    query_types: { deny: [ANY] }
    domains: { deny: [ads.example] }
  - name: mid
    clients: [127.1.0.0/16, 10.1.0.0/16, "2001:db8::/32"]
    query_types: { deny: [ANY, TXT] }
    domains: { allow: [ok.ads.example], deny: [ads.example, tracker.example] }
    deny_with: nxdomain
  - name: narrow
    clients: [127.1.2.0/24, 10.1.2.0/24, "2001:db8:1::/48"]
    action: deny
  - name: host
    clients: [127.1.2.3, 10.1.2.3, "2001:db8:1::3", "::1"]
    query_types: { allow: [A, AAAA] }
    domains: { allow: [lab.example] }
    deny_with: drop
  - name: v6net
    clients: ["::/64", "2001:db8:1:2::/64"]
    domains: { deny: [tracker.example] }
  - name: audit
    clients: [127.2.0.0/16, 10.2.0.0/16, "2001:db8:2::/48"]
    mode: audit
    query_types: { deny: [TXT] }
    domains: { deny: [ads.example] }
  - name: audit-deny
    clients: [127.3.0.0/16, "2001:db8:3::/48"]
    mode: audit
    action: deny
  - name: dropper
    clients: [127.4.0.0/16, "2001:db8:4::/48"]
    action: deny
    deny_with: drop`;
}

function configText(listeners: string): string {
  return `
version: 1
listeners: ${listeners}
upstreams:
  default:
    timeout_ms: 1500
    connections: 1
    servers:
      - ${upstream.serverEntry()}
policies:${policies()}
limits: { timeout_ms: 2500 }
log: { level: info, queries: true }
`;
}

const NAMES = [
  'ads.example',
  'x.ads.example',
  'ok.ads.example',
  'a.ok.ads.example',
  'notads.example',
  'tracker.example',
  'y.Tracker.Example',
  'lab.example',
  'db.lab.example',
  'www.example',
  'WWW.Example.',
  'deep.a.b.c.example',
];
const TYPES = ['A', 'AAAA', 'ANY', 'TXT', 'MX', 'HTTPS'] as const;

type Line = Record<string, unknown>;

/** The server's query log line against the explanation of the same query; '' when they agree. */
function disagreement(e: Explanation, line: Line, dotId: string): string {
  const problems: string[] = [];
  const same = (what: string, got: unknown, want: unknown) => {
    if (got !== want)
      problems.push(`${what}: server ${JSON.stringify(got)}, explain ${JSON.stringify(want)}`);
  };
  same('policy', line.policy, e.policy);
  same('decision', line.decision, e.decision);
  same('would', line.would ?? null, e.would);
  if (e.answer === 'upstream') {
    same('rcode', line.rcode, 'NOERROR');
    if (line.cached !== true) same('upstream', line.upstream, dotId);
  } else {
    same('rcode', line.rcode, e.rcode);
    same('upstream', line.upstream, null);
  }
  return problems.join('; ');
}

function logSink(lines: Line[]): Writable {
  return new Writable({
    write(chunk, _enc, cb) {
      for (const text of String(chunk).split('\n')) if (text.trim()) lines.push(JSON.parse(text));
      cb();
    },
  });
}

/** Resolves once `lines` holds more than `count` query lines, or rejects after LOG_WAIT_MS. */
async function nextQueryLine(lines: Line[], count: number): Promise<Line> {
  const deadline = performance.now() + LOG_WAIT_MS;
  for (;;) {
    const queries = lines.filter((l) => l.msg === 'query');
    if (queries.length > count) {
      assert.equal(queries.length, count + 1, 'one query, one line');
      return queries[count];
    }
    if (performance.now() > deadline) throw new Error('no query log line');
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Sends one query from `from` and gives up the socket once its log line is written. */
async function send(
  transport: 'udp' | 'tcp',
  from: string,
  host: string,
  port: number,
  msg: Buffer,
  lines: Line[],
  count: number,
): Promise<Line> {
  if (transport === 'udp') {
    const socket = dgram.createSocket(from.includes(':') ? 'udp6' : 'udp4');
    socket.on('error', () => {});
    try {
      await new Promise<void>((resolve) => socket.bind(0, from, resolve));
      socket.send(msg, port, host);
      return await nextQueryLine(lines, count);
    } finally {
      socket.close();
    }
  }
  const socket = net.connect({ port, host, localAddress: from });
  socket.on('error', () => {});
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const len = Buffer.alloc(2);
    len.writeUInt16BE(msg.length);
    socket.write(Buffer.concat([len, msg]));
    return await nextQueryLine(lines, count);
  } finally {
    socket.destroy();
  }
}

const octet = fc.integer({ min: 1, max: 254 });
/** Loopback clients, biased towards the nested networks. */
const loopbackClient = fc.oneof(
  fc.constant('::1'),
  fc.constant('127.1.2.3'),
  octet.map((d) => `127.1.2.${d}`),
  fc.tuple(octet, octet).map(([c, d]) => `127.1.${c}.${d}`),
  fc
    .tuple(fc.constantFrom(0, 2, 3, 4, 5, 100, 128, 200), octet, octet)
    .map(([b, c, d]) => `127.${b}.${c}.${d}`),
);
const hex = fc.integer({ min: 1, max: 0xfffe }).map((n) => n.toString(16));
/** Any address: the same nesting in 10.0.0.0/8 and 2001:db8::/32, IPv4-mapped forms, strangers. */
const anyClient = fc.oneof(
  loopbackClient,
  fc.constantFrom('10.1.2.3', '2001:db8:1::3', '::ffff:10.1.2.3', '::ffff:127.3.0.1'),
  fc
    .tuple(fc.constantFrom('10.0', '10.1', '10.2', '10.9', '172.16', '192.0'), octet, octet)
    .map(([ab, c, d]) => `${ab}.${c}.${d}`),
  fc.tuple(octet, octet, octet).map(([b, c, d]) => `::ffff:10.${b}.${c}.${d}`),
  fc
    .tuple(
      fc.constantFrom(
        '2001:db8:1:2',
        '2001:db8:1:9',
        '2001:db8:2:0',
        '2001:db8:3:1',
        '2001:db8:4:1',
        '2001:db8:77:1',
        '2001:db9:0:1',
        '0:0:0:0',
      ),
      hex,
      hex,
    )
    .map(([net64, x, y]) => `${net64}::${x}:${y}`),
);
const question = fc.tuple(fc.constantFrom(...NAMES), fc.constantFrom(...TYPES));

function sample<T>(arb: fc.Arbitrary<T>, n: number, seed: number): T[] {
  return fc.sample(arb, { numRuns: n, seed });
}

describe('explain agrees with the running server', () => {
  test(`${TRIPLES} random triples over UDP and TCP from clients across 127.0.0.0/8 and ::1`, async () => {
    await upstream.ready();
    const port4 = await freePort('127.0.0.1');
    const port6 = await freePort('::1');
    const gw = await startGateway(
      configText(
        `[{ name: v4, address: 127.0.0.1, port: ${port4} }, { name: v6, address: "::1", port: ${port6} }]`,
      ),
    );
    try {
      const engine = new PolicyEngine(gw.gateway.config);
      const seed = Date.now() % 100000;
      const triples = sample(
        fc.tuple(loopbackClient, question, fc.constantFrom('udp', 'tcp')),
        TRIPLES,
        seed,
      );
      const seen = new Set<string>();
      let count = 0;
      for (const [client, [name, type], transport] of triples) {
        const v6 = client.includes(':');
        const msg = encodeQuery(name, { type, id: count & 0xffff });
        const line = await send(
          transport as 'udp' | 'tcp',
          client,
          v6 ? '::1' : '127.0.0.1',
          v6 ? port6 : port4,
          msg,
          gw.logs,
          count++,
        );
        const e = engine.explain({ client, qname: name, qtype: type, transport: transport as 'udp' | 'tcp' });
        const why = disagreement(e, line, upstream.dot.id);
        assert.equal(why, '', `seed ${seed}: ${client} ${name} ${type} over ${transport}: ${why}`);
        seen.add(`${e.policy}/${e.decision}/${e.would}`);
      }
      // The run covered every kind of outcome the config has.
      for (const outcome of [
        'wide/allowed/null',
        'wide/filtered/null',
        'mid/filtered/null',
        'mid/allowed/null',
        'narrow/denied/null',
        'host/filtered/null',
        'host/allowed/null',
        'audit/allowed/filtered',
        'audit-deny/allowed/denied',
        'dropper/denied/null',
        'null/unmatched/null',
      ]) {
        assert.ok(seen.has(outcome), `seed ${seed}: no triple gave ${outcome}`);
      }
    } finally {
      await gw.stop();
    }
  });

  test(`${TRIPLES} random triples through the query entry, from IPv6 networks and IPv4-mapped addresses`, async () => {
    await upstream.ready();
    // The listener is never opened: queries enter through entry.handle, as a listener hands them in.
    const parsed = parseConfig(
      configText('[{ name: unused, address: 127.0.0.1, port: 0 }]'),
      'agreement.yaml',
      process.cwd(),
    );
    assert.ok('config' in parsed, JSON.stringify(parsed));
    const config: GatewayConfig = parsed.config;
    const lines: Line[] = [];
    const logger = createLogger('info', logSink(lines));
    const counters = new Counters();
    const hub = new UpstreamHub({ logger, counters });
    const generation = buildGeneration(config, {
      counters,
      logger,
      hub,
      carried: { limiters: new Map(), caches: new Map() },
      now: () => performance.now(),
    });
    const entry = new QueryEntry(() => generation, counters, logger);
    const engine = new PolicyEngine(config);
    try {
      const seed = Date.now() % 100000;
      const triples = sample(fc.tuple(anyClient, question, fc.constantFrom('udp', 'tcp')), TRIPLES, seed);
      const seen = new Set<string>();
      let count = 0;
      for (const [client, [name, type], transport] of triples) {
        const msg = encodeQuery(name, { type, id: count & 0xffff });
        const done = new Promise<void>((resolve) => {
          const result = entry.handle(msg, client, 40000, transport as 'udp' | 'tcp', () => resolve());
          if (result !== PENDING) resolve();
        });
        await done;
        const line = await nextQueryLine(lines, count++);
        assert.equal(line.client, client);
        const e = engine.explain({ client, qname: name, qtype: type, transport: transport as 'udp' | 'tcp' });
        const why = disagreement(e, line, upstream.dot.id);
        assert.equal(why, '', `seed ${seed}: ${client} ${name} ${type} over ${transport}: ${why}`);
        seen.add(`${e.policy}/${e.cidr?.includes(':') ? 6 : 4}/${e.decision}`);
      }
      for (const outcome of [
        'mid/6/filtered',
        'narrow/6/denied',
        'v6net/6/allowed',
        'v6net/6/filtered',
        'mid/4/allowed',
      ]) {
        assert.ok(seen.has(outcome), `seed ${seed}: no triple gave ${outcome}`);
      }
    } finally {
      await hub.close(0);
    }
  });
});
