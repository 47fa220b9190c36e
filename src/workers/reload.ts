// Owns the host's config generation in multi-worker mode: the primary's last good config,
// which every starting worker is given; reloads validated once here, sent to every worker
// and summed up in one line; and bringing a worker that runs another generation back in line.
import { performance } from 'node:perf_hooks';
import { formatProblems, type LoadedConfig, loadConfigSource } from '../config/load.js';
import type { GatewayConfig } from '../config/types.js';
import type { ReloadResult } from '../gateway.js';
import type { Logger } from '../log.js';
import type { ConfigGeneration } from './messages.js';
import type { WorkerRequests } from './requests.js';
import type { Slot } from './slot.js';
import type { Supervisor } from './supervisor.js';

/** A worker's reload (build, bind new listeners) must report within this. */
const RELOAD_TIMEOUT_MS = 15_000;
/** A worker replaced for running another generation may drain this long beyond limits.timeout_ms. */
const REPLACE_MARGIN_MS = 2000;

export interface ReloadOptions {
  readonly configPath: string;
  readonly initial: LoadedConfig;
  readonly logger: Logger;
  readonly supervisor: Supervisor;
  readonly requests: WorkerRequests;
  /** A new generation became the host's: move what the primary itself runs (admin, log level). */
  readonly committed: (before: GatewayConfig, after: GatewayConfig) => Promise<void>;
}

type Failure = Extract<ReloadResult, { result: 'failure' }>;

export class ReloadCoordinator {
  /** The last good config: validated here and applied by every worker that answered. */
  private current: LoadedConfig;
  /** The host's reloads, counted once each; the workers' own counts are not summed. */
  readonly counts = { success: 0, failure: 0 };
  private reloading: Promise<void> | null = null;
  private reloadAgain = false;

  constructor(private readonly options: ReloadOptions) {
    this.current = options.initial;
  }

  get config(): GatewayConfig {
    return this.current.config;
  }

  /** What a starting worker runs. */
  generation(): ConfigGeneration {
    return { source: this.current.source, hash: this.current.config.hash };
  }

  /** Coalesced like Gateway.reload: one round at a time, and at most one more queued. */
  reload(): Promise<void> {
    if (this.reloading) {
      this.reloadAgain = true;
      return this.reloading;
    }
    this.reloading = (async () => {
      do {
        this.reloadAgain = false;
        await this.reloadOnce();
      } while (this.reloadAgain && !this.stopping());
    })().finally(() => {
      this.reloading = null;
    });
    return this.reloading;
  }

  /**
   * A worker started on another generation than the current one: a reload was committed
   * while it was starting, after it had been handed the previous one.
   */
  started(slot: Slot): void {
    if (slot.hash !== this.current.config.hash && !this.stopping())
      void this.bringInLine(slot, this.generation());
  }

  private stopping(): boolean {
    return this.options.supervisor.phase === 'stopping';
  }

