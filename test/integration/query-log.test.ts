// The query log through real sockets: one JSON line per query when `log.queries` or a
// policy's `log_queries` asks for it, none otherwise, whatever the decision.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { tcpQuery, udpQuery } from '../helpers/dns-client.js';
import { useDotUpstream } from '../helpers/dot-fixture.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/ports.js';

/** Timeout for a query that must be dropped. */
const DROP_WAIT_MS = 300;

const upstream = useDotUpstream();

async function gatewayWith(policies: string, log: string): Promise<TestGateway> {
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
log: ${log}
`);
}

/** The policies every test uses: one per decision the log can show. */
const POLICIES = `
  - { name: lan, clients: [127.0.0.2], upstream: default, query_types: { deny: [TXT] }, deny_with: nxdomain }
  - { name: limited, clients: [127.0.0.3], upstream: default, rate_limit: { qps: 0.5, burst: 1, exceed: drop } }
  - { name: blocked, clients: [127.0.0.4], action: deny }`;

/** Query log lines written so far (answers are sent after their line, so no wait is needed). */
function queryLines(gw: TestGateway): Record<string, unknown>[] {
  return gw.logs.filter((l) => l.msg === 'query');
}

/** One of each: upstream miss, cache hit, TCP, filtered, rate limited (dropped), denied, unmatched. */
async function sendOneOfEach(gw: TestGateway): Promise<void> {
  assert.ok(await udpQuery(gw.port, 'Logged.Example', { from: '127.0.0.2', type: 'A' }));
  assert.ok(await udpQuery(gw.port, 'logged.example', { from: '127.0.0.2', type: 'A' }));
  assert.ok(await tcpQuery(gw.port, 'tcp.example', { from: '127.0.0.2', type: 'AAAA' }));
  assert.ok(await udpQuery(gw.port, 'logged.example', { from: '127.0.0.2', type: 'TXT' }));
  assert.ok(await udpQuery(gw.port, 'first.example', { from: '127.0.0.3' }));
  assert.equal(
    await udpQuery(gw.port, 'second.example', { from: '127.0.0.3', timeoutMs: DROP_WAIT_MS }),
    null,
  );
  assert.ok(await udpQuery(gw.port, 'denied.example', { from: '127.0.0.4' }));
  assert.ok(await udpQuery(gw.port, 'stranger.example', { from: '127.0.0.9' }));
}

describe('query log', () => {
  test('log.queries: one line per query with client, name, type, policy, decision, rcode, cache and upstream', async () => {
    const gw = await gatewayWith(POLICIES, '{ level: info, queries: true }');
    try {
      await sendOneOfEach(gw);
      const lines = queryLines(gw);
      assert.equal(lines.length, 8, JSON.stringify(lines));
      for (const line of lines) {
        assert.equal(typeof line.duration_ms, 'number');
        assert.ok((line.duration_ms as number) >= 0 && (line.duration_ms as number) < 2000);
      }
      const pick = ({
        client,
        qname,
        qtype,
        policy,
        decision,
        rcode,
        cached,
        upstream,
      }: Record<string, unknown>) => ({
        client,
        qname,
        qtype,
        policy,
        decision,
        rcode,
        cached,
        upstream,
      });
      assert.deepEqual(lines.map(pick), [
        {
          client: '127.0.0.2',
          qname: 'Logged.Example',
          qtype: 'A',
          policy: 'lan',
          decision: 'allowed',
          rcode: 'NOERROR',
          cached: false,
          upstream: upstream.dot.id,
        },
        {
          client: '127.0.0.2',
          qname: 'logged.example',
          qtype: 'A',
          policy: 'lan',
          decision: 'allowed',
          rcode: 'NOERROR',
          cached: true,
          upstream: null,
        },
        {
          client: '127.0.0.2',
          qname: 'tcp.example',
          qtype: 'AAAA',
          policy: 'lan',
          decision: 'allowed',
          rcode: 'NOERROR',
          cached: false,
          upstream: upstream.dot.id,
        },
        {
          client: '127.0.0.2',
          qname: 'logged.example',
          qtype: 'TXT',
          policy: 'lan',
          decision: 'filtered',
          rcode: 'NXDOMAIN',
          cached: false,
          upstream: null,
        },
        {
          client: '127.0.0.3',
          qname: 'first.example',
          qtype: 'A',
          policy: 'limited',
          decision: 'allowed',
          rcode: 'NOERROR',
          cached: false,
          upstream: upstream.dot.id,
        },
        {
          client: '127.0.0.3',
          qname: 'second.example',
          qtype: 'A',
          policy: 'limited',
          decision: 'rate_limited',
          rcode: null,
          cached: false,
          upstream: null,
        },
        {
          client: '127.0.0.4',
          qname: 'denied.example',
          qtype: 'A',
          policy: 'blocked',
          decision: 'denied',
          rcode: 'REFUSED',
          cached: false,
          upstream: null,
        },
        {
          client: '127.0.0.9',
          qname: 'stranger.example',
          qtype: 'A',
          policy: null,
          decision: 'unmatched',
          rcode: 'REFUSED',
          cached: false,
          upstream: null,
        },
      ]);
      assert.deepEqual(
        lines.map((l) => l.transport),
        ['udp', 'udp', 'tcp', 'udp', 'udp', 'udp', 'udp', 'udp'],
      );
    } finally {
      await gw.stop();
    }
  });

  test('queries folded into one upstream fetch each log the upstream that answered', async () => {
    const gw = await gatewayWith(POLICIES, '{ level: info, queries: true }');
    upstream.dot.behaviour.delayMs = 100;
    try {
      const before = upstream.dot.queries;
      const answers = await Promise.all(
        Array.from({ length: 5 }, (_, i) =>
          udpQuery(gw.port, 'folded.example', { from: '127.0.0.2', id: 600 + i }),
        ),
      );
      assert.deepEqual(
        answers.map((a) => a?.id),
        [600, 601, 602, 603, 604],
      );
      assert.equal(upstream.dot.queries, before + 1);
      const lines = queryLines(gw);
      assert.equal(lines.length, 5);
      for (const line of lines) {
        assert.equal(line.qname, 'folded.example');
        assert.equal(line.rcode, 'NOERROR');
        assert.equal(line.cached, false);
        assert.equal(line.upstream, upstream.dot.id);
      }
    } finally {
      upstream.dot.behaviour.delayMs = 0;
      await gw.stop();
    }
  });

  test('with query logging off there are no query lines at all', async () => {
    const gw = await gatewayWith(POLICIES, '{ level: trace, queries: false }');
    try {
      await sendOneOfEach(gw);
      assert.ok(gw.logs.length > 0, 'the gateway logs other things at trace');
      assert.deepEqual(queryLines(gw), []);
    } finally {
      await gw.stop();
    }
  });

  test("a policy's log_queries decides for its clients, either way", async () => {
    const gw = await gatewayWith(
      `
  - { name: loud, clients: [127.0.0.2], upstream: default, log_queries: true }
  - { name: quiet, clients: [127.0.0.3], upstream: default, log_queries: false }
  - { name: follows, clients: [127.0.0.4], upstream: default }`,
      '{ level: info, queries: false }',
    );
    try {
      for (const from of ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.9']) {
        assert.ok(await udpQuery(gw.port, 'which.example', { from }));
      }
      const lines = queryLines(gw);
      assert.deepEqual(
        lines.map((l) => [l.client, l.policy]),
        [['127.0.0.2', 'loud']],
      );
    } finally {
      await gw.stop();
    }
  });

  test('log.queries on, a policy with log_queries: false stays silent', async () => {
    const gw = await gatewayWith(
      `
  - { name: loud, clients: [127.0.0.2], upstream: default }
  - { name: quiet, clients: [127.0.0.3], upstream: default, log_queries: false }`,
      '{ level: info, queries: true }',
    );
    try {
      assert.ok(await udpQuery(gw.port, 'a.example', { from: '127.0.0.3' }));
      assert.ok(await udpQuery(gw.port, 'b.example', { from: '127.0.0.2' }));
      assert.deepEqual(
        queryLines(gw).map((l) => [l.client, l.qname]),
        [['127.0.0.2', 'b.example']],
      );
    } finally {
      await gw.stop();
    }
  });

  test('query lines are written when asked for even if log.level is above info', async () => {
    const gw = await gatewayWith(POLICIES, '{ level: warn, queries: true }');
    try {
      assert.ok(await udpQuery(gw.port, 'quiet-level.example', { from: '127.0.0.2' }));
      assert.ok(await udpQuery(gw.port, 'quiet-level.example', { from: '127.0.0.4' }));
      assert.deepEqual(
        queryLines(gw).map((l) => [l.policy, l.decision]),
        [
          ['lan', 'allowed'],
          ['blocked', 'denied'],
        ],
      );
      // The level still applies to everything else.
      assert.equal(gw.logs.filter((l) => l.msg !== 'query' && (l.level as number) < 40).length, 0);
    } finally {
      await gw.stop();
    }
  });
});
