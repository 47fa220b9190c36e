// A real unbound on loopback as the DNS-over-TLS upstream of end-to-end tests: self-signed
// certificate made by the openssl CLI, a small static `test.` zone, DoT and plain ports.

import { type ChildProcess, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import { requireBinary } from './binaries.js';
import { pinOf } from './certs.js';
import { freePort } from './ports.js';
import { runProcess } from './proc.js';

export const UPSTREAM_TLS_NAME = 'upstream.test';

/** Characters per TXT character-string in big.test; 6 RRs of 2 strings make ~2.4 kB, above any UDP 512/1232 limit. */
const BIG_TXT_STRING = 200;
const BIG_TXT_RECORDS = 6;

/** The zone every test can rely on (besides NXDOMAIN for any other name under `test.`). */
export const ZONE = {
  a: { name: 'a.test', A: '192.0.2.10' },
  b: { name: 'b.test', AAAA: '2001:db8::10' },
  t: { name: 't.test', TXT: 'hello from unbound' },
  blocked: { name: 'blocked.test', A: '192.0.2.66' },
  big: { name: 'big.test', records: BIG_TXT_RECORDS, bytes: BIG_TXT_RECORDS * 2 * BIG_TXT_STRING },
  /** Any name under wild.test answers this A record (unique names without zone entries). */
  wild: { suffix: 'wild.test', A: '192.0.2.99' },
} as const;

export interface UnboundOptions {
  /** Extra `local-data:` RRs, e.g. `'c.test. 60 IN A 192.0.2.11'`. */
  readonly localData?: readonly string[];
  /** How long to wait for the first answer on the plain port. */
  readonly readyTimeoutMs?: number;
  /** Listen on these ports (e.g. to restart on the ports a gateway already uses); default: free ones. */
  readonly ports?: { readonly dot: number; readonly plain: number };
  /** Serve DoT with this key and certificate (chain) instead of a fresh self-signed one. */
  readonly certificate?: { readonly certPath: string; readonly keyPath: string; readonly tlsName: string };
  /** Log every query received (`log-queries: yes`) to `logPath`. */
  readonly logQueries?: boolean;
}

export interface UnboundUpstream {
  readonly dotPort: number;
  readonly plainPort: number;
  /** PEM file of the self-signed certificate (it is its own CA). */
  readonly certPath: string;
  /** base64 SHA-256 of the certificate's SubjectPublicKeyInfo. */
  readonly pin: string;
  readonly tlsName: string;
  readonly dir: string;
  readonly process: ChildProcess;
  /** Log file of unbound (stdout and stderr). */
  readonly logPath: string;
  /** Stops unbound (SIGTERM, SIGKILL after 5 s) and removes `dir`. Safe to call twice. */
  stop(): Promise<void>;
}

/** One `servers:` entry of a gateway config (YAML flow mapping) for `up`'s DoT port, pinned to `pin`. */
export function unboundServerEntry(up: UnboundUpstream, pin = up.pin): string {
  return `{ address: 127.0.0.1, port: ${up.dotPort}, tls_name: ${up.tlsName}, pins: ["${pin}"], ca_file: "${up.certPath}" }`;
}

/** A self-signed ECDSA P-256 certificate for `name` (DNS SAN) and 127.0.0.1 (IP SAN), via the openssl CLI. */
export async function makeCertificate(
  dir: string,
  name: string,
): Promise<{ certPath: string; keyPath: string; pem: string }> {
  const openssl = requireBinary('openssl');
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  const result = await runProcess(
    openssl,
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      keyPath,
      '-out',
      certPath,
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-addext',
      `subjectAltName=DNS:${name},IP:127.0.0.1`,
    ],
    { timeoutMs: 20_000 },
  );
  if (result.code !== 0) throw new Error(`openssl req failed: ${result.stderr}`);
  return { certPath, keyPath, pem: readFileSync(certPath, 'utf8') };
}

function zoneLines(extra: readonly string[]): string[] {
  const big: string[] = [];
  for (let i = 0; i < BIG_TXT_RECORDS; i++) {
    // distinct rdata per RR, or unbound merges them into one
    const fill = String.fromCharCode(97 + i).repeat(BIG_TXT_STRING);
    big.push(`local-data: '${ZONE.big.name}. 300 IN TXT "${fill}" "${fill}"'`);
  }
  return [
    'local-zone: "test." static',
    'local-data: "test. 300 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 300"',
    'local-data: "test. 300 IN NS ns.test."',
    'local-data: "ns.test. 300 IN A 192.0.2.1"',
    `local-data: "${ZONE.a.name}. 300 IN A ${ZONE.a.A}"`,
    `local-data: "${ZONE.b.name}. 300 IN AAAA ${ZONE.b.AAAA}"`,
    `local-data: '${ZONE.t.name}. 300 IN TXT "${ZONE.t.TXT}"'`,
    `local-data: "${ZONE.blocked.name}. 300 IN A ${ZONE.blocked.A}"`,
    ...big,
    `local-zone: "${ZONE.wild.suffix}." redirect`,
    `local-data: "${ZONE.wild.suffix}. 300 IN A ${ZONE.wild.A}"`,
    ...extra.map((rr) => `local-data: '${rr}'`),
  ];
}

