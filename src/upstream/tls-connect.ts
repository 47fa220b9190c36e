// Pinned TLS connect: the options a DoT connection is opened with, and the peer check
// (CA and name via Node, SPKI pins here) every connection passes before a query is written.
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

export interface PeerCheck {
  ok: boolean;
  /** Pins of the certificates considered (leaf first), for the log when none matched. */
  presented: string[];
  /** Unix seconds of the leaf's notAfter, or null when the peer sent no certificate. */
  leafNotAfter: number | null;
}

/** Longest chain walked; real chains are 2–4 certificates. */
const MAX_CHAIN = 10;

/**
 * The pin check, run on 'secureConnect' (also for resumed sessions) before any write.
 * With verify_ca the chain Node reports is the validated one, so any of its certificates
 * may carry the pin; without it only the leaf counts, because the handshake proves
 * possession of the leaf key alone and the rest of the chain could be anyone's.
 */
export function checkPeer(socket: TLSSocket, server: UpstreamServerConfig): PeerCheck {
  const leaf = socket.getPeerCertificate(true) as DetailedPeerCertificate | null;
  if (leaf === null || leaf.raw === undefined) return { ok: false, presented: [], leafNotAfter: null };
  const parsed = Date.parse(leaf.valid_to);
  const leafNotAfter = Number.isNaN(parsed) ? null : Math.floor(parsed / 1000);
  if (server.pins.length === 0) return { ok: server.verifyCa, presented: [], leafNotAfter };
  const presented: string[] = [];
  let cert: DetailedPeerCertificate | undefined = leaf;
  for (let i = 0; i < MAX_CHAIN && cert?.raw !== undefined; i++) {
    const pin = spkiPin(cert.raw);
    presented.push(pin);
    if (server.pins.includes(pin)) return { ok: true, presented, leafNotAfter };
    if (!server.verifyCa || cert.issuerCertificate === cert) break;
    cert = cert.issuerCertificate;
  }
  return { ok: false, presented, leafNotAfter };
}
