// Owns one cluster worker's life: take the config generation the primary hands out (never
// the file on disk), run a Gateway on the shared sockets, answer the primary's requests
// (apply a generation, counters snapshot, readiness) and stop when told or when the primary
// is gone.
import cluster from 'node:cluster';
import { performance } from 'node:perf_hooks';
import { type ConfigProblem, formatProblems, parseConfigSource } from '../config/load.js';
import type { GatewayConfig } from '../config/types.js';
import { ExitCode } from '../exit-codes.js';
import { Gateway, type ReloadResult } from '../gateway.js';
import { createLogger } from '../log.js';
import { snapshotCounters } from './counters-snapshot.js';
import {
  type ConfigGeneration,
  isPrimaryMessage,
  type PrimaryMessage,
  WORKER_SLOT_ENV,
  WORKERS_ENV,
  type WorkerMessage,
} from './messages.js';

/** True in a process the gateway's primary forked (not in any other cluster's worker). */
export function isGatewayWorker(): boolean {
  return cluster.isWorker && process.env[WORKERS_ENV] !== undefined;
}

function send(message: WorkerMessage, sent?: () => void): void {
  // The channel is gone when the primary died; the 'disconnect' handler stops this worker.
  if (process.connected && process.send) process.send(message, undefined, undefined, () => sent?.());
  else sent?.();
}

/** Asks the primary for the generation to run; null when the primary is gone. */
function receiveConfig(): Promise<ConfigGeneration | null> {
  if (!process.connected) return Promise.resolve(null);
  return new Promise((resolve) => {
    const done = (generation: ConfigGeneration | null): void => {
      process.off('message', onMessage);
      process.off('disconnect', onDisconnect);
      resolve(generation);
    };
    const onMessage = (message: unknown): void => {
      if (isPrimaryMessage(message) && message.type === 'dns-tool:config') done(message.generation);
    };
    const onDisconnect = (): void => done(null);
    // Asked for rather than pushed at fork: a message that arrives before this process listens
    // would be lost, and asking now gets the primary's latest generation, not the one at fork.
    process.on('message', onMessage);
    process.once('disconnect', onDisconnect);
    send({ type: 'dns-tool:need-config' });
  });
}

/**
 * Builds the config of `generation` from the source the primary sent (no disk read). The
 * primary validated the same source, so a problem here means the two builds disagree.
 */
function build(
  generation: ConfigGeneration,
): { config: GatewayConfig } | { error: string; problems: ConfigProblem[] | null } {
  const result = parseConfigSource(generation.source);
  if ('problems' in result) {
    return {
      error: `config from the primary is invalid here: ${formatProblems(generation.source.path, result.problems)}`,
      problems: result.problems,
    };
  }
  if (result.config.hash !== generation.hash) {
    return {
      error: `config from the primary built to hash ${result.config.hash}, not ${generation.hash}`,
      problems: null,
    };
  }
  return { config: result.config };
}

/**
 * Runs the gateway as one worker. Resolves with the exit code once stopped: after the
 * primary's stop message, or when the IPC channel closes (the primary died, so nobody
 * coordinates a drain any more and this worker drains on its own).
 */
export async function runWorker(): Promise<number> {
  const workerCount = Math.max(1, Number(process.env[WORKERS_ENV]) || 1);
  const slot = Number(process.env[WORKER_SLOT_ENV] ?? 0);
  // The primary coordinates every signal. systemd's default KillMode sends SIGTERM to the
  // whole control group and a terminal's ^C reaches the whole process group: a worker acting
  // on its own would exit before the primary knows it is stopping, and be restarted.
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => {});
  // Its level is the config's once that arrives; until then only failures are logged.
  const logger = createLogger('info').child({ worker: slot, pid: process.pid });

  const startFailed = async (error: string, code: string): Promise<number> => {
    logger.flush();
    // Disconnect only once the message is out, so the primary reads why, not just an exit.
    await new Promise<void>((sent) => send({ type: 'dns-tool:start-failed', error, code }, sent));
    if (process.connected) process.disconnect?.();
    return ExitCode.cannotStart;
  };

  const generation = await receiveConfig();
  if (generation === null) return ExitCode.cannotStart;
  const first = build(generation);
  if ('error' in first) {
    logger.error({ error: first.error }, 'worker could not start');
    return startFailed(first.error, 'ECONFIG');
  }
  logger.level = first.config.log.level;

  let gateway: Gateway;
  try {
    gateway = await Gateway.start(first.config, {
      logger,
      configPath: generation.source.path,
      watch: false,
      workerCount,
    });
  } catch (err) {
    const error = err as NodeJS.ErrnoException;
    logger.error({ err }, 'worker could not start');
    return startFailed(error.message, error.code ?? 'ESTART');
  }
  send({
    type: 'dns-tool:started',
    listeners: gateway.boundListeners(),
    hash: gateway.config.hash,
    readiness: gateway.readiness(),
  });

  /** Applies one generation; the primary logs the summary, so this logs only failures above debug. */
  const apply = async (next: ConfigGeneration): Promise<ReloadResult> => {
    const started = performance.now();
    const built = build(next);
    if ('error' in built) {
      logger.error(
        { result: 'failure', error: built.error, hash: gateway.config.hash },
        'config reload refused; previous config still serving',
      );
      return { result: 'failure', problems: built.problems, error: built.error };
    }
    if (built.config.hash === gateway.config.hash) {
      logger.debug({ result: 'unchanged', hash: built.config.hash }, 'config unchanged');
      return { result: 'unchanged', hash: built.config.hash };
    }
    return gateway.apply(built.config, started);
  };

  return new Promise<number>((resolve) => {
    let stopping = false;
    // Generations are applied one at a time, in the order the primary sent them, so the
    // last one sent is the one that stays; stopping waits for the one being applied.
    let applying: Promise<void> = Promise.resolve();
    const stop = (why: string): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ why, inflight: gateway.inFlight }, 'worker stopping: draining in-flight queries');
      void applying
        .then(() => gateway.stop())
        .then(() => {
          logger.info('worker stopped');
          logger.flush();
          process.off('message', onMessage);
          if (process.connected) process.disconnect?.();
          resolve(ExitCode.ok);
        });
    };
    const onMessage = (message: unknown): void => {
      if (!isPrimaryMessage(message)) return;
      handle(message);
    };
    const handle = (message: PrimaryMessage): void => {
      switch (message.type) {
        case 'dns-tool:reload':
          applying = applying
            .then(() =>
              stopping
                ? ({ result: 'failure', problems: null, error: 'worker is stopping' } as const)
                : apply(message.generation),
            )
            .catch((err: unknown): ReloadResult => {
              logger.error({ err }, 'config reload failed');
              return { result: 'failure', problems: null, error: (err as Error).message };
            })
            .then((result) => send({ type: 'dns-tool:reload', id: message.id, result }));
          return;
        case 'dns-tool:snapshot':
          send({ type: 'dns-tool:snapshot', id: message.id, counters: snapshotCounters(gateway.counters) });
          return;
        case 'dns-tool:readiness':
          send({ type: 'dns-tool:readiness', id: message.id, readiness: gateway.readiness() });
          return;
        case 'dns-tool:stop':
          stop('primary asked');
          return;
        case 'dns-tool:config':
          // Only a starting worker asks for one; a late duplicate changes nothing.
          return;
      }
    };
    process.on('message', onMessage);
    process.once('disconnect', () => stop('primary gone'));
    // The primary may have died while this worker was starting, before the listener above.
    if (!process.connected) stop('primary gone');
  });
}