function configText(
  dir: string,
  dotPort: number,
  plainPort: number,
  certPath: string,
  keyPath: string,
  extra: readonly string[],
  logQueries = false,
): string {
  return [
    'server:',
    '  verbosity: 1',
    ...(logQueries ? ['  log-queries: yes'] : []),
    '  use-syslog: no',
    '  logfile: ""',
    '  do-daemonize: no',
    '  username: ""',
    '  chroot: ""',
    `  directory: "${dir}"`,
    `  pidfile: "${join(dir, 'unbound.pid')}"`,
    '  num-threads: 1',
    '  so-reuseport: no',
    '  do-ip6: no',
    `  interface: 127.0.0.1@${dotPort}`,
    `  interface: 127.0.0.1@${plainPort}`,
    `  tls-port: ${dotPort}`,
    `  tls-service-key: "${keyPath}"`,
    `  tls-service-pem: "${certPath}"`,
    '  access-control: 127.0.0.0/8 allow',
    '  module-config: "iterator"',
    '  incoming-num-tcp: 256',
    '  tcp-idle-timeout: 30000',
    '  minimal-responses: yes',
    '  ratelimit: 0',
    '  ip-ratelimit: 0',
    // authoritative for the test data only: never recurse, never leave loopback
    '  local-zone: "." refuse',
    ...zoneLines(extra).map((l) => `  ${l}`),
    'remote-control:',
    '  control-enable: no',
    '',
  ].join('\n');
}

/** One UDP query for a.test to the plain port; true on any answer with the expected address. */
function answersOnPlainPort(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    const timer = setTimeout(() => finish(false), 300);
    const finish = (ok: boolean): void => {
      clearTimeout(timer);
      socket.close();
      resolve(ok);
    };
    socket.once('error', () => finish(false));
    socket.once('message', (msg) => {
      try {
        const answer = dnsPacket.decode(msg);
        finish(answer.answers?.some((a) => a.type === 'A' && a.data === ZONE.a.A) ?? false);
      } catch {
        finish(false);
      }
    });
    const query = dnsPacket.encode({
      type: 'query',
      id: 4242,
      flags: dnsPacket.RECURSION_DESIRED,
      questions: [{ type: 'A', name: ZONE.a.name, class: 'IN' }],
    });
    socket.send(query, port, '127.0.0.1');
  });
}

/**
 * Starts `unbound -d` with DoT on `dotPort` and plain DNS on `plainPort` (both 127.0.0.1, UDP+TCP
 * on the plain port), after checking its config with unbound-checkconf. Resolves once it answers.
 */
export async function startUnbound(opts: UnboundOptions = {}): Promise<UnboundUpstream> {
  const unbound = requireBinary('unbound');
  const checkconf = requireBinary('unbound-checkconf');
  const dir = mkdtempSync(join(tmpdir(), 'dns-tool-unbound-'));
  let child: ChildProcess | null = null;
  try {
    const { certPath, keyPath, pem } = opts.certificate
      ? { ...opts.certificate, pem: readFileSync(opts.certificate.certPath, 'utf8') }
      : await makeCertificate(dir, UPSTREAM_TLS_NAME);
    const dotPort = opts.ports?.dot ?? (await freePort());
    let plainPort = opts.ports?.plain ?? (await freePort());
    while (plainPort === dotPort) plainPort = await freePort();
    const confPath = join(dir, 'unbound.conf');
    writeFileSync(
      confPath,
      configText(dir, dotPort, plainPort, certPath, keyPath, opts.localData ?? [], opts.logQueries),
    );
    const check = await runProcess(checkconf, [confPath], { timeoutMs: 20_000 });
    if (check.code !== 0)
      throw new Error(`unbound-checkconf rejected ${confPath}: ${check.stdout}${check.stderr}`);

    const logPath = join(dir, 'unbound.log');
    const logFd = openSync(logPath, 'a');
    const started = spawn(unbound, ['-d', '-c', confPath], { stdio: ['ignore', logFd, logFd] });
    closeSync(logFd);
    child = started;
    let exitedEarly = false;
    const exited = new Promise<void>((resolve) => {
      started.once('exit', () => {
        exitedEarly = true;
        resolve();
      });
    });

    const deadline = Date.now() + (opts.readyTimeoutMs ?? 10_000);
    let ready = false;
    // bounded by the deadline; each probe waits at most 300 ms
    while (!ready && !exitedEarly && Date.now() < deadline) {
      ready = await answersOnPlainPort(plainPort);
      if (!ready) await new Promise((r) => setTimeout(r, 100));
    }
    if (!ready) {
      throw new Error(
        `unbound did not answer on 127.0.0.1:${plainPort}: ${readFileSync(logPath, 'utf8').slice(-2000)}`,
      );
    }

    let stopped = false;
    const stop = async (): Promise<void> => {
      if (stopped) return;
      stopped = true;
      if (!exitedEarly) {
        started.kill('SIGTERM');
        const timer = setTimeout(() => started.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    };
    return {
      dotPort,
      plainPort,
      certPath,
      pin: await pinOf(pem),
      tlsName: opts.certificate?.tlsName ?? UPSTREAM_TLS_NAME,
      dir,
      process: started,
      logPath,
      stop,
    };
  } catch (error) {
    if (child !== null && child.exitCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}
