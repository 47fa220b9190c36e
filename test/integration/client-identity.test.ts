// Client identity behind forwarders, through real sockets: PROXY v2 headers (per datagram,
// and at the start of a TCP connection) and ECS name the client that policies match and rate
// limits key on — but only from the sources the listener trusts. Each attack is tried too: a
// header from an untrusted source, a trusted source without a header, a malformed ECS option.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as dnsPacket from 'dns-packet';
import { encodeProxyV2 } from '../../src/identity/proxy-v2.js';
import { encodeQuery, rcodeName, TcpClient, udpExchange } from '../helpers/dns-client.js';
import { useDotUpstream } from '../helpers/dot-fixture.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { httpGet } from '../helpers/http.js';
import { freePort } from '../helpers/ports.js';

const upstream = useDotUpstream();

const FORWARDER = '127.0.0.1';
const STRANGER = '127.0.0.2';
const GATEWAY = { address: '127.0.0.1', port: 53 };

/** dns-packet's ECS option form. */
function ecs(ip: string, prefix: number) {
  return { code: 8, family: ip.includes(':') ? 2 : 1, sourcePrefixLength: prefix, scopePrefixLength: 0, ip };
}

function queryWith(name: string, id: number, options: unknown[] = []): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: 'A', name, class: 'IN' }],
    additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, options } as unknown as dnsPacket.Answer],
  });
}

function dgram(client: string | null, query: Buffer): Buffer {
  const source = client === null ? null : { address: client, port: 40000 };
  return Buffer.concat([encodeProxyV2(source, GATEWAY, 'dgram'), query]);
}

async function udp(port: number, msg: Buffer, from: string): Promise<dnsPacket.Packet | null> {
  const raw = await udpExchange(port, msg, { from, timeoutMs: 700 });
  return raw === null ? null : dnsPacket.decode(raw);
}

