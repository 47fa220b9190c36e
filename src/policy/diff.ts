// What changes in effect between two configs: listeners, upstream sets and their servers,
// policies field by field, global settings, and the client ranges whose policy changes.
// Compared on the frozen configs, so order, spelling, comments and defaults written out or
// left implicit make no difference. `dns-tool diff` prints it; each reload logs it.

import { rrTypeName } from '../config/rrtypes.js';
import type {
  GatewayConfig,
  ListenerConfig,
  PolicyConfig,
  UpstreamServerConfig,
  UpstreamSetConfig,
} from '../config/types.js';
import { clientRangeChanges, type RangeChange } from './ranges.js';

/** One field that differs: a value that changed, or entries added to and removed from a set. */
export interface FieldChange {
  /** The key as written in the YAML (`deny_with`, `rate_limit.qps`, `domains.deny`). */
  readonly field: string;
  readonly from?: unknown;
  readonly to?: unknown;
  readonly added?: readonly string[];
  readonly removed?: readonly string[];
}

export interface NamedChanges {
  readonly name: string;
  readonly changes: readonly FieldChange[];
}

export interface UpstreamChanges extends NamedChanges {
  readonly servers: {
    readonly added: readonly string[];
    readonly removed: readonly string[];
    readonly changed: readonly NamedChanges[];
  };
}

export interface ConfigDiff {
  readonly listeners: { added: string[]; removed: string[]; changed: NamedChanges[] };
  readonly upstreams: { added: string[]; removed: string[]; changed: UpstreamChanges[] };
  readonly policies: { added: string[]; removed: string[]; changed: NamedChanges[] };
  /** cache, limits, log, admin, workers. */
  readonly settings: FieldChange[];
  readonly clients: RangeChange[];
}

export function configDiff(before: GatewayConfig, after: GatewayConfig): ConfigDiff {
  return {
    listeners: diffNamed(
      byName(before.listeners),
      byName(after.listeners),
      (l) => `${l.name} ${hostPort(l.address, l.port)} ${l.protocols.join(',')}`,
      listenerChanges,
    ),
    upstreams: diffUpstreams(before.upstreams, after.upstreams),
    policies: diffNamed(byName(before.policies), byName(after.policies), (p) => p.name, policyChanges),
    settings: settingChanges(before, after),
    clients: clientRangeChanges(before.policies, after.policies),
  };
}

export function isEmptyDiff(d: ConfigDiff): boolean {
  return (
    d.listeners.added.length + d.listeners.removed.length + d.listeners.changed.length === 0 &&
    d.upstreams.added.length + d.upstreams.removed.length + d.upstreams.changed.length === 0 &&
    d.policies.added.length + d.policies.removed.length + d.policies.changed.length === 0 &&
    d.settings.length === 0 &&
    d.clients.length === 0
  );
}

/** Entries of one set change shown by name in the summary; more are counted. */
export const SUMMARY_NAMES = 20;

/**
 * The diff as lines for people (and the reload log): one line per change, client ranges
 * last, as `10.1.5.0/24: office -> guests`. Sets of entries name at most SUMMARY_NAMES
 * entries each and count the rest; the JSON form of the diff has them all.
 */
export function summaryLines(d: ConfigDiff): string[] {
  const lines: string[] = [];
  for (const name of d.listeners.added) lines.push(`listener added: ${name}`);
  for (const name of d.listeners.removed) lines.push(`listener removed: ${name}`);
  for (const c of d.listeners.changed)
    lines.push(...c.changes.map((f) => `listener ${c.name}: ${fieldText(f)}`));
  for (const name of d.upstreams.added) lines.push(`upstream set added: ${name}`);
  for (const name of d.upstreams.removed) lines.push(`upstream set removed: ${name}`);
  for (const u of d.upstreams.changed) {
    for (const f of u.changes) lines.push(`upstream ${u.name}: ${fieldText(f)}`);
    for (const s of u.servers.added) lines.push(`upstream ${u.name}: server added ${s}`);
    for (const s of u.servers.removed) lines.push(`upstream ${u.name}: server removed ${s}`);
    for (const s of u.servers.changed) {
      for (const f of s.changes) lines.push(`upstream ${u.name}: server ${s.name} ${fieldText(f)}`);
    }
  }
  for (const name of d.policies.added) lines.push(`policy added: ${name}`);
  for (const name of d.policies.removed) lines.push(`policy removed: ${name}`);
  for (const c of d.policies.changed)
    lines.push(...c.changes.map((f) => `policy ${c.name}: ${fieldText(f)}`));
  for (const f of d.settings) lines.push(`setting ${fieldText(f)}`);
  for (const r of d.clients) lines.push(`${r.range}: ${r.from ?? '(unmatched)'} -> ${r.to ?? '(unmatched)'}`);
  return lines;
}

/** Lines a reload logs at most; a longer summary ends with a count of the rest. */
export const RELOAD_SUMMARY_LINES = 200;

