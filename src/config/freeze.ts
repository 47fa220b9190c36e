// Converts validated, defaulted raw config data (YAML's snake_case shape) into the deeply
// frozen GatewayConfig of types.ts. Runs only after schema and semantic checks found nothing.
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { rrTypeNumber } from './rrtypes.js';
import { canonicalIp, normaliseDomain, parseCidr } from './semantic.js';
import type {
  DenyWith,
  GatewayConfig,
  ListenerConfig,
  LogConfig,
  PolicyConfig,
  PolicyMode,
  Protocol,
  RateExceed,
  RateScope,
  Strategy,
  UpstreamServerConfig,
  UpstreamSetConfig,
} from './types.js';

/** The config as written (after schema defaults), key for key. */
export interface RawConfig {
  version: 1;
  listeners: {
    name: string;
    address: string;
    port: number;
    protocols: Protocol[];
    proxy_protocol?: { from: string[] };
    ecs_client?: { from: string[] };
  }[];
  upstreams: Record<string, RawUpstreamSet>;
  policies: RawPolicy[];
  cache: { max_entries: number; max_bytes: number; min_ttl: number; max_ttl: number; negative_ttl: number };
  limits: {
    timeout_ms: number;
    udp_max_payload: number;
    max_tcp_connections: number;
    tcp_idle_timeout_ms: number;
    max_tcp_inflight_per_connection: number;
    max_rate_limit_buckets: number;
    max_inflight: number;
  };
  log: { level: LogConfig['level']; queries: boolean };
  admin?: { address: string; port: number };
  workers: number;
}

export interface RawUpstreamSet {
  strategy: Strategy;
  timeout_ms: number;
  connections: number;
  idle_timeout_ms: number;
  servers: {
    address: string;
    port: number;
    tls_name: string;
    pins: string[];
    ca_file?: string;
    verify_ca: boolean;
  }[];
}

export interface RawPolicy {
  name: string;
  clients: string[];
  action: 'allow' | 'deny';
  deny_with: DenyWith;
  upstream: string;
  rate_limit?: {
    qps: number;
    burst?: number;
    scope: RateScope;
    exceed: RateExceed;
    ipv4_prefix: number;
    ipv6_prefix: number;
  };
  query_types?: { allow?: string[]; deny?: string[] };
  domains?: { allow: string[]; deny: string[] };
  cache: boolean;
  log_queries?: boolean | null;
  mode: PolicyMode;
}

/** A Map whose mutators throw, so a frozen config cannot be changed through its ReadonlyMap. */
class FrozenMap<K, V> extends Map<K, V> {
  constructor(entries: Iterable<readonly [K, V]>) {
    super();
    for (const [key, value] of entries) super.set(key, value);
    Object.freeze(this);
  }
  override set(): this {
    throw new TypeError('config is frozen');
  }
  override delete(): boolean {
    throw new TypeError('config is frozen');
  }
  override clear(): void {
    throw new TypeError('config is frozen');
  }
}

/**
 * @param caFiles ca_file contents keyed by absolute path, as read by the semantic checks.
 */
