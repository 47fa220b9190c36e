// The listeners of the running config, opened and closed by difference on reload.
import type { ListenerConfig } from '../config/types.js';
import { listenerTrust } from '../identity/trust.js';
import type { Logger } from '../log.js';
import type { QueryEntry } from '../pipeline/entry.js';
import { type TcpLimits, TcpListener } from './tcp.js';
import { UdpListener } from './udp.js';

type Listener = UdpListener | TcpListener;

export interface ListenerLimits extends TcpLimits {
  /** How long a closing listener waits for its queries in flight. */
  readonly timeoutMs: number;
}

export interface BoundListener {
  readonly name: string;
  readonly protocol: 'udp' | 'tcp';
  readonly address: string;
  readonly port: number;
  /** TCP: client connections open when listed. */
  readonly connections?: number;
}

function keyOf(protocol: string, address: string, port: number): string {
  return `${protocol} ${address} ${port}`;
}

export class ListenerSet {
  /** key → listener; bounded by the config's listener count. */
  private readonly sockets = new Map<string, { listener: Listener; name: string }>();

  constructor(
    private readonly entry: QueryEntry,
    private readonly limits: () => ListenerLimits,
    private readonly logger: Logger,
  ) {}

  /**
   * Bind every socket `wanted` has that is not open yet. All or nothing: when one bind
   * fails, the ones bound by this call are closed again and the error is thrown, so the
   * caller can keep its old generation whole. Returns a commit function that closes the
   * sockets `wanted` no longer has (call it after the new generation is live).
   */
  async open(
    wanted: readonly ListenerConfig[],
  ): Promise<{ added: string[]; removed: string[]; commit: () => Promise<void> }> {
    const wantedKeys = new Map<string, { cfg: ListenerConfig; protocol: 'udp' | 'tcp' }>();
    for (const cfg of wanted) {
      for (const protocol of cfg.protocols)
        wantedKeys.set(keyOf(protocol, cfg.address, cfg.port), { cfg, protocol });
    }
    const bound: string[] = [];
    try {
      for (const [key, { cfg, protocol }] of wantedKeys) {
        if (this.sockets.has(key)) continue;
        const listener =
          protocol === 'udp'
            ? new UdpListener(cfg.address, cfg.port, this.entry, this.logger)
            : new TcpListener(cfg.address, cfg.port, this.entry, this.limits, this.logger);
        listener.trust = listenerTrust(cfg);
        await listener.listen();
        this.sockets.set(key, { listener, name: cfg.name });
        bound.push(key);
      }
    } catch (err) {
      for (const key of bound) {
        await this.sockets.get(key)?.listener.close();
        this.sockets.delete(key);
      }
      throw err;
    }
    for (const [key, entry] of this.sockets) {
      const w = wantedKeys.get(key);
      if (w) entry.name = w.cfg.name;
    }
    const removed = [...this.sockets.keys()].filter((k) => !wantedKeys.has(k));
    // A removed listener drains as at shutdown: it takes nothing new, and the queries it took
    // are answered from it (bounded by limits.timeout_ms) before its socket closes.
    const commit = async () => {
      // Kept sockets take the new generation's trust (proxy_protocol, ecs_client) with it.
      for (const [key, entry] of this.sockets) {
        const w = wantedKeys.get(key);
        if (w) entry.listener.trust = listenerTrust(w.cfg);
      }
      const closing: Promise<void>[] = [];
      for (const key of removed) {
        const entry = this.sockets.get(key);
        this.sockets.delete(key);
        if (entry) closing.push(entry.listener.close(this.limits().timeoutMs));
      }
      await Promise.all(closing);
    };
    return { added: bound, removed, commit };
  }

  list(): BoundListener[] {
    const out: BoundListener[] = [];
    for (const { listener, name } of this.sockets.values()) {
      out.push(
        listener instanceof TcpListener
          ? {
              name,
              protocol: 'tcp',
              address: listener.address,
              port: listener.localPort,
              connections: listener.connectionCount,
            }
          : { name, protocol: 'udp', address: listener.address, port: listener.localPort },
      );
    }
    return out;
  }

  /** Stop accepting everywhere; queries in flight get `graceMs` to be answered. */
  async close(graceMs: number): Promise<void> {
    const all = [...this.sockets.values()];
    this.sockets.clear();
    await Promise.all(all.map(({ listener }) => listener.close(graceMs)));
  }
}
