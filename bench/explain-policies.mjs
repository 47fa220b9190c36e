// How long `dns-tool explain` takes on a config with many policies. Writes a config with
// N policies (default 10,000) in one of two shapes, runs the built CLI (`npm run build`
// first) RUNS times and prints the wall clock from spawn to exit (min and median), then
// the CPU time of each phase measured in-process with the same modules the CLI runs:
//
//   lean: each policy one /24 (every 256th also a /16 around the next ones), one in ten
//         with a query-type filter and 5 domain entries (about 60 bytes of YAML each);
//   full: the same prefixes, a second /24 on every other policy, an IPv6 /64, and on each
//         a query-type filter and 10 domain entries (about 300 bytes each).
//
// The 1,000,000-name list of issue 12's figure waits for named lists (issue 13).
//
//   node bench/explain-policies.mjs [lean|full] [POLICIES] [RUNS]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { LineCounter, parseDocument } from 'yaml';

const shape = process.argv[2] ?? 'lean';
const policies = Number(process.argv[3] ?? 10_000);
const runs = Number(process.argv[4] ?? 5);
const dist = (path) => new URL(`../dist/${path}`, import.meta.url);
const cli = fileURLToPath(dist('cli.js'));

function policyLines(i) {
  const hi = i >> 8;
  const lo = i & 255;
  // Every policy holds a /24; every 256th also the /16 around the next 255 policies' /24s,
  // so the table nests prefixes.
  const clients = [`10.${hi}.${lo}.0/24`];
  if (lo === 0) clients.push(`10.${hi}.0.0/16`);
  if (shape === 'full') {
    clients.push(`"2001:db8:${i.toString(16)}::/64"`);
    if (i % 2 === 0) clients.push(`12.${hi}.${lo}.0/24`);
  }
  const lines = [`  - name: p${i}`, `    clients: [${clients.join(', ')}]`];
  if (shape === 'full' || i % 10 === 0) {
    const count = shape === 'full' ? 10 : 5;
    const domains = Array.from({ length: count }, (_, k) => `d${k}.p${i}.example`).join(', ');
    lines.push('    query_types: { deny: [ANY] }', `    domains: { deny: [${domains}] }`);
  }
  return lines;
}

const lines = [
  'version: 1',
  'listeners: [{ name: lan, address: 127.0.0.1, port: 5353 }]',
  'upstreams:',
  '  default:',
  '    servers: [{ address: 192.0.2.53, tls_name: dns.example }]',
  'policies:',
];
for (let i = 0; i < policies; i++) lines.push(...policyLines(i));
const dir = mkdtempSync(join(tmpdir(), 'dns-tool-explain-bench-'));
const config = join(dir, 'config.yaml');
const text = `${lines.join('\n')}\n`;
writeFileSync(config, text);

// A client of the last filtered policy, asking for one of its denied names.
const target = Math.floor((policies - 1) / 10) * 10;
const client = `10.${target >> 8}.${target & 255}.7`;
const name = `x.d3.p${target}.example`;
// The child reports its own CPU time on exit, on stderr, beside the wall clock measured here.
const cpuHook = `data:text/javascript,process.on('exit',()=>{const u=process.cpuUsage();process.stderr.write('cpu_ms '+Math.round((u.user+u.system)/1000)+'\\n')})`;
const args = ['--import', cpuHook, cli, 'explain', '--config', config, '--client', client, '--json', name];
const walls = [];
const cpus = [];
let last;
for (let r = 0; r < runs; r++) {
  const started = performance.now();
  last = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 120_000 });
  walls.push(performance.now() - started);
  if (last.status !== 0) {
    process.stderr.write(last.stderr);
    process.exit(1);
  }
  cpus.push(Number(/cpu_ms (\d+)/.exec(last.stderr)?.[1]));
}
const answer = JSON.parse(last.stdout);
const summary = (list) => {
  const sorted = [...list].sort((a, b) => a - b);
  return `min ${Math.round(sorted[0])} ms, median ${Math.round(sorted[Math.floor(sorted.length / 2)])} ms`;
};
console.log(
  `explain, ${shape}, ${policies} policies, ${(text.length / 1e6).toFixed(1)} MB of YAML, ${runs} runs: ` +
    `wall ${summary(walls)}; CPU ${summary(cpus)} -> ${answer.policy} ${answer.decision} (${answer.rule?.entry})`,
);

// Where the time goes, in CPU time (less disturbed than wall time on a shared machine).
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const { schemaProblems } = await import(dist('config/schema.js'));
const { semanticProblems } = await import(dist('config/semantic.js'));
const { freezeConfig } = await import(dist('config/freeze.js'));
const { PolicyEngine } = await import(dist('policy/engine.js'));
const phases = [];
let at = cpu();
const lap = (label) => {
  const now = cpu();
  phases.push(`${label} ${Math.round(now - at)}`);
  at = now;
};
const source = readFileSync(config, 'utf8');
const doc = parseDocument(source, { lineCounter: new LineCounter(), prettyErrors: true, uniqueKeys: true });
const raw = doc.toJS({ maxAliasCount: 100 });
lap('yaml');
schemaProblems(raw, () => ({ line: 0, col: 0 }));
lap('schema');
const semantic = semanticProblems(raw, () => ({ line: 0, col: 0 }), dir);
lap('checks');
const frozen = freezeConfig(raw, semantic.caFiles, { source: config, hash: '', baseDir: dir });
lap('freeze');
const engine = new PolicyEngine(frozen);
lap('policy table');
engine.explain({ client, qname: name });
lap('explain');
console.log(`  CPU ms by phase: ${phases.join(', ')}`);
rmSync(dir, { recursive: true, force: true });
