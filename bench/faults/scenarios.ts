// The upstream faults, each a sequence of labelled windows under the lab's steady load: what
// the clients got (NOERROR, SERVFAIL, lost, latency) while the fault lasted and after it.
import { type Lab, LOST_AFTER_MS, sleep } from './lab.js';

export interface FaultWindow {
  readonly scenario: string;
  readonly window: string;
  readonly sent: number;
  readonly noerror: number;
  readonly servfail: number;
  readonly other: number;
  readonly lost: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

export interface ScenarioResult {
  readonly scenario: string;
  readonly windows: readonly FaultWindow[];
  /** ms from the end of the fault until every query was answered NOERROR for a second; null if never. */
  readonly recoveryMs: number | null;
  /** Scenario-specific facts the tests assert on (pin failures, queries that reached the upstream, …). */
  readonly facts: Readonly<Record<string, number>>;
  /** The gateway's warnings during the scenario, counted by message. */
  readonly warnings: Readonly<Record<string, number>>;
}

function countWarnings(lab: Lab, since: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const w of lab.warnings(since)) out[w] = (out[w] ?? 0) + 1;
  return out;
}

/** Windows of one scenario, in order; their stats are read once every query in them settled. */
class Windows {
  private readonly labels: string[] = [];
  constructor(
    private readonly lab: Lab,
    readonly scenario: string,
  ) {}

  open(label: string): void {
    const full = `${this.scenario}: ${label}`;
    this.labels.push(full);
    this.lab.load.mark(full);
  }

  /** Close the last window, wait until its queries are answered or lost, and read every window. */
  async results(): Promise<FaultWindow[]> {
    this.lab.load.mark(`${this.scenario}: (settling)`);
    await sleep(LOST_AFTER_MS + 300);
    return this.labels.map((label) => {
      const w = this.lab.load.window(label);
      const noerror = w.byRcode.NOERROR ?? 0;
      const servfail = w.byRcode.SERVFAIL ?? 0;
      return {
        scenario: this.scenario,
        window: label.slice(this.scenario.length + 2),
        sent: w.sent,
        noerror,
        servfail,
        other: w.answered - noerror - servfail,
        lost: w.lost,
        p50Ms: w.p50Ms,
        p99Ms: w.p99Ms,
        maxMs: w.maxMs,
      };
    });
  }
}

function recovery(lab: Lab, from: number): number | null {
  const at = lab.load.recoveredAt(from);
  return at === null ? null : Math.max(0, Math.round(at - from));
}

/** Upstream killed (SIGKILL) under load, restarted on the same ports a few seconds later. */
export async function killAndRestart(lab: Lab, scale: number): Promise<ScenarioResult> {
  const since = Date.now();
  const w = new Windows(lab, 'upstream killed and restarted');
  w.open('before, until the kill');
  await sleep(3000 * scale);
  await lab.killUnbound();
  w.open('upstream dead');
  await sleep(3000 * scale);
  w.open('unbound starting');
  await lab.startUnbound(lab.current);
  const restartedAt = lab.load.now();
  w.open('restarted, until healthy');
  const healthy = await lab.waitHealthy();
  w.open('steady after');
  await sleep(3000 * scale);
  return {
    scenario: w.scenario,
    windows: await w.results(),
    warnings: countWarnings(lab, since),
    recoveryMs: recovery(lab, restartedAt),
    facts: { healthy: healthy ? 1 : 0 },
  };
}

/** Every N-th upstream connection reset (RST), with connections ended every 500 ms so many come and go. */
export async function resets(lab: Lab, scale: number, every = 3): Promise<ScenarioResult> {
  const since = Date.now();
  const w = new Windows(lab, `upstream resets 1 in ${every} connections`);
  const accepted = lab.proxy.accepted;
  const resetsBefore = lab.proxy.resets;
  w.open('connections end after 500 ms (FIN), none reset');
  lab.setFaults({ lifetimeMs: 500 });
  await sleep(5000 * scale);
  w.open(`1 in ${every} reset 200 ms in (queries in flight)`);
  lab.setFaults({ lifetimeMs: 500, resetEvery: every, resetAfterMs: 200 });
  await sleep(5000 * scale);
  w.open(`1 in ${every} reset at accept (before TLS)`);
  lab.setFaults({ lifetimeMs: 500, resetEvery: every, resetAfterMs: 0 });
  await sleep(5000 * scale);
  lab.setFaults({});
  const clearedAt = lab.load.now();
  w.open('faults cleared, until healthy');
  const healthy = await lab.waitHealthy();
  w.open('steady after');
  await sleep(3000 * scale);
  return {
    scenario: w.scenario,
    windows: await w.results(),
    warnings: countWarnings(lab, since),
    recoveryMs: recovery(lab, clearedAt),
    facts: {
      healthy: healthy ? 1 : 0,
      connections: lab.proxy.accepted - accepted,
      resets: lab.proxy.resets - resetsBefore,
    },
  };
}

