// Owns request and reply over the IPC channel: a request carries an id, its answer repeats
// it, and a request that outlives its timeout or its worker resolves null.
import type { PrimaryMessage, WorkerMessage } from './messages.js';
import type { Slot } from './slot.js';

interface Pending {
  readonly slot: Slot;
  readonly resolve: (message: WorkerMessage | null) => void;
  readonly timer: NodeJS.Timeout;
}

export class WorkerRequests {
  /**
   * Requests awaiting a worker's answer, by id. Bounded: each entry lives at most its
   * timeout, and requests are made per scrape / probe / reload (admin caps its connections
   * at 64) for each of at most 64 workers.
   */
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  /** Sends `make(id)` to the slot's running worker; its answer, or null (not running, timeout, death). */
  ask(slot: Slot, make: (id: number) => PrimaryMessage, timeoutMs: number): Promise<WorkerMessage | null> {
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

  /** Routes a worker's message to the request it answers; a late answer is dropped. */
  answer(message: WorkerMessage): void {
    if (!('id' in message)) return;
    const pending = this.pending.get(message.id);
    if (pending === undefined) return; // timed out already
    clearTimeout(pending.timer);
    this.pending.delete(message.id);
    pending.resolve(message);
  }

  /** The slot's worker is gone: whatever it was asked resolves null now, not at the timeout. */
  abandon(slot: Slot): void {
    for (const [id, p] of this.pending) {
      if (p.slot === slot) {
        clearTimeout(p.timer);
        this.pending.delete(id);
        p.resolve(null);
      }
    }
  }
}
