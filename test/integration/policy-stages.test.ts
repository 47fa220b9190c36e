// The policy stages (rate limit, query-type and domain filters, answer cache) through real
// UDP and TCP sockets, a gateway started from YAML and an in-process DoT upstream.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import * as dnsPacket from 'dns-packet';
import { encodeQuery, rcodeName, TcpClient, udpQuery } from '../helpers/dns-client.js';
import { useDotUpstream } from '../helpers/dot-fixture.js';
import { type AnswerFn, defaultAnswer } from '../helpers/dot-server.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/ports.js';

type Decoded = dnsPacket.Packet & { rcode?: string; flag_tc?: boolean };

const ttlOf = (p: dnsPacket.Packet | null) => (p?.answers?.[0] as { ttl?: number } | undefined)?.ttl;

/** How long a burst waits for stragglers after its last answer could have come. */
const BURST_WAIT_MS = 800;
/** Timeout for a query that must be dropped: long enough to catch a late answer. */
const DROP_WAIT_MS = 400;

const upstream = useDotUpstream();

/** A gateway on a fresh port with `policies` (YAML list items) in front of the test DoT server. */
async function gatewayWith(policies: string, extra = ''): Promise<TestGateway> {
  const port = await freePort();
  return startGateway(`
version: 1
listeners: [{ name: t, address: 127.0.0.1, port: ${port} }]
upstreams:
  default:
    timeout_ms: 1000
    connections: 1
    servers:
      - ${upstream.serverEntry()}
policies:
${policies}
limits: { timeout_ms: 2000 }
log: { level: warn }
${extra}`);
}

function readConfig(gw: TestGateway): Promise<string> {
  return readFile(gw.configPath, 'utf8');
}

/** Upstream queries seen so far for `name` (case-insensitive). */
function upstreamSaw(name: string): number {
  const lower = name.toLowerCase();
  return upstream.dot.names.filter((n) => n.toLowerCase() === lower).length;
}

/**
 * Send `count` queries for distinct names from one UDP socket bound to `from`, all in one
 * go, and collect what comes back until every query is answered or BURST_WAIT_MS passes
 * without a new answer. Returns the answers decoded, keyed by ID.
 */
function udpBurst(port: number, from: string, count: number, prefix: string): Promise<Map<number, Decoded>> {
  return new Promise((resolve, reject) => {
    const answers = new Map<number, Decoded>();
    const socket = dgram.createSocket('udp4');
    let timer: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(timer);
      socket.close();
      resolve(answers);
    };
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(done, BURST_WAIT_MS);
    };
    socket.on('error', (err) => {
      clearTimeout(timer);
      socket.close();
      reject(err);
    });
    socket.on('message', (data) => {
      const p = dnsPacket.decode(data) as Decoded;
      answers.set(p.id ?? -1, p);
      if (answers.size >= count) done();
      else arm();
    });
    socket.bind(0, from, () => {
      for (let i = 0; i < count; i++)
        socket.send(encodeQuery(`${prefix}${i}.example`, { id: 1 + i }), port, '127.0.0.1');
      arm();
    });
  });
}

/** Pipeline `count` queries on one TCP connection from `from` in one write; answers decoded. */
async function tcpBurst(port: number, from: string, count: number, prefix: string): Promise<Decoded[]> {
  const client = await TcpClient.connect(port, from);
  try {
    const framed = Array.from({ length: count }, (_, i) => {
      const q = encodeQuery(`${prefix}${i}.example`, { id: 1 + i });
      const len = Buffer.alloc(2);
      len.writeUInt16BE(q.length);
      return Buffer.concat([len, q]);
    });
    client.socket.write(Buffer.concat(framed));
    const raw = await client.waitFor(count, 2000);
    return raw.map((a) => dnsPacket.decode(a) as Decoded);
  } finally {
    client.close();
  }
}

function countBy(answers: Iterable<Decoded>, pred: (p: Decoded) => boolean): number {
  let n = 0;
  for (const p of answers) if (pred(p)) n++;
  return n;
}