/** The summary each successful reload logs: `summaryLines`, bounded to RELOAD_SUMMARY_LINES. */
export function reloadSummary(before: GatewayConfig, after: GatewayConfig): string[] {
  const lines = summaryLines(configDiff(before, after));
  if (lines.length <= RELOAD_SUMMARY_LINES) return lines;
  const rest = lines.length - (RELOAD_SUMMARY_LINES - 1);
  return [...lines.slice(0, RELOAD_SUMMARY_LINES - 1), `... and ${rest} more (dns-tool diff shows them all)`];
}

function fieldText(f: FieldChange): string {
  if (f.added !== undefined || f.removed !== undefined) {
    const parts: string[] = [];
    if (f.added && f.added.length > 0) parts.push(`added ${names(f.added)}`);
    if (f.removed && f.removed.length > 0) parts.push(`removed ${names(f.removed)}`);
    return `${f.field} ${parts.join('; ')}`;
  }
  return `${f.field} ${valueText(f.from)} -> ${valueText(f.to)}`;
}

function names(list: readonly string[]): string {
  if (list.length <= SUMMARY_NAMES) return list.join(', ');
  return `${list.length}: ${list.slice(0, SUMMARY_NAMES).join(', ')}, ...`;
}

function valueText(value: unknown): string {
  if (value === null || value === undefined) return '(none)';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

// ---- named things ----

function byName<T extends { name: string }>(items: readonly T[]): Map<string, T> {
  return new Map(items.map((i) => [i.name, i]));
}

function diffNamed<T>(
  before: ReadonlyMap<string, T>,
  after: ReadonlyMap<string, T>,
  label: (item: T) => string,
  fields: (a: T, b: T) => FieldChange[],
): { added: string[]; removed: string[]; changed: NamedChanges[] } {
  const added = [...after].filter(([k]) => !before.has(k)).map(([, v]) => label(v));
  const removed = [...before].filter(([k]) => !after.has(k)).map(([, v]) => label(v));
  const changed: NamedChanges[] = [];
  for (const [name, b] of after) {
    const a = before.get(name);
    if (a === undefined) continue;
    const changes = fields(a, b);
    if (changes.length > 0) changed.push({ name, changes });
  }
  return { added, removed, changed };
}

function listenerChanges(a: ListenerConfig, b: ListenerConfig): FieldChange[] {
  const out: FieldChange[] = [];
  scalar(out, 'address', a.address, b.address);
  scalar(out, 'port', a.port, b.port);
  set(out, 'protocols', a.protocols, b.protocols);
  return out;
}

function diffUpstreams(
  before: ReadonlyMap<string, UpstreamSetConfig>,
  after: ReadonlyMap<string, UpstreamSetConfig>,
): ConfigDiff['upstreams'] {
  const named = diffNamed(before, after, (s) => s.name, setChanges);
  const changed: UpstreamChanges[] = [];
  for (const [name, b] of after) {
    const a = before.get(name);
    if (a === undefined) continue;
    const servers = diffNamed(
      new Map(a.servers.map((s) => [s.id, s])),
      new Map(b.servers.map((s) => [s.id, s])),
      serverLabel,
      serverChanges,
    );
    const changes = named.changed.find((c) => c.name === name)?.changes ?? [];
    if (changes.length + servers.added.length + servers.removed.length + servers.changed.length > 0) {
      changed.push({ name, changes, servers });
    }
  }
  return { added: named.added, removed: named.removed, changed };
}

function setChanges(a: UpstreamSetConfig, b: UpstreamSetConfig): FieldChange[] {
  const out: FieldChange[] = [];
  scalar(out, 'strategy', a.strategy, b.strategy);
  scalar(out, 'timeout_ms', a.timeoutMs, b.timeoutMs);
  scalar(out, 'connections', a.connections, b.connections);
  scalar(out, 'idle_timeout_ms', a.idleTimeoutMs, b.idleTimeoutMs);
  // The order of servers is the failover order.
  const ids = (s: UpstreamSetConfig) => s.servers.map((x) => x.id);
  const kept = ids(a).filter((id) => ids(b).includes(id));
  const keptAfter = ids(b).filter((id) => ids(a).includes(id));
  if (kept.join() !== keptAfter.join()) scalar(out, 'servers order', kept.join(', '), keptAfter.join(', '));
  return out;
}

function serverLabel(s: UpstreamServerConfig): string {
  return `${s.id} (${s.tlsName})`;
}

function serverChanges(a: UpstreamServerConfig, b: UpstreamServerConfig): FieldChange[] {
  const out: FieldChange[] = [];
  scalar(out, 'tls_name', a.tlsName, b.tlsName);
  set(out, 'pins', a.pins, b.pins);
  scalar(out, 'verify_ca', a.verifyCa, b.verifyCa);
  scalar(out, 'ca_file', a.caFile, b.caFile);
  if (a.caFile === b.caFile && a.ca !== b.ca) out.push({ field: 'ca_file contents', from: 'old', to: 'new' });
  return out;
}

function policyChanges(a: PolicyConfig, b: PolicyConfig): FieldChange[] {
  const out: FieldChange[] = [];
  set(out, 'clients', a.clients, b.clients);
  scalar(out, 'mode', a.mode, b.mode);
  scalar(out, 'action', a.action, b.action);
  scalar(out, 'deny_with', a.denyWith, b.denyWith);
  scalar(out, 'upstream', a.upstream, b.upstream);
  if ((a.rateLimit === null) !== (b.rateLimit === null)) {
    scalar(out, 'rate_limit', rateText(a.rateLimit), rateText(b.rateLimit));
  } else if (a.rateLimit !== null && b.rateLimit !== null) {
    const [x, y] = [a.rateLimit, b.rateLimit];
    scalar(out, 'rate_limit.qps', x.qps, y.qps);
    scalar(out, 'rate_limit.burst', x.burst, y.burst);
    scalar(out, 'rate_limit.scope', x.scope, y.scope);
    scalar(out, 'rate_limit.exceed', x.exceed, y.exceed);
    scalar(out, 'rate_limit.ipv4_prefix', x.ipv4Prefix, y.ipv4Prefix);
    scalar(out, 'rate_limit.ipv6_prefix', x.ipv6Prefix, y.ipv6Prefix);
  }
  const types = (list: readonly number[] | null | undefined) => (list ?? []).map(rrTypeName);
  const qa = a.queryTypes;
  const qb = b.queryTypes;
  const kindA = qa === null ? 'none' : qa.allow !== null ? 'allow' : 'deny';
  const kindB = qb === null ? 'none' : qb.allow !== null ? 'allow' : 'deny';
  if (kindA !== kindB) {
    scalar(out, 'query_types', typeFilterText(qa), typeFilterText(qb));
  } else {
    set(out, 'query_types.allow', types(qa?.allow), types(qb?.allow));
    set(out, 'query_types.deny', types(qa?.deny), types(qb?.deny));
  }
  set(out, 'domains.allow', a.domains?.allow ?? [], b.domains?.allow ?? []);
  set(out, 'domains.deny', a.domains?.deny ?? [], b.domains?.deny ?? []);
  scalar(out, 'cache', a.cache, b.cache);
  scalar(out, 'log_queries', a.logQueries, b.logQueries);
  return out;
}

function rateText(rl: PolicyConfig['rateLimit']): string | null {
  if (rl === null) return null;
  return `qps ${rl.qps}, burst ${rl.burst}, scope ${rl.scope}, exceed ${rl.exceed}`;
}

function typeFilterText(q: PolicyConfig['queryTypes']): string | null {
  if (q === null) return null;
  return q.allow !== null
    ? `allow [${q.allow.map(rrTypeName).join(', ')}]`
    : `deny [${(q.deny ?? []).map(rrTypeName).join(', ')}]`;
}

function settingChanges(a: GatewayConfig, b: GatewayConfig): FieldChange[] {
  const out: FieldChange[] = [];
  scalar(out, 'cache.max_entries', a.cache.maxEntries, b.cache.maxEntries);
  scalar(out, 'cache.min_ttl', a.cache.minTtl, b.cache.minTtl);
  scalar(out, 'cache.max_ttl', a.cache.maxTtl, b.cache.maxTtl);
  scalar(out, 'cache.negative_ttl', a.cache.negativeTtl, b.cache.negativeTtl);
  scalar(out, 'limits.timeout_ms', a.limits.timeoutMs, b.limits.timeoutMs);
  scalar(out, 'limits.udp_max_payload', a.limits.udpMaxPayload, b.limits.udpMaxPayload);
  scalar(out, 'limits.max_tcp_connections', a.limits.maxTcpConnections, b.limits.maxTcpConnections);
  scalar(out, 'limits.tcp_idle_timeout_ms', a.limits.tcpIdleTimeoutMs, b.limits.tcpIdleTimeoutMs);
  scalar(out, 'limits.max_rate_limit_buckets', a.limits.maxRateLimitBuckets, b.limits.maxRateLimitBuckets);
  scalar(out, 'limits.max_inflight', a.limits.maxInflight, b.limits.maxInflight);
  scalar(out, 'log.level', a.log.level, b.log.level);
  scalar(out, 'log.queries', a.log.queries, b.log.queries);
  const admin = (c: GatewayConfig) => (c.admin === null ? null : hostPort(c.admin.address, c.admin.port));
  scalar(out, 'admin', admin(a), admin(b));
  scalar(out, 'workers', a.workers, b.workers);
  return out;
}

// ---- field helpers ----

function scalar(out: FieldChange[], field: string, from: unknown, to: unknown): void {
  if (from !== to) out.push({ field, from: from ?? null, to: to ?? null });
}

function set(out: FieldChange[], field: string, before: readonly string[], after: readonly string[]): void {
  const a = new Set(before);
  const b = new Set(after);
  const added = [...b].filter((x) => !a.has(x));
  const removed = [...a].filter((x) => !b.has(x));
  if (added.length + removed.length > 0) out.push({ field, added, removed });
}

function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
