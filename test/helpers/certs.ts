// Test PKI made at test time with the `openssl` CLI: a CA, a server leaf it signs, and an
// unrelated self-signed certificate, each with its SPKI pin as openssl computes it.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCert {
  keyPath: string;
  certPath: string;
  keyPem: string;
  certPem: string;
  /** base64 SHA-256 of the DER SubjectPublicKeyInfo, computed by openssl (not by Node). */
  pin: string;
}

export interface TestPki {
  dir: string;
  /** Self-signed CA that signs `server`. */
  ca: TestCert;
  /** Leaf for DNS name `dns.test` and IP 127.0.0.1, signed by `ca`. */
  server: TestCert;
  /** `server` followed by `ca`: what a server presents when it sends its whole chain. */
  serverChainPem: string;
  /** Self-signed leaf for the same names, unrelated to `ca`: for pin and CA mismatch tests. */
  other: TestCert;
  cleanup(): Promise<void>;
}

/** Name and IP written into both leaf certificates. */
export const TEST_TLS_NAME = 'dns.test';
export const TEST_TLS_IP = '127.0.0.1';

/** Run openssl with `args`, feeding `input` on stdin; resolves with stdout. */
export function openssl(args: readonly string[], input?: Buffer | string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn('openssl', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    // openssl may exit without reading stdin (req, x509 -in); the exit code reports real failures.
    child.stdin.on('error', () => {});
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out));
      else reject(new Error(`openssl ${args.join(' ')} exited ${code}: ${Buffer.concat(err).toString()}`));
    });
    child.stdin.end(input ?? '');
  });
}

/** base64 SHA-256 SPKI pin of a PEM certificate, the way operators compute it with openssl. */
export async function pinOf(certPem: string): Promise<string> {
  const pubkeyPem = await openssl(['x509', '-pubkey', '-noout'], certPem);
  const spkiDer = await openssl(['pkey', '-pubin', '-outform', 'der'], pubkeyPem);
  const digest = await openssl(['dgst', '-sha256', '-binary'], spkiDer);
  return digest.toString('base64');
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
const LEAF_SAN = `subjectAltName=DNS:${TEST_TLS_NAME},IP:${TEST_TLS_IP}`;

async function load(keyPath: string, certPath: string): Promise<TestCert> {
  const [keyPem, certPem] = await Promise.all([readFile(keyPath, 'utf8'), readFile(certPath, 'utf8')]);
  return { keyPath, certPath, keyPem, certPem, pin: await pinOf(certPem) };
}

/** Make a fresh PKI in `dir` (default: a new temp dir, removed by cleanup()). */
export async function makeCerts(dir?: string): Promise<TestPki> {
  const base = dir ?? (await mkdtemp(join(tmpdir(), 'dns-tool-pki-')));
  const p = (name: string) => join(base, name);

  await openssl([
    'req',
    '-x509',
    ...EC_KEY,
    '-keyout',
    p('ca.key'),
    '-out',
    p('ca.pem'),
    '-days',
    '30',
    '-subj',
    '/CN=dns-tool test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  await openssl([
    'req',
    '-new',
    ...EC_KEY,
    '-keyout',
    p('server.key'),
    '-out',
    p('server.csr'),
    '-subj',
    `/CN=${TEST_TLS_NAME}`,
  ]);
  await writeFile(p('server.ext'), `${LEAF_SAN}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
  await openssl([
    'x509',
    '-req',
    '-in',
    p('server.csr'),
    '-CA',
    p('ca.pem'),
    '-CAkey',
    p('ca.key'),
    '-CAcreateserial',
    '-out',
    p('server.pem'),
    '-days',
    '30',
    '-extfile',
    p('server.ext'),
  ]);
  await openssl([
    'req',
    '-x509',
    ...EC_KEY,
    '-keyout',
    p('other.key'),
    '-out',
    p('other.pem'),
    '-days',
    '30',
    '-subj',
    `/CN=${TEST_TLS_NAME}`,
    '-addext',
    LEAF_SAN,
  ]);

  const [ca, server, other] = await Promise.all([
    load(p('ca.key'), p('ca.pem')),
    load(p('server.key'), p('server.pem')),
    load(p('other.key'), p('other.pem')),
  ]);
  return {
    dir: base,
    ca,
    server,
    serverChainPem: server.certPem + ca.certPem,
    other,
    cleanup: () => rm(base, { recursive: true, force: true }),
  };
}