describe('rate limit', () => {
  test('a burst of 30 gets 5..7 answers (drop); another client with its own bucket is unaffected', async () => {
    const gw = await gatewayWith(`
  - { name: rl, clients: [127.0.0.2, 127.0.0.3], upstream: default, rate_limit: { qps: 5, burst: 5, exceed: drop } }`);
    try {
      const flood = await udpBurst(gw.port, '127.0.0.2', 30, 'flood');
      assert.ok(flood.size >= 5 && flood.size <= 7, `answered ${flood.size} of 30`);
      for (const p of flood.values()) assert.equal(rcodeName(p), 'NOERROR');
      // Same policy, scope client: 127.0.0.3 has its own full bucket.
      const other = await udpBurst(gw.port, '127.0.0.3', 5, 'calm');
      assert.equal(other.size, 5);
      for (const p of other.values()) assert.equal(rcodeName(p), 'NOERROR');
      const counts = gw.gateway.counters.forPolicy('rl');
      assert.equal(counts.rate_limited, 30 - flood.size);
      assert.equal(counts.allowed, flood.size + 5);
    } finally {
      await gw.stop();
    }
  });

  test('a client of another policy is unaffected by a flooded one', async () => {
    const gw = await gatewayWith(`
  - { name: limited, clients: [127.0.0.2], upstream: default, rate_limit: { qps: 5, burst: 5 } }
  - { name: free, clients: [127.0.0.3], upstream: default }`);
    try {
      const [flood, free] = await Promise.all([
        udpBurst(gw.port, '127.0.0.2', 30, 'lim'),
        udpBurst(gw.port, '127.0.0.3', 30, 'free'),
      ]);
      assert.ok(flood.size >= 5 && flood.size <= 7, `answered ${flood.size} of 30`);
      assert.equal(free.size, 30);
      assert.equal(gw.gateway.counters.forPolicy('limited').rate_limited, 30 - flood.size);
      assert.equal(gw.gateway.counters.forPolicy('free').rate_limited, 0);
      assert.equal(gw.gateway.counters.forPolicy('free').allowed, 30);
    } finally {
      await gw.stop();
    }
  });

  test('scope policy shares one bucket between 127.0.0.2 and 127.0.0.3; scope client does not', async () => {
    // qps 1: at most one token comes back in the second between the two bursts.
    const gw = await gatewayWith(`
  - { name: shared, clients: [127.0.0.2, 127.0.0.3], upstream: default, rate_limit: { qps: 1, burst: 5, scope: policy } }
  - { name: apart, clients: [127.0.0.4, 127.0.0.5], upstream: default, rate_limit: { qps: 1, burst: 5, scope: client } }`);
    try {
      const first = await udpBurst(gw.port, '127.0.0.2', 5, 'sh-a');
      assert.equal(first.size, 5);
      const second = await udpBurst(gw.port, '127.0.0.3', 5, 'sh-b');
      assert.ok(second.size <= 1, `the shared bucket gave 127.0.0.3 ${second.size} answers`);
      assert.equal(gw.gateway.counters.forPolicy('shared').rate_limited, 5 - second.size);

      const a = await udpBurst(gw.port, '127.0.0.4', 5, 'ap-a');
      const b = await udpBurst(gw.port, '127.0.0.5', 5, 'ap-b');
      assert.equal(a.size, 5);
      assert.equal(b.size, 5);
      assert.equal(gw.gateway.counters.forPolicy('apart').rate_limited, 0);
    } finally {
      await gw.stop();
    }
  });

  test('exceed refused: every query is answered, the ones over the limit with REFUSED', async () => {
    const gw = await gatewayWith(`
  - { name: rl, clients: [127.0.0.2], upstream: default, rate_limit: { qps: 5, burst: 5, exceed: refused } }`);
    try {
      const res = await udpBurst(gw.port, '127.0.0.2', 20, 'ref');
      assert.equal(res.size, 20);
      const ok = countBy(res.values(), (p) => rcodeName(p) === 'NOERROR' && (p.answers?.length ?? 0) === 1);
      const refused = countBy(
        res.values(),
        (p) => rcodeName(p) === 'REFUSED' && (p.answers?.length ?? 0) === 0,
      );
      assert.ok(ok >= 5 && ok <= 7, `answered ${ok} of 20`);
      assert.equal(refused, 20 - ok);
      assert.equal(gw.gateway.counters.forPolicy('rl').rate_limited, refused);
    } finally {
      await gw.stop();
    }
  });

  test('exceed truncate: UDP gets TC=1 with no records; TCP shares the bucket and gets REFUSED', async () => {
    // qps 1 so the bucket stays empty between the UDP burst and the TCP queries.
    const gw = await gatewayWith(`
  - { name: rl, clients: [127.0.0.2], upstream: default, rate_limit: { qps: 1, burst: 5, exceed: truncate } }`);
    try {
      const res = await udpBurst(gw.port, '127.0.0.2', 20, 'tc');
      assert.equal(res.size, 20);
      const full = [...res.values()].filter((p) => !p.flag_tc);
      const truncated = [...res.values()].filter((p) => p.flag_tc);
      assert.ok(full.length >= 5 && full.length <= 6, `answered ${full.length} of 20`);
      for (const p of full) assert.equal(p.answers?.length, 1);
      assert.equal(truncated.length, 20 - full.length);
      for (const p of truncated) {
        assert.equal(rcodeName(p), 'NOERROR');
        assert.equal(p.answers?.length, 0);
        assert.equal(p.authorities?.length, 0);
        assert.equal(p.additionals?.length, 0);
        assert.equal(p.questions?.length, 1);
      }
      // The retry over TCP draws from the same, now empty, bucket.
      const tcp = await tcpBurst(gw.port, '127.0.0.2', 3, 'tc');
      assert.equal(tcp.length, 3);
      const refused = countBy(tcp, (p) => rcodeName(p) === 'REFUSED' && !p.flag_tc);
      assert.ok(refused >= 2, `TCP got ${tcp.map((p) => rcodeName(p)).join(',')}`);
      assert.equal(gw.gateway.counters.forPolicy('rl').rate_limited, truncated.length + refused);
    } finally {
      await gw.stop();
    }
  });

  test('a reload keeps the bucket of an unchanged policy and refills a changed one', async () => {
    const policies = (burst: number) => `
  - { name: rl, clients: [127.0.0.2], upstream: default, rate_limit: { qps: 0.5, burst: ${burst} } }
  - { name: other, clients: [127.0.0.3], upstream: default }`;
    const gw = await gatewayWith(policies(3));
    try {
      assert.equal((await udpBurst(gw.port, '127.0.0.2', 5, 'rl-a')).size, 3);
      // Only another policy changes: the emptied bucket stays empty.
      await gw.write((await readConfig(gw)).replace('name: other,', 'name: renamed,'));
      assert.equal((await gw.gateway.reload()).result, 'success');
      assert.equal((await udpBurst(gw.port, '127.0.0.2', 2, 'rl-b')).size, 0);
      // The policy's rate_limit changes: a new, full bucket.
      await gw.write((await readConfig(gw)).replace('burst: 3', 'burst: 4'));
      assert.equal((await gw.gateway.reload()).result, 'success');
      assert.equal((await udpBurst(gw.port, '127.0.0.2', 6, 'rl-c')).size, 4);
    } finally {
      await gw.stop();
    }
  });

  test('exceed drop over TCP: queries over the limit get nothing, the connection stays', async () => {
    const gw = await gatewayWith(`
  - { name: rl, clients: [127.0.0.2], upstream: default, rate_limit: { qps: 1, burst: 3, exceed: drop } }`);
    try {
      const client = await TcpClient.connect(gw.port, '127.0.0.2');
      try {
        for (let i = 0; i < 6; i++) client.send(encodeQuery(`tcpdrop${i}.example`, { id: 100 + i }));
        await client.waitFor(6, DROP_WAIT_MS * 2);
        const ids = client.answers.map((a) => dnsPacket.decode(a).id).sort((x, y) => (x ?? 0) - (y ?? 0));
        assert.ok(ids.length >= 3 && ids.length <= 4, `answered ${ids.join(',')}`);
        assert.deepEqual(ids.slice(0, 3), [100, 101, 102]);
        assert.equal(client.closed, false);
      } finally {
        client.close();
      }
    } finally {
      await gw.stop();
    }
  });
});

