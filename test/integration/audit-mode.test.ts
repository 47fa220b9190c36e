// `mode: audit` through real sockets and a real DoT upstream: what the policy would deny,
// filter or rate-limit is forwarded and answered normally, logged with audit: true and
// would (whatever log_queries says), counted in dns_tool_audit_total; switching the same
// policy to enforce by a reload blocks it.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { rcodeName, tcpQuery, udpQuery } from '../helpers/dns-client.js';
import { useDotUpstream } from '../helpers/dot-fixture.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/ports.js';

const upstream = useDotUpstream();

async function gatewayWith(port: number, mode: 'audit' | 'enforce'): Promise<TestGateway> {
  return startGateway(config(port, mode));
}

function config(port: number, mode: 'audit' | 'enforce'): string {
  return `
version: 1
listeners: [{ name: t, address: 127.0.0.1, port: ${port} }]
upstreams:
  default:
    timeout_ms: 1000
    connections: 1
    servers:
      - ${upstream.serverEntry()}
policies:
  - name: trial
    clients: [127.0.0.2]
    mode: ${mode}
    log_queries: false
    cache: false
    rate_limit: { qps: 0.001, burst: 2, exceed: drop }
    query_types: { deny: [TXT] }
    domains: { deny: [ads.example] }
  - name: trial-deny
    clients: [127.0.0.3]
    mode: ${mode}
    action: deny
    deny_with: drop
  - name: plain
    clients: [127.0.0.4]
    domains: { deny: [ads.example] }
limits: { timeout_ms: 2000 }
log: { level: warn, queries: false }
`;
}

function queryLines(gw: TestGateway): Record<string, unknown>[] {
  return gw.logs.filter((l) => l.msg === 'query');
}

function upstreamSaw(name: string): number {
  return upstream.dot.names.filter((n) => n.toLowerCase() === name).length;
}

async function auditSamples(gw: TestGateway): Promise<string[]> {
  const text = await gw.gateway.registry.metrics();
  return text.split('\n').filter((l) => l.startsWith('dns_tool_audit_total{'));
}

