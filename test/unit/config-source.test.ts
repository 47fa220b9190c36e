// A config source (text plus the bytes of the files it names) builds the same config, hash
// included, wherever it is parsed and whatever the disk holds by then: what the primary
// sends its workers.
import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfigSource, parseConfigSource } from '../../src/config/load.js';
import { makeCerts } from '../helpers/certs.js';

const TEXT = `version: 1
listeners: [{ name: l, address: 127.0.0.1, port: 5353 }]
upstreams:
  default:
    servers: [{ address: 127.0.0.1, tls_name: dns.test, ca_file: bundle.pem }]
policies: [{ name: p, clients: [127.0.0.0/8] }]
`;

test('a source records the ca_file bytes it was validated with and rebuilds without the disk', async () => {
  const pki = await makeCerts();
  try {
    const caPath = join(pki.dir, 'bundle.pem');
    const configPath = join(pki.dir, 'config.yaml');
    await writeFile(caPath, pki.ca.certPem);
    await writeFile(configPath, TEXT);
    const loaded = await loadConfigSource(configPath);
    if ('problems' in loaded) assert.fail(JSON.stringify(loaded.problems));
    assert.equal(loaded.source.text, TEXT);
    assert.equal(loaded.source.baseDir, pki.dir);
    assert.deepEqual(loaded.source.files, [[caPath, pki.ca.certPem]]);

    // The files change and vanish: the source still builds the validated config. It also
    // survives the trip through JSON that the IPC channel makes.
    await writeFile(caPath, pki.other.certPem);
    await writeFile(configPath, `${TEXT}bogus: 1\n`);
    const sent = JSON.parse(JSON.stringify(loaded.source));
    await rm(caPath);
    const rebuilt = parseConfigSource(sent);
    if ('problems' in rebuilt) assert.fail(JSON.stringify(rebuilt.problems));
    assert.equal(rebuilt.config.hash, loaded.config.hash);
    assert.equal(rebuilt.config.upstreams.get('default')?.servers[0].ca, pki.ca.certPem);
  } finally {
    await pki.cleanup();
  }
});

test('a file the source does not carry is a problem at its ca_file, not a disk read', async () => {
  const pki = await makeCerts();
  try {
    // On disk, but not in the source: it must not be read.
    await writeFile(join(pki.dir, 'bundle.pem'), pki.ca.certPem);
    const result = parseConfigSource({ text: TEXT, path: 'sent.yaml', baseDir: pki.dir, files: [] });
    assert.ok('problems' in result);
    assert.equal(result.problems.length, 1);
    assert.equal(result.problems[0].line, 5);
    assert.match(result.problems[0].message, /ca_file: cannot read .*bundle\.pem: not among the files sent/);
  } finally {
    await pki.cleanup();
  }
});