describe('query-type and domain filters', () => {
  let gw: TestGateway;

  before(async () => {
    gw = await gatewayWith(`
  - { name: qt-allow, clients: [127.0.0.2], upstream: default, query_types: { allow: [A, AAAA] }, deny_with: refused }
  - { name: qt-deny, clients: [127.0.0.3], upstream: default, query_types: { deny: [TXT, ANY] }, deny_with: nxdomain }
  - { name: qt-drop, clients: [127.0.0.4], upstream: default, query_types: { deny: [TXT] }, deny_with: drop }
  - { name: dom-deny, clients: [127.0.0.5], upstream: default, domains: { deny: [ads.example] }, deny_with: nxdomain }
  - { name: dom-wins, clients: [127.0.0.6], upstream: default, domains: { allow: [ok.ads.example], deny: [ads.example] }, deny_with: refused }
  - { name: dom-only, clients: [127.0.0.7], upstream: default, domains: { allow: [corp.example] }, deny_with: drop }`);
  });

  after(async () => {
    await gw?.stop();
  });

  test('an allow-list of types passes only those types (deny_with refused)', async () => {
    const a = await udpQuery(gw.port, 'qt.example', { from: '127.0.0.2', type: 'A' });
    const aaaa = await udpQuery(gw.port, 'qt.example', { from: '127.0.0.2', type: 'AAAA' });
    const txt = await udpQuery(gw.port, 'qt.example', { from: '127.0.0.2', type: 'TXT', id: 4242 });
    const mx = await udpQuery(gw.port, 'qt.example', { from: '127.0.0.2', type: 'MX' });
    assert.equal(rcodeName(a), 'NOERROR');
    assert.equal(a?.answers?.length, 1);
    assert.equal(rcodeName(aaaa), 'NOERROR');
    assert.equal(aaaa?.answers?.length, 1);
    assert.equal(rcodeName(txt), 'REFUSED');
    assert.equal(txt?.id, 4242);
    assert.equal(txt?.questions?.[0].type, 'TXT');
    assert.equal(rcodeName(mx), 'REFUSED');
    const counts = gw.gateway.counters.forPolicy('qt-allow');
    assert.equal(counts.filtered, 2);
    assert.equal(counts.allowed, 2);
  });

  test('a deny-list of types filters those types (deny_with nxdomain)', async () => {
    const before = upstreamSaw('qtdeny.example');
    const txt = await udpQuery(gw.port, 'qtdeny.example', { from: '127.0.0.3', type: 'TXT' });
    const any = await udpQuery(gw.port, 'qtdeny.example', { from: '127.0.0.3', type: 'ANY' });
    const a = await udpQuery(gw.port, 'qtdeny.example', { from: '127.0.0.3', type: 'A' });
    assert.equal(rcodeName(txt), 'NXDOMAIN');
    assert.equal(txt?.answers?.length, 0);
    assert.equal(rcodeName(any), 'NXDOMAIN');
    assert.equal(rcodeName(a), 'NOERROR');
    // Filtered queries never reach the upstream.
    assert.equal(upstreamSaw('qtdeny.example'), before + 1);
    const counts = gw.gateway.counters.forPolicy('qt-deny');
    assert.equal(counts.filtered, 2);
    assert.equal(counts.allowed, 1);
  });

  test('a filtered type with deny_with drop gets no answer', async () => {
    const txt = await udpQuery(gw.port, 'qtdrop.example', {
      from: '127.0.0.4',
      type: 'TXT',
      timeoutMs: DROP_WAIT_MS,
    });
    const a = await udpQuery(gw.port, 'qtdrop.example', { from: '127.0.0.4', type: 'A' });
    assert.equal(txt, null);
    assert.equal(rcodeName(a), 'NOERROR');
    assert.equal(gw.gateway.counters.forPolicy('qt-drop').filtered, 1);
  });

  test('a denied domain and every name under it are filtered, case-insensitively; a look-alike is not', async () => {
    const names = ['ads.example', 'x.ads.example', 'A.B.ADS.Example'];
    for (const name of names) {
      const res = await udpQuery(gw.port, name, { from: '127.0.0.5' });
      assert.equal(rcodeName(res), 'NXDOMAIN', name);
      assert.equal(res?.questions?.[0].name, name);
    }
    const lookAlike = await udpQuery(gw.port, 'notads.example', { from: '127.0.0.5' });
    assert.equal(rcodeName(lookAlike), 'NOERROR');
    assert.equal(lookAlike?.answers?.length, 1);
    assert.equal(upstreamSaw('ads.example') + upstreamSaw('x.ads.example'), 0);
    const counts = gw.gateway.counters.forPolicy('dom-deny');
    assert.equal(counts.filtered, 3);
    assert.equal(counts.allowed, 1);
  });

  test('allow wins over deny for names under both', async () => {
    const allowed = await udpQuery(gw.port, 'www.ok.ads.example', { from: '127.0.0.6' });
    const denied = await udpQuery(gw.port, 'tracker.ads.example', { from: '127.0.0.6' });
    const elsewhere = await udpQuery(gw.port, 'news.example', { from: '127.0.0.6' });
    assert.equal(rcodeName(allowed), 'NOERROR');
    assert.equal(allowed?.answers?.length, 1);
    assert.equal(rcodeName(denied), 'REFUSED');
    assert.equal(rcodeName(elsewhere), 'NOERROR');
    const counts = gw.gateway.counters.forPolicy('dom-wins');
    assert.equal(counts.filtered, 1);
    assert.equal(counts.allowed, 2);
  });

  test('an allow-only list passes its names and drops every other', async () => {
    const apex = await udpQuery(gw.port, 'corp.example', { from: '127.0.0.7' });
    const sub = await udpQuery(gw.port, 'Intra.CORP.example', { from: '127.0.0.7' });
    const other = await udpQuery(gw.port, 'example.com', { from: '127.0.0.7', timeoutMs: DROP_WAIT_MS });
    const parent = await udpQuery(gw.port, 'example', { from: '127.0.0.7', timeoutMs: DROP_WAIT_MS });
    assert.equal(rcodeName(apex), 'NOERROR');
    assert.equal(rcodeName(sub), 'NOERROR');
    assert.equal(other, null);
    assert.equal(parent, null);
    const counts = gw.gateway.counters.forPolicy('dom-only');
    assert.equal(counts.filtered, 2);
    assert.equal(counts.allowed, 2);
  });

  test('filters answer over TCP the same way', async () => {
    const client = await TcpClient.connect(gw.port, '127.0.0.5');
    try {
      client.send(encodeQuery('ads.example', { id: 77 }));
      const [raw] = await client.waitFor(1);
      const res = dnsPacket.decode(raw);
      assert.equal(res.id, 77);
      assert.equal(rcodeName(res), 'NXDOMAIN');
    } finally {
      client.close();
    }
  });
});

