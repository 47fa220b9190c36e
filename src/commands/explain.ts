// Owns `dns-tool explain`: what the config does with one query, offline (no network), step
// by step in pipeline order, as text or as one JSON object.
import { ConfigError, loadConfigFile } from '../config/load.js';
import type { GatewayConfig } from '../config/types.js';
import {
  type Explanation,
  PolicyEngine,
  QueryInputError,
  type QueryTransport,
  TRANSPORTS,
} from '../policy/engine.js';
import { EXIT_INVALID, EXIT_OK, parseArgs, UsageError } from './args.js';

export const EXPLAIN_USAGE = `usage: dns-tool explain [--config FILE] --client IP [--type TYPE] [--transport udp|tcp|tls|https] [--json] NAME

Shows, without any network access, what the config does with one query: the policy and
the CIDR that won the longest-prefix match (and the one it beat), each stage's verdict in
pipeline order, and the outcome (decision, answer, upstream set, mode).

  --config FILE     the config (default: config.yaml)
  --client IP       the client address
  --type TYPE       the query type (default A)
  --transport T     udp (default), tcp, tls or https
  --json            one JSON object instead of text

Exit 0 whatever the decision; 2 for invalid input.
`;

export async function runExplain(
  argv: readonly string[],
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
): Promise<number> {
  let client: string;
  let name: string;
  let type: string;
  let transport: QueryTransport;
  let configPath: string;
  let json: boolean;
  try {
    const args = parseArgs(argv, ['config', 'client', 'type', 'transport'], ['json', 'help']);
    if (args.switches.has('help')) {
      out.write(EXPLAIN_USAGE);
      return EXIT_OK;
    }
    if (args.positional.length !== 1) throw new UsageError('give exactly one NAME');
    const given = args.values.get('client');
    if (given === undefined) throw new UsageError('--client IP is required');
    const t = args.values.get('transport') ?? 'udp';
    if (!(TRANSPORTS as readonly string[]).includes(t)) {
      throw new UsageError(`--transport must be one of ${TRANSPORTS.join(', ')}`);
    }
    client = given;
    name = args.positional[0];
    type = args.values.get('type') ?? 'A';
    transport = t as QueryTransport;
    configPath = args.values.get('config') ?? 'config.yaml';
    json = args.switches.has('json');
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    err.write(`dns-tool explain: ${error.message}\n${EXPLAIN_USAGE}`);
    return EXIT_INVALID;
  }

  const config = await loadOrReport(configPath, err);
  if (config === null) return EXIT_INVALID;
  let explanation: Explanation;
  try {
    explanation = new PolicyEngine(config).explain({ client, qname: name, qtype: type, transport });
  } catch (error) {
    if (!(error instanceof QueryInputError)) throw error;
    err.write(`dns-tool explain: ${error.message}\n`);
    return EXIT_INVALID;
  }
  out.write(json ? `${JSON.stringify(explanation, null, 2)}\n` : explanationText(explanation));
  return EXIT_OK;
}

/** Loads a config for an offline command; prints FILE:LINE:COL problems and returns null when invalid. */
export async function loadOrReport(path: string, err: NodeJS.WritableStream): Promise<GatewayConfig | null> {
  const loaded = await loadConfigFile(path);
  if ('problems' in loaded) {
    err.write(`${new ConfigError(path, loaded.problems).format()}\n`);
    return null;
  }
  return loaded.config;
}

/** The text form: one line per step, then the outcome. */
export function explanationText(e: Explanation): string {
  const rows: [string, string][] = [
    ['client', `${e.client} over ${e.transport}`],
    ['query', `${e.qname} ${e.qtype}`],
  ];
  for (const s of e.steps) {
    rows.push([s.stage, s.reached ? s.detail : `${s.detail} (not reached)`]);
  }
  rows.push(['decision', e.would === null ? e.decision : `${e.decision} (audit: would be ${e.would})`]);
  rows.push(['answer', answerText(e)]);
  if (e.rule !== null) {
    const where = [
      e.rule.list === null ? null : `list ${e.rule.list}`,
      e.rule.entry === null ? null : `entry ${e.rule.entry}`,
    ]
      .filter((x) => x !== null)
      .join(', ');
    rows.push(['rule', `${e.rule.stage}${where === '' ? '' : ` (${where})`}`]);
  }
  rows.push(['mode', e.mode ?? '-']);
  const width = Math.max(...rows.map(([k]) => k.length)) + 2;
  return rows.map(([k, v]) => `${k.padEnd(width)}${v}\n`).join('');
}

function answerText(e: Explanation): string {
  if (e.answer === 'drop') return 'none (dropped)';
  if (e.answer === 'rcode') return `${e.rcode} from the gateway`;
  const cache = e.cache ? 'from the cache when fresh, else ' : '';
  return `${cache}from upstream set ${e.upstream}: ${e.servers.join(', ')}`;
}
