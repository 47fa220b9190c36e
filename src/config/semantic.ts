// Checks the schema cannot express (address and CIDR syntax, duplicates, references between
// sections, pin encoding, TTL order), plus the address and name normalisation freeze relies on.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { IPv4, IPv6 } from 'ip-num';
import { type ConfigPath, type ConfigProblem, describePath, type Locator } from './problems.js';
import { rrTypeNumber } from './rrtypes.js';

/**
 * Reads a file the config names (ca_file), by absolute path; throws when it cannot. A
 * worker passes one that answers from the contents the primary sent, so it reads no disk.
 */
export type ReadConfigFile = (absolutePath: string) => string;

const readFromDisk: ReadConfigFile = (path) => readFileSync(path, 'utf8');

export interface SemanticResult {
  problems: ConfigProblem[];
  /** ca_file contents keyed by absolute path, read once here so freeze needs no I/O. */
  caFiles: Map<string, string>;
}

/**
 * Runs on data that may have failed the schema, so every access is type-guarded: a value of the
 * wrong type was already reported there and is skipped here.
 */
export function semanticProblems(
  raw: unknown,
  locate: Locator,
  baseDir: string,
  readFile: ReadConfigFile = readFromDisk,
): SemanticResult {
  const problems: ConfigProblem[] = [];
  const caFiles = new Map<string, string>();
  const report = (path: ConfigPath, at: 'key' | 'value', message: string): void => {
    problems.push({ ...locate(path, at), message: `${describePath(path)}: ${message}` });
  };
  if (!isRecord(raw)) return { problems, caFiles };

  checkListeners(raw.listeners, report, locate);
  const setNames = checkUpstreams(raw.upstreams, report, baseDir, readFile, caFiles);
  checkPolicies(raw.policies, setNames, report, locate);

  const cache = raw.cache;
  if (isRecord(cache) && typeof cache.min_ttl === 'number' && typeof cache.max_ttl === 'number') {
    if (cache.min_ttl > cache.max_ttl) {
      report(
        ['cache', 'min_ttl'],
        'value',
        `min_ttl (${cache.min_ttl}) is greater than max_ttl (${cache.max_ttl})`,
      );
    }
  }
  const admin = raw.admin;
  if (isRecord(admin) && typeof admin.address === 'string') {
    const reason = ipLiteralProblem(admin.address);
    if (reason) report(['admin', 'address'], 'value', reason);
  }
  return { problems, caFiles };
}

type Report = (path: ConfigPath, at: 'key' | 'value', message: string) => void;

function checkListeners(listeners: unknown, report: Report, locate: Locator): void {
  if (!Array.isArray(listeners)) return;
  const names = new Map<string, number>();
  const bindings = new Map<string, { name: string; index: number }>();
  listeners.forEach((listener, index) => {
    if (!isRecord(listener)) return;
    const base = ['listeners', index];
    if (typeof listener.name === 'string') {
      const first = names.get(listener.name);
      if (first !== undefined) {
        report(
          [...base, 'name'],
          'value',
          `duplicate listener name "${listener.name}" (${firstAt(locate, ['listeners', first, 'name'])})`,
        );
      } else names.set(listener.name, index);
    }
    for (const key of ['proxy_protocol', 'ecs_client']) {
      const trusted = listener[key];
      if (!isRecord(trusted) || !Array.isArray(trusted.from)) continue;
      const seen = new Map<string, number>();
      trusted.from.forEach((cidr, i) => {
        if (typeof cidr !== 'string') return;
        const path = [...base, key, 'from', i];
        const parsed = parseCidr(cidr);
        if (typeof parsed !== 'string') report(path, 'value', parsed.problem);
        else if (seen.has(parsed)) {
          report(
            path,
            'value',
            `${parsed} is listed twice (${firstAt(locate, [...base, key, 'from', seen.get(parsed)!])})`,
          );
        } else seen.set(parsed, i);
      });
    }
    if (typeof listener.address !== 'string') return;
    const reason = ipLiteralProblem(listener.address);
    if (reason) {
      report([...base, 'address'], 'value', reason);
      return;
    }
    // Port 0 asks the kernel for a free port, so two such listeners never collide.
    if (!Number.isInteger(listener.port) || listener.port === 0 || !Array.isArray(listener.protocols)) return;
    const address = canonicalIp(listener.address);
    const clashes: string[] = [];
    let clashWith: { name: string; index: number } | undefined;
    for (const protocol of new Set(listener.protocols.filter((p): p is string => typeof p === 'string'))) {
      const key = `${address}|${String(listener.port)}|${protocol}`;
      const other = bindings.get(key);
      if (other) {
        clashes.push(protocol);
        clashWith ??= other;
      } else bindings.set(key, { name: String(listener.name), index });
    }
    if (clashWith) {
      report(
        [...base, 'port'],
        'value',
        `${address}:${String(listener.port)}/${clashes.join('+')} is already bound by listener "${clashWith.name}" (${firstAt(locate, ['listeners', clashWith.index])})`,
      );
    }
  });
}

