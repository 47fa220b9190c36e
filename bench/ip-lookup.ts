// Micro benchmark of the per-query client-address work: the policy table's longest-prefix
// lookup and the rate limiter's key, for an IPv4 and an IPv6 client. Run with
// `npm run bench:lookup` (tsx, no build needed). Prints ns per call, best of ROUNDS rounds of
// about ROUND_MS each.
import { PolicyTable } from '../src/stages/match-policy.js';
import { RateLimiter } from '../src/stages/rate-limit.js';

const ROUNDS = 7;
const ROUND_MS = 200;

// A config shaped like an operator's: a few networks of each family, several prefix lengths.
const table = new PolicyTable<string>([
  { cidr: '127.0.0.0/8', value: 'lo' },
  { cidr: '10.0.0.0/8', value: 'corp' },
  { cidr: '10.1.0.0/16', value: 'office' },
  { cidr: '192.0.2.0/24', value: 'guests' },
  { cidr: '192.0.2.7/32', value: 'printer' },
  { cidr: '::1/128', value: 'lo6' },
  { cidr: '2001:db8:1::/48', value: 'office6' },
  { cidr: '2001:db8:1:2::/64', value: 'lab6' },
  { cidr: 'fd00::/8', value: 'ula' },
]);

const limiter = new RateLimiter(
  { qps: 1e9, burst: 1e9, scope: 'client', exceed: 'drop', ipv4Prefix: 32, ipv6Prefix: 64 },
  100_000,
  () => 0,
);

function measure(label: string, fn: (address: string) => unknown, address: string): number {
  let best = Number.POSITIVE_INFINITY;
  let sink = 0;
  // Calibrate: as many calls as fit in about ROUND_MS, so slow paths finish too.
  let calls = 1000;
  for (;;) {
    const started = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) if (fn(address) !== null) sink++;
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    if (ms >= ROUND_MS / 4 || calls >= 1e8) {
      calls = Math.max(1000, Math.round((calls * ROUND_MS) / Math.max(ms, 0.001)));
      break;
    }
    calls *= 4;
  }
  for (let r = 0; r < ROUNDS; r++) {
    const started = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) if (fn(address) !== null) sink++;
    const ns = Number(process.hrtime.bigint() - started) / calls;
    if (ns < best) best = ns;
  }
  if (sink === 0) console.error('unexpected: every call returned null');
  console.log(`${label.padEnd(14)} ${address.padEnd(20)} ${best.toFixed(1).padStart(8)} ns`);
  return best;
}

const lookup = (a: string) => table.lookup(a);
const take = (a: string) => limiter.take(a);
const rows: [string, (a: string) => unknown, string][] = [
  ['policy lookup', lookup, '127.0.0.1'],
  ['policy lookup', lookup, '::1'],
  ['policy lookup', lookup, '::ffff:127.0.0.1'],
  ['policy lookup', lookup, '2001:db8:1:2::53'],
  ['rate limit', take, '127.0.0.1'],
  ['rate limit', take, '::1'],
  ['rate limit', take, '2001:db8:1:2::53'],
];
const results = new Map<string, number>();
for (const [label, fn, address] of rows) results.set(`${label} ${address}`, measure(label, fn, address));
const v4 = results.get('policy lookup 127.0.0.1') ?? 0;
const v6 = results.get('policy lookup ::1') ?? 0;
console.log(`policy lookup ::1 / 127.0.0.1 = ${(v6 / v4).toFixed(2)}`);
