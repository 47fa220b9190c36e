// The pin check matches only certificates on the signature-verified path, over real
// sockets: a UDP client, the gateway, and in-process DoT servers presenting chains made by
// openssl at test time — among them a forgery that carries the pinned key.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  corruptSignature,
  forgeIssuer,
  makeCa,
  makeCerts,
  makeIntermediateChain,
  TEST_TLS_NAME,
  type TestCert,
  type TestCertPem,
  type TestIntermediatePki,
  type TestPki,
} from '../helpers/certs.js';
import { rcodeName, udpQuery } from '../helpers/dns-client.js';
import { type DotServer, startDotServer } from '../helpers/dot-server.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { httpGet } from '../helpers/http.js';

let dir: string;
let pki: TestPki;
let chain: TestIntermediatePki;
/** The CA key the operator pinned; the attacker never holds its private half. */
let target: TestCert;
/** Subject and key id of pki.ca, target's public key, signed by pki.other. */
let forged: TestCertPem;
let gw: TestGateway;
let admin: number;

/** One DoT server per case, each behind its own upstream set and client address. */
const dots: Record<string, DotServer> = {};

interface Case {
  /** Client source address; its policy uses the set named like the case. */
  client: string;
  /** What the server presents: PEM key and chain. */
  key: () => string;
  cert: () => string;
  pins: () => string[];
  caFile: () => string;
}

const CASES: Record<string, Case> = {
  // A CA-valid leaf for the name plus a forged issuer carrying the pinned key.
  forged: {
    client: '127.0.0.20',
    key: () => pki.server.keyPem,
    cert: () => pki.server.certPem + forged.certPem,
    pins: () => [target.pin],
    caFile: () => pki.ca.certPath,
  },
  // The same, with the forgery's own signer trusted too: it is validly signed, but it
  // did not sign the leaf.
  forgedTrustedSigner: {
    client: '127.0.0.21',
    key: () => pki.server.keyPem,
    cert: () => pki.server.certPem + forged.certPem,
    pins: () => [target.pin],
    caFile: () => join(dir, 'ca-and-other.pem'),
  },
  realCa: {
    client: '127.0.0.22',
    key: () => pki.server.keyPem,
    cert: () => pki.serverChainPem,
    pins: () => [pki.ca.pin],
    caFile: () => pki.ca.certPath,
  },
  rootNotSent: {
    client: '127.0.0.23',
    key: () => pki.server.keyPem,
    cert: () => pki.server.certPem,
    pins: () => [pki.ca.pin],
    caFile: () => pki.ca.certPath,
  },
  intermediate: {
    client: '127.0.0.24',
    key: () => chain.leaf.keyPem,
    cert: () => chain.chainPem,
    pins: () => [chain.intermediate.pin],
    caFile: () => chain.root.certPath,
  },
  intermediateRoot: {
    client: '127.0.0.25',
    key: () => chain.leaf.keyPem,
    cert: () => chain.chainPem,
    pins: () => [chain.root.pin],
    caFile: () => chain.root.certPath,
  },
  badIntermediateSignature: {
    client: '127.0.0.26',
    key: () => chain.leaf.keyPem,
    cert: () => chain.leaf.certPem + corruptSignature(chain.intermediate.certPem),
    pins: () => [chain.intermediate.pin],
    caFile: () => chain.root.certPath,
  },
  badLeafSignature: {
    client: '127.0.0.27',
    key: () => chain.leaf.keyPem,
    cert: () => corruptSignature(chain.leaf.certPem) + chain.intermediate.certPem,
    pins: () => [chain.intermediate.pin],
    caFile: () => chain.root.certPath,
  },
};

function config(): string {
  const sets = Object.entries(CASES).map(
    ([name, c]) =>
      `  ${name}: { timeout_ms: 1000, connections: 1, servers: [{ address: 127.0.0.1, port: ${dots[name].port}, tls_name: ${TEST_TLS_NAME}, ca_file: ${c.caFile()}, pins: ${JSON.stringify(c.pins())} }] }`,
  );
  const policies = Object.entries(CASES).map(
    ([name, c]) => `  - { name: ${name}, clients: [${c.client}], upstream: ${name}, cache: false }`,
  );
  return `
version: 1
listeners: [{ name: t, address: 127.0.0.1, port: 0, protocols: [udp] }]
upstreams:
${sets.join('\n')}
policies:
${policies.join('\n')}
limits: { timeout_ms: 1500 }
log: { level: info }
admin: { address: 127.0.0.1, port: 0 }
`;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dns-tool-trust-'));
  pki = await makeCerts(dir);
  chain = await makeIntermediateChain(dir);
  target = await makeCa(dir, 'target', '/CN=pinned operator CA');
  forged = await forgeIssuer(dir, pki.ca, target, pki.other);
  await writeFile(join(dir, 'ca-and-other.pem'), pki.ca.certPem + pki.other.certPem);
  for (const [name, c] of Object.entries(CASES)) {
    dots[name] = await startDotServer({ key: c.key(), cert: c.cert() });
  }
  gw = await startGateway(config());
  const address = gw.gateway.adminAddress();
  assert.ok(address, 'admin server bound');
  admin = address.port;
});

