// Owns the primary process of a multi-worker gateway: forks the workers that serve DNS on
// shared sockets, restarts the ones that die, and runs what must exist once per host —
// the admin server (metrics summed over workers, readiness of all), the file watch, SIGHUP
// reloads with one summary line, and the coordinated drain on SIGTERM/SIGINT.
import cluster, { type Worker } from 'node:cluster';
import { performance } from 'node:perf_hooks';
import { Counter, Gauge, Registry } from 'prom-client';
import { createMetricsRegistry } from '../admin/metrics.js';
import { AdminServer, type Readiness } from '../admin/server.js';
import { formatProblems, loadConfigFile } from '../config/load.js';
import type { AdminConfig, GatewayConfig } from '../config/types.js';
import { type ConfigWatcher, watchConfigFile } from '../config/watch.js';
import type { ReloadResult } from '../gateway.js';
import type { BoundListener } from '../listeners/set.js';
import type { Logger } from '../log.js';
import { Counters } from '../metrics/counters.js';
import { addSnapshot, type CountersSnapshot, clearCounters, snapshotCounters } from './counters-snapshot.js';
import {
  isWorkerMessage,
  type PrimaryMessage,
  WORKER_SLOT_ENV,
  WORKERS_ENV,
  type WorkerMessage,
} from './messages.js';

/** Exit codes of the CLI (see src/cli.ts). */
const EXIT_OK = 0;
const EXIT_START = 3;

/** A scrape waits this long for each worker's counters; a late worker's last snapshot is used. */
const SNAPSHOT_TIMEOUT_MS = 1000;
/** A readiness answer later than this counts the worker as not ready. */
const READINESS_TIMEOUT_MS = 1000;
/** A worker's reload (read, validate, bind new listeners) must report within this. */
const RELOAD_TIMEOUT_MS = 15_000;
/** Every worker must have bound its listeners within this, or startup fails. */
const STARTUP_TIMEOUT_MS = 30_000;
/** Shutdown waits limits.timeout_ms for in-flight queries plus this for the workers to exit. */
const STOP_MARGIN_MS = 2000;
/** Restart delay after a worker dies: doubles per consecutive death, from the first to the cap. */
const RESTART_BACKOFF_FIRST_MS = 100;
const RESTART_BACKOFF_MAX_MS = 10_000;
/** A worker that ran this long before dying starts the backoff afresh. */
const RESTART_STABLE_MS = 10_000;

type SlotState = 'starting' | 'running' | 'restarting' | 'stopped';

/** One of the N worker positions; its process is replaced when it dies. */
interface Slot {
  readonly index: number;
  worker: Worker | null;
  state: SlotState;
  startedAt: number;
  /** Deaths since the last stable run; drives the restart backoff. */
  deaths: number;
  restartTimer: NodeJS.Timeout | null;
  /** The latest counters this worker reported; moved into `retired` when it dies. */
  snapshot: CountersSnapshot | null;
  readiness: Readiness;
  /** A readiness request is out; at most one per worker at a time. */
  readinessAsked: boolean;
}

interface Pending {
  readonly slot: Slot;
  readonly resolve: (message: WorkerMessage | null) => void;
  readonly timer: NodeJS.Timeout;
}

export interface PrimaryOptions {
  readonly config: GatewayConfig;
  readonly configPath: string;
  readonly logger: Logger;
}

/**
 * Runs the primary until SIGTERM/SIGINT has drained every worker; resolves with the exit
 * code (0 after a clean stop, 3 when the workers could not start).
 */
export function runPrimary(options: PrimaryOptions): Promise<number> {
  return new Primary(options).run();
}

class Primary {
  private config: GatewayConfig;
  private readonly configPath: string;
  private readonly logger: Logger;
  private readonly workerCount: number;
  /** Bounded by `workers` (at most 64, the schema's limit). */
  private readonly slots: Slot[];
  /**
   * Requests awaiting a worker's answer, by id. Bounded: each entry lives at most its
   * timeout, and requests are made per scrape / probe / reload (admin caps its connections
   * at 64) for each of at most 64 workers.
   */
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** What this process reports: workers' counters summed, plus reloads counted here once. */
  private readonly merged = new Counters();
  /** Counters of workers that died, so a restart never makes a total go down. */
  private readonly retired = new Counters();
  private readonly reloads = { success: 0, failure: 0 };
  private restarts = 0;
  private readonly registry: Registry;
  private refreshing: Promise<void> | null = null;
  private admin: AdminServer | null = null;
  private watcher: ConfigWatcher | null = null;
  private reloading: Promise<void> | null = null;
  private reloadAgain = false;
  private running = false;
  private stopping = false;
  /** What the first worker bound, for the ready line (all workers bind the same sockets). */
  private startedListeners: BoundListener[] = [];