export function freezeConfig(
  raw: RawConfig,
  caFiles: ReadonlyMap<string, string>,
  meta: { source: string; hash: string; baseDir: string },
): GatewayConfig {
  const listeners: ListenerConfig[] = raw.listeners.map((l) => ({
    name: l.name,
    address: canonicalIp(l.address),
    port: l.port,
    protocols: [...l.protocols],
    proxyProtocolFrom: l.proxy_protocol ? l.proxy_protocol.from.map((c) => parseCidr(c) as string) : null,
    ecsClientFrom: l.ecs_client ? l.ecs_client.from.map((c) => parseCidr(c) as string) : null,
  }));

  const upstreams = new FrozenMap<string, UpstreamSetConfig>(
    Object.entries(raw.upstreams).map(([name, set]) => [
      name,
      {
        name,
        strategy: set.strategy,
        timeoutMs: set.timeout_ms,
        connections: set.connections,
        idleTimeoutMs: set.idle_timeout_ms,
        servers: set.servers.map((s): UpstreamServerConfig => {
          const address = canonicalIp(s.address);
          const caFile = s.ca_file === undefined ? null : resolve(meta.baseDir, s.ca_file);
          return {
            address,
            port: s.port,
            tlsName: s.tls_name,
            pins: [...s.pins],
            ca: caFile === null ? null : (caFiles.get(caFile) ?? null),
            caFile,
            verifyCa: s.verify_ca,
            id: address.includes(':') ? `[${address}]:${s.port}` : `${address}:${s.port}`,
          };
        }),
      },
    ]),
  );

  const policies: PolicyConfig[] = raw.policies.map((p) => ({
    name: p.name,
    clients: p.clients.map((c) => parseCidr(c) as string),
    action: p.action,
    denyWith: p.deny_with,
    upstream: p.upstream,
    rateLimit: p.rate_limit
      ? {
          qps: p.rate_limit.qps,
          burst: p.rate_limit.burst ?? Math.ceil(p.rate_limit.qps),
          scope: p.rate_limit.scope,
          exceed: p.rate_limit.exceed,
          ipv4Prefix: p.rate_limit.ipv4_prefix,
          ipv6Prefix: p.rate_limit.ipv6_prefix,
        }
      : null,
    queryTypes: p.query_types
      ? {
          allow: p.query_types.allow ? typeNumbers(p.query_types.allow) : null,
          deny: p.query_types.deny ? typeNumbers(p.query_types.deny) : null,
        }
      : null,
    // Empty lists filter nothing; null lets the pipeline leave the domain stage out.
    domains:
      p.domains && (p.domains.allow.length > 0 || p.domains.deny.length > 0)
        ? { allow: uniqueDomains(p.domains.allow), deny: uniqueDomains(p.domains.deny) }
        : null,
    cache: p.cache,
    logQueries: p.log_queries ?? null,
    mode: p.mode,
  }));

  return deepFreeze({
    version: 1,
    listeners,
    upstreams,
    policies,
    cache: {
      maxEntries: raw.cache.max_entries,
      maxBytes: raw.cache.max_bytes,
      minTtl: raw.cache.min_ttl,
      maxTtl: raw.cache.max_ttl,
      negativeTtl: raw.cache.negative_ttl,
    },
    limits: {
      timeoutMs: raw.limits.timeout_ms,
      udpMaxPayload: raw.limits.udp_max_payload,
      maxTcpConnections: raw.limits.max_tcp_connections,
      tcpIdleTimeoutMs: raw.limits.tcp_idle_timeout_ms,
      maxTcpInflightPerConnection: raw.limits.max_tcp_inflight_per_connection,
      maxRateLimitBuckets: raw.limits.max_rate_limit_buckets,
      maxInflight: raw.limits.max_inflight,
    },
    log: { level: raw.log.level, queries: raw.log.queries },
    admin: raw.admin ? { address: canonicalIp(raw.admin.address), port: raw.admin.port } : null,
    workers: raw.workers,
    hash: combinedHash(meta.hash, caFiles),
    source: meta.source,
  } satisfies GatewayConfig);
}

function typeNumbers(names: readonly string[]): number[] {
  return [...new Set(names.map((n) => rrTypeNumber(n) as number))];
}

function uniqueDomains(names: readonly string[]): string[] {
  return [...new Set(names.map(normaliseDomain))];
}

function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null) return value;
  // A FrozenMap is frozen from birth but its values are not yet, so maps are always walked.
  if (value instanceof Map) {
    for (const v of value.values()) deepFreeze(v);
    return Object.freeze(value);
  }
  if (Object.isFrozen(value)) return value;
  for (const v of Object.values(value)) deepFreeze(v);
  return Object.freeze(value);
}

/**
 * The config's identity: the file's text hash, extended by the contents of every ca_file
 * it names, so a rotated CA bundle counts as a change on reload.
 */
function combinedHash(textHash: string, caFiles: ReadonlyMap<string, string>): string {
  if (caFiles.size === 0) return textHash;
  const h = createHash('sha256').update(textHash);
  for (const path of [...caFiles.keys()].sort())
    h.update('\0').update(path).update('\0').update(caFiles.get(path)!);
  return h.digest('hex');
}
