// `npm run fuzz [-- --count N --seed N --pps N --tcp-share F --connections N --upstream echo|unbound
// --max-seconds N --max-rss-mib N --json]`: the whole-server fuzzer; exit 0 when every check held.
import { parseArgs } from 'node:util';
import { DEFAULTS, formatSummary, runFuzz } from './run.js';

const { values } = parseArgs({
  options: {
    count: { type: 'string' },
    seed: { type: 'string' },
    pps: { type: 'string' },
    'tcp-share': { type: 'string' },
    connections: { type: 'string' },
    upstream: { type: 'string' },
    'max-seconds': { type: 'string' },
    'max-rss-mib': { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});

if (values.help) {
  console.log(`usage: npm run fuzz -- [options]
  --count N         packets, UDP and TCP together (default ${DEFAULTS.count})
  --seed N          PRNG seed; a failure names its packet index under this seed (default ${DEFAULTS.seed})
  --pps N           UDP packets per second (default ${DEFAULTS.pps})
  --tcp-share F     share of packets sent over TCP (default ${DEFAULTS.tcpShare})
  --connections N   TCP connections at once (default ${DEFAULTS.tcpConnections})
  --upstream KIND   echo (in-process DoT resolver, default) or unbound (Debian's unbound over DoT)
  --max-seconds N   stop sending after this long (default ${DEFAULTS.maxSeconds})
  --max-rss-mib N   fail above this gateway RSS (default ${DEFAULTS.maxRssMiB})
  --json            print the summary as JSON`);
  process.exit(0);
}

function num(name: string, text: string | undefined, fallback: number, integer = true): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0 || (integer && !Number.isInteger(n))) {
    console.error(`--${name} needs a ${integer ? 'non-negative integer' : 'number'}, got "${text}"`);
    process.exit(2);
  }
  return n;
}

const upstream = values.upstream ?? DEFAULTS.upstream;
if (upstream !== 'echo' && upstream !== 'unbound') {
  console.error(`--upstream must be echo or unbound, got "${upstream}"`);
  process.exit(2);
}
const tcpShare = num('tcp-share', values['tcp-share'], DEFAULTS.tcpShare, false);
if (tcpShare > 1) {
  console.error('--tcp-share must be between 0 and 1');
  process.exit(2);
}

const summary = await runFuzz({
  count: num('count', values.count, DEFAULTS.count),
  seed: num('seed', values.seed, DEFAULTS.seed),
  pps: Math.max(1, num('pps', values.pps, DEFAULTS.pps)),
  tcpShare,
  tcpConnections: Math.max(1, num('connections', values.connections, DEFAULTS.tcpConnections)),
  upstream,
  maxSeconds: num('max-seconds', values['max-seconds'], DEFAULTS.maxSeconds),
  maxRssMiB: num('max-rss-mib', values['max-rss-mib'], DEFAULTS.maxRssMiB),
  progress: values.json ? undefined : (line) => console.log(line),
});
console.log(values.json ? JSON.stringify(summary, null, 2) : formatSummary(summary));
process.exit(summary.ok ? 0 : 1);
