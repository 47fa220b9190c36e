// A TCP proxy on loopback between the gateway and its DoT upstream that misbehaves on request:
// resets every N-th connection, delays the upstream's first bytes (a slow TLS handshake), and
// ends connections after a lifetime so new ones (and new handshakes) keep coming.
import net from 'node:net';

export interface ProxyFaults {
  /** Reset (RST) every N-th accepted connection; 0 = never. */
  resetEvery: number;
  /** When a connection chosen by `resetEvery` is reset: ms after it was accepted (0 = at once). */
  resetAfterMs: number;
  /** Hold the upstream's first bytes to the client this long (0 = no delay). */
  firstBytesDelayMs: number;
  /** End (FIN) each connection this long after it was accepted; 0 = never. */
  lifetimeMs: number;
}

export interface FaultProxy {
  readonly port: number;
  /** Knobs; changes apply to connections accepted afterwards. */
  readonly faults: ProxyFaults;
  /** Connections accepted, reset, and open now. */
  readonly accepted: number;
  readonly resets: number;
  readonly open: number;
  /** End (FIN) every open connection now, so the next ones are made under the current faults. */
  endAll(): void;
  close(): Promise<void>;
}

export const NO_FAULTS: Readonly<ProxyFaults> = {
  resetEvery: 0,
  resetAfterMs: 0,
  firstBytesDelayMs: 0,
  lifetimeMs: 0,
};

export async function startFaultProxy(
  targetPort: number,
  initial: Partial<ProxyFaults> = {},
): Promise<FaultProxy> {
  const faults: ProxyFaults = { ...NO_FAULTS, ...initial };
  const stats = { accepted: 0, resets: 0 };
  /** Open client sockets; bounded by what the gateway opens (its pool is a handful per server). */
  const open = new Map<net.Socket, net.Socket>();
  const server = net.createServer((client) => {
    const n = ++stats.accepted;
    const f = { ...faults };
    const upstream = net.connect({ port: targetPort, host: '127.0.0.1' });
    open.set(client, upstream);
    const timers: NodeJS.Timeout[] = [];
    const finish = () => {
      for (const t of timers) clearTimeout(t);
      open.delete(client);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', finish);
    upstream.on('error', finish);
    client.on('close', finish);
    upstream.on('close', finish);
    client.pipe(upstream);
    if (f.firstBytesDelayMs > 0) {
      upstream.pause();
      upstream.once('readable', () => {
        timers.push(
          setTimeout(() => {
            if (!client.destroyed) upstream.pipe(client);
          }, f.firstBytesDelayMs),
        );
      });
    } else {
      upstream.pipe(client);
    }
    if (f.resetEvery > 0 && n % f.resetEvery === 0) {
      const reset = () => {
        stats.resets++;
        client.resetAndDestroy();
        upstream.destroy();
      };
      if (f.resetAfterMs === 0) reset();
      else timers.push(setTimeout(reset, f.resetAfterMs));
    } else if (f.lifetimeMs > 0) {
      timers.push(
        setTimeout(() => {
          client.end();
          upstream.end();
        }, f.lifetimeMs),
      );
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    faults,
    get accepted() {
      return stats.accepted;
    },
    get resets() {
      return stats.resets;
    },
    get open() {
      return open.size;
    },
    endAll() {
      for (const [client, upstream] of open) {
        client.end();
        upstream.end();
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const [client, upstream] of open) {
          client.destroy();
          upstream.destroy();
        }
        server.close(() => resolve());
      }),
  };
}
