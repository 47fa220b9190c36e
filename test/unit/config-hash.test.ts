// The config identity used to skip unchanged reloads covers the ca_file contents.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfigFile } from '../../src/config/load.js';
import { makeCerts } from '../helpers/certs.js';

test('a rotated ca_file changes the config hash; the same contents keep it', async () => {
  const pki = await makeCerts();
  try {
    const caPath = join(pki.dir, 'bundle.pem');
    const configPath = join(pki.dir, 'config.yaml');
    await writeFile(caPath, pki.ca.certPem);
    await writeFile(
      configPath,
      `version: 1
listeners: [{ name: l, address: 127.0.0.1, port: 5353 }]
upstreams:
  default:
    servers: [{ address: 127.0.0.1, tls_name: dns.test, ca_file: bundle.pem }]
policies: [{ name: p, clients: [127.0.0.0/8] }]
`,
    );
    const first = await loadConfigFile(configPath);
    const again = await loadConfigFile(configPath);
    assert.ok('config' in first && 'config' in again);
    assert.equal(first.config.hash, again.config.hash);
    await writeFile(caPath, pki.other.certPem);
    const rotated = await loadConfigFile(configPath);
    assert.ok('config' in rotated);
    assert.notEqual(rotated.config.hash, first.config.hash);
  } finally {
    await pki.cleanup();
  }
});
