// Owns the primary's /readyz answer: ready when every worker is, from the workers' latest
// reports, each asked for a fresh one as the answer is given.
import type { Readiness } from '../admin/server.js';
import type { WorkerRequests } from './requests.js';
import type { Slot } from './slot.js';
import type { Phase } from './supervisor.js';

/** A readiness answer later than this counts the worker as not ready. */
const READINESS_TIMEOUT_MS = 1000;

/**
 * The admin server asks synchronously, so this answers from the workers' latest reports and
 * asks each for a fresh one: a change shows at the next probe (workers do not poll on their
 * own, since a readiness check reconnects idle upstream servers).
 */
export function workersReadiness(phase: Phase, slots: readonly Slot[], requests: WorkerRequests): Readiness {
  if (phase === 'stopping') return { ready: false, reason: 'stopping' };
  if (phase === 'starting') return { ready: false, reason: 'starting' };
  const notReady: string[] = [];
  for (const slot of slots) {
    if (slot.state === 'running' && !slot.readinessAsked) {
      slot.readinessAsked = true;
      void requests
        .ask(slot, (id) => ({ type: 'dns-tool:readiness', id }), READINESS_TIMEOUT_MS)
        .then((answer) => {
          slot.readinessAsked = false;
          if (answer?.type === 'dns-tool:readiness') slot.readiness = answer.readiness;
          else if (slot.state === 'running') slot.readiness = { ready: false, reason: 'not answering' };
        });
    }
    if (slot.state !== 'running') notReady.push(`worker ${slot.index}: ${slot.state}`);
    else if (!slot.readiness.ready)
      notReady.push(`worker ${slot.index}: ${slot.readiness.reason ?? 'not ready'}`);
  }
  return notReady.length === 0 ? { ready: true } : { ready: false, reason: notReady.join('; ') };
}
