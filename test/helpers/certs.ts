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

/** A certificate without a key of its own in the test: a forgery or a corrupted copy. */
export interface TestCertPem {
  certPem: string;
  /** base64 SHA-256 SPKI, computed by openssl. */
  pin: string;
}

/** A root CA, an intermediate CA it signs, and a server leaf the intermediate signs. */
export interface TestIntermediatePki {
  root: TestCert;
  intermediate: TestCert;
  /** Leaf for `dns.test` and 127.0.0.1, signed by `intermediate`. */
  leaf: TestCert;
  /** `leaf` then `intermediate`: what a server sends (the root stays in the client's store). */
  chainPem: string;
}

const CA_EXT = 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n';
const LEAF_EXT = `${LEAF_SAN}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`;

/**
 * A certificate with `subject`, signed by `issuer` (self-signed when null), with the
 * extensions in `ext` (one per line, `openssl x509 -extfile` form), for a new EC key or,
 * given `keyOf` (with an issuer), for that certificate's key: a cross-signed copy.
 */
export async function issueCert(
  dir: string,
  name: string,
  subject: string,
  issuer: TestCert | null,
  ext: string,
  keyOf?: TestCert,
): Promise<TestCert> {
  const p = (suffix: string) => join(dir, `${name}.${suffix}`);
  await writeFile(p('ext'), ext);
  if (issuer === null) {
    await openssl([
      'req',
      '-x509',
      ...EC_KEY,
      '-keyout',
      p('key'),
      '-out',
      p('pem'),
      '-days',
      '30',
      '-subj',
      subject,
      ...ext
        .split('\n')
        .filter((line) => line !== '')
        .flatMap((line) => ['-addext', line]),
    ]);
  } else {
    const key = keyOf === undefined ? [...EC_KEY, '-keyout', p('key')] : ['-key', keyOf.keyPath];
    await openssl(['req', '-new', ...key, '-out', p('csr'), '-subj', subject]);
    await openssl([
      'x509',
      '-req',
      '-in',
      p('csr'),
      '-CA',
      issuer.certPath,
      '-CAkey',
      issuer.keyPath,
      '-CAcreateserial',
      '-days',
      '30',
      '-extfile',
      p('ext'),
      '-out',
      p('pem'),
    ]);
  }
  return load(keyOf?.keyPath ?? p('key'), p('pem'));
}

/** root → intermediate → leaf, made in `dir`. */
export async function makeIntermediateChain(dir: string): Promise<TestIntermediatePki> {
  const root = await issueCert(dir, 'chain-root', '/CN=dns-tool test root', null, CA_EXT);
  const intermediate = await issueCert(dir, 'chain-int', '/CN=dns-tool test intermediate', root, CA_EXT);
  const leaf = await issueCert(dir, 'chain-leaf', `/CN=${TEST_TLS_NAME}`, intermediate, LEAF_EXT);
  return { root, intermediate, leaf, chainPem: leaf.certPem + intermediate.certPem };
}

/** A self-signed CA certificate with a key of its own. */
export function makeCa(dir: string, name: string, subject: string): Promise<TestCert> {
  return issueCert(dir, name, subject, null, CA_EXT);
}

/** A CA certificate for a new key, signed by `issuer` (an intermediate); `keyOf`: for that one's key. */
export function makeSubCa(
  dir: string,
  name: string,
  subject: string,
  issuer: TestCert,
  keyOf?: TestCert,
): Promise<TestCert> {
  return issueCert(dir, name, subject, issuer, CA_EXT, keyOf);
}

/** A server leaf for `dns.test` and 127.0.0.1 signed by `issuer`. */
export function makeLeaf(dir: string, name: string, issuer: TestCert): Promise<TestCert> {
  return issueCert(dir, name, `/CN=${TEST_TLS_NAME}`, issuer, LEAF_EXT);
}

/** The subject key identifier of a PEM certificate as openssl prints it (AA:BB:...). */
export async function subjectKeyId(certPem: string): Promise<string> {
  const out = (await openssl(['x509', '-noout', '-ext', 'subjectKeyIdentifier'], certPem)).toString();
  const m = /Subject Key Identifier:\s*\n\s*([0-9A-F:]+)/i.exec(out);
  if (m === null) throw new Error(`no subject key identifier in: ${out}`);
  return m[1];
}

/**
 * The forged issuer of the pin bypass: a CA certificate with the subject and key identifier
 * of `impersonated` (so name-and-key-id chain linking takes it for the real issuer) but
 * carrying `pinnedKeyOf`'s public key, signed by `signer`. Nobody holding the pinned key's
 * private half was involved: it cannot have signed anything below it.
 */
export async function forgeIssuer(
  dir: string,
  impersonated: TestCert,
  pinnedKeyOf: TestCert,
  signer: TestCert,
  name = 'forged',
): Promise<TestCertPem> {
  const p = (suffix: string) => join(dir, `${name}.${suffix}`);
  const subject = (await openssl(['x509', '-noout', '-subject', '-nameopt', 'compat'], impersonated.certPem))
    .toString()
    .trim()
    .replace(/^subject=\s*/, '');
  const ski = await subjectKeyId(impersonated.certPem);
  await writeFile(p('pub'), await openssl(['x509', '-pubkey', '-noout'], pinnedKeyOf.certPem));
  await writeFile(p('ext'), `${CA_EXT}subjectKeyIdentifier=${ski}\n`);
  await openssl([
    'x509',
    '-new',
    '-subj',
    subject,
    '-force_pubkey',
    p('pub'),
    '-CA',
    signer.certPath,
    '-CAkey',
    signer.keyPath,
    '-CAcreateserial',
    '-days',
    '30',
    '-extfile',
    p('ext'),
    '-out',
    p('pem'),
  ]);
  const certPem = await readFile(p('pem'), 'utf8');
  return { certPem, pin: await pinOf(certPem) };
}

/**
 * `certPem` with one bit of its signature flipped: it still parses, its key and names are
 * unchanged, but its issuer's key no longer verifies it.
 */
export function corruptSignature(certPem: string): string {
  const b64 = certPem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
  const der = Buffer.from(b64, 'base64');
  // The signature BIT STRING ends the certificate: its last byte is signature, not structure.
  der[der.length - 1] ^= 0x01;
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`;
}
