// The certification path the pin check walks (verifiedPath): only certificates whose key
// verified the signature below them, up to a trust anchor, are on it. Certificates are
// made by openssl at test time; the adversary presents whatever certificates it likes.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  MAX_PATH,
  MAX_SIGNATURE_CHECKS,
  spkiPin,
  TrustStore,
  verifiedPath,
} from '../../src/upstream/tls-connect.js';
import {
  corruptSignature,
  forgeIssuer,
  issueCert,
  makeCa,
  makeCerts,
  makeIntermediateChain,
  makeLeaf,
  makeSubCa,
  type TestCert,
  type TestIntermediatePki,
  type TestPki,
} from '../helpers/certs.js';

let dir: string;
let pki: TestPki;
let chain: TestIntermediatePki;
/** The key an operator pinned, which the attacker does not hold. */
let target: TestCert;

const x509 = (pem: string) => new X509Certificate(pem);
const pins = (path: X509Certificate[] | null) => path?.map((c) => spkiPin(c)) ?? null;
const store = (...certs: { certPem: string }[]) => TrustStore.fromPem(certs.map((c) => c.certPem).join(''));

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dns-tool-walk-'));
  pki = await makeCerts(join(dir));
  chain = await makeIntermediateChain(dir);
  target = await makeCa(dir, 'target', '/CN=pinned operator CA');
});
after(() => rm(dir, { recursive: true, force: true }));

