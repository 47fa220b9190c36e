// The original dns-tool command line (-address, -port, -resolver-addr, -resolver-fqdn,
// -resolver-pin, -timeout) turned into an equivalent in-memory config, built through the same
// schema defaults and checks as a config file.
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { buildConfig, ConfigError, type ConfigProblem, NO_POSITION } from './load.js';
import { domainProblem, ipLiteralProblem, pinProblem } from './semantic.js';
import type { GatewayConfig } from './types.js';

export const FLAGS_SOURCE = '<flags>';

/** The original flags and their defaults, as the Go tool had them. */
const FLAG_DEFAULTS = {
  address: '0.0.0.0',
  port: '53',
  'resolver-addr': '1.1.1.1:853',
  'resolver-fqdn': 'cloudflare-dns.com',
  'resolver-pin': '',
  timeout: '3',
} as const;

type FlagName = keyof typeof FLAG_DEFAULTS;

function isFlagName(name: string): name is FlagName {
  return Object.hasOwn(FLAG_DEFAULTS, name);
}

/** Upper bound of -timeout: limits.timeout_ms allows at most 60000. */
const MAX_TIMEOUT_SECONDS = 60;

/**
 * Builds a config from the original flags (single or double dash, "-flag value" or
 * "-flag=value"; a repeated flag's last value wins, as with Go's flag package). Returns null
 * when argv names none of them; throws ConfigError (source "<flags>", positions 0:0) on bad
 * values or on arguments that are not among them.
 */
export function configFromFlags(argv: readonly string[]): GatewayConfig | null {
  const values: Record<FlagName, string> = { ...FLAG_DEFAULTS };
  const problems: ConfigProblem[] = [];
  const problem = (message: string): void => {
    problems.push({ line: 0, col: 0, message });
  };
  let sawFlag = false;
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i];
    const match = /^--?([^=]+)(?:=(.*))?$/s.exec(token);
    if (!match || !isFlagName(match[1])) {
      problem(`unexpected argument "${token}" (the original flags are: ${flagList()})`);
      continue;
    }
    sawFlag = true;
    const name = match[1];
    let value = match[2];
    if (value === undefined) {
      value = argv[i + 1];
      if (value === undefined) {
        problem(`-${name} needs a value`);
        continue;
      }
      i++;
    }
    values[name] = value;
  }
  if (!sawFlag) return null;

  const address = values.address;
  const addressProblem = ipLiteralProblem(address);
  if (addressProblem) problem(`-address: ${addressProblem}`);

  const port = parsePort(values.port);
  if (port === null) problem(`-port: must be an integer 0..65535 (got "${values.port}")`);

  const resolver = parseHostPort(values['resolver-addr']);
  if (typeof resolver === 'string') problem(`-resolver-addr: ${resolver}`);

  const fqdn = values['resolver-fqdn'];
  const fqdnProblem = domainProblem(fqdn);
  if (fqdnProblem) problem(`-resolver-fqdn: ${fqdnProblem}`);

  const pin = values['resolver-pin'];
  const pinIssue = pin === '' ? null : pinProblem(pin);
  if (pinIssue) problem(`-resolver-pin: ${pinIssue}`);

  const timeoutSeconds = /^\d+(\.\d+)?$/.test(values.timeout) ? Number(values.timeout) : Number.NaN;
  const timeoutMs = Math.round(timeoutSeconds * 1000);
  if (!(timeoutMs >= 1 && timeoutSeconds <= MAX_TIMEOUT_SECONDS)) {
    problem(
      `-timeout: must be a number of seconds, more than 0 and at most ${MAX_TIMEOUT_SECONDS} (got "${values.timeout}")`,
    );
  }

  if (problems.length > 0 || port === null || typeof resolver === 'string') {
    throw new ConfigError(FLAGS_SOURCE, problems);
  }

  const raw = {
    version: 1,
    listeners: [{ name: 'main', address, port, protocols: ['udp', 'tcp'] }],
    upstreams: {
      default: {
        strategy: 'failover',
        // One server only, so one attempt may use the whole budget, as the original did.
        timeout_ms: timeoutMs,
        servers: [
          {
            address: resolver.address,
            port: resolver.port,
            tls_name: fqdn,
            pins: pin === '' ? [] : [pin],
            verify_ca: true,
          },
        ],
      },
    },
    policies: [{ name: 'all', clients: ['0.0.0.0/0', '::/0'], action: 'allow', upstream: 'default' }],
    limits: { timeout_ms: timeoutMs },
  };
  const hash = createHash('sha256').update(JSON.stringify(values)).digest('hex');
  const result = buildConfig(raw, NO_POSITION, { source: FLAGS_SOURCE, hash, baseDir: process.cwd() });
  if ('problems' in result) throw new ConfigError(FLAGS_SOURCE, result.problems);
  return result.config;
}

function flagList(): string {
  return Object.keys(FLAG_DEFAULTS)
    .map((f) => `-${f}`)
    .join(', ');
}

function parsePort(text: string): number | null {
  if (!/^\d{1,5}$/.test(text)) return null;
  const port = Number(text);
  return port <= 65535 ? port : null;
}

/** "IP:PORT", "[IPv6]:PORT", or a bare IP meaning port 853; returns the problem as a string. */
function parseHostPort(text: string): { address: string; port: number } | string {
  if (isIP(text) !== 0) return { address: text, port: 853 };
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const address = match ? (match[1] ?? match[2]) : undefined;
  const port = match ? parsePort(match[3]) : null;
  if (address === undefined || port === null || port === 0) {
    return `expected IP:PORT (IPv6 as [IP]:PORT), got "${text}"`;
  }
  const reason = ipLiteralProblem(address);
  return reason ?? { address, port };
}
