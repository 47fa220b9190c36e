// The attacker side of bench/abuse.ts, in a worker thread: its sockets and loops get an event
// loop of their own, so the well-behaved probes on the main thread measure the gateway, not
// the attacker's load. One attack per message; the reply is its figures.
import { parentPort } from 'node:worker_threads';
import {
  connectionFlood,
  idleConnections,
  loopbackSources,
  slowloris,
  udpFlood,
} from '../test/helpers/abuse.js';

export type Attack =
  | { kind: 'idle'; port: number; count: number; holdMs: number }
  | { kind: 'slowloris'; port: number; count: number; everyMs: number; holdMs: number }
  | { kind: 'connect-flood'; port: number; concurrency: number; holdMs: number; durationMs: number }
  | { kind: 'udp-flood'; port: number; sources: number; durationMs: number };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function run(attack: Attack): Promise<Record<string, number>> {
  const sources = loopbackSources(250, 10);
  switch (attack.kind) {
    case 'idle': {
      const held = await idleConnections(attack.port, attack.count, { sources });
      await sleep(500); // those over the cap are closed at once
      const closedAtOnce = held.closedByServer();
      await sleep(attack.holdMs - 500);
      const figures = { made: held.made, closedAtOnce, closedByEnd: held.closedByServer() };
      held.close();
      return figures;
    }
    case 'slowloris': {
      const loris = await slowloris(attack.port, attack.count, {
        everyMs: attack.everyMs,
        maxMs: attack.holdMs,
        sources,
      });
      await loris.done;
      const figures = { made: loris.made, bytes: loris.bytes(), closedByEnd: loris.closedByServer() };
      loris.close();
      return figures;
    }
    case 'connect-flood': {
      const r = await connectionFlood(attack.port, {
        maxAttempts: 1_000_000,
        durationMs: attack.durationMs,
        concurrency: attack.concurrency,
        holdMs: attack.holdMs,
        sources,
      });
      return { attempts: r.attempts, closedByServer: r.closedByServer, held: r.held, failed: r.failed };
    }
    case 'udp-flood': {
      const from = [...sources.slice(0, attack.sources), '::1'];
      const r = await udpFlood(attack.port, from, { maxPackets: 50_000_000, durationMs: attack.durationMs });
      return { sources: from.length, sent: r.sent, answered: r.answered };
    }
  }
}

parentPort?.on('message', (attack: Attack) => {
  run(attack).then(
    (figures) => parentPort?.postMessage({ ok: true, figures }),
    (err: unknown) => parentPort?.postMessage({ ok: false, error: String(err) }),
  );
});
