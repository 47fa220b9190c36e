// The typed, validated, frozen configuration every other module receives. Nothing
// outside src/config/ ever sees YAML or raw JSON.

export type Protocol = 'udp' | 'tcp';
export type Strategy = 'failover' | 'round_robin' | 'fastest';
export type DenyWith = 'refused' | 'nxdomain' | 'drop';
export type RateScope = 'client' | 'policy';
export type RateExceed = 'drop' | 'refused' | 'truncate';
/** enforce: block as configured; audit: answer as allowed, log and count what would be blocked. */
export type PolicyMode = 'enforce' | 'audit';

export interface ListenerConfig {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly protocols: readonly Protocol[];
  /** Normalised CIDRs whose datagrams and connections must start with a PROXY v2 header; null = none. */
  readonly proxyProtocolFrom: readonly string[] | null;
  /** Normalised CIDRs whose queries' ECS option names the client; null = none. */
  readonly ecsClientFrom: readonly string[] | null;
}

export interface UpstreamServerConfig {
  readonly address: string;
  readonly port: number;
  readonly tlsName: string;
  /** base64 SHA-256 of DER SubjectPublicKeyInfo; empty = no pinning. */
  readonly pins: readonly string[];
  /** PEM contents of `ca_file`, read at load time; null = system roots. */
  readonly ca: string | null;
  readonly caFile: string | null;
  readonly verifyCa: boolean;
  /** Label `address:port` for logs and the metrics `server` label. Whether a reload keeps a
   *  server's connections is decided on every setting (see upstream/hub.ts serverKey). */
  readonly id: string;
}

export interface UpstreamSetConfig {
  readonly name: string;
  readonly strategy: Strategy;
  readonly timeoutMs: number;
  readonly connections: number;
  readonly idleTimeoutMs: number;
  readonly servers: readonly UpstreamServerConfig[];
}

export interface RateLimitConfig {
  readonly qps: number;
  readonly burst: number;
  readonly scope: RateScope;
  readonly exceed: RateExceed;
  readonly ipv4Prefix: number;
  readonly ipv6Prefix: number;
}

export interface QueryTypeFilterConfig {
  /** Exactly one of allow/deny is non-null; numeric RR types. */
  readonly allow: readonly number[] | null;
  readonly deny: readonly number[] | null;
}

export interface DomainFilterConfig {
  /** Lowercased names without trailing dot. */
  readonly allow: readonly string[];
  readonly deny: readonly string[];
}

export interface PolicyConfig {
  readonly name: string;
  /** Normalised CIDR strings, e.g. "10.1.0.0/16", "2001:db8::/48". */
  readonly clients: readonly string[];
  readonly action: 'allow' | 'deny';
  readonly denyWith: DenyWith;
  readonly upstream: string;
  readonly rateLimit: RateLimitConfig | null;
  readonly queryTypes: QueryTypeFilterConfig | null;
  readonly domains: DomainFilterConfig | null;
  readonly cache: boolean;
  /** null = follow `log.queries`. */
  readonly logQueries: boolean | null;
  readonly mode: PolicyMode;
}

export interface CacheConfig {
  readonly maxEntries: number;
  /** Bound on the slab memory of one cache (see AnswerCache); beside maxEntries. */
  readonly maxBytes: number;
  readonly minTtl: number;
  readonly maxTtl: number;
  readonly negativeTtl: number;
}

export interface LimitsConfig {
  readonly timeoutMs: number;
  readonly udpMaxPayload: number;
  readonly maxTcpConnections: number;
  readonly tcpIdleTimeoutMs: number;
  readonly maxTcpInflightPerConnection: number;
  readonly maxRateLimitBuckets: number;
  readonly maxInflight: number;
}

export interface LogConfig {
  readonly level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  readonly queries: boolean;
}

export interface AdminConfig {
  readonly address: string;
  readonly port: number;
}

export interface GatewayConfig {
  readonly version: 1;
  readonly listeners: readonly ListenerConfig[];
  readonly upstreams: ReadonlyMap<string, UpstreamSetConfig>;
  readonly policies: readonly PolicyConfig[];
  readonly cache: CacheConfig;
  readonly limits: LimitsConfig;
  readonly log: LogConfig;
  readonly admin: AdminConfig | null;
  /** Processes serving DNS (1 = no cluster); see src/workers/. Takes effect at start only. */
  readonly workers: number;
  /** sha256 hex of the source text (or of the flags for the seed-flags mode). */
  readonly hash: string;
  /** Where it came from, for messages. */
  readonly source: string;
}