describe('verifiedPath', () => {
  test('leaf signed by a store CA: leaf, then that CA', () => {
    const path = verifiedPath(x509(pki.server.certPem), [], store(pki.ca));
    assert.deepEqual(pins(path), [pki.server.pin, pki.ca.pin]);
  });

  test('the presented copy of the anchor is the anchor: compared by DER', () => {
    const path = verifiedPath(x509(pki.server.certPem), [x509(pki.ca.certPem)], store(pki.ca));
    assert.deepEqual(pins(path), [pki.server.pin, pki.ca.pin]);
  });

  test('a leaf that is itself in the store is a path of one', () => {
    const path = verifiedPath(x509(pki.other.certPem), [], store(pki.other));
    assert.deepEqual(pins(path), [pki.other.pin]);
  });

  test('root → intermediate → leaf, the root only in the store', () => {
    const path = verifiedPath(
      x509(chain.leaf.certPem),
      [x509(chain.intermediate.certPem)],
      store(chain.root),
    );
    assert.deepEqual(pins(path), [chain.leaf.pin, chain.intermediate.pin, chain.root.pin]);
  });

  test('no anchor reachable: null', () => {
    assert.equal(
      verifiedPath(x509(chain.leaf.certPem), [x509(chain.intermediate.certPem)], store(pki.ca)),
      null,
    );
    assert.equal(verifiedPath(x509(chain.leaf.certPem), [], store(chain.root)), null, 'intermediate missing');
  });

  test('forged issuer (subject and key id of the real CA, pinned key, signed by another): not on the path', async () => {
    const forged = await forgeIssuer(dir, pki.ca, target, pki.other);
    assert.equal(forged.pin, target.pin, 'the forgery carries the pinned key');
    const forgedX = x509(forged.certPem);
    // Chain linking by name and key identifier takes it for the leaf's issuer...
    assert.equal(x509(pki.server.certPem).checkIssued(forgedX), true);
    // ...but the path goes to the real CA, whose key signed the leaf.
    const path = verifiedPath(x509(pki.server.certPem), [forgedX], store(pki.ca));
    assert.deepEqual(pins(path), [pki.server.pin, pki.ca.pin]);
    // Even when the forgery's own signer is trusted, it did not sign the leaf.
    assert.equal(verifiedPath(x509(pki.server.certPem), [forgedX], store(pki.other)), null);
    // And presented alone, with its signer and the real CA both trusted: still the real CA.
    assert.deepEqual(pins(verifiedPath(x509(pki.server.certPem), [forgedX], store(pki.other, pki.ca))), [
      pki.server.pin,
      pki.ca.pin,
    ]);
  });

  test('a bad signature anywhere: no path', () => {
    const badLeaf = x509(corruptSignature(chain.leaf.certPem));
    assert.equal(verifiedPath(badLeaf, [x509(chain.intermediate.certPem)], store(chain.root)), null);
    const badIntermediate = x509(corruptSignature(chain.intermediate.certPem));
    assert.equal(spkiPin(badIntermediate), chain.intermediate.pin, 'same key, broken signature');
    assert.equal(verifiedPath(x509(chain.leaf.certPem), [badIntermediate], store(chain.root)), null);
    // The intact chain from the same files does verify.
    assert.notEqual(
      verifiedPath(x509(chain.leaf.certPem), [x509(chain.intermediate.certPem)], store(chain.root)),
      null,
    );
  });

  test('certificates outside their validity are not issuers', () => {
    const leaf = x509(chain.leaf.certPem);
    const presented = [x509(chain.intermediate.certPem)];
    const day = 86_400_000;
    assert.equal(verifiedPath(leaf, presented, store(chain.root), Date.now() + 60 * day), null);
    assert.equal(verifiedPath(leaf, presented, store(chain.root), Date.now() - 2 * day), null);
  });

  test('a presented certificate that is not a CA cannot issue', async () => {
    // A server leaf (CA:FALSE) whose key signed another leaf: the signature checks out,
    // but a non-CA key vouches for nothing.
    const notCa = await issueCert(
      dir,
      'not-ca',
      '/CN=not a CA',
      chain.root,
      'basicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n',
    );
    const below = await makeLeaf(dir, 'below-not-ca', notCa);
    const leaf = x509(below.certPem);
    assert.equal(leaf.verify(x509(notCa.certPem).publicKey), true);
    assert.equal(verifiedPath(leaf, [x509(notCa.certPem)], store(chain.root)), null);
  });

  test('cross-signed intermediate: a dead end is left for the alternative that reaches the store', async () => {
    const oldRoot = await makeCa(dir, 'x-old-root', '/CN=old root');
    const newRoot = await makeCa(dir, 'x-new-root', '/CN=new root');
    const viaOld = await makeSubCa(dir, 'x-int-old', '/CN=cross intermediate', oldRoot);
    const viaNew = await makeSubCa(dir, 'x-int-new', '/CN=cross intermediate', newRoot, viaOld);
    assert.equal(viaNew.pin, viaOld.pin, 'one key, two issuers');
    const leaf = await makeLeaf(dir, 'x-leaf', viaOld);
    const presented = [x509(viaOld.certPem), x509(viaNew.certPem)];
    const path = verifiedPath(x509(leaf.certPem), presented, store(newRoot));
    assert.deepEqual(pins(path), [leaf.pin, viaNew.pin, newRoot.pin]);
    assert.equal(path?.[1].raw.equals(x509(viaNew.certPem).raw), true, 'the copy signed by the trusted root');
    assert.deepEqual(pins(verifiedPath(x509(leaf.certPem), presented, store(oldRoot))), [
      leaf.pin,
      viaOld.pin,
      oldRoot.pin,
    ]);
  });

  test(`paths longer than MAX_PATH (${MAX_PATH}) are not followed`, async () => {
    const root = await makeCa(dir, 'deep-root', '/CN=deep root');
    const cas: TestCert[] = [];
    let issuer = root;
    for (let i = 0; i < MAX_PATH - 1; i++) {
      issuer = await makeSubCa(dir, `deep-${i}`, `/CN=deep ${i}`, issuer);
      cas.push(issuer);
    }
    const leaf = await makeLeaf(dir, 'deep-leaf', issuer);
    const presented = cas.map((c) => x509(c.certPem));
    // leaf + MAX_PATH - 1 intermediates + root = MAX_PATH + 1 certificates.
    assert.equal(verifiedPath(x509(leaf.certPem), presented, store(root)), null);
    // The same chain is accepted once it fits: trust the topmost intermediate instead.
    const fits = verifiedPath(x509(leaf.certPem), presented, store(cas[0]));
    assert.equal(fits?.length, MAX_PATH);
  });

  test(`more than MAX_SIGNATURE_CHECKS (${MAX_SIGNATURE_CHECKS}) look-alike issuers: the walk gives up (fails closed)`, async () => {
    const decoys: X509Certificate[] = [];
    for (let i = 0; i < MAX_SIGNATURE_CHECKS; i++) {
      const decoy = await forgeIssuer(dir, chain.intermediate, target, pki.other, `decoy-${i}`);
      decoys.push(x509(decoy.certPem));
    }
    const leaf = x509(chain.leaf.certPem);
    const real = x509(chain.intermediate.certPem);
    assert.equal(verifiedPath(leaf, [...decoys, real], store(chain.root)), null);
    // A few decoys cost a few checks; the real intermediate is still found.
    assert.deepEqual(pins(verifiedPath(leaf, [...decoys.slice(0, 3), real], store(chain.root))), [
      chain.leaf.pin,
      chain.intermediate.pin,
      chain.root.pin,
    ]);
  });
});

describe('TrustStore', () => {
  test('reads every certificate of a bundle and skips what does not parse', () => {
    const bundle = `${pki.ca.certPem}\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n${chain.root.certPem}`;
    const s = TrustStore.fromPem(bundle);
    assert.equal(s.size, 2);
    assert.equal(s.has(x509(pki.ca.certPem)), true);
    assert.equal(s.has(x509(chain.root.certPem)), true);
    assert.equal(s.has(x509(pki.server.certPem)), false);
  });
});