/** An SOA with MINIMUM 60 in the authority section of NXDOMAIN answers for names under `nx`. */
const withNegativeSoa: AnswerFn = (query) => {
  const q = query.questions?.[0];
  const lower = q?.name.toLowerCase() ?? '';
  if (lower !== 'nx' && !lower.endsWith('.nx')) return defaultAnswer(query);
  return {
    type: 'response',
    id: query.id,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | 3,
    questions: query.questions,
    authorities: [
      {
        name: 'nx',
        type: 'SOA',
        ttl: 3600,
        data: {
          mname: 'ns.nx',
          rname: 'hostmaster.nx',
          serial: 1,
          refresh: 3600,
          retry: 600,
          expire: 86400,
          minimum: 60,
        },
      },
    ],
  };
};

describe('cache', () => {
  let gw: TestGateway;

  before(async () => {
    upstream.dot.behaviour.answer = withNegativeSoa;
    gw = await gatewayWith(`
  - { name: cached, clients: [127.0.0.2, 127.0.0.3], upstream: default }
  - { name: uncached, clients: [127.0.0.4], upstream: default, cache: false }`);
  });

  after(async () => {
    upstream.dot.behaviour.answer = defaultAnswer;
    upstream.dot.behaviour.delayMs = 0;
    await gw?.stop();
  });

  test("a hit has aged TTLs, the second client's ID and question case, and no upstream query", async () => {
    const first = await udpQuery(gw.port, 'aged.example', { from: '127.0.0.2', id: 1001 });
    assert.equal(rcodeName(first), 'NOERROR');
    assert.equal(ttlOf(first), 300);
    assert.equal(upstreamSaw('aged.example'), 1);
    const hitsBefore = gw.gateway.counters.cacheHits;

    // A real wait: the gateway's clock is performance.now(), not injectable from outside.
    await new Promise((r) => setTimeout(r, 2100));

    const second = await udpQuery(gw.port, 'AGED.Example', { from: '127.0.0.3', id: 2002 });
    assert.equal(rcodeName(second), 'NOERROR');
    assert.equal(second?.id, 2002);
    assert.equal(second?.questions?.[0].name, 'AGED.Example');
    const ttl = ttlOf(second) ?? -1;
    assert.ok(ttl <= 298 && ttl >= 290, `TTL ${ttl} after 2.1 s`);
    assert.equal((second?.answers?.[0] as { data?: string } | undefined)?.data, '192.0.2.1');
    assert.equal(upstreamSaw('aged.example'), 1);
    assert.equal(gw.gateway.counters.cacheHits, hitsBefore + 1);
  });

  test('50 concurrent identical misses make one upstream query; each client gets its own ID', async () => {
    upstream.dot.behaviour.delayMs = 100;
    const sockets: dgram.Socket[] = [];
    try {
      const answers = await new Promise<Map<number, Decoded>>((resolve, reject) => {
        const got = new Map<number, Decoded>();
        const timer = setTimeout(() => resolve(got), 3000);
        let bound = 0;
        for (let i = 0; i < 50; i++) {
          const socket = dgram.createSocket('udp4');
          sockets.push(socket);
          socket.on('error', (err) => {
            clearTimeout(timer);
            reject(err);
          });
          socket.on('message', (data) => {
            got.set(i, dnsPacket.decode(data) as Decoded);
            if (got.size === 50) {
              clearTimeout(timer);
              resolve(got);
            }
          });
          socket.bind(0, '127.0.0.2', () => {
            // Send only once all 50 are bound, so the queries leave together.
            if (++bound < 50) return;
            for (const [k, s] of sockets.entries()) {
              s.send(encodeQuery('herd.example', { id: 5000 + k }), gw.port, '127.0.0.1');
            }
          });
        }
      });
      assert.equal(answers.size, 50);
      for (const [i, p] of answers) {
        assert.equal(p.id, 5000 + i);
        assert.equal(rcodeName(p), 'NOERROR');
        assert.equal((p.answers?.[0] as { data?: string } | undefined)?.data, '192.0.2.1');
      }
      assert.equal(upstreamSaw('herd.example'), 1);
    } finally {
      upstream.dot.behaviour.delayMs = 0;
      for (const s of sockets) s.close();
    }
  });

  test('an NXDOMAIN with an SOA is cached', async () => {
    const first = await udpQuery(gw.port, 'missing.nx', { from: '127.0.0.2', id: 31 });
    const second = await udpQuery(gw.port, 'missing.nx', { from: '127.0.0.3', id: 32 });
    assert.equal(rcodeName(first), 'NXDOMAIN');
    assert.equal(rcodeName(second), 'NXDOMAIN');
    assert.equal(second?.id, 32);
    assert.equal(second?.authorities?.[0]?.type, 'SOA');
    // Negative lifetime and record TTLs: min(SOA TTL 3600, MINIMUM 60, negative_ttl 300).
    const soaTtl = (second?.authorities?.[0] as { ttl?: number } | undefined)?.ttl ?? -1;
    assert.ok(soaTtl <= 60 && soaTtl >= 55, `SOA TTL ${soaTtl}`);
    assert.equal(upstreamSaw('missing.nx'), 1);
  });

  test('a policy with cache: false asks the upstream every time', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await udpQuery(gw.port, 'nocache.example', { from: '127.0.0.4' });
      assert.equal(rcodeName(res), 'NOERROR');
    }
    assert.equal(upstreamSaw('nocache.example'), 3);
    // ...and does not fill the cache for policies that use it.
    const viaCache = await udpQuery(gw.port, 'nocache.example', { from: '127.0.0.2' });
    assert.equal(rcodeName(viaCache), 'NOERROR');
    assert.equal(upstreamSaw('nocache.example'), 4);
  });
});