  /**
   * Validates the file here, so an invalid file is refused and counted once; a valid one is
   * sent, text and named files alike, to every worker, which applies exactly that. The host
   * moves to it only when every worker did; otherwise the workers that did are taken back to
   * the previous generation, so all of them always run one.
   */
  private async reloadOnce(): Promise<void> {
    if (this.stopping()) return;
    const { logger, supervisor } = this.options;
    const workers = supervisor.workerCount;
    const started = performance.now();
    const loaded = await loadConfigSource(this.options.configPath);
    if ('problems' in loaded) {
      this.counts.failure++;
      logger.error(
        {
          result: 'failure',
          error: 'invalid config',
          problems: loaded.problems.map((p) => formatProblems(this.options.configPath, [p])),
          hash: this.current.config.hash,
          duration_ms: msSince(started),
          workers,
        },
        'config reload refused; previous config still serving',
      );
      return;
    }
    const target: ConfigGeneration = { source: loaded.source, hash: loaded.config.hash };
    const asked = supervisor.slots
      .filter((s) => s.state === 'running')
      .map((slot) => ({ slot, worker: slot.worker }));
    const answers = await Promise.all(asked.map(({ slot }) => this.send(slot, target)));
    if (this.stopping()) return;
    // A worker that died meanwhile is not waited for: its replacement starts on the
    // generation current by then and is brought in line like any other.
    const results = asked
      .map(({ slot, worker }, i) => ({ slot, worker, result: answers[i] }))
      .filter((r) => r.slot.worker === r.worker)
      .map((r) => ({
        worker: r.slot.index,
        result:
          r.result ??
          ({ result: 'failure', problems: null, error: 'worker did not answer the reload' } as const),
      }));
    const failed = results.filter((r) => r.result.result === 'failure');
    const applied = results.filter((r) => r.result.result === 'success').map((r) => r.worker);
    const durationMs = msSince(started);
    if (failed.length > 0) {
      this.counts.failure++;
      const errors = failed.map((r) => {
        const f = r.result as Failure;
        return { worker: r.worker, error: f.error, problems: f.problems ?? [] };
      });
      logger.error(
        {
          result: 'failure',
          error: errors[0].error,
          errors,
          rolled_back: applied,
          hash: this.current.config.hash,
          duration_ms: durationMs,
          workers,
        },
        'config reload refused; previous config still serving',
      );
      await this.converge();
      return;
    }
    const before = this.current.config;
    this.current = loaded;
    await this.options.committed(before, loaded.config);
    if (loaded.config.hash === before.hash) {
      logger.info(
        { result: 'unchanged', hash: loaded.config.hash, duration_ms: durationMs, workers },
        'config unchanged',
      );
    } else {
      this.counts.success++;
      const first = results.find((r) => r.result.result === 'success')?.result as
        | Extract<ReloadResult, { result: 'success' }>
        | undefined;
      logger.info(
        {
          result: 'success',
          hash: loaded.config.hash,
          changes: first?.changes ?? null,
          duration_ms: durationMs,
          workers,
          applied_by: results.map((r) => r.worker),
        },
        'config reloaded',
      );
    }
    await this.converge();
  }

  /** Sends `target` to the slot's worker; its result, or null when it did not answer. */
  private async send(slot: Slot, target: ConfigGeneration): Promise<ReloadResult | null> {
    const answer = await this.options.requests.ask(
      slot,
      (id) => ({ type: 'dns-tool:reload', id, generation: target }),
      RELOAD_TIMEOUT_MS,
    );
    if (answer?.type !== 'dns-tool:reload') {
      slot.hash = null; // it may still apply it: unknown until it answers again
      return null;
    }
    if (answer.result.result !== 'failure') slot.hash = answer.result.hash;
    return answer.result;
  }

  /** Brings every running worker onto the current generation. */
  private async converge(): Promise<void> {
    const target = this.generation();
    const behind = this.options.supervisor.slots.filter(
      (s) => s.state === 'running' && s.hash !== target.hash,
    );
    await Promise.all(behind.map((slot) => this.bringInLine(slot, target)));
  }

  /**
   * Sends the current generation to one worker; one that cannot apply it (or does not
   * answer) is replaced, and its replacement starts on the current generation.
   */
  private async bringInLine(slot: Slot, target: ConfigGeneration): Promise<void> {
    const worker = slot.worker;
    const result = await this.send(slot, target);
    if (slot.worker !== worker || worker === null || this.stopping()) return;
    if (result !== null && result.result !== 'failure') return;
    this.options.logger.error(
      {
        worker: slot.index,
        pid: worker.process.pid,
        hash: target.hash,
        running: slot.hash,
        error: result === null ? 'worker did not answer' : result.error,
      },
      'worker could not apply the current config; replacing it',
    );
    this.options.supervisor.replace(slot, this.current.config.limits.timeoutMs + REPLACE_MARGIN_MS);
  }
}

function msSince(started: number): number {
  return Math.round((performance.now() - started) * 1000) / 1000;
}