  constructor(options: PrimaryOptions) {
    this.config = options.config;
    this.configPath = options.configPath;
    this.logger = options.logger;
    this.workerCount = options.config.workers;
    this.slots = Array.from({ length: this.workerCount }, (_, index) => ({
      index,
      worker: null,
      state: 'starting' as SlotState,
      startedAt: 0,
      deaths: 0,
      restartTimer: null,
      snapshot: null,
      readiness: { ready: false, reason: 'starting' },
      readinessAsked: false,
    }));
    this.registry = this.createRegistry();
  }

  async run(): Promise<number> {
    // Signals are taken from the first moment, as in single-process mode: what arrives
    // during startup is acted on once the workers are up.
    let stopSignal: string | null = null;
    let reloadPending = false;
    let onStop = (signal: string): void => {
      stopSignal ??= signal;
    };
    process.on('SIGTERM', () => onStop('SIGTERM'));
    process.on('SIGINT', () => onStop('SIGINT'));
    process.on('SIGHUP', () => {
      if (this.running) void this.reload();
      else reloadPending = true;
    });

    // Before the first fork: with SCHED_NONE every worker accepts on the shared TCP socket
    // itself and the kernel spreads connections; round-robin would pass each through here.
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({ silent: false });

    const failure = await this.startWorkers();
    if (failure === null) {
      try {
        await this.syncAdmin(null, this.config.admin);
        this.watcher = await watchConfigFile(this.configPath, () => void this.reload(), {
          onError: (err) => this.logger.warn({ err }, 'config watch error'),
        });
      } catch (err) {
        return this.failStart((err as Error).message, err);
      }
    } else {
      return this.failStart(failure, null);
    }
    this.running = true;
    this.logger.info(
      {
        listeners: this.startedListeners,
        admin: this.admin ? { address: this.config.admin?.address, port: this.admin.port } : null,
        hash: this.config.hash,
        source: this.config.source,
        workers: this.workerCount,
        pids: this.slots.map((s) => s.worker?.process.pid ?? null),
      },
      'gateway ready',
    );
    // As in single-process mode: an edit between loading and watching would go unseen.
    void this.reload();

    return new Promise<number>((resolve) => {
      onStop = (signal: string) => {
        if (this.stopping) return;
        void this.stop(signal).then(resolve);
      };
      if (stopSignal !== null) onStop(stopSignal);
      else if (reloadPending) void this.reload();
    });
  }

  /** Forks every worker; null once all bound their listeners, else why startup failed. */
  private async startWorkers(): Promise<string | null> {
    const outcomes = await Promise.all(this.slots.map((slot) => this.fork(slot)));
    const failed = outcomes.find((o) => o !== null);
    if (failed) return failed;
    // One that started and then died while another was still starting is not restarted
    // (nothing is running yet), so it fails the start like any other.
    const dead = this.slots.find((s) => s.state !== 'running');
    return dead ? `worker ${dead.index} exited during startup` : null;
  }