describe('client identity', () => {
  let gw: TestGateway;
  let ppPort = 0;
  let ecsPort = 0;
  let admin = 0;

  async function metric(name: string): Promise<number> {
    const text = (await httpGet(admin, '/metrics')).body;
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    assert.ok(line, `${name} missing`);
    return Number(line.split(' ')[1]);
  }

  before(async () => {
    await upstream.ready();
    ppPort = await freePort();
    ecsPort = await freePort();
    admin = await freePort();
    gw = await startGateway(`
version: 1
listeners:
  - name: pp
    address: 127.0.0.1
    port: ${ppPort}
    proxy_protocol: { from: [${FORWARDER}] }
    ecs_client: { from: [198.51.100.1] }
  - name: ecs
    address: 127.0.0.1
    port: ${ecsPort}
    ecs_client: { from: [${FORWARDER}/32] }
upstreams:
  default:
    timeout_ms: 1000
    servers: [${upstream.serverEntry()}]
policies:
  - name: far
    clients: [203.0.113.0/24, "2001:db8::/32"]
    rate_limit: { qps: 0.01, burst: 2, exceed: refused }
  - { name: subnet, clients: [192.0.2.0/24] }
  - { name: viaforwarder, clients: [198.51.100.0/24] }
  - { name: loop, clients: [127.0.0.0/8], action: deny, deny_with: nxdomain }
admin: { address: 127.0.0.1, port: ${admin} }
log: { level: warn, queries: true }
`);
  });
  after(() => gw.stop());

  test('a PROXY header from the trusted forwarder names the client; the answer comes back bare', async () => {
    const answer = await udp(ppPort, dgram('203.0.113.7', queryWith('pp.example', 101)), FORWARDER);
    assert.equal(rcodeName(answer), 'NOERROR', 'policy "far", not "loop" (the forwarder is 127.0.0.1)');
    assert.equal(answer?.id, 101);
    const line = gw.logs.find((l) => l.msg === 'query' && l.qname === 'pp.example');
    assert.equal(line?.client, '203.0.113.7');
    assert.equal(line?.via, FORWARDER);
    assert.equal(line?.policy, 'far');
  });

  test('IPv6 clients, and LOCAL headers (the forwarder itself)', async () => {
    assert.equal(
      rcodeName(await udp(ppPort, dgram('2001:db8::5', queryWith('v6.example', 102)), FORWARDER)),
      'NOERROR',
    );
    assert.equal(
      rcodeName(await udp(ppPort, dgram(null, queryWith('local.example', 103)), FORWARDER)),
      'NXDOMAIN',
    );
  });

  test('the trusted forwarder without a header: dropped and counted, never answered as itself', async () => {
    const before = await metric('dns_tool_proxy_protocol_errors_total');
    assert.equal(await udp(ppPort, queryWith('bare.example', 104), FORWARDER), null);
    assert.equal(await metric('dns_tool_proxy_protocol_errors_total'), before + 1);
  });

  test('a header from an untrusted source is not parsed: it names nobody', async () => {
    const errors = await metric('dns_tool_proxy_protocol_errors_total');
    const answer = await udp(ppPort, dgram('203.0.113.9', queryWith('spoof.example', 105)), STRANGER);
    // Its bytes are read as DNS: the signature's first bytes are an ID and an IQUERY opcode.
    assert.equal(answer?.id, 0x0d0a);
    assert.equal(rcodeName(answer), 'NOTIMP');
    assert.equal(
      gw.logs.some((l) => l.qname === 'spoof.example'),
      false,
      'the query inside was never seen',
    );
    assert.equal(await metric('dns_tool_proxy_protocol_errors_total'), errors);
    // Without a header the stranger is itself, and gets its own policy.
    assert.equal(rcodeName(await udp(ppPort, queryWith('self.example', 106), STRANGER)), 'NXDOMAIN');
  });

  test('rate limits key on the named client, not on the forwarder', async () => {
    const codes = async (client: string, n: number) => {
      const out: (string | undefined)[] = [];
      for (let i = 0; i < n; i++)
        out.push(
          rcodeName(await udp(ppPort, dgram(client, queryWith(`rl${i}.example`, 200 + i)), FORWARDER)),
        );
      return out;
    };
    assert.deepEqual(await codes('203.0.113.20', 3), ['NOERROR', 'NOERROR', 'REFUSED']);
    assert.deepEqual(
      await codes('203.0.113.21', 2),
      ['NOERROR', 'NOERROR'],
      'a second client has its own bucket',
    );
  });

  test('TCP: the header at connection start (even a byte at a time) names the client of every query', async () => {
    const conn = await TcpClient.connect(ppPort, FORWARDER);
    try {
      const header = encodeProxyV2({ address: '203.0.113.30', port: 1234 }, GATEWAY, 'stream');
      for (const byte of header) {
        conn.socket.write(Buffer.from([byte]));
        await new Promise((r) => setTimeout(r, 2));
      }
      conn.send(queryWith('tcp1.example', 301));
      conn.send(queryWith('tcp2.example', 302));
      const answers = (await conn.waitFor(2)).map((a) => dnsPacket.decode(a));
      assert.deepEqual(answers.map((a) => [a.id, rcodeName(a)]).sort(), [
        [301, 'NOERROR'],
        [302, 'NOERROR'],
      ]);
    } finally {
      conn.close();
    }
  });

  test('TCP: a trusted source with a bad header, or a stranger with a header, is cut', async () => {
    const errors = await metric('dns_tool_proxy_protocol_errors_total');
    const bad = await TcpClient.connect(ppPort, FORWARDER);
    const framed = (q: Buffer) => Buffer.concat([Buffer.from([q.length >> 8, q.length & 0xff]), q]);
    bad.socket.write(framed(queryWith('noheader.example', 303)));
    assert.deepEqual(await bad.waitFor(1, 1500), [], 'no answer');
    assert.equal(bad.closed, true, 'closed by the gateway');
    assert.equal(await metric('dns_tool_proxy_protocol_errors_total'), errors + 1);

    const stranger = await TcpClient.connect(ppPort, STRANGER);
    stranger.socket.write(encodeProxyV2({ address: '203.0.113.31', port: 1 }, GATEWAY, 'stream'));
    stranger.send(queryWith('spoof-tcp.example', 304));
    // The header's first bytes read as a length prefix of 3338: the gateway waits for a
    // message that never comes (the idle timeout cuts it); the query inside is never seen.
    assert.deepEqual(await stranger.waitFor(1, 1000), []);
    assert.equal(
      gw.logs.some((l) => l.qname === 'spoof-tcp.example'),
      false,
    );
    stranger.close();
  });

  test('ECS from the trusted source names the client; from anyone else it names nobody; never forwarded', async () => {
    const named = await udp(ecsPort, queryWith('ecs-a.example', 401, [ecs('192.0.2.0', 24)]), FORWARDER);
    assert.equal(rcodeName(named), 'NOERROR', 'policy "subnet"');
    const line = gw.logs.find((l) => l.msg === 'query' && l.qname === 'ecs-a.example');
    assert.equal(line?.client, '192.0.2.0');
    assert.equal(line?.via, FORWARDER);

    const ignored = await udp(ecsPort, queryWith('ecs-b.example', 402, [ecs('192.0.2.0', 24)]), STRANGER);
    assert.equal(rcodeName(ignored), 'NXDOMAIN', 'the stranger is itself ("loop")');
    const optOut = await udp(ecsPort, queryWith('ecs-c.example', 403, [ecs('0.0.0.0', 0)]), FORWARDER);
    assert.equal(rcodeName(optOut), 'NXDOMAIN', 'prefix 0 names nobody: the forwarder itself');

    for (const raw of upstream.dot.rawQueries) {
      const opt = dnsPacket.decode(raw).additionals?.find((r) => r.type === 'OPT') as {
        options?: { code: number }[];
      };
      assert.ok(!opt?.options?.some((o) => o.code === 8), 'no ECS option ever reached the upstream');
    }
    assert.equal(
      upstream.dot.rawQueries.some((q) => q.includes(Buffer.from([192, 0, 2]))),
      false,
    );
  });

  test('a malformed ECS option from the trusted source gets FORMERR, not the forwarder identity', async () => {
    const bad = dnsPacket.encode({
      type: 'query',
      id: 404,
      questions: [{ type: 'A', name: 'ecs-bad.example', class: 'IN' }],
      additionals: [
        {
          type: 'OPT',
          name: '.',
          udpPayloadSize: 1232,
          options: [{ code: 8, data: Buffer.from([0, 1, 24, 0, 192, 0, 2, 7]) }],
        } as unknown as dnsPacket.Answer,
      ],
    });
    assert.equal(rcodeName(await udp(ecsPort, bad, FORWARDER)), 'FORMERR');
  });

  test('ECS behind a PROXY header counts only when the PROXY-named source is trusted for ECS', async () => {
    const trustedNamer = await udp(
      ppPort,
      dgram('198.51.100.1', queryWith('chain-a.example', 501, [ecs('192.0.2.0', 24)])),
      FORWARDER,
    );
    assert.equal(rcodeName(trustedNamer), 'NOERROR');
    assert.equal(gw.logs.find((l) => l.qname === 'chain-a.example')?.policy, 'subnet');
    await udp(
      ppPort,
      dgram('198.51.100.2', queryWith('chain-b.example', 502, [ecs('192.0.2.0', 24)])),
      FORWARDER,
    );
    assert.equal(gw.logs.find((l) => l.qname === 'chain-b.example')?.policy, 'viaforwarder');
  });

  test('a plain query to the ECS listener from the trusted source is the source itself', async () => {
    assert.equal(
      rcodeName(await udp(ecsPort, encodeQuery('plain.example', { id: 405 }), FORWARDER)),
      'NXDOMAIN',
    );
  });
});
