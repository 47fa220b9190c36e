// Tests `dns-tool pin` against real TLS servers on loopback whose CA and leaf are made by
// the openssl CLI at test time; expected pins come from the openssl pipeline, not our code.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createTcpServer, type Socket, type Server as TcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { parse as parseYaml } from 'yaml';
import { parsePinArgs, runPin } from '../../src/commands/pin.js';
import { skipUnlessBinaries } from '../helpers/binaries.js';
import { openssl, pinOf } from '../helpers/certs.js';

// Skipped without openssl on a developer machine; under CI=true it runs and fails instead.
const skip = skipUnlessBinaries('openssl');

/** The certificate's notAfter as openssl prints it, in ISO form. */
async function opensslNotAfter(certFile: string): Promise<string> {
  const line = (await openssl(['x509', '-in', certFile, '-enddate', '-noout'])).toString('ascii').trim();
  return new Date(line.replace(/^notAfter=/, '')).toISOString();
}

interface Pki {
  dir: string;
  caCert: string;
  leafCert: string;
  leafKey: string;
}

/** Its own CA and leaf, not makeCerts(): the assertions name these subjects, and the leaf needs an IPv6 SAN. */
async function makePki(): Promise<Pki> {
  const dir = mkdtempSync(join(tmpdir(), 'dns-tool-pin-'));
  const f = (name: string): string => join(dir, name);
  await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', f('ca.key')]);
  await openssl([
    'req',
    '-x509',
    '-new',
    '-key',
    f('ca.key'),
    '-subj',
    '/CN=Pin Test Root CA/O=dns-tool tests',
    '-days',
    '30',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
    '-out',
    f('ca.pem'),
  ]);
  await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', f('leaf.key')]);
  await openssl(['req', '-new', '-key', f('leaf.key'), '-subj', '/CN=dns.test', '-out', f('leaf.csr')]);
  const ext = 'subjectAltName=DNS:dns.test,IP:127.0.0.1,IP:::1\nbasicConstraints=CA:FALSE\n';
  writeFileSync(f('leaf.ext'), ext);
  await openssl([
    'x509',
    '-req',
    '-in',
    f('leaf.csr'),
    '-CA',
    f('ca.pem'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-days',
    '10',
    '-extfile',
    f('leaf.ext'),
    '-out',
    f('leaf.pem'),
  ]);
  return { dir, caCert: f('ca.pem'), leafCert: f('leaf.pem'), leafKey: f('leaf.key') };
}

class Capture {
  text = '';
  readonly stream = {
    write: (chunk: string | Uint8Array): boolean => {
      this.text += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
      return true;
    },
  } as unknown as NodeJS.WritableStream;
}

async function pin(args: readonly string[]): Promise<{ code: number; out: string; err: string }> {
  const out = new Capture();
  const err = new Capture();
  const code = await runPin(args, out.stream, err.stream);
  return { code, out: out.text, err: err.text };
}

function listen<S extends TlsServer | TcpServer>(server: S, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : 0);
    });
  });
}

function close(server: TlsServer | TcpServer): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

