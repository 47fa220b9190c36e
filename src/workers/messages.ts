// Owns the IPC vocabulary between the primary and its workers: what each side may send,
// and the environment a worker is forked with.
import type { Readiness } from '../admin/server.js';
import type { ConfigSource } from '../config/load.js';
import type { ReloadResult } from '../gateway.js';
import type { BoundListener } from '../listeners/set.js';
import type { CountersSnapshot } from './counters-snapshot.js';

/** Env var carrying the number of workers the primary runs (also each worker's rate divisor). */
export const WORKERS_ENV = 'DNS_TOOL_WORKERS';
/** Env var carrying a worker's slot (0..N-1): stable across restarts, used in logs. */
export const WORKER_SLOT_ENV = 'DNS_TOOL_WORKER_SLOT';

/**
 * A config generation as the primary hands it out: the source it validated (text and named
 * files, see ConfigSource) and the hash that source gave there, which the worker's build
 * must reproduce.
 */
export interface ConfigGeneration {
  readonly source: ConfigSource;
  readonly hash: string;
}

/** Requests carry an id the answer repeats, so late answers to timed-out requests are ignored. */
export type PrimaryMessage =
  /** The answer to `need-config`: the generation a starting worker runs. */
  | { readonly type: 'dns-tool:config'; readonly generation: ConfigGeneration }
  /** Apply this generation (a reload, or bringing a worker back in line with the others). */
  | { readonly type: 'dns-tool:reload'; readonly id: number; readonly generation: ConfigGeneration }
  | { readonly type: 'dns-tool:snapshot'; readonly id: number }
  | { readonly type: 'dns-tool:readiness'; readonly id: number }
  | { readonly type: 'dns-tool:stop' };

export type WorkerMessage =
  /** A worker's first message: it runs whatever config the primary holds now, never the file. */
  | { readonly type: 'dns-tool:need-config' }
  | {
      readonly type: 'dns-tool:started';
      readonly listeners: BoundListener[];
      readonly hash: string;
      readonly readiness: Readiness;
    }
  | { readonly type: 'dns-tool:start-failed'; readonly error: string; readonly code: string }
  | { readonly type: 'dns-tool:reload'; readonly id: number; readonly result: ReloadResult }
  | { readonly type: 'dns-tool:snapshot'; readonly id: number; readonly counters: CountersSnapshot }
  | { readonly type: 'dns-tool:readiness'; readonly id: number; readonly readiness: Readiness };

export function isWorkerMessage(value: unknown): value is WorkerMessage {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { type?: unknown }).type === 'string' &&
    (value as { type: string }).type.startsWith('dns-tool:')
  );
}

export function isPrimaryMessage(value: unknown): value is PrimaryMessage {
  return isWorkerMessage(value);
}
