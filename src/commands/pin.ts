// Owns `dns-tool pin`: shows the certificate chain a DNS-over-TLS server presents, with
// the base64 SHA-256 SPKI pin of each certificate, whether the chain validates for the
// TLS name, and a `pins:` snippet ready to paste into an upstream server entry.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP, isIPv6 } from 'node:net';
import {
  type ConnectionOptions,
  checkServerIdentity,
  connect,
  type DetailedPeerCertificate,
  type PeerCertificate,
} from 'node:tls';
import { spkiPin } from '../upstream/tls-connect.js';

export const PIN_USAGE = `usage: dns-tool pin HOST[:PORT] [--name TLS_NAME] [--timeout MS] [--ca-file FILE]

Connects over TLS (port 853 by default) and prints, leaf first, the subject, issuer,
expiry and base64 SHA-256 SPKI pin of every certificate the server presents, whether
the chain validates for the TLS name, and a pins: snippet for the config.

  HOST             IPv4 or IPv6 literal ([::1]:853) or a host name
  --name NAME      TLS name: sent as SNI and checked against the certificate
                   (default: HOST when it is a name)
  --timeout MS     limit for each of the two TLS connections (default 5000)
  --ca-file FILE   validate against the CAs in FILE instead of the default roots
                   (as the upstream ca_file setting does)
`;

const DEFAULT_PORT = 853;
const DEFAULT_TIMEOUT_MS = 5000;
const MAX_TIMEOUT_MS = 600_000;
/**
 * Longest chain shown. Real chains have 2-4 certificates; the bound stops a hostile
 * or looping chain from producing unbounded output.
 */
const MAX_CHAIN_LENGTH = 10;

export interface PinOptions {
  /** Host to connect to: an IP literal (IPv6 without brackets) or a name. */
  host: string;
  port: number;
  /** SNI and the name the chain is validated for; undefined for an IP without --name. */
  tlsName: string | undefined;
  timeoutMs: number;
  caFile: string | undefined;
  help: boolean;
}

export interface PresentedCertificate {
  subject: string;
  issuer: string;
  notAfter: Date;
  /** base64 SHA-256 of the DER SubjectPublicKeyInfo. */
  pin: string;
}

class UsageError extends Error {}

/** Runs `dns-tool pin`; `argv` holds the arguments after `pin`. Returns the exit code. */
export async function runPin(
  argv: readonly string[],
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
): Promise<number> {
  let options: PinOptions;
  try {
    options = parsePinArgs(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    err.write(`dns-tool pin: ${error.message}\n${PIN_USAGE}`);
    return 2;
  }
  if (options.help) {
    out.write(PIN_USAGE);
    return 0;
  }

  let ca: Buffer | undefined;
  if (options.caFile !== undefined) {
    try {
      ca = readFileSync(options.caFile);
    } catch (error) {
      err.write(`dns-tool pin: cannot read --ca-file ${options.caFile}: ${describe(error)}\n`);
      return 1;
    }
  }

  const target = formatTarget(options.host, options.port);
  let chain: PresentedCertificate[];
  try {
    chain = await fetchPresentedChain(options);
  } catch (error) {
    err.write(`dns-tool pin: ${target}: ${describe(error)}\n`);
    return 1;
  }

  const lines: string[] = [];
  lines.push(
    `${target}${options.tlsName === undefined ? '' : ` (SNI ${options.tlsName})`} presented ${chain.length} ` +
      `certificate${chain.length === 1 ? '' : 's'}:`,
  );
  chain.forEach((cert, i) => {
    lines.push('');
    lines.push(`certificate ${i + 1} of ${chain.length}${i === 0 ? ' (leaf)' : ''}`);
    lines.push(`  subject:   ${cert.subject}`);
    lines.push(`  issuer:    ${cert.issuer}`);
    lines.push(`  not after: ${cert.notAfter.toISOString()}`);
    lines.push(`  pin:       ${cert.pin}`);
  });
  lines.push('');

  const validatedName = options.tlsName ?? options.host;
  let exitCode = 0;
  try {
    const verdict = await validateChain(options, validatedName, ca);
    lines.push(`chain valid for ${validatedName}: ${verdict === null ? 'yes' : `no (${verdict})`}`);
  } catch (error) {
    lines.push(`chain valid for ${validatedName}: unknown (second connection failed: ${describe(error)})`);
    exitCode = 1;
  }

  lines.push('');
  lines.push(...pinsSnippet(chain));
  out.write(`${lines.join('\n')}\n`);
  return exitCode;
}

/** Parses the arguments after `pin`; throws UsageError with a message for the user. */
export function parsePinArgs(argv: readonly string[]): PinOptions {
  let hostArg: string | undefined;
  let name: string | undefined;
  let timeoutMs = DEFAULT_TIMEOUT_MS;
  let caFile: string | undefined;
  let help = false;

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help') {
      help = true;
      continue;
    }
    if (arg.startsWith('-') && arg.length > 1) {
      const eq = arg.indexOf('=');
      const flag = eq < 0 ? arg : arg.slice(0, eq);
      let value: string | undefined;
      if (eq >= 0) {
        value = arg.slice(eq + 1);
      } else {
        if (i + 1 >= argv.length) throw new UsageError(`${flag} needs a value`);
        value = argv[++i];
      }
      switch (flag) {
        case '--name':
          if (value === '') throw new UsageError('--name must not be empty');
          name = value;
          break;
        case '--timeout':
          timeoutMs = parseTimeout(value);
          break;
        case '--ca-file':
          if (value === '') throw new UsageError('--ca-file must not be empty');
          caFile = value;
          break;
        default:
          throw new UsageError(`unknown option ${flag}`);
      }
      continue;
    }
    if (hostArg !== undefined) throw new UsageError(`unexpected argument ${JSON.stringify(arg)}`);
    hostArg = arg;
  }

  if (help) return { host: '', port: DEFAULT_PORT, tlsName: undefined, timeoutMs, caFile, help };
  if (hostArg === undefined) throw new UsageError('missing HOST[:PORT]');
  const { host, port } = parseHostPort(hostArg);
  const tlsName = name ?? (isIP(host) === 0 ? host : undefined);
  return { host, port, tlsName, timeoutMs, caFile, help };
}

