// Client identity with real forwarders and clients: Debian's dnsdist in front of the built
// gateway with useProxyProtocol, kdig clients on 127.0.0.2 and 127.0.0.3 getting their own
// policies through it; kdig +subnet through an ecs_client listener; and the in-process DoT
// upstream, which records every query, never sees an ECS option.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as dnsPacket from 'dns-packet';
import { requireBinary, skipUnlessBinaries } from '../helpers/binaries.js';
import { useDotUpstream } from '../helpers/dot-fixture.js';
import { freePort } from '../helpers/ports.js';
import { type GatewayProcess, type KdigAnswer, kdig, startGateway } from '../helpers/proc.js';

const upstream = useDotUpstream();

describe('client identity behind real forwarders', {
  skip: skipUnlessBinaries('dnsdist', 'kdig', 'openssl'),
}, () => {
  let dir = '';
  let gateway: GatewayProcess | null = null;
  let dnsdist: ChildProcess | null = null;
  let proxied = 0;
  let ecsPort = 0;
  let front = 0;

  before(async () => {
    await upstream.ready();
    const dnsdistBin = requireBinary('dnsdist');
    requireBinary('kdig');
    dir = mkdtempSync(join(tmpdir(), 'dns-tool-identity-'));
    proxied = await freePort();
    ecsPort = await freePort();
    front = await freePort();
    const config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      `version: 1
listeners:
  - { name: behind-dnsdist, address: 127.0.0.1, port: ${proxied}, proxy_protocol: { from: [127.0.0.1] } }
  - { name: from-coredns, address: 127.0.0.1, port: ${ecsPort}, ecs_client: { from: [127.0.0.1] } }
upstreams:
  default:
    servers: [${upstream.serverEntry()}]
policies:
  - { name: two, clients: [127.0.0.2] }
  - { name: three, clients: [127.0.0.3], domains: { deny: [blocked.example] }, deny_with: nxdomain }
  - { name: subnet, clients: [198.51.100.0/24] }
  - { name: forwarder, clients: [127.0.0.1], action: deny, deny_with: refused }
log: { level: info, queries: true }
`,
    );
    gateway = await startGateway({ args: ['--config', config] });
    // dnsdist 1.7: its health check would mark the backend down before the first query;
    // setUp() pins it up. Only 127.0.0.0/8 may query it (its default ACL), console off.
    const dnsdistConf = join(dir, 'dnsdist.conf');
    writeFileSync(
      dnsdistConf,
      `setLocal("127.0.0.1:${front}")
newServer({address="127.0.0.1:${proxied}", useProxyProtocol=true})
getServer(0):setUp()
setSecurityPollSuffix("")
`,
    );
    dnsdist = spawn(dnsdistBin, ['-C', dnsdistConf, '--supervised', '--disable-syslog'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // Ready when it answers through the gateway (bounded: 40 tries, 250 ms apart).
    for (let i = 0; ; i++) {
      try {
        await kdig(['-b', '127.0.0.2', '-p', String(front), '@127.0.0.1', 'ready.example'], 3000);
        break;
      } catch (err) {
        if (i >= 40) throw err;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  });

  after(async () => {
    dnsdist?.kill('SIGKILL');
    await gateway?.stop('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const viaDnsdist = (from: string, ...args: string[]): Promise<KdigAnswer> =>
    kdig(['-b', from, '-p', String(front), '@127.0.0.1', ...args]);

  test('dnsdist with useProxyProtocol: each client network gets its own policy', async () => {
    assert.equal((await viaDnsdist('127.0.0.2', 'blocked.example')).rcode, 'NOERROR', 'policy two');
    assert.equal((await viaDnsdist('127.0.0.3', 'blocked.example')).rcode, 'NXDOMAIN', 'policy three');
    assert.equal((await viaDnsdist('127.0.0.3', 'open.example')).rcode, 'NOERROR');
    assert.equal((await viaDnsdist('127.0.0.2', '+tcp', 'tcp.example')).rcode, 'NOERROR', 'over TCP too');
    const line = gateway!.logs.find((l) => l.msg === 'query' && l.qname === 'open.example');
    assert.equal(line?.client, '127.0.0.3');
    assert.equal(line?.via, '127.0.0.1');
    // Straight to the gateway, the forwarder's own address sends no header: dropped.
    await assert.rejects(kdig(['-b', '127.0.0.1', '-p', String(proxied), '@127.0.0.1', 'direct.example']));
  });

  test('kdig +subnet through an ecs_client listener: the subnet is the client; the upstream never sees ECS', async () => {
    const named = await kdig(['-p', String(ecsPort), '@127.0.0.1', '+subnet=198.51.100.0/24', 'ecs.example']);
    assert.equal(named.rcode, 'NOERROR', 'policy subnet, not the refused forwarder');
    const plain = await kdig(['-p', String(ecsPort), '@127.0.0.1', 'noecs.example']);
    assert.equal(plain.rcode, 'REFUSED', 'without ECS the source is the client');
    const line = gateway!.logs.find((l) => l.msg === 'query' && l.qname === 'ecs.example');
    assert.equal(line?.client, '198.51.100.0');
    for (const raw of upstream.dot.rawQueries) {
      const opt = dnsPacket.decode(raw).additionals?.find((r) => r.type === 'OPT') as
        | { options?: { code: number }[] }
        | undefined;
      assert.ok(!opt?.options?.some((o) => o.code === 8), 'no ECS option upstream');
    }
  });
});
