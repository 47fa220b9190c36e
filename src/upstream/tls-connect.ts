// Pinned TLS connect: the options a DoT connection is opened with, and the peer check
// (CA and name via Node, SPKI pins here, on a certification path whose signatures this
// file verifies) every connection passes before a query is written.
import { createHash, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import tls, { type ConnectionOptions, type DetailedPeerCertificate, type TLSSocket } from 'node:tls';
import type { UpstreamServerConfig } from '../config/types.js';

/** base64 SHA-256 of the DER SubjectPublicKeyInfo of a certificate: the form `pins:` takes. */
export function spkiPin(certificate: X509Certificate | Buffer): string {
  // Not cert.pubkey: for EC keys Node gives the bare curve point there, not the SPKI that
  // `openssl x509 -pubkey | openssl pkey -pubin -outform der` (the operator's pin) hashes.
  const x509 = certificate instanceof X509Certificate ? certificate : new X509Certificate(certificate);
  const spki = x509.publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

/**
 * Options for tls.connect. SNI is the configured name unless that name is an IP literal
 * (RFC 6066 forbids IP literals in SNI); the certificate name check always uses tlsName,
 * not the address we dialled. No `session` is passed, so a connection never resumes a
 * session and always presents (and is checked against) a full certificate chain.
 */
export function tlsOptions(server: UpstreamServerConfig): ConnectionOptions {
  const opts: ConnectionOptions = {
    host: server.address,
    port: server.port,
    rejectUnauthorized: server.verifyCa,
    minVersion: 'TLSv1.2',
  };
  if (isIP(server.tlsName) === 0) opts.servername = server.tlsName;
  if (server.ca !== null) opts.ca = server.ca;
  const name = server.tlsName;
  opts.checkServerIdentity = server.verifyCa
    ? (_host, cert) => tls.checkServerIdentity(name, cert)
    : // Without CA validation a name check proves nothing; the leaf pin is the check.
      () => undefined;
  return opts;
}

/** Why a peer check failed; null when it passed. */
export type PeerCheckFailure = 'no peer certificate' | 'no verified path to a trust anchor' | 'pin mismatch';

export interface PeerCheck {
  ok: boolean;
  failure: PeerCheckFailure | null;
  /**
   * Pins of the certificates the pins were matched against, leaf first: the path from the
   * leaf up to a trust anchor whose every signature was verified (the leaf alone without
   * verify_ca). Empty when no pins are configured.
   */
  path: string[];
  /** Pins of certificates the server presented that are not on `path` (what a forgery adds). */
  offPath: string[];
  /** Unix seconds of the leaf's notAfter, or null when the peer sent no certificate. */
  leafNotAfter: number | null;
}

/** Certificates read from the peer's chain as Node links it; real chains are 2–4. */
const MAX_PRESENTED = 10;
/** Longest path walked, leaf and anchor included; real paths are 2–4 certificates. */
export const MAX_PATH = 8;
/**
 * Signature checks one walk may spend. Cross-signed CAs give a few alternatives per step;
 * a chain built to make the walk branch (many certificates with one subject) hits this
 * bound and fails closed instead of costing the event loop more.
 */
export const MAX_SIGNATURE_CHECKS = 24;

/**
 * The certificates a path may end at, parsed once: a server's `ca_file` bundle, or the
 * system roots. Anchors are found by DER, issuers by (normalised) subject name.
 */
export class TrustStore {
  /** By SHA-256 of the DER; bounded by the certificates in the bundle. */
  private readonly byFingerprint = new Map<string, X509Certificate>();
  /** By normalised subject; same certificates as byFingerprint. */
  private readonly bySubject = new Map<string, X509Certificate[]>();

  constructor(certificates: Iterable<X509Certificate>) {
    for (const cert of certificates) {
      if (this.byFingerprint.has(cert.fingerprint256)) continue;
      this.byFingerprint.set(cert.fingerprint256, cert);
      const key = nameKey(cert.subject);
      const list = this.bySubject.get(key);
      if (list === undefined) this.bySubject.set(key, [cert]);
      else list.push(cert);
    }
  }

  /** Every certificate of a PEM bundle; blocks that do not parse are skipped (Node's `ca` would reject them). */
  static fromPem(pem: string | readonly string[]): TrustStore {
    const blocks = typeof pem === 'string' ? (pem.match(PEM_CERTIFICATE) ?? []) : pem;
    const certs: X509Certificate[] = [];
    for (const block of blocks) {
      try {
        certs.push(new X509Certificate(block));
      } catch {
        // not a certificate
      }
    }
    return new TrustStore(certs);
  }

  get size(): number {
    return this.byFingerprint.size;
  }

  /** True when `cert` itself (same DER) is in the store: a trust anchor. */
  has(cert: X509Certificate): boolean {
    return this.byFingerprint.get(cert.fingerprint256)?.raw.equals(cert.raw) === true;
  }

  /** Store certificates whose subject is `child`'s issuer name. */
  issuersNamed(child: X509Certificate): readonly X509Certificate[] {
    return this.bySubject.get(nameKey(child.issuer)) ?? [];
  }
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * Index key of a name as Node prints it: case and runs of spaces folded, close to the
 * canonical form X509_check_issued compares (which the walk still calls on every hit).
 */
function nameKey(name: string): string {
  return name.toLowerCase().replace(/\s+/g, ' ');
}

let systemStore: TrustStore | null = null;

/**
 * Node's bundled roots, parsed at the first use (about 100 ms once, so only processes that
 * walk a path against them pay it). Roots Node adds from NODE_EXTRA_CA_CERTS are not in
 * tls.rootCertificates: an upstream under a private CA should name it in `ca_file`.
 */
export function systemTrustStore(): TrustStore {
  systemStore ??= TrustStore.fromPem(tls.rootCertificates);
  return systemStore;
}

/** The store `server`'s pin check walks to: its ca_file, else the system roots; null when no walk is needed. */
export function trustStoreFor(server: UpstreamServerConfig): TrustStore | null {
  if (!server.verifyCa || server.pins.length === 0) return null;
  return server.ca !== null ? TrustStore.fromPem(server.ca) : systemTrustStore();
}

function validAt(cert: X509Certificate, nowMs: number): boolean {
  return Date.parse(cert.validFrom) <= nowMs && nowMs <= Date.parse(cert.validTo);
}

/**
 * The certification path from `leaf` to a trust anchor of `store`, leaf first, or null.
 * Each next certificate is an issuer of the one before: the names and key identifiers
 * link (checkIssued), it is a CA (or a store certificate, which the operator trusts as
 * is), it is valid now, and its public key verifies the child's signature. Candidates
 * are the store's certificates first (a path ends at the first anchor) and then the
 * presented ones; a dead end backs up to the next alternative (cross-signed CAs), within
 * MAX_PATH and MAX_SIGNATURE_CHECKS. A certificate that merely names itself the issuer
 * cannot be on the path: its key did not sign the child.
 */
export function verifiedPath(
  leaf: X509Certificate,
  presented: readonly X509Certificate[],
  store: TrustStore,
  nowMs = Date.now(),
): X509Certificate[] | null {
  const path = [leaf];
  let checks = MAX_SIGNATURE_CHECKS;
  const onPath = (c: X509Certificate) => path.some((p) => p.raw.equals(c.raw));
  const extend = (): boolean => {
    const child = path[path.length - 1];
    if (store.has(child)) return true;
    if (path.length >= MAX_PATH) return false;
    const fromStore = store.issuersNamed(child);
    for (let i = 0; i < fromStore.length + presented.length; i++) {
      const inStore = i < fromStore.length;
      const candidate = inStore ? fromStore[i] : presented[i - fromStore.length];
      if (onPath(candidate) || !(inStore || candidate.ca) || !child.checkIssued(candidate)) continue;
      if (!validAt(candidate, nowMs)) continue;
      if (checks <= 0) return false;
      checks--;
      if (!signedBy(child, candidate)) continue;
      path.push(candidate);
      if (extend()) return true;
      path.pop();
      if (checks <= 0) return false;
    }
    return false;
  };
  return extend() ? path : null;
}

function signedBy(child: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return child.verify(issuer.publicKey);
  } catch {
    // A key type the runtime cannot verify with proves nothing.
    return false;
  }
}

/** The peer's certificates as Node links them (leaf first), deduplicated, at most MAX_PRESENTED. */
function presentedChain(leaf: DetailedPeerCertificate): X509Certificate[] {
  const out: X509Certificate[] = [];
  let cert: DetailedPeerCertificate | undefined = leaf;
  while (cert?.raw !== undefined && out.length < MAX_PRESENTED) {
    const raw = cert.raw;
    if (!out.some((c) => c.raw.equals(raw))) out.push(new X509Certificate(raw));
    if (cert.issuerCertificate === cert) break;
    cert = cert.issuerCertificate;
  }
  return out;
}

/**
 * The pin check, run on 'secureConnect' (also for resumed sessions) before any write.
 * Node's getPeerCertificate(true) links the presented certificates by subject and key
 * identifier without checking a signature, so a server holding any CA-valid leaf for the
 * name could append a forged "issuer" carrying a pinned key. Pins are therefore matched
 * only on the path verifiedPath() builds from the leaf, verifying each signature, up to
 * an anchor of `trust` (the store Node validated against). Without verify_ca only the
 * leaf counts: the handshake proves possession of the leaf key alone.
 */
export function checkPeer(
  socket: TLSSocket,
  server: UpstreamServerConfig,
  trust: TrustStore | null,
): PeerCheck {
  const peer = socket.getPeerCertificate(true) as DetailedPeerCertificate | null;
  if (peer === null || peer.raw === undefined) {
    return { ok: false, failure: 'no peer certificate', path: [], offPath: [], leafNotAfter: null };
  }
  const parsed = Date.parse(peer.valid_to);
  const leafNotAfter = Number.isNaN(parsed) ? null : Math.floor(parsed / 1000);
  if (server.pins.length === 0) {
    return server.verifyCa
      ? { ok: true, failure: null, path: [], offPath: [], leafNotAfter }
      : { ok: false, failure: 'pin mismatch', path: [], offPath: [], leafNotAfter };
  }
  const presented = presentedChain(peer);
  const leaf = presented[0];
  const leafPin = spkiPin(leaf);
  // The leaf is on every path and its key is proven by the handshake: no walk needed.
  if (server.pins.includes(leafPin))
    return { ok: true, failure: null, path: [leafPin], offPath: [], leafNotAfter };
  const path = server.verifyCa && trust !== null ? verifiedPath(leaf, presented.slice(1), trust) : null;
  const checked = path ?? [leaf];
  const pins = checked.map((c) => spkiPin(c));
  const offPath = presented.filter((p) => !checked.some((c) => c.raw.equals(p.raw))).map((c) => spkiPin(c));
  if (path === null && server.verifyCa) {
    return { ok: false, failure: 'no verified path to a trust anchor', path: pins, offPath, leafNotAfter };
  }
  const ok = pins.some((pin) => server.pins.includes(pin));
  return { ok, failure: ok ? null : 'pin mismatch', path: pins, offPath, leafNotAfter };
}
