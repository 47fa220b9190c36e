// Owns one cluster worker's life: run a Gateway on the shared sockets, answer the primary's
// requests (reload, counters snapshot, readiness) and stop when told or when the primary is gone.
import cluster from 'node:cluster';
import type { GatewayConfig } from '../config/types.js';
import { Gateway } from '../gateway.js';
import type { Logger } from '../log.js';
import { snapshotCounters } from './counters-snapshot.js';
import {
  isPrimaryMessage,
  type PrimaryMessage,
  WORKER_SLOT_ENV,
  WORKERS_ENV,
  type WorkerMessage,
} from './messages.js';

/** Exit code of a worker that could not start (matches the CLI's EXIT_START). */
const EXIT_START = 3;

/** True in a process the gateway's primary forked (not in any other cluster's worker). */
export function isGatewayWorker(): boolean {
  return cluster.isWorker && process.env[WORKERS_ENV] !== undefined;
}

function send(message: WorkerMessage, sent?: () => void): void {
  // The channel is gone when the primary died; the 'disconnect' handler stops this worker.
  if (process.connected && process.send) process.send(message, undefined, undefined, () => sent?.());
  else sent?.();
}

/**
 * Runs the gateway as one worker. Resolves with the exit code once stopped: after the
 * primary's stop message, or when the IPC channel closes (the primary died, so nobody
 * coordinates a drain any more and this worker drains on its own).
 */
export async function runWorker(
  config: GatewayConfig,
  configPath: string,
  baseLogger: Logger,
): Promise<number> {
  const workerCount = Math.max(1, Number(process.env[WORKERS_ENV]) || 1);
  const slot = Number(process.env[WORKER_SLOT_ENV] ?? 0);
  const logger = baseLogger.child({ worker: slot, pid: process.pid });
  // The primary coordinates every signal. systemd's default KillMode sends SIGTERM to the
  // whole control group and a terminal's ^C reaches the whole process group: a worker acting
  // on its own would exit before the primary knows it is stopping, and be restarted.
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => {});

  let gateway: Gateway;
  try {
    gateway = await Gateway.start(config, { logger, configPath, watch: false, workerCount });
  } catch (err) {
    const error = err as NodeJS.ErrnoException;
    logger.error({ err }, 'worker could not start');
    logger.flush();
    // Disconnect only once the message is out, so the primary reads why, not just an exit.
    await new Promise<void>((sent) =>
      send({ type: 'dns-tool:start-failed', error: error.message, code: error.code ?? 'ESTART' }, sent),
    );
    if (process.connected) process.disconnect?.();
    return EXIT_START;
  }
  send({
    type: 'dns-tool:started',
    listeners: gateway.boundListeners(),
    hash: gateway.config.hash,
    readiness: gateway.readiness(),
  });

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (why: string): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ why, inflight: gateway.inFlight }, 'worker stopping: draining in-flight queries');
      void gateway.stop().then(() => {
        logger.info('worker stopped');
        logger.flush();
        process.off('message', onMessage);
        if (process.connected) process.disconnect?.();
        resolve(0);
      });
    };
    const onMessage = (message: unknown): void => {
      if (!isPrimaryMessage(message)) return;
      handle(message as PrimaryMessage);
    };
    const handle = (message: PrimaryMessage): void => {
      switch (message.type) {
        case 'dns-tool:reload':
          void gateway.reload().then((result) => send({ type: 'dns-tool:reload', id: message.id, result }));
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
      }
    };
    process.on('message', onMessage);
    process.once('disconnect', () => stop('primary gone'));
  });
}
