// Owns what the primary knows about one of its N worker positions; the process in a slot is
// replaced when it dies, the slot (and its number in logs) stays.
import type { Worker } from 'node:cluster';
import type { Readiness } from '../admin/server.js';
import type { CountersSnapshot } from './counters-snapshot.js';

export type SlotState = 'starting' | 'running' | 'restarting' | 'stopped';

export interface Slot {
  readonly index: number;
  worker: Worker | null;
  state: SlotState;
  startedAt: number;
  /** Deaths since the last stable run; drives the restart backoff. */
  deaths: number;
  restartTimer: NodeJS.Timeout | null;
  /** Hash of the config generation the worker runs, as it last said; null while unknown. */
  hash: string | null;
  /** The latest counters this worker reported; its counts are retired when it dies. */
  snapshot: CountersSnapshot | null;
  readiness: Readiness;
  /** A readiness request is out; at most one per worker at a time. */
  readinessAsked: boolean;
}

export function newSlot(index: number): Slot {
  return {
    index,
    worker: null,
    state: 'starting',
    startedAt: 0,
    deaths: 0,
    restartTimer: null,
    hash: null,
    snapshot: null,
    readiness: { ready: false, reason: 'starting' },
    readinessAsked: false,
  };
}