after(async () => {
  await gw?.stop();
  await Promise.all(Object.values(dots).map((d) => d.close()));
  await rm(dir, { recursive: true, force: true });
});

async function ask(name: keyof typeof CASES, qname: string) {
  return udpQuery(gw.port, qname, { from: CASES[name].client, timeoutMs: 3000 });
}

/** dns_tool_upstream_pin_failures_total of one server, read from /metrics over HTTP. */
async function pinFailures(dot: DotServer): Promise<number> {
  const reply = await httpGet(admin, '/metrics');
  assert.equal(reply.status, 200);
  const line = reply.body
    .split('\n')
    .find((l) => l.startsWith(`dns_tool_upstream_pin_failures_total{server="${dot.id}"}`));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

/**
 * The server got not one byte of DNS: the TLS layer delivered nothing to it (a connection
 * refused during or right after the handshake never reaches the server's 'secureConnection',
 * so the gateway's log is what proves the check ran).
 */
function assertNothingWritten(dot: DotServer): void {
  assert.equal(dot.queries, 0, 'no query reached the server');
  assert.deepEqual(dot.chunkSizes, [], 'not one byte was written to the server');
}

describe('the pin check walks the signature-verified path', () => {
  for (const name of ['forged', 'forgedTrustedSigner'] as const) {
    test(`${name}: a forged issuer carrying the pinned key is rejected before any write`, async () => {
      const dot = dots[name];
      assert.equal(forged.pin, target.pin, 'the forgery carries the pinned key');
      const answer = await ask(name, `secret.${name}.example`);
      assert.equal(rcodeName(answer), 'SERVFAIL');
      assertNothingWritten(dot);
      assert.ok((await pinFailures(dot)) >= 1, 'dns_tool_upstream_pin_failures_total rose');
      const line = gw.logs.find((l) => l.upstream === dot.id && String(l.msg).includes('pin mismatch'));
      assert.ok(line, 'pin mismatch logged');
      // The operator sees the path that was checked and, apart, the forgery's pinned key.
      assert.deepEqual(line.presented, [pki.server.pin, pki.ca.pin]);
      // (Node also links the forgery's trusted signer from the store: shown there too.)
      const offPath = line.presentedNotOnPath as string[];
      assert.equal(offPath[0], target.pin);
      assert.ok(!offPath.includes(pki.server.pin) && !offPath.includes(pki.ca.pin));
      assert.deepEqual(line.expected, [target.pin]);
    });
  }

  test('a pin on the real CA, sent by the server, still matches', async () => {
    assert.equal(rcodeName(await ask('realCa', 'ca.example')), 'NOERROR');
    assert.equal(dots.realCa.queries, 1);
  });

  test('a pin on a root the server did not send, found in ca_file, matches', async () => {
    assert.equal(rcodeName(await ask('rootNotSent', 'root.example')), 'NOERROR');
    assert.equal(dots.rootNotSent.queries, 1);
  });

  test('root → intermediate → leaf: a pin on the intermediate, or on the root in ca_file, matches', async () => {
    assert.equal(rcodeName(await ask('intermediate', 'int.example')), 'NOERROR');
    assert.equal(dots.intermediate.queries, 1);
    assert.equal(rcodeName(await ask('intermediateRoot', 'introot.example')), 'NOERROR');
    assert.equal(dots.intermediateRoot.queries, 1);
  });

  for (const name of ['badIntermediateSignature', 'badLeafSignature'] as const) {
    test(`${name}: a chain with a broken signature fails, nothing written`, async () => {
      const answer = await ask(name, `bad.${name}.example`);
      assert.equal(rcodeName(answer), 'SERVFAIL');
      assertNothingWritten(dots[name]);
      const down = gw.logs.find((l) => l.upstream === dots[name].id && l.level === 40);
      assert.match(String(down?.reason), /signature/i, 'refused for its signature');
    });
  }
});
