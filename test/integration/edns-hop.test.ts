// EDNS is hop by hop: what leaves for the upstream and what goes back to the client, through
// real UDP/TCP sockets, a gateway started from YAML and an in-process DoT upstream that
// records every query's bytes and answers with options a client must never see.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as dnsPacket from 'dns-packet';
import { TcpClient, udpExchange } from '../helpers/dns-client.js';
import { useDotUpstream } from '../helpers/dot-fixture.js';
import { type AnswerFn, defaultAnswer } from '../helpers/dot-server.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/ports.js';

const UDP_MAX = 1400;
const COOKIE = Buffer.from('c0c0a1e5c0c0a1e5', 'hex');
const NSID = Buffer.from('upstream-host-7');
/** EDE 3 (Stale Answer) with EXTRA-TEXT, the one upstream option that reaches clients. */
const EDE = Buffer.concat([Buffer.from([0, 3]), Buffer.from('served stale')]);

type Option = { code: number; data?: Buffer; [k: string]: unknown };
type Opt = { type: 'OPT'; udpPayloadSize: number; flags: number; flag_do?: boolean; options: Option[] };
type Decoded = dnsPacket.DecodedPacket & { flag_cd?: boolean };

const upstream = useDotUpstream();

/** The default answer plus an OPT full of hop-specific options (and an EDE). */
const chattyAnswer: AnswerFn = (query) => {
  const answer = defaultAnswer(query);
  if (answer === null) return null;
  const clientOpt = query.additionals?.find((r) => r.type === 'OPT') as unknown as Opt | undefined;
  const doBit = (clientOpt?.flags ?? 0) & dnsPacket.DNSSEC_OK;
  return {
    ...answer,
    additionals: [
      {
        type: 'OPT',
        name: '.',
        udpPayloadSize: 4096,
        flags: doBit,
        options: [
          { code: 3, data: NSID },
          { code: 10, data: Buffer.concat([COOKIE, Buffer.from('5e5e5e5e00000002', 'hex')]) },
          { code: 15, data: EDE },
          { code: 12, length: 37 },
        ],
      } as unknown as dnsPacket.Answer,
    ],
  };
};

function clientQuery(
  name: string,
  opts: { id: number; edns?: boolean; dnssecOk?: boolean; cd?: boolean; options?: Option[] },
): Buffer {
  const additionals: dnsPacket.Answer[] = [];
  if (opts.edns) {
    additionals.push({
      type: 'OPT',
      name: '.',
      udpPayloadSize: 4096,
      flags: opts.dnssecOk ? dnsPacket.DNSSEC_OK : 0,
      options: opts.options ?? [],
    } as unknown as dnsPacket.Answer);
  }
  return dnsPacket.encode({
    type: 'query',
    id: opts.id,
    flags: dnsPacket.RECURSION_DESIRED | (opts.cd ? dnsPacket.CHECKING_DISABLED : 0),
    questions: [{ type: 'A', name, class: 'IN' }],
    additionals,
  });
}

/** Every option a client might send and none of which may leave the gateway. */
const CLIENT_OPTIONS: Option[] = [
  { code: 8, family: 1, sourcePrefixLength: 24, scopePrefixLength: 0, ip: '198.51.100.0' },
  { code: 10, data: COOKIE },
  { code: 3, data: Buffer.alloc(0) },
  { code: 11, timeout: 100 },
];

function optOf(msg: Buffer): Opt | undefined {
  const decoded = dnsPacket.decode(msg);
  const opts = (decoded.additionals ?? []).filter((r) => r.type === 'OPT');
  assert.ok(opts.length <= 1, 'at most one OPT');
  return opts[0] as unknown as Opt | undefined;
}

/** The raw upstream query for `name` (the last one seen). */
function upstreamQueryFor(name: string): Buffer {
  const lower = name.toLowerCase();
  for (let i = upstream.dot.rawQueries.length - 1; i >= 0; i--) {
    const raw = upstream.dot.rawQueries[i];
    if (dnsPacket.decode(raw).questions?.[0]?.name.toLowerCase() === lower) return raw;
  }
  assert.fail(`the upstream never saw ${name}`);
}

function upstreamCount(name: string): number {
  return upstream.dot.names.filter((n) => n.toLowerCase() === name).length;
}

async function udp(port: number, msg: Buffer): Promise<Buffer> {
  const answer = await udpExchange(port, msg, { timeoutMs: 3000 });
  assert.ok(answer, 'an answer');
  return answer;
}

