// The in-process DoT upstream most integration tests share: test certificates made with
// openssl and a DoT server presenting the CA-signed leaf, started before the file's tests
// and closed after them.
import { after, before } from 'node:test';
import { makeCerts, type TestPki } from './certs.js';
import { type DotServer, startDotServer } from './dot-server.js';

export interface DotFixture {
  /** Available inside tests (set by the file-level `before` hook). */
  readonly pki: TestPki;
  readonly dot: DotServer;
}

/** Register file-level hooks that start and stop a DoT upstream; read it in tests. */
export function useDotUpstream(): DotFixture {
  let pki: TestPki | undefined;
  let dot: DotServer | undefined;
  before(async () => {
    pki = await makeCerts();
    dot = await startDotServer({ key: pki.server.keyPem, cert: pki.server.certPem });
  });
  after(async () => {
    await dot?.close();
    await pki?.cleanup();
  });
  return {
    get pki() {
      if (!pki) throw new Error('DoT fixture used outside a test');
      return pki;
    },
    get dot() {
      if (!dot) throw new Error('DoT fixture used outside a test');
      return dot;
    },
  };
}