describe('mode: audit', () => {
  test('would-be blocks are forwarded, logged with would whatever log_queries says, and counted', async () => {
    const port = await freePort();
    const gw = await gatewayWith(port, 'audit');
    try {
      // From startup: the audit policies' series exist at 0; the enforce policy has none.
      assert.deepEqual(await auditSamples(gw), [
        'dns_tool_audit_total{policy="trial",decision="denied"} 0',
        'dns_tool_audit_total{policy="trial",decision="rate_limited"} 0',
        'dns_tool_audit_total{policy="trial",decision="filtered"} 0',
        'dns_tool_audit_total{policy="trial-deny",decision="denied"} 0',
        'dns_tool_audit_total{policy="trial-deny",decision="rate_limited"} 0',
        'dns_tool_audit_total{policy="trial-deny",decision="filtered"} 0',
      ]);

      const filtered = await udpQuery(port, 'x.ads.example', { from: '127.0.0.2' });
      assert.equal(rcodeName(filtered), 'NOERROR');
      assert.equal((filtered?.answers ?? []).length, 1, 'the upstream answer is passed on');
      assert.equal(upstreamSaw('x.ads.example'), 1);
      const txt = await tcpQuery(port, 'txt.example', { from: '127.0.0.2', type: 'TXT' });
      assert.equal(rcodeName(txt), 'NOERROR');
      // The burst of 2 is spent; the next query would be rate-limited (and also filtered:
      // the first stage that would block is the one reported).
      const limited = await udpQuery(port, 'late.ads.example', { from: '127.0.0.2' });
      assert.equal(rcodeName(limited), 'NOERROR', 'not dropped');
      const denied = await udpQuery(port, 'www.example', { from: '127.0.0.3' });
      assert.equal(rcodeName(denied), 'NOERROR', 'a denying policy in audit forwards');
      // What audit mode would let through too is not logged: log_queries is false.
      assert.equal(rcodeName(await udpQuery(port, 'quiet.example', { from: '127.0.0.3' })), 'NOERROR');

      const lines = queryLines(gw).map((l) => ({
        qname: l.qname,
        policy: l.policy,
        decision: l.decision,
        audit: l.audit,
        would: l.would,
        rcode: l.rcode,
      }));
      assert.deepEqual(lines, [
        {
          qname: 'x.ads.example',
          policy: 'trial',
          decision: 'allowed',
          audit: true,
          would: 'filtered',
          rcode: 'NOERROR',
        },
        {
          qname: 'txt.example',
          policy: 'trial',
          decision: 'allowed',
          audit: true,
          would: 'filtered',
          rcode: 'NOERROR',
        },
        {
          qname: 'late.ads.example',
          policy: 'trial',
          decision: 'allowed',
          audit: true,
          would: 'rate_limited',
          rcode: 'NOERROR',
        },
        {
          qname: 'www.example',
          policy: 'trial-deny',
          decision: 'allowed',
          audit: true,
          would: 'denied',
          rcode: 'NOERROR',
        },
        {
          qname: 'quiet.example',
          policy: 'trial-deny',
          decision: 'allowed',
          audit: true,
          would: 'denied',
          rcode: 'NOERROR',
        },
      ]);
      assert.deepEqual(await auditSamples(gw), [
        'dns_tool_audit_total{policy="trial",decision="denied"} 0',
        'dns_tool_audit_total{policy="trial",decision="rate_limited"} 1',
        'dns_tool_audit_total{policy="trial",decision="filtered"} 2',
        'dns_tool_audit_total{policy="trial-deny",decision="denied"} 2',
        'dns_tool_audit_total{policy="trial-deny",decision="rate_limited"} 0',
        'dns_tool_audit_total{policy="trial-deny",decision="filtered"} 0',
      ]);
      // dns_tool_queries_total counts what was done: every one of them was allowed.
      const text = await gw.gateway.registry.metrics();
      assert.match(text, /^dns_tool_queries_total\{policy="trial",decision="allowed"\} 3$/m);
      assert.match(text, /^dns_tool_queries_total\{policy="trial",decision="filtered"\} 0$/m);
      assert.match(text, /^dns_tool_queries_total\{policy="trial-deny",decision="allowed"\} 2$/m);
    } finally {
      await gw.stop();
    }
  });

  test('an allowed query of an audit policy is not logged when log_queries is false', async () => {
    const port = await freePort();
    const gw = await gatewayWith(port, 'audit');
    try {
      assert.equal(rcodeName(await udpQuery(port, 'fine.example', { from: '127.0.0.2' })), 'NOERROR');
      assert.deepEqual(queryLines(gw), []);
    } finally {
      await gw.stop();
    }
  });

  test('switched to enforce by a reload, the same queries are blocked and nothing is audited', async () => {
    const port = await freePort();
    const gw = await gatewayWith(port, 'audit');
    try {
      await gw.write(config(port, 'enforce'));
      assert.equal((await gw.gateway.reload()).result, 'success');
      const before = upstreamSaw('y.ads.example');
      assert.equal(rcodeName(await udpQuery(port, 'y.ads.example', { from: '127.0.0.2' })), 'REFUSED');
      assert.equal(upstreamSaw('y.ads.example'), before, 'not forwarded');
      assert.equal(
        await udpQuery(port, 'www.example', { from: '127.0.0.3', timeoutMs: 300 }),
        null,
        'dropped',
      );
      assert.deepEqual(queryLines(gw), []);
      assert.ok((await auditSamples(gw)).every((l) => l.endsWith(' 0')));
    } finally {
      await gw.stop();
    }
  });
});

describe('readiness', () => {
  test('a denying policy in audit mode forwards, so its upstream set counts for /readyz', async () => {
    const port = await freePort();
    // Nothing listens here: the set can never have a verified server.
    const deadPort = await freePort();
    const gw = await startGateway(`
version: 1
listeners: [{ name: t, address: 127.0.0.1, port: ${port} }]
upstreams:
  trial:
    timeout_ms: 300
    servers:
      - ${upstream.serverEntry({ port: deadPort })}
policies:
  - { name: trial-deny, clients: [127.0.0.3], mode: audit, action: deny, upstream: trial }
log: { level: silent }
`);
    try {
      const r = gw.gateway.readiness();
      assert.equal(r.ready, false);
      assert.match(r.reason ?? '', /set\(s\): trial/);
    } finally {
      await gw.stop();
    }
  });
});