/** A gateway in front of the test upstream, answering with chattyAnswer; one policy for everyone. */
async function chattyGateway(cache: boolean): Promise<TestGateway> {
  await upstream.ready();
  upstream.dot.behaviour.answer = chattyAnswer;
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
  - { name: all, clients: [0.0.0.0/0], cache: ${cache} }
limits: { timeout_ms: 2000, udp_max_payload: ${UDP_MAX} }
log: { level: warn }
`);
}

for (const cache of [false, true]) {
  describe(`EDNS hop by hop, cache ${cache ? 'on' : 'off'}`, () => {
    let gw: TestGateway;
    const tag = cache ? 'c' : 'n';

    before(async () => {
      gw = await chattyGateway(cache);
    });
    after(async () => {
      await gw.stop();
      upstream.dot.behaviour.answer = defaultAnswer;
    });

    test('none of the client options leave; the upstream query is ours, padded to 128 octets', async () => {
      const name = `opts-${tag}.example`;
      await udp(gw.port, clientQuery(name, { id: 11, edns: true, dnssecOk: true, options: CLIENT_OPTIONS }));
      const raw = upstreamQueryFor(name);
      assert.equal(raw.length % 128, 0, `padded to a multiple of 128 (got ${raw.length})`);
      assert.equal(raw.readUInt16BE(10), 1, 'one additional record: our OPT');
      const opt = optOf(raw)!;
      assert.equal(opt.flag_do, true, "the client's DO bit");
      assert.deepEqual(
        opt.options.map((o) => o.code),
        [12],
        'only Padding: no ECS, COOKIE, NSID or KEEPALIVE',
      );
      assert.equal(raw.indexOf(COOKIE), -1, 'the cookie bytes appear nowhere');
      assert.equal(raw.indexOf(Buffer.from([198, 51, 100])), -1, 'the client subnet appears nowhere');
    });

    test('a client without EDNS: an OPT (padded) upstream, none back', async () => {
      const name = `classic-${tag}.example`;
      const answer = await udp(gw.port, clientQuery(name, { id: 12 }));
      const raw = upstreamQueryFor(name);
      assert.equal(raw.length % 128, 0);
      assert.equal(optOf(raw)?.flag_do, false);
      assert.equal(answer.readUInt16BE(10), 0, 'ARCOUNT 0: no OPT for a client that sent none');
      assert.equal(optOf(answer), undefined);
      assert.equal(answer.indexOf(NSID), -1);
      const decoded = dnsPacket.decode(answer);
      assert.equal(decoded.id, 12);
      assert.equal((decoded.answers?.[0] as { data?: string } | undefined)?.data, '192.0.2.1');
    });

    test("an EDNS client gets the gateway's OPT: its UDP size, DO as answered, only EDE", async () => {
      for (const dnssecOk of [false, true]) {
        const name = `edns-${tag}-${dnssecOk}.example`;
        const answer = await udp(gw.port, clientQuery(name, { id: 13, edns: true, dnssecOk }));
        const opt = optOf(answer)!;
        assert.equal(opt.udpPayloadSize, UDP_MAX, 'udp_max_payload, not the upstream 4096');
        assert.equal(opt.flag_do, dnssecOk, 'DO as answered');
        assert.deepEqual(
          opt.options.map((o) => o.code),
          [15],
          'EDE kept; NSID, COOKIE and Padding dropped',
        );
        assert.deepEqual(opt.options[0].data, EDE);
        assert.equal(answer.indexOf(NSID), -1);
        assert.equal(answer.indexOf(COOKIE), -1);
      }
    });

    test('UDP and TCP answers agree byte for byte', async () => {
      const name = `tcp-${tag}.example`;
      const query = clientQuery(name, { id: 14, edns: true });
      const overUdp = await udp(gw.port, query);
      const tcp = await TcpClient.connect(gw.port);
      try {
        tcp.send(query);
        const [overTcp] = await tcp.waitFor(1);
        assert.deepEqual(overTcp, overUdp);
      } finally {
        tcp.close();
      }
    });
  });
}

describe('cache: hits and misses are the same bytes; CD is part of the key', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await chattyGateway(true);
  });
  after(async () => {
    await gw.stop();
    upstream.dot.behaviour.answer = defaultAnswer;
  });

  test('a miss and the hit after it are identical, with and without EDNS', async () => {
    for (const [i, edns] of [false, true].entries()) {
      const name = `same-bytes-${i}.example`;
      const query = clientQuery(name, { id: 21, edns, dnssecOk: edns });
      const miss = await udp(gw.port, query);
      const hit = await udp(gw.port, query);
      assert.equal(upstreamCount(name), 1, 'the second came from the cache');
      assert.deepEqual(hit, miss);
    }
  });

  test('the other EDNS form is served from the same entry, its own OPT form', async () => {
    const name = 'cross-form.example';
    const withEdns = await udp(gw.port, clientQuery(name, { id: 22, edns: true }));
    const classic = await udp(gw.port, clientQuery(name, { id: 22 }));
    assert.equal(upstreamCount(name), 1);
    assert.equal(classic.readUInt16BE(10), 0);
    const upToOpt = Buffer.from(withEdns.subarray(0, classic.length));
    upToOpt.writeUInt16BE(0, 10);
    assert.deepEqual(classic, upToOpt);
  });

  test('an answer fetched with CD=1 is never served to a CD=0 client', async () => {
    const name = 'checking.example';
    await udp(gw.port, clientQuery(name, { id: 23, edns: true, dnssecOk: true, cd: true }));
    const raw = upstreamQueryFor(name);
    assert.equal((dnsPacket.decode(raw) as Decoded).flag_cd, true, 'CD is passed upstream');
    await udp(gw.port, clientQuery(name, { id: 24, edns: true, dnssecOk: true }));
    assert.equal(upstreamCount(name), 2, 'the validating client went upstream');
    assert.equal((dnsPacket.decode(upstreamQueryFor(name)) as Decoded).flag_cd, false);
    await udp(gw.port, clientQuery(name, { id: 25, edns: true, dnssecOk: true, cd: true }));
    await udp(gw.port, clientQuery(name, { id: 26, edns: true, dnssecOk: true }));
    assert.equal(upstreamCount(name), 2, 'each kind is now a hit of its own entry');
  });
});
