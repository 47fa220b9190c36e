// The fault lab: Debian's unbound as the real DoT upstream (killed, restarted, re-keyed at will),
// a fault proxy between it and the built gateway, and a steady UDP load through the gateway.
//
//   load (UDP, 127.0.0.1) → gateway (dist/cli.js) → fault proxy → unbound (DoT, leaf of a test CA)
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCerts, TEST_TLS_NAME, type TestCert, type TestPki } from '../../test/helpers/certs.js';
import {
  type FaultProxy,
  NO_FAULTS,
  type ProxyFaults,
  startFaultProxy,
} from '../../test/helpers/fault-proxy.js';
import { makeLeaf } from '../../test/helpers/leaf-cert.js';
import { UdpLoad } from '../../test/helpers/load.js';
import { metricValue, scrapeMetrics } from '../../test/helpers/metrics-text.js';
import { freePort } from '../../test/helpers/ports.js';
import { type GatewayProcess, startGateway } from '../../test/helpers/proc.js';
import { startUnbound, type UnboundUpstream, ZONE } from '../../test/helpers/unbound.js';

/** The gateway's per-attempt upstream timeout and its whole-query bound (limits.timeout_ms). */
export const UPSTREAM_TIMEOUT_MS = 1000;
export const QUERY_TIMEOUT_MS = 2500;
/** A query with no answer this long after it was sent is lost (the gateway owes one by QUERY_TIMEOUT_MS). */
export const LOST_AFTER_MS = QUERY_TIMEOUT_MS + 1000;

export interface LabOptions {
  /** Queries per second of the steady load. */
  readonly qps: number;
  readonly progress?: (line: string) => void;
}

export class Lab {
  /** Keys the upstream can present: the pinned one, the backup pin, and one in no pin (same CA). */
  current!: TestCert;
  backup!: TestCert;
  unpinned!: TestCert;
  pki!: TestPki;
  unbound: UnboundUpstream | null = null;
  proxy!: FaultProxy;
  gateway!: GatewayProcess;
  load!: UdpLoad;
  port = 0;
  adminPort = 0;
  private dir = '';
  private dotPort = 0;
  private plainPort = 0;

  private constructor(readonly opts: LabOptions) {}

  static async start(opts: LabOptions): Promise<Lab> {
    const lab = new Lab(opts);
    try {
      await lab.setUp();
    } catch (error) {
      await lab.close();
      throw error;
    }
    return lab;
  }

  private say(line: string): void {
    this.opts.progress?.(line);
  }

  private async setUp(): Promise<void> {
    this.dir = await mkdtemp(join(tmpdir(), 'dns-tool-faults-'));
    this.pki = await makeCerts(join(this.dir));
    this.current = this.pki.server;
    [this.backup, this.unpinned] = await Promise.all([
      makeLeaf(this.pki, 'backup'),
      makeLeaf(this.pki, 'unpinned'),
    ]);
    this.dotPort = await freePort();
    this.plainPort = await freePort();
    while (this.plainPort === this.dotPort) this.plainPort = await freePort();
    await this.startUnbound(this.current);
    this.proxy = await startFaultProxy(this.dotPort);
    this.port = await freePort();
    this.adminPort = await freePort();
    const configPath = join(this.dir, 'gateway.yaml');
    await writeFile(
      configPath,
      `version: 1
listeners: [{ name: faults, address: 127.0.0.1, port: ${this.port} }]
upstreams:
  default:
    timeout_ms: ${UPSTREAM_TIMEOUT_MS}
    connections: 2
    servers:
      - address: 127.0.0.1
        port: ${this.proxy.port}
        tls_name: ${TEST_TLS_NAME}
        ca_file: ${this.pki.ca.certPath}
        pins: ["${this.current.pin}", "${this.backup.pin}"]
policies:
  - { name: lo, clients: [127.0.0.0/8], cache: false }
limits: { timeout_ms: ${QUERY_TIMEOUT_MS} }
admin: { address: 127.0.0.1, port: ${this.adminPort} }
log: { level: info }
`,
    );
    this.gateway = await startGateway({ args: ['--config', configPath] });
    this.load = new UdpLoad({
      port: this.port,
      name: (seq) => `f${seq}.${ZONE.wild.suffix}`,
      lostAfterMs: LOST_AFTER_MS,
    });
    await this.load.open();
    this.load.setRate(this.opts.qps);
  }

  /** Start unbound on the lab's fixed ports presenting `cert`; `logQueries` records every query it gets. */
  async startUnbound(cert: TestCert, logQueries = false): Promise<void> {
    this.unbound = await startUnbound({
      ports: { dot: this.dotPort, plain: this.plainPort },
      certificate: { certPath: cert.certPath, keyPath: cert.keyPath, tlsName: TEST_TLS_NAME },
      logQueries,
    });
    this.say(
      `  unbound up (pid ${this.unbound.process.pid}) presenting ${cert === this.current ? 'the pinned key' : cert === this.backup ? 'the backup-pin key' : 'a key in no pin'}`,
    );
  }

  /** SIGKILL unbound and wait until it is gone. */
  async killUnbound(): Promise<void> {
    const up = this.unbound;
    if (up === null) return;
    this.unbound = null;
    up.process.kill('SIGKILL');
    await up.stop();
    this.say('  unbound killed');
  }

  /** Queries unbound logged (log-queries) since it was started with logQueries, for names under wild.test or `. NS`. */
  async unboundQueryLines(): Promise<string[]> {
    const text = this.unbound ? await readLog(this.unbound.logPath) : '';
    return text.split('\n').filter((l) => / info: \S+ (\S+\.wild\.test\.|\.) \S+ IN/.test(l));
  }

  /** Set the proxy's faults and end its open connections, so the gateway reconnects under them. */
  setFaults(faults: Partial<ProxyFaults>): void {
    Object.assign(this.proxy.faults, NO_FAULTS, faults);
    this.proxy.endAll();
  }

  /** The gateway's warning and error log lines since `since` (epoch ms), as "msg (reason)". */
  warnings(since: number): string[] {
    return this.gateway.logs
      .filter((l) => (l.level ?? 0) >= 40 && Number(l.time ?? 0) >= since)
      .map((l) => `${l.msg}${l.reason ? ` (${String(l.reason)})` : ''}`);
  }

  async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    return metricValue(await scrapeMetrics(this.adminPort), name, labels) ?? 0;
  }

  /** Wait until every query of the last `holdMs` was answered NOERROR (at most `timeoutMs`). */
  async waitHealthy(timeoutMs = 15_000, holdMs = 1000): Promise<boolean> {
    const from = this.load.now();
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      await sleep(250);
      // answers of the last buckets may still be in flight: look only at buckets old enough
      const at = this.load.recoveredAt(from, holdMs);
      if (at !== null && this.load.now() - at > holdMs + 300) return true;
    }
    return false;
  }

  async close(): Promise<void> {
    await this.load?.stop();
    await this.gateway?.stop('SIGTERM');
    await this.proxy?.close();
    await this.unbound?.stop();
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}

function readLog(path: string): Promise<string> {
  return readFile(path, 'utf8').catch(() => '');
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
