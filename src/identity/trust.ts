// Which sources a listener trusts to name the client (PROXY v2 header, ECS option), compiled
// once per listener config into prefix tables the listeners probe per datagram or connection.
import type { ListenerConfig } from '../config/types.js';
import { PolicyTable } from '../stages/match-policy.js';

export interface ListenerTrust {
  /** Sources that must send a PROXY v2 header; null when the listener takes none. */
  readonly proxyFrom: PolicyTable<true> | null;
  /** Sources whose ECS option names the client; null when the listener trusts none. */
  readonly ecsFrom: PolicyTable<true> | null;
}

export const TRUST_NOBODY: ListenerTrust = { proxyFrom: null, ecsFrom: null };

function table(cidrs: readonly string[] | null): PolicyTable<true> | null {
  return cidrs === null ? null : new PolicyTable(cidrs.map((cidr) => ({ cidr, value: true as const })));
}

export function listenerTrust(cfg: ListenerConfig): ListenerTrust {
  if (cfg.proxyProtocolFrom === null && cfg.ecsClientFrom === null) return TRUST_NOBODY;
  return { proxyFrom: table(cfg.proxyProtocolFrom), ecsFrom: table(cfg.ecsClientFrom) };
}

/** True when `table` holds a prefix containing `address`. */
export function trusts(table: PolicyTable<true> | null, address: string): boolean {
  return table !== null && table.lookup(address) !== null;
}