describe('dns-tool pin', { skip }, () => {
  let pki: Pki;
  let leafPin: string;
  let caPin: string;
  /** Presents leaf + CA, like a public resolver presenting leaf + intermediate. */
  let fullChainServer: TlsServer;
  let fullChainPort: number;
  /** Presents the leaf alone. */
  let leafOnlyServer: TlsServer;
  let leafOnlyPort: number;
  /** Accepts TCP and never answers the ClientHello. */
  let silentServer: TcpServer;
  let silentPort: number;
  const silentSockets = new Set<Socket>();

  before(async () => {
    pki = await makePki();
    leafPin = await pinOf(readFileSync(pki.leafCert, 'utf8'));
    caPin = await pinOf(readFileSync(pki.caCert, 'utf8'));
    const key = readFileSync(pki.leafKey);
    const leaf = readFileSync(pki.leafCert, 'utf8');
    const ca = readFileSync(pki.caCert, 'utf8');
    fullChainServer = createTlsServer({ key, cert: leaf + ca }, (s) => s.end());
    fullChainPort = await listen(fullChainServer, '127.0.0.1');
    leafOnlyServer = createTlsServer({ key, cert: leaf }, (s) => s.end());
    leafOnlyPort = await listen(leafOnlyServer, '127.0.0.1');
    silentServer = createTcpServer((s) => {
      silentSockets.add(s);
      s.on('close', () => silentSockets.delete(s));
    });
    silentPort = await listen(silentServer, '127.0.0.1');
  });

  after(async () => {
    for (const s of silentSockets) s.destroy();
    await Promise.all([close(fullChainServer), close(leafOnlyServer), close(silentServer)]);
    rmSync(pki.dir, { recursive: true, force: true });
  });

  test('prints each presented certificate, leaf first, with the openssl-computed pins', async () => {
    const r = await pin([`127.0.0.1:${fullChainPort}`, '--name', 'dns.test']);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, '');
    assert.match(
      r.out,
      new RegExp(`^127\\.0\\.0\\.1:${fullChainPort} \\(SNI dns\\.test\\) presented 2 certificates:`),
    );
    const pins = [...r.out.matchAll(/^ {2}pin: +(\S+)$/gm)].map((m) => m[1]);
    assert.deepEqual(pins, [leafPin, caPin]);
    const subjects = [...r.out.matchAll(/^ {2}subject: +(.+)$/gm)].map((m) => m[1]);
    assert.deepEqual(subjects, ['CN=dns.test', 'CN=Pin Test Root CA, O=dns-tool tests']);
    const issuers = [...r.out.matchAll(/^ {2}issuer: +(.+)$/gm)].map((m) => m[1]);
    assert.deepEqual(issuers, [
      'CN=Pin Test Root CA, O=dns-tool tests',
      'CN=Pin Test Root CA, O=dns-tool tests',
    ]);
    const notAfter = [...r.out.matchAll(/^ {2}not after: +(\S+)$/gm)].map((m) => m[1]);
    assert.deepEqual(notAfter, [await opensslNotAfter(pki.leafCert), await opensslNotAfter(pki.caCert)]);
    assert.match(r.out, /^certificate 1 of 2 \(leaf\)$/m);
  });

  test('a private CA is not valid against the default roots', async () => {
    const r = await pin([`127.0.0.1:${fullChainPort}`, '--name', 'dns.test']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^chain valid for dns\.test: no \(SELF_SIGNED_CERT_IN_CHAIN\)$/m);
  });

  test('--ca-file validates the chain and the name', async () => {
    const ok = await pin([`127.0.0.1:${leafOnlyPort}`, '--name', 'dns.test', '--ca-file', pki.caCert]);
    assert.equal(ok.code, 0, ok.err);
    assert.match(ok.out, /^chain valid for dns\.test: yes$/m);

    const wrongName = await pin([
      `127.0.0.1:${leafOnlyPort}`,
      '--name',
      'other.test',
      '--ca-file',
      pki.caCert,
    ]);
    assert.equal(wrongName.code, 0, wrongName.err);
    assert.match(
      wrongName.out,
      /^chain valid for other\.test: no \(Host: other\.test\. is not in the cert's altnames: .+\)$/m,
    );

    // Without --name an IP target is checked against the certificate's IP addresses.
    const byIp = await pin([`127.0.0.1:${leafOnlyPort}`, '--ca-file', pki.caCert]);
    assert.equal(byIp.code, 0, byIp.err);
    assert.match(byIp.out, /^127\.0\.0\.1:\d+ presented 1 certificate:$/m);
    assert.match(byIp.out, /^chain valid for 127\.0\.0\.1: yes$/m);
  });

  test('the --ca-file CA is used to validate, not added to the presented chain', async () => {
    const r = await pin([`127.0.0.1:${leafOnlyPort}`, '--name', 'dns.test', '--ca-file', pki.caCert]);
    assert.equal(r.code, 0, r.err);
    const pins = [...r.out.matchAll(/^ {2}pin: +(\S+)$/gm)].map((m) => m[1]);
    assert.deepEqual(pins, [leafPin]);
    assert.match(r.out, /presented 1 certificate:/);
  });

  test('prints a pins: snippet that parses as YAML, leaf first and issuer as backup', async () => {
    const r = await pin([`127.0.0.1:${fullChainPort}`, '--name', 'dns.test']);
    assert.equal(r.code, 0, r.err);
    const snippet = r.out.slice(r.out.indexOf('\npins:\n') + 1);
    assert.deepEqual(parseYaml(snippet), { pins: [leafPin, caPin] });
    assert.match(snippet, new RegExp(`^ {2}- "${escapeRegExp(leafPin)}" +# leaf: CN=dns\\.test$`, 'm'));
    assert.match(
      snippet,
      new RegExp(
        `^ {2}- "${escapeRegExp(caPin)}" +# backup: issuing CA CN=Pin Test Root CA, O=dns-tool tests$`,
        'm',
      ),
    );
  });

  test('connects to an IPv6 literal in brackets', async (t) => {
    const key = readFileSync(pki.leafKey);
    const server = createTlsServer({ key, cert: readFileSync(pki.leafCert) }, (s) => s.end());
    let port: number;
    try {
      port = await listen(server, '::1');
    } catch {
      t.skip('no IPv6 loopback');
      return;
    }
    try {
      const r = await pin([`[::1]:${port}`, '--ca-file', pki.caCert]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, new RegExp(`^\\[::1\\]:${port} presented 1 certificate:`));
      assert.match(r.out, /^chain valid for ::1: yes$/m);
      assert.deepEqual(
        [...r.out.matchAll(/^ {2}pin: +(\S+)$/gm)].map((m) => m[1]),
        [leafPin],
      );
    } finally {
      await close(server);
    }
  });

  test('exits 1 with a clear message when nothing listens', async () => {
    const probe = createTcpServer();
    const port = await listen(probe, '127.0.0.1');
    await close(probe);
    const r = await pin([`127.0.0.1:${port}`, '--timeout', '2000']);
    assert.equal(r.code, 1);
    assert.equal(r.out, '');
    assert.match(r.err, new RegExp(`^dns-tool pin: 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
  });

  test('exits 1 when the handshake does not finish within --timeout', async () => {
    const started = performance.now();
    const r = await pin([`127.0.0.1:${silentPort}`, '--timeout', '150']);
    const elapsed = performance.now() - started;
    assert.equal(r.code, 1);
    assert.match(r.err, /no TLS handshake within 150 ms/);
    assert.ok(elapsed < 2000, `took ${elapsed} ms`);
  });

  test('exits 1 when --ca-file cannot be read', async () => {
    const r = await pin([`127.0.0.1:${fullChainPort}`, '--ca-file', join(pki.dir, 'missing.pem')]);
    assert.equal(r.code, 1);
    assert.match(r.err, /cannot read --ca-file .*missing\.pem/);
  });
});

describe('dns-tool pin usage', () => {
  test('exits 2 with usage on bad arguments', async () => {
    for (const args of [
      [],
      ['127.0.0.1:0'],
      ['127.0.0.1:65536'],
      ['127.0.0.1:x'],
      ['1.2.3.4', '5.6.7.8'],
      ['1.2.3.4', '--bogus', 'x'],
      ['1.2.3.4', '--name'],
      ['1.2.3.4', '--timeout', '0'],
      ['1.2.3.4', '--timeout', '1.5'],
      ['[1.2.3.4]:853'],
      ['[::1'],
      ['::1:853:x'],
      ['bad host'],
    ]) {
      const r = await pin(args);
      assert.equal(r.code, 2, `args ${JSON.stringify(args)}`);
      assert.equal(r.out, '');
      assert.match(r.err, /^dns-tool pin: .+\nusage: dns-tool pin HOST\[:PORT\]/);
    }
  });

  test('--help prints usage and exits 0', async () => {
    const r = await pin(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.out, /^usage: dns-tool pin/);
  });

  test('parses host forms, ports and the TLS name', () => {
    assert.deepEqual(pick(parsePinArgs(['1.1.1.1'])), { host: '1.1.1.1', port: 853, tlsName: undefined });
    assert.deepEqual(pick(parsePinArgs(['1.1.1.1:8853', '--name=one.one'])), {
      host: '1.1.1.1',
      port: 8853,
      tlsName: 'one.one',
    });
    assert.deepEqual(pick(parsePinArgs(['[2606:4700::1111]:853'])), {
      host: '2606:4700::1111',
      port: 853,
      tlsName: undefined,
    });
    assert.deepEqual(pick(parsePinArgs(['2606:4700::1111'])), {
      host: '2606:4700::1111',
      port: 853,
      tlsName: undefined,
    });
    assert.deepEqual(pick(parsePinArgs(['dns.example:1853'])), {
      host: 'dns.example',
      port: 1853,
      tlsName: 'dns.example',
    });
    assert.equal(parsePinArgs(['x.example']).timeoutMs, 5000);
    assert.equal(parsePinArgs(['x.example', '--timeout', '250']).timeoutMs, 250);
  });
});

function pick(o: { host: string; port: number; tlsName: string | undefined }) {
  return { host: o.host, port: o.port, tlsName: o.tlsName };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
