// `npm run faults [-- --qps N --scale F --only kill,resets,slow,rotation]`: runs the upstream
// faults against the built gateway with unbound as the real upstream and prints, per fault
// window, what the clients got: NOERROR, SERVFAIL, other, lost, and latency percentiles.
import { parseArgs } from 'node:util';
import { Lab } from './lab.js';
import { formatTable, SCENARIOS, type ScenarioName, type ScenarioResult } from './scenarios.js';

const { values } = parseArgs({
  options: {
    qps: { type: 'string', default: '200' },
    scale: { type: 'string', default: '1' },
    only: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});
const qps = Number(values.qps);
const scale = Number(values.scale);
if (!(qps > 0 && qps <= 20_000) || !(scale > 0 && scale <= 10)) {
  console.error('--qps must be in (0, 20000] and --scale in (0, 10]');
  process.exit(2);
}
const names = (values.only?.split(',') ?? Object.keys(SCENARIOS)) as ScenarioName[];
for (const n of names) {
  if (!(n in SCENARIOS)) {
    console.error(`unknown fault "${n}" (known: ${Object.keys(SCENARIOS).join(', ')})`);
    process.exit(2);
  }
}

const say = (line: string) => {
  if (!values.json) console.log(line);
};
const lab = await Lab.start({ qps, progress: say });
const results: ScenarioResult[] = [];
try {
  say(`faults: ${qps} queries/s over UDP, gateway → fault proxy → unbound (DoT); windows × ${scale}`);
  if (!(await lab.waitHealthy(20_000)))
    throw new Error('the gateway never answered NOERROR steadily before the faults');
  for (const name of names) {
    say(`- ${name}`);
    results.push(await SCENARIOS[name](lab, scale));
  }
} finally {
  await lab.close();
}
console.log(values.json ? JSON.stringify(results, null, 2) : `\n${formatTable(results)}`);
