// Owns the worker processes: forks one per slot, hands a starting worker the generation the
// primary holds, restarts a worker that dies (with backoff), replaces one on request, and
// drains them all at the end.
import cluster, { type Worker } from 'node:cluster';
import { performance } from 'node:perf_hooks';
import type { BoundListener } from '../listeners/set.js';
import type { Logger } from '../log.js';
import {
  type ConfigGeneration,
  isWorkerMessage,
  type PrimaryMessage,
  WORKER_SLOT_ENV,
  WORKERS_ENV,
  type WorkerMessage,
} from './messages.js';
import { newSlot, type Slot } from './slot.js';

/** Every worker must have bound its listeners within this, or startup fails. */
const STARTUP_TIMEOUT_MS = 30_000;
/** Restart delay after a worker dies: doubles per consecutive death, from the first to the cap. */
const RESTART_BACKOFF_FIRST_MS = 100;
const RESTART_BACKOFF_MAX_MS = 10_000;
/** A worker that ran this long before dying starts the backoff afresh. */
const RESTART_STABLE_MS = 10_000;

/** What the supervisor asks of the rest of the primary. */
export interface SupervisorHooks {
  /** The generation a starting worker runs: the primary's last good config, never the file. */
  generation(): ConfigGeneration;
  /** A worker reported it serves (its slot is 'running', with the hash it runs). */
  started(slot: Slot): void;
  /** A worker process ended; called before any restart is scheduled. */
  exited(slot: Slot): void;
  /** Any other message from a worker: answers to requests. */
  message(slot: Slot, message: WorkerMessage): void;
}

/**
 * 'starting': a worker that dies fails the start; 'running': it is restarted; 'stopping':
 * its exit is expected.
 */
export type Phase = 'starting' | 'running' | 'stopping';

export class Supervisor {
  /** Bounded by `workers` (at most 64, the schema's limit). */
  readonly slots: Slot[];
  phase: Phase = 'starting';
  /** Workers started again after one died, for dns_tool_worker_restarts_total. */
  restarts = 0;
  /** What the first worker bound, for the ready line (all workers bind the same sockets). */
  startedListeners: BoundListener[] = [];

  constructor(
    readonly workerCount: number,
    private readonly logger: Logger,
    private readonly hooks: SupervisorHooks,
  ) {
    this.slots = Array.from({ length: workerCount }, (_, index) => newSlot(index));
  }

  /** Forks every worker; null once all bound their listeners, else why startup failed. */
  async startAll(): Promise<string | null> {
    const outcomes = await Promise.all(this.slots.map((slot) => this.fork(slot)));
    const failed = outcomes.find((o) => o !== null);
    if (failed) return failed;
    // One that started and then died while another was still starting is not restarted
    // (nothing is running yet), so it fails the start like any other.
    const dead = this.slots.find((s) => s.state !== 'running');
    return dead ? `worker ${dead.index} exited during startup` : null;
  }

  pids(): (number | null)[] {
    return this.slots.map((s) => s.worker?.process.pid ?? null);
  }

  /**
   * Drains the slot's worker and lets it be restarted, so that it comes back on the current
   * generation; one still alive after `graceMs` is killed.
   */
  replace(slot: Slot, graceMs: number): void {
    const worker = slot.worker;
    if (worker === null || this.phase !== 'running') return;
    send(worker, { type: 'dns-tool:stop' });
    const timer = setTimeout(() => {
      if (slot.worker === worker) worker.process.kill('SIGKILL');
    }, graceMs);
    worker.process.once('exit', () => clearTimeout(timer));
  }

  /** Forks the slot's worker; resolves null once it reports started, else the reason it did not. */
  private fork(slot: Slot): Promise<string | null> {
    slot.state = 'starting';
    slot.hash = null;
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
        switch (message.type) {
          case 'dns-tool:need-config':
            send(worker, { type: 'dns-tool:config', generation: this.hooks.generation() });
            return;
          case 'dns-tool:started':
            slot.state = 'running';
            slot.hash = message.hash;
            slot.readiness = message.readiness;
            if (this.startedListeners.length === 0) this.startedListeners = message.listeners;
            this.logger.info(
              {
                worker: slot.index,
                pid: worker.process.pid,
                listeners: message.listeners.length,
                hash: message.hash,
              },
              'worker started',
            );
            settle(null);
            this.hooks.started(slot);
            return;
          case 'dns-tool:start-failed':
            settle(message.error);
            return;
          default:
            this.hooks.message(slot, message);
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
    this.hooks.exited(slot);
    const wasRunning = slot.state === 'running';
    if (this.phase !== 'running') {
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
      if (this.phase !== 'running') return;
      this.restarts++;
      void this.fork(slot).then((failure) => {
        if (failure !== null && slot.worker !== null && this.phase === 'running') {
          this.logger.error({ worker: slot.index, error: failure }, 'restarted worker could not start');
        }
      });
    }, delay);
  }

  /** Tells every worker to drain; after `graceMs` the ones still alive are killed. */
  async stopAll(graceMs: number): Promise<void> {
    this.phase = 'stopping';
    const exits: Promise<void>[] = [];
    for (const slot of this.slots) {
      if (slot.restartTimer !== null) clearTimeout(slot.restartTimer);
      slot.restartTimer = null;
      const worker = slot.worker;
      if (worker === null || worker.process.exitCode !== null || worker.process.signalCode !== null) continue;
      exits.push(new Promise((resolve) => worker.process.once('exit', () => resolve())));
      if (!worker.isConnected() || !send(worker, { type: 'dns-tool:stop' })) worker.process.kill('SIGKILL');
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

/** False when the channel is already closed (the worker is exiting; 'exit' follows). */
function send(worker: Worker, message: PrimaryMessage): boolean {
  try {
    worker.send(message);
    return true;
  } catch {
    return false;
  }
}
