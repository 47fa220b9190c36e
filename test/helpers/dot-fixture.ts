// The in-process DoT upstream most integration tests share: test certificates made with
// openssl and a DoT server presenting the CA-signed leaf, started before the file's tests
// and closed after them.
import { after, before } from 'node:test';
import { makeCerts, TEST_TLS_NAME, type TestPki } from './certs.js';
import { type DotServer, startDotServer } from './dot-server.js';

export interface DotFixture {
  /** Available inside tests (set by the file-level `before` hook). */
  readonly pki: TestPki;
  readonly dot: DotServer;
  /**
   * Resolves once the upstream is up. File-level `before` hooks that use it must await this
   * first: Node 20 starts file-level hooks without waiting for the previous one to finish.
   */
  ready(): Promise<void>;
  /** A `servers:` entry for this DoT server (or another `port`), pinned to `pin` (default: its leaf). */
  serverEntry(opts?: { port?: number; pin?: string }): string;
}

/**
 * One `servers:` entry of a gateway config, as a YAML flow mapping: a DoT server on
 * 127.0.0.1:`port` presenting a leaf of `pki`, checked against its CA and `pin`.
 */
export function serverEntry(pki: TestPki, port: number, pin = pki.server.pin): string {
  return `{ address: 127.0.0.1, port: ${port}, tls_name: ${TEST_TLS_NAME}, ca_file: ${pki.ca.certPath}, pins: ["${pin}"] }`;
}

/** Register file-level hooks that start and stop a DoT upstream; read it in tests. */
export function useDotUpstream(): DotFixture {
  let pki: TestPki | undefined;
  let dot: DotServer | undefined;
  let starting: Promise<void> | undefined;
  const ready = (): Promise<void> => {
    starting ??= (async () => {
      pki = await makeCerts();
      dot = await startDotServer({ key: pki.server.keyPem, cert: pki.server.certPem });
    })();
    return starting;
  };
  before(ready);
  after(async () => {
    await dot?.close();
    await pki?.cleanup();
  });
  const fixture: DotFixture = {
    get pki() {
      if (!pki) throw new Error('DoT fixture used outside a test');
      return pki;
    },
    get dot() {
      if (!dot) throw new Error('DoT fixture used outside a test');
      return dot;
    },
    ready,
    serverEntry: (opts = {}) => serverEntry(fixture.pki, opts.port ?? fixture.dot.port, opts.pin),
  };
  return fixture;
}
