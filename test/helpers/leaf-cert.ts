// More server leaves for a test PKI (certs.ts makes one): each a fresh P-256 key signed by the
// PKI's CA for the same names, for key-rotation tests where the CA stays and the pin changes.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openssl, pinOf, TEST_TLS_IP, TEST_TLS_NAME, type TestCert, type TestPki } from './certs.js';

/** A new leaf `name`.pem / `name`.key in `pki.dir`, signed by `pki.ca`, valid for dns.test and 127.0.0.1. */
export async function makeLeaf(pki: TestPki, name: string): Promise<TestCert> {
  const p = (suffix: string) => join(pki.dir, `${name}.${suffix}`);
  await openssl([
    'req',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    p('key'),
    '-out',
    p('csr'),
    '-subj',
    `/CN=${TEST_TLS_NAME}`,
  ]);
  await writeFile(
    p('ext'),
    `subjectAltName=DNS:${TEST_TLS_NAME},IP:${TEST_TLS_IP}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`,
  );
  await openssl([
    'x509',
    '-req',
    '-in',
    p('csr'),
    '-CA',
    pki.ca.certPath,
    '-CAkey',
    pki.ca.keyPath,
    '-CAcreateserial',
    '-out',
    p('pem'),
    '-days',
    '30',
    '-extfile',
    p('ext'),
  ]);
  const [keyPem, certPem] = await Promise.all([readFile(p('key'), 'utf8'), readFile(p('pem'), 'utf8')]);
  return { keyPath: p('key'), certPath: p('pem'), keyPem, certPem, pin: await pinOf(certPem) };
}
