// Owns the primary process of a multi-worker gateway: composes the supervisor (worker
// processes), the reload coordinator (the host's config generation), the merged metrics and
// readiness, and runs what must exist once per host — the admin server, the file watch,
// SIGHUP, and the coordinated drain on SIGTERM/SIGINT.
import cluster from 'node:cluster';
import { AdminServer } from '../admin/server.js';
import type { LoadedConfig } from '../config/load.js';
import type { AdminConfig, GatewayConfig } from '../config/types.js';
import { type ConfigWatcher, watchConfigFile } from '../config/watch.js';
import { ExitCode } from '../exit-codes.js';
import type { Logger } from '../log.js';
import { MergedMetrics } from './merged-metrics.js';
import { workersReadiness } from './readiness.js';
import { ReloadCoordinator } from './reload.js';
import { WorkerRequests } from './requests.js';
import { Supervisor } from './supervisor.js';

/** Shutdown waits limits.timeout_ms for in-flight queries plus this for the workers to exit. */
const STOP_MARGIN_MS = 2000;

export interface PrimaryOptions {
  /** The config as validated at startup, with the source (and path) every worker is built from. */
  readonly loaded: LoadedConfig;
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
  private readonly logger: Logger;
  private readonly requests = new WorkerRequests();
  private readonly supervisor: Supervisor;
  private readonly reloads: ReloadCoordinator;
  private readonly metrics: MergedMetrics;
  private admin: AdminServer | null = null;
  private watcher: ConfigWatcher | null = null;

  constructor(private readonly options: PrimaryOptions) {
    this.logger = options.logger;
    this.supervisor = new Supervisor(options.loaded.config.workers, this.logger, {
      generation: () => this.reloads.generation(),
      started: (slot) => this.reloads.started(slot),
      exited: (slot) => {
        this.metrics.retire(slot);
        this.requests.abandon(slot);
      },
      message: (_slot, message) => this.requests.answer(message),
    });
    this.reloads = new ReloadCoordinator({
      configPath: options.loaded.source.path,
      initial: options.loaded,
      logger: this.logger,
      supervisor: this.supervisor,
      requests: this.requests,
      committed: (before, after) => this.committed(before, after),
    });
    this.metrics = new MergedMetrics({
      slots: this.supervisor.slots,
      requests: this.requests,
      restarts: () => this.supervisor.restarts,
      reloads: () => this.reloads.counts,
    });
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
      if (this.supervisor.phase === 'running') void this.reloads.reload();
      else reloadPending = true;
    });

    // Before the first fork: with SCHED_NONE every worker accepts on the shared TCP socket
    // itself and the kernel spreads connections; round-robin would pass each through here.
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({ silent: false });

    const failure = await this.supervisor.startAll();
    if (failure !== null) return this.failStart(failure, null);
    try {
      await this.syncAdmin(null, this.reloads.config.admin);
      this.watcher = await watchConfigFile(
        this.options.loaded.source.path,
        () => void this.reloads.reload(),
        {
          onError: (err) => this.logger.warn({ err }, 'config watch error'),
        },
      );
    } catch (err) {
      return this.failStart((err as Error).message, err);
    }
    this.supervisor.phase = 'running';
    const config = this.reloads.config;
    this.logger.info(
      {
        listeners: this.supervisor.startedListeners,
        admin: this.admin ? { address: config.admin?.address, port: this.admin.port } : null,
        hash: config.hash,
        source: config.source,
        workers: this.supervisor.workerCount,
        pids: this.supervisor.pids(),
      },
      'gateway ready',
    );
    // As in single-process mode: an edit between loading and watching would go unseen.
    void this.reloads.reload();

    return new Promise<number>((resolve) => {
      onStop = (signal: string) => {
        if (this.supervisor.phase === 'stopping') return;
        void this.stop(signal).then(resolve);
      };
      if (stopSignal !== null) onStop(stopSignal);
      else if (reloadPending) void this.reloads.reload();
    });
  }

  private failStart(reason: string, err: unknown): Promise<number> {
    this.logger.fatal({ err: err ?? undefined, error: reason }, 'could not start');
    this.logger.flush();
    process.stderr.write(`dns-tool: ${reason}\n`);
    return this.supervisor.stopAll(STOP_MARGIN_MS).then(async () => {
      await this.admin?.close();
      return ExitCode.cannotStart;
    });
  }

  /** The host moved to `after`: what the primary runs itself follows. */
  private async committed(before: GatewayConfig, after: GatewayConfig): Promise<void> {
    this.logger.level = after.log.level;
    if (after.workers !== this.supervisor.workerCount) {
      this.logger.warn(
        { running: this.supervisor.workerCount, configured: after.workers },
        'workers changed: takes a restart; the rest of the new config applies now',
      );
    }
    await this.syncAdmin(before.admin, after.admin).catch((err) =>
      this.logger.error({ err }, 'admin server could not be moved; metrics unavailable until next reload'),
    );
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
      registry: this.metrics.registry,
      readiness: () => workersReadiness(this.supervisor.phase, this.supervisor.slots, this.requests),
      logger: this.logger,
    });
    await admin.listen();
    this.admin = admin;
  }

  private async stop(signal: string): Promise<number> {
    this.supervisor.phase = 'stopping';
    this.logger.info(
      { signal, workers: this.supervisor.workerCount },
      'stopping: draining in-flight queries',
    );
    await this.watcher?.close();
    // A reload round still waiting on workers is not awaited: it checks the phase before
    // touching anything, and each worker finishes its own reload before it drains.
    await this.supervisor.stopAll(this.reloads.config.limits.timeoutMs + STOP_MARGIN_MS);
    await this.admin?.close();
    this.admin = null;
    this.logger.info('stopped');
    this.logger.flush();
    return ExitCode.ok;
  }
}