/** Returns the names of the upstream sets, for checking policy references. */
function checkUpstreams(
  upstreams: unknown,
  report: Report,
  baseDir: string,
  readFile: ReadConfigFile,
  caFiles: Map<string, string>,
): Set<string> {
  const names = new Set<string>();
  if (!isRecord(upstreams)) return names;
  for (const [setName, set] of Object.entries(upstreams)) {
    names.add(setName);
    if (!isRecord(set) || !Array.isArray(set.servers)) continue;
    set.servers.forEach((server, index) => {
      if (!isRecord(server)) return;
      const base = ['upstreams', setName, 'servers', index];
      if (typeof server.address === 'string') {
        const reason = ipLiteralProblem(server.address);
        if (reason) report([...base, 'address'], 'value', reason);
      }
      if (typeof server.tls_name === 'string' && server.tls_name !== '') {
        const reason = domainProblem(server.tls_name);
        if (reason) report([...base, 'tls_name'], 'value', reason);
      }
      const pins = Array.isArray(server.pins) ? server.pins : [];
      pins.forEach((pin, pinIndex) => {
        if (typeof pin !== 'string') return;
        const reason = pinProblem(pin);
        if (reason) report([...base, 'pins', pinIndex], 'value', reason);
      });
      if (server.verify_ca === false && pins.length === 0) {
        report(
          [...base, 'verify_ca'],
          'value',
          'verify_ca is false but no pins are set, so any server would be trusted; add pins or set verify_ca: true',
        );
      }
      if (typeof server.ca_file === 'string' && server.ca_file !== '') {
        const path = resolve(baseDir, server.ca_file);
        try {
          const pem = readFile(path);
          if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
            report([...base, 'ca_file'], 'value', `${path} holds no PEM certificate`);
          } else caFiles.set(path, pem);
        } catch (err) {
          report(
            [...base, 'ca_file'],
            'value',
            `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
          );
        }
      }
    });
  }
  return names;
}

function checkPolicies(policies: unknown, setNames: Set<string>, report: Report, locate: Locator): void {
  if (!Array.isArray(policies)) return;
  const names = new Map<string, number>();
  /** Every CIDR seen so far (normalised) -> where it was first listed. */
  const clients = new Map<string, { policy: string; path: ConfigPath }>();
  policies.forEach((policy, index) => {
    if (!isRecord(policy)) return;
    const base = ['policies', index];
    const policyName = typeof policy.name === 'string' ? policy.name : `#${index + 1}`;
    if (typeof policy.name === 'string') {
      const first = names.get(policy.name);
      if (first !== undefined) {
        report(
          [...base, 'name'],
          'value',
          `duplicate policy name "${policy.name}" (${firstAt(locate, ['policies', first, 'name'])})`,
        );
      } else names.set(policy.name, index);
    }
    if (Array.isArray(policy.clients)) {
      policy.clients.forEach((client, clientIndex) => {
        if (typeof client !== 'string') return;
        const path = [...base, 'clients', clientIndex];
        const parsed = parseCidr(client);
        if (typeof parsed !== 'string') {
          report(path, 'value', parsed.problem);
          return;
        }
        const first = clients.get(parsed);
        if (first) {
          const where = first.policy === policyName ? 'this policy' : `policy "${first.policy}"`;
          report(path, 'value', `${parsed} is already listed in ${where} (${firstAt(locate, first.path)})`);
        } else clients.set(parsed, { policy: policyName, path });
      });
    }
    if (typeof policy.upstream === 'string' && !setNames.has(policy.upstream)) {
      const defined = setNames.size > 0 ? [...setNames].join(', ') : 'none';
      const defaulted = policy.upstream === 'default' ? ' (the default when `upstream` is omitted)' : '';
      report(
        [...base, 'upstream'],
        'value',
        `upstream set "${policy.upstream}"${defaulted} is not defined under upstreams (defined: ${defined})`,
      );
    }
    const types = policy.query_types;
    if (isRecord(types)) {
      if (types.allow !== undefined && types.deny !== undefined) {
        report([...base, 'query_types'], 'value', 'give either allow or deny, not both');
      }
      for (const list of ['allow', 'deny'] as const) {
        const names = types[list];
        if (!Array.isArray(names)) continue;
        names.forEach((name, i) => {
          if (typeof name === 'string' && rrTypeNumber(name) === null) {
            report(
              [...base, 'query_types', list, i],
              'value',
              `unknown RR type "${name}" (use a name such as A, AAAA, ANY, HTTPS, or TYPEn)`,
            );
          }
        });
      }
    }
    const domains = policy.domains;
    if (isRecord(domains)) {
      for (const list of ['allow', 'deny'] as const) {
        const entries = domains[list];
        if (!Array.isArray(entries)) continue;
        entries.forEach((name, i) => {
          if (typeof name !== 'string') return;
          const reason = domainProblem(name);
          if (reason) report([...base, 'domains', list, i], 'value', reason);
        });
      }
    }
  });
}

function firstAt(locate: Locator, path: ConfigPath): string {
  const { line } = locate(path, 'value');
  return line > 0 ? `first at line ${line}` : `first at ${describePath(path)}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// ---- addresses ----

/** null when `text` is an IPv4 or IPv6 literal the sockets API accepts, else why not. */
export function ipLiteralProblem(text: string): string | null {
  if (text.includes('%')) return `"${text}": IPv6 zone indexes are not supported`;
  if (isIP(text) === 0) {
    // Only a name-like value earns the hint; "10.300.0.1" is a typo, not a host name.
    const hint = /[g-z]/i.test(text) && !text.includes(':') ? ' (host names are not allowed here)' : '';
    return `"${text}" is not an IPv4 or IPv6 literal${hint}`;
  }
  return null;
}

function ipValue(text: string): { family: 4 | 6; value: bigint } {
  return isIP(text) === 4
    ? { family: 4, value: IPv4.fromString(text).getValue() }
    : { family: 6, value: IPv6.fromString(text).getValue() };
}

/** The canonical spelling of a valid IP literal (RFC 5952 for IPv6). */
export function canonicalIp(text: string): string {
  const { family, value } = ipValue(text);
  return family === 4 ? formatIPv4(value) : formatIPv6(value);
}

/**
 * A CIDR or bare IP, normalised: host bits cleared (as CoreDNS and dnsdist do), bare IPs as
 * /32 or /128, IPv4-mapped IPv6 written as IPv4. Returns the problem when it is not valid.
 */
export function parseCidr(text: string): string | { problem: string } {
  const slash = text.indexOf('/');
  const address = slash < 0 ? text : text.slice(0, slash);
  const reason = ipLiteralProblem(address);
  if (reason) return { problem: `invalid CIDR "${text}": ${reason}` };
  const family = isIP(address) as 4 | 6;
  const max = family === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const digits = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(digits) || Number(digits) > max) {
      return { problem: `invalid CIDR "${text}": prefix length must be 0..${max}` };
    }
    prefix = Number(digits);
  }
  const bits = BigInt(max - prefix);
  const network = (ipValue(address).value >> bits) << bits;
  if (family === 6 && prefix >= 96 && network >> 32n === 0xffffn) {
    return `${formatIPv4(network & 0xffffffffn)}/${prefix - 96}`;
  }
  return family === 4 ? `${formatIPv4(network)}/${prefix}` : `${formatIPv6(network)}/${prefix}`;
}

function formatIPv4(value: bigint): string {
  const n = Number(value);
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** RFC 5952: lowercase, no leading zeros, the longest run (first if tied) of 2+ zero groups as "::". */
function formatIPv6(value: bigint): string {
  const groups: number[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push(Number((value >> shift) & 0xffffn));
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

// ---- names and pins ----

const LABEL = /^[a-z0-9_-]{1,63}$/;

/** Lowercased, without the trailing dot; call only on names domainProblem accepts. */
export function normaliseDomain(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/** null when `name` is a usable domain name, else why not. */
export function domainProblem(name: string): string | null {
  const normal = normaliseDomain(name);
  if (normal === '') {
    return `"${name}" is the root, which matches every name; list only allow entries to build an allow-list`;
  }
  if (/[^\x20-\x7e]/.test(normal))
    return `"${name}" is not ASCII; write internationalised names in their xn-- form`;
  if (normal.length > 253) return `"${name}" is longer than 253 characters`;
  for (const label of normal.split('.')) {
    if (label === '') return `"${name}" has an empty label`;
    if (label.length > 63) return `"${name}" has a label longer than 63 characters`;
    if (!LABEL.test(label))
      return `"${name}" is not a valid domain name (labels use letters, digits, '-' and '_')`;
  }
  return null;
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** null when `pin` is base64 of exactly 32 bytes (a SHA-256 digest), else why not. */
export function pinProblem(pin: string): string | null {
  const hint = '; pins are base64 SHA-256 SPKI digests as printed by `dns-tool pin HOST`';
  if (!BASE64.test(pin) || pin.length % 4 !== 0) return `"${pin}" is not valid base64${hint}`;
  const bytes = Buffer.from(pin, 'base64');
  if (bytes.length !== 32) return `pin decodes to ${bytes.length} bytes, not 32${hint}`;
  // Non-canonical padding bits would make two spellings of one pin compare unequal later.
  if (bytes.toString('base64') !== pin) return `"${pin}" is not canonical base64${hint}`;
  return null;
}