/** The upstream's first bytes (its ServerHello) held back: slow TLS handshakes, below and above timeout_ms. */
export async function slowHandshakes(lab: Lab, scale: number): Promise<ScenarioResult> {
  const since = Date.now();
  const w = new Windows(lab, 'slow TLS handshakes');
  const accepted = lab.proxy.accepted;
  w.open('+300 ms per handshake, connections renewed every 1 s');
  lab.setFaults({ firstBytesDelayMs: 300, lifetimeMs: 1000 });
  await sleep(6000 * scale);
  w.open('+1500 ms per handshake (above timeout_ms 1000)');
  lab.setFaults({ firstBytesDelayMs: 1500, lifetimeMs: 1000 });
  await sleep(6000 * scale);
  lab.setFaults({});
  const clearedAt = lab.load.now();
  w.open('faults cleared, until healthy');
  const healthy = await lab.waitHealthy();
  w.open('steady after');
  await sleep(3000 * scale);
  return {
    scenario: w.scenario,
    windows: await w.results(),
    warnings: countWarnings(lab, since),
    recoveryMs: recovery(lab, clearedAt),
    facts: { healthy: healthy ? 1 : 0, connections: lab.proxy.accepted - accepted },
  };
}

/**
 * The upstream re-keyed: to the key of the backup pin (must keep working), then to a key of the
 * same CA that no pin names (must fail closed: SERVFAIL, and no query reaches that server),
 * then back.
 */
export async function certificateRotation(lab: Lab, scale: number): Promise<ScenarioResult> {
  const since = Date.now();
  const w = new Windows(lab, 'certificate rotation');
  const pinFailures = () => lab.metric('dns_tool_upstream_pin_failures_total');
  const pinFailuresStart = await pinFailures();

  w.open('restart with the backup-pin key, until healthy');
  await lab.killUnbound();
  await lab.startUnbound(lab.backup, true);
  const backupAt = lab.load.now();
  const backupHealthy = await lab.waitHealthy();
  w.open('backup-pin key, steady');
  await sleep(3000 * scale);
  const pinFailuresBackup = (await pinFailures()) - pinFailuresStart;
  // the leak detector below must see queries when they do reach a server
  const reachingBackup = (await lab.unboundQueryLines()).length;
  const backupRecovery = recovery(lab, backupAt);

  await lab.killUnbound();
  w.open('key in no pin (same CA)');
  await lab.startUnbound(lab.unpinned, true);
  const handshakesBefore = lab.proxy.accepted;
  await sleep(5000 * scale);
  const handshakes = lab.proxy.accepted - handshakesBefore;
  const leaked = (await lab.unboundQueryLines()).length;
  const pinFailuresUnpinned = (await pinFailures()) - pinFailuresStart - pinFailuresBackup;

  w.open('pinned key restored, until healthy');
  await lab.killUnbound();
  await lab.startUnbound(lab.current);
  const restoredAt = lab.load.now();
  const healthy = await lab.waitHealthy();
  w.open('steady after');
  await sleep(3000 * scale);
  return {
    scenario: w.scenario,
    windows: await w.results(),
    warnings: countWarnings(lab, since),
    recoveryMs: recovery(lab, restoredAt),
    facts: {
      healthy: healthy && backupHealthy ? 1 : 0,
      backupRecoveryMs: backupRecovery ?? -1,
      pinFailuresWithBackupKey: pinFailuresBackup,
      queriesReachingBackupServer: reachingBackup,
      pinFailuresWithUnpinnedKey: pinFailuresUnpinned,
      queriesReachingUnpinnedServer: leaked,
      connectionsToUnpinnedServer: handshakes,
      unpinnedWindowMs: Math.round(5000 * scale),
    },
  };
}

export const SCENARIOS = {
  kill: killAndRestart,
  resets,
  slow: slowHandshakes,
  rotation: certificateRotation,
} as const;

export type ScenarioName = keyof typeof SCENARIOS;

/** The windows as a Markdown table (what the closing note and the README quote). */
export function formatTable(results: readonly ScenarioResult[]): string {
  const head =
    '| fault | window | sent | NOERROR | SERVFAIL | other | lost | p50 ms | p99 ms | max ms |\n|---|---|--:|--:|--:|--:|--:|--:|--:|--:|';
  const rows = results.flatMap((r) =>
    r.windows.map(
      (x) =>
        `| ${x.scenario} | ${x.window} | ${x.sent} | ${x.noerror} | ${x.servfail} | ${x.other} | ${x.lost} | ${x.p50Ms} | ${x.p99Ms} | ${x.maxMs} |`,
    ),
  );
  const notes = results.map(
    (r) =>
      `- ${r.scenario}: recovery ${r.recoveryMs === null ? 'NONE' : `${r.recoveryMs} ms`} after the fault ended; ${Object.entries(
        r.facts,
      )
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}; gateway warnings: ${
        Object.entries(r.warnings)
          .map(([k, v]) => `${v} × ${k}`)
          .join('; ') || 'none'
      }`,
  );
  return [head, ...rows, '', ...notes].join('\n');
}
