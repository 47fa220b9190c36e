// Locates the Debian binaries the end-to-end tests drive, and decides whether their absence skips
// a test (a developer machine) or fails it (CI, where .ci/run installs them).
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Debian package that provides each binary, so a failure message names the fix. */
const PACKAGE_OF: Readonly<Record<string, string>> = {
  unbound: 'unbound',
  'unbound-checkconf': 'unbound',
  kdig: 'knot-dnsutils',
  dig: 'bind9-dnsutils',
  tcpdump: 'tcpdump',
  dnsperf: 'dnsperf',
  openssl: 'openssl',
  dnsdist: 'dnsdist',
};

// unbound and tcpdump live in sbin, which a non-root PATH often lacks.
const EXTRA_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

const found = new Map<string, string | null>();

/** The absolute path of `name`, or null when it is not installed. Cached per name (a handful of names). */
export function findBinary(name: string): string | null {
  const cached = found.get(name);
  if (cached !== undefined) return cached;
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...EXTRA_DIRS];
  let path: string | null = null;
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      path = candidate;
      break;
    } catch {
      // not in this directory
    }
  }
  found.set(name, path);
  return path;
}

export function isCi(): boolean {
  return process.env.CI === 'true';
}

function missingMessage(names: readonly string[]): string {
  const packages = [...new Set(names.map((n) => PACKAGE_OF[n] ?? n))].join(' ');
  return `missing binar${names.length === 1 ? 'y' : 'ies'} ${names.join(', ')} (apt-get install ${packages})`;
}

/**
 * The value for a suite's or test's `skip` option: a reason when a binary is missing outside CI,
 * else `false`. In CI it is always `false`, so the tests run and `requireBinary` fails them.
 */
export function skipUnlessBinaries(...names: string[]): string | false {
  if (isCi()) return false;
  const missing = names.filter((n) => findBinary(n) === null);
  return missing.length > 0 ? missingMessage(missing) : false;
}

/**
 * The path of `name`. Throws when it is missing, which fails the calling test or hook: in CI that
 * is the point; elsewhere, gate the suite with `skipUnlessBinaries` so it is skipped instead.
 */
export function requireBinary(name: string): string {
  const path = findBinary(name);
  if (path === null) {
    throw new Error(`${missingMessage([name])}${isCi() ? ' — CI must install it (see .ci/run)' : ''}`);
  }
  return path;
}