function parseHostPort(arg: string): { host: string; port: number } {
  if (arg.startsWith('[')) {
    const close = arg.indexOf(']');
    if (close < 0) throw new UsageError(`${JSON.stringify(arg)}: missing "]"`);
    const host = arg.slice(1, close);
    if (!isIPv6(host)) throw new UsageError(`${JSON.stringify(arg)}: brackets need an IPv6 literal`);
    const rest = arg.slice(close + 1);
    if (rest === '') return { host, port: DEFAULT_PORT };
    if (!rest.startsWith(':')) throw new UsageError(`${JSON.stringify(arg)}: expected ":PORT" after "]"`);
    return { host, port: parsePort(rest.slice(1), arg) };
  }
  const colon = arg.indexOf(':');
  if (colon < 0) return { host: checkHost(arg), port: DEFAULT_PORT };
  if (arg.indexOf(':', colon + 1) >= 0) {
    // Several colons: a bare IPv6 literal, which cannot carry a port without brackets.
    if (isIPv6(arg)) return { host: arg, port: DEFAULT_PORT };
    throw new UsageError(`${JSON.stringify(arg)}: write an IPv6 address with a port as [ADDRESS]:PORT`);
  }
  return { host: checkHost(arg.slice(0, colon)), port: parsePort(arg.slice(colon + 1), arg) };
}

function checkHost(host: string): string {
  if (host === '') throw new UsageError('HOST is empty');
  if (isIP(host) === 0 && !/^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_.])?$/.test(host)) {
    throw new UsageError(`${JSON.stringify(host)} is neither an IP address nor a host name`);
  }
  return host;
}

function parsePort(text: string, arg: string): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : Number.NaN;
  if (!(port >= 1 && port <= 65535)) {
    throw new UsageError(`${JSON.stringify(arg)}: port must be a number from 1 to 65535`);
  }
  return port;
}

function parseTimeout(text: string): number {
  const ms = /^\d{1,7}$/.test(text) ? Number(text) : Number.NaN;
  if (!(ms >= 1 && ms <= MAX_TIMEOUT_MS)) {
    throw new UsageError(`--timeout must be a whole number of milliseconds from 1 to ${MAX_TIMEOUT_MS}`);
  }
  return ms;
}

/**
 * The chain the server sent, leaf first. Node completes getPeerCertificate(true) with
 * issuers found in the connection's trust store, so this connection is given an empty
 * `ca` list (and never --ca-file) to keep certificates the server did not send out of
 * the list. Node still consults the process-wide extra store (NODE_EXTRA_CA_CERTS), so
 * with that set a root from it may be shown after the last presented certificate.
 */