  /** Forks the slot's worker; resolves null once it reports started, else the reason it did not. */
  private fork(slot: Slot): Promise<string | null> {
    slot.state = 'starting';
    slot.readiness = { ready: false, reason: 'starting' };
    slot.readinessAsked = false;
    slot.startedAt = performance.now();
    const worker = cluster.fork({
      [WORKERS_ENV]: String(this.workerCount),
      [WORKER_SLOT_ENV]: String(slot.index),
    });
    slot.worker = worker;
    // A send racing the worker's exit fails with EPIPE; its exit is handled on 'exit'.
    worker.on('error', (err) => this.logger.debug({ err, worker: slot.index }, 'worker channel error'));
    return new Promise((resolve) => {
      let settled = false;
      const settle = (outcome: string | null): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(outcome);
      };
      const timer = setTimeout(() => {
        settle(`worker ${slot.index} did not start within ${STARTUP_TIMEOUT_MS} ms`);
        worker.process.kill('SIGKILL');
      }, STARTUP_TIMEOUT_MS);
      worker.on('message', (message: unknown) => {
        if (!isWorkerMessage(message)) return;
        if (message.type === 'dns-tool:started') {
          slot.state = 'running';
          slot.readiness = message.readiness;
          if (this.startedListeners.length === 0) this.startedListeners = message.listeners;
          this.logger.info(
            { worker: slot.index, pid: worker.process.pid, listeners: message.listeners.length },
            'worker started',
          );
          settle(null);
        } else if (message.type === 'dns-tool:start-failed') {
          settle(message.error);
        } else {
          this.onAnswer(message);
        }
      });
      worker.on('exit', (code, signal) => {
        settle(`worker ${slot.index} exited during startup (${signal ?? `code ${code}`})`);
        this.onExit(slot, worker, code, signal);
      });
    });
  }

  /** A worker process ended: expected while stopping; otherwise it is replaced after a backoff. */
  private onExit(slot: Slot, worker: Worker, code: number | null, signal: string | null): void {
    if (slot.worker !== worker) return;
    slot.worker = null;
    // Its counts stay in the totals: Prometheus must never see a counter go down.
    if (slot.snapshot !== null) addSnapshot(this.retired, slot.snapshot);
    slot.snapshot = null;
    for (const [id, p] of this.pending) {
      if (p.slot === slot) {
        clearTimeout(p.timer);
        this.pending.delete(id);
        p.resolve(null);
      }
    }
    const wasRunning = slot.state === 'running';
    if (this.stopping || !this.running) {
      slot.state = 'stopped';
      return;
    }
    if (performance.now() - slot.startedAt >= RESTART_STABLE_MS) slot.deaths = 0;
    const delay = Math.min(RESTART_BACKOFF_FIRST_MS * 2 ** slot.deaths, RESTART_BACKOFF_MAX_MS);
    slot.deaths++;
    slot.state = 'restarting';
    slot.readiness = { ready: false, reason: 'restarting' };
    this.logger.error(
      {
        worker: slot.index,
        pid: worker.process.pid,
        code,
        signal,
        was_running: wasRunning,
        restart_in_ms: delay,
      },
      'worker died; restarting it',
    );
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = null;
      if (this.stopping) return;
      this.restarts++;
      void this.fork(slot).then((failure) => {
        if (failure !== null && slot.worker !== null && !this.stopping) {
          this.logger.error({ worker: slot.index, error: failure }, 'restarted worker could not start');
        }
      });
    }, delay);
  }

  private failStart(reason: string, err: unknown): Promise<number> {
    this.logger.fatal({ err: err ?? undefined, error: reason }, 'could not start');
    this.logger.flush();
    process.stderr.write(`dns-tool: ${reason}\n`);
    return this.stopWorkers(STOP_MARGIN_MS).then(async () => {
      await this.admin?.close();
      return EXIT_START;
    });
  }

  // ---- requests to workers ----

  private ask(
    slot: Slot,
    make: (id: number) => PrimaryMessage,
    timeoutMs: number,
  ): Promise<WorkerMessage | null> {
    const worker = slot.worker;
    if (worker === null || slot.state !== 'running' || !worker.isConnected()) return Promise.resolve(null);
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve(null);
      }, timeoutMs);
      this.pending.set(id, { slot, resolve, timer });
      try {
        worker.send(make(id));
      } catch {
        clearTimeout(timer);
        this.pending.delete(id);
        resolve(null);
      }
    });
  }

  private onAnswer(message: WorkerMessage): void {
    if (!('id' in message)) return;
    const pending = this.pending.get(message.id);
    if (pending === undefined) return; // timed out already
    clearTimeout(pending.timer);
    this.pending.delete(message.id);
    pending.resolve(message);
  }

  // ---- metrics ----

  private createRegistry(): Registry {
    const inner = createMetricsRegistry(this.merged);
    const slots = this.slots;
    new Gauge({
      name: 'dns_tool_workers',
      help: 'Worker processes serving DNS right now (the `workers` setting when all are up).',
      registers: [inner],
      collect() {
        this.set(slots.filter((s) => s.state === 'running').length);
      },
    });
    const primary = this;
    new Counter({
      name: 'dns_tool_worker_restarts_total',
      help: 'Worker processes started again after one died.',
      registers: [inner],
      collect() {
        this.reset();
        this.inc(primary.restarts);
      },
    });
    return new RefreshingRegistry(inner, () => this.refreshCounters());
  }

  /** Collects every worker's counters into `merged`; concurrent scrapes share one round. */
  private refreshCounters(): Promise<void> {
    this.refreshing ??= (async () => {
      await Promise.all(
        this.slots.map(async (slot) => {
          const answer = await this.ask(
            slot,
            (id) => ({ type: 'dns-tool:snapshot', id }),
            SNAPSHOT_TIMEOUT_MS,
          );
          if (answer?.type === 'dns-tool:snapshot') slot.snapshot = answer.counters;
        }),
      );
      clearCounters(this.merged);
      addSnapshot(this.merged, snapshotCounters(this.retired));
      for (const slot of this.slots) if (slot.snapshot !== null) addSnapshot(this.merged, slot.snapshot);
      // Each worker counts the reloads it applied; the host did one reload, counted here.
      this.merged.reloads.success = this.reloads.success;
      this.merged.reloads.failure = this.reloads.failure;
    })().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  // ---- readiness ----

  /**
   * Ready when every worker is. The admin server asks synchronously, so this answers from
   * the workers' latest reports and asks each for a fresh one: a change shows at the next
   * probe (workers do not poll on their own, since a readiness check reconnects idle
   * upstream servers).
   */
  private readiness(): Readiness {
    if (this.stopping) return { ready: false, reason: 'stopping' };
    if (!this.running) return { ready: false, reason: 'starting' };
    const notReady: string[] = [];
    for (const slot of this.slots) {
      if (slot.state === 'running' && !slot.readinessAsked) {
        slot.readinessAsked = true;
        void this.ask(slot, (id) => ({ type: 'dns-tool:readiness', id }), READINESS_TIMEOUT_MS).then(
          (answer) => {
            slot.readinessAsked = false;
            if (answer?.type === 'dns-tool:readiness') slot.readiness = answer.readiness;
            else if (slot.state === 'running') slot.readiness = { ready: false, reason: 'not answering' };
          },
        );
      }
      if (slot.state !== 'running') notReady.push(`worker ${slot.index}: ${slot.state}`);
      else if (!slot.readiness.ready)
        notReady.push(`worker ${slot.index}: ${slot.readiness.reason ?? 'not ready'}`);
    }
    return notReady.length === 0 ? { ready: true } : { ready: false, reason: notReady.join('; ') };
  }

  private async syncAdmin(before: AdminConfig | null, after: AdminConfig | null): Promise<void> {
    const same = this.admin && before?.address === after?.address && before?.port === after?.port;
    if (same) return;
    if (this.admin) {
      await this.admin.close();
      this.admin = null;
    }
    if (!after) return;
    const admin = new AdminServer({
      address: after.address,
      port: after.port,
      registry: this.registry,
      readiness: () => this.readiness(),
      logger: this.logger,
    });
    await admin.listen();
    this.admin = admin;
  }

  // ---- reload ----

  /** Coalesced like Gateway.reload: one round at a time, and at most one more queued. */
  private reload(): Promise<void> {
    if (this.reloading) {
      this.reloadAgain = true;
      return this.reloading;
    }
    this.reloading = (async () => {
      do {
        this.reloadAgain = false;
        await this.reloadOnce();
      } while (this.reloadAgain && !this.stopping);
    })().finally(() => {
      this.reloading = null;
    });
    return this.reloading;
  }

  /**
   * Validates the file here first, so an invalid file is reported once rather than by
   * every worker; a valid one is reloaded by each worker from the file, and their
   * results are summed up in one line and counted once.
   */
  private async reloadOnce(): Promise<void> {
    if (this.stopping) return;
    const started = performance.now();
    const loaded = await loadConfigFile(this.configPath);
    if ('problems' in loaded) {
      this.reloads.failure++;
      this.logger.error(
        {
          result: 'failure',
          error: 'invalid config',
          problems: loaded.problems.map((p) => formatProblems(this.configPath, [p])),
          hash: this.config.hash,
          duration_ms: msSince(started),
          workers: this.workerCount,
        },
        'config reload refused; previous config still serving',
      );
      return;
    }
    const next = loaded.config;
    const asked = this.slots.filter((s) => s.state === 'running');
    const answers = await Promise.all(
      asked.map((slot) => this.ask(slot, (id) => ({ type: 'dns-tool:reload', id }), RELOAD_TIMEOUT_MS)),
    );
    if (this.stopping) return;
    const results: { worker: number; result: ReloadResult }[] = answers.map((answer, i) => ({
      worker: asked[i].index,
      result:
        answer?.type === 'dns-tool:reload'
          ? answer.result
          : { result: 'failure', problems: null, error: 'worker did not answer the reload' },
    }));
    const failed = results.filter((r) => r.result.result === 'failure');
    const succeeded = results.filter((r) => r.result.result === 'success');
    const durationMs = msSince(started);
    if (failed.length > 0) {
      this.reloads.failure++;
      const errors = failed.map((r) => {
        const f = r.result as Extract<ReloadResult, { result: 'failure' }>;
        return { worker: r.worker, error: f.error, problems: f.problems ?? [] };
      });
      this.logger.error(
        {
          result: 'failure',
          error: errors[0].error,
          errors,
          applied_by: succeeded.map((r) => r.worker),
          hash: this.config.hash,
          duration_ms: durationMs,
          workers: this.workerCount,
        },
        succeeded.length === 0
          ? 'config reload refused; previous config still serving'
          : 'config reload applied by some workers only; the others still serve the previous config',
      );
      return;
    }
    const before = this.config;
    this.config = next;
    this.logger.level = next.log.level;
    if (next.workers !== this.workerCount) {
      this.logger.warn(
        { running: this.workerCount, configured: next.workers },
        'workers changed: takes a restart; the rest of the new config applies now',
      );
    }
    await this.syncAdmin(before.admin, next.admin).catch((err) =>
      this.logger.error({ err }, 'admin server could not be moved; metrics unavailable until next reload'),
    );
    if (succeeded.length === 0) {
      this.logger.info(
        { result: 'unchanged', hash: next.hash, duration_ms: durationMs, workers: this.workerCount },
        'config unchanged',
      );
      return;
    }
    this.reloads.success++;
    const first = succeeded[0].result as Extract<ReloadResult, { result: 'success' }>;
    this.logger.info(
      {
        result: 'success',
        hash: first.hash,
        changes: first.changes,
        duration_ms: durationMs,
        workers: this.workerCount,
        applied_by: succeeded.map((r) => r.worker),
      },
      'config reloaded',
    );
  }

  // ---- stop ----

  private async stop(signal: string): Promise<number> {
    this.stopping = true;
    this.logger.info({ signal, workers: this.workerCount }, 'stopping: draining in-flight queries');
    await this.watcher?.close();
    // A reload round still waiting on workers is not awaited: it checks `stopping` before
    // touching anything, and each worker finishes its own reload before it drains.
    await this.stopWorkers(this.config.limits.timeoutMs + STOP_MARGIN_MS);
    await this.admin?.close();
    this.admin = null;
    this.logger.info('stopped');
    this.logger.flush();
    return EXIT_OK;
  }

  /** Tells every worker to drain; after `graceMs` the ones still alive are killed. */
  private async stopWorkers(graceMs: number): Promise<void> {
    this.stopping = true;
    const exits: Promise<void>[] = [];
    for (const slot of this.slots) {
      if (slot.restartTimer !== null) clearTimeout(slot.restartTimer);
      slot.restartTimer = null;
      const worker = slot.worker;
      if (worker === null || worker.process.exitCode !== null || worker.process.signalCode !== null) continue;
      exits.push(new Promise((resolve) => worker.process.once('exit', () => resolve())));
      if (worker.isConnected()) {
        try {
          worker.send({ type: 'dns-tool:stop' } satisfies PrimaryMessage);
        } catch {
          worker.process.kill('SIGKILL');
        }
      } else {
        worker.process.kill('SIGKILL');
      }
    }
    const all = Promise.all(exits);
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([
      all.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), graceMs);
      }),
    ]);
    clearTimeout(timer);
    if (late) {
      for (const slot of this.slots) {
        if (slot.worker && slot.worker.process.exitCode === null && slot.worker.process.signalCode === null) {
          this.logger.warn(
            { worker: slot.index, pid: slot.worker.process.pid },
            'worker did not stop in time; killed',
          );
          slot.worker.process.kill('SIGKILL');
        }
      }
      await all;
    }
  }
}

/** The admin server's registry: every scrape first gathers the workers' counters. */
class RefreshingRegistry extends Registry {
  constructor(
    private readonly inner: Registry,
    private readonly refresh: () => Promise<void>,
  ) {
    super();
  }

  override async metrics(): Promise<string> {
    await this.refresh();
    return this.inner.metrics();
  }
}

function msSince(started: number): number {
  return Math.round((performance.now() - started) * 1000) / 1000;
}