export async function fetchPresentedChain(options: PinOptions): Promise<PresentedCertificate[]> {
  const peer = await withTlsConnection(options, { ca: [] }, (socket) => socket.getPeerCertificate(true));
  if (peer === null || peer.raw === undefined) throw new Error('the server presented no certificate');

  const chain: PresentedCertificate[] = [];
  const seen = new Set<string>();
  let cert: DetailedPeerCertificate | undefined = peer;
  while (cert?.raw !== undefined && chain.length < MAX_CHAIN_LENGTH) {
    // A self-signed certificate is its own issuer; the fingerprint set also ends any loop.
    if (seen.has(cert.fingerprint256)) break;
    seen.add(cert.fingerprint256);
    const x509 = new X509Certificate(cert.raw);
    chain.push({
      subject: oneLineName(x509.subject),
      issuer: oneLineName(x509.issuer),
      notAfter: new Date(x509.validTo),
      pin: spkiPin(x509),
    });
    cert = cert.issuerCertificate;
  }
  return chain;
}

/**
 * Validates the chain against the default roots (or `ca`) and the name, as the gateway
 * does with `verify_ca: true`. Returns null when valid, else the reason.
 */
async function validateChain(
  options: PinOptions,
  name: string,
  ca: Buffer | undefined,
): Promise<string | null> {
  const extra: ConnectionOptions = {
    // Identity is checked below against `name`, whatever the SNI was.
    checkServerIdentity: () => undefined,
  };
  if (ca !== undefined) extra.ca = ca;
  return withTlsConnection(options, extra, (socket) => {
    if (!socket.authorized) return String(socket.authorizationError ?? 'not authorized');
    const identityError = checkServerIdentity(name, socket.getPeerCertificate() as PeerCertificate);
    if (identityError === undefined) return null;
    return (identityError as Error & { reason?: string }).reason ?? identityError.message;
  });
}

/**
 * Opens one TLS connection with rejectUnauthorized false (so any chain can be shown),
 * hands the established socket to `inspect`, then destroys it. Bounded by timeoutMs.
 */
function withTlsConnection<T>(
  options: PinOptions,
  extra: ConnectionOptions,
  inspect: (socket: import('node:tls').TLSSocket) => T,
): Promise<T> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const socket = connect({
      host: options.host,
      port: options.port,
      // An IP literal as SNI is not allowed (RFC 6066 §3); send none then.
      servername: options.tlsName !== undefined && isIP(options.tlsName) === 0 ? options.tlsName : undefined,
      rejectUnauthorized: false,
      ...extra,
    });
    const finish = (error: Error | null, value?: T): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (error !== null) reject(error);
      else resolve(value as T);
    };
    const timer = setTimeout(() => {
      finish(new Error(`no TLS handshake within ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    socket.once('secureConnect', () => {
      try {
        finish(null, inspect(socket));
      } catch (error) {
        finish(error instanceof Error ? error : new Error(String(error)));
      }
    });
    socket.on('error', (error) => finish(error));
    socket.once('close', () => finish(new Error('connection closed before the TLS handshake completed')));
  });
}

/** The `pins:` block: the leaf pin, then the issuer's as the backup that survives a leaf rotation. */
export function pinsSnippet(chain: readonly PresentedCertificate[]): string[] {
  const lines = ['pins:'];
  if (chain.length === 0) return lines;
  const leaf = `  - "${chain[0].pin}"`;
  const issuer = chain.length > 1 ? `  - "${chain[1].pin}"` : '';
  const width = Math.max(leaf.length, issuer.length) + 2;
  lines.push(`${leaf.padEnd(width)}# leaf: ${chain[0].subject}`);
  if (chain.length > 1) {
    lines.push(`${issuer.padEnd(width)}# backup: issuing CA ${chain[1].subject}`);
    lines.push(
      '# with verify_ca: false only the leaf pin can match (the handshake proves the leaf key alone)',
    );
  }
  return lines;
}

/** X509Certificate names come one attribute per line; show them on one line. */
function oneLineName(name: string): string {
  return name.split('\n').filter(Boolean).join(', ');
}

function formatTarget(host: string, port: number): string {
  return isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code !== undefined && !error.message.includes(code) ? `${error.message} (${code})` : error.message;
  }
  return String(error);
}
