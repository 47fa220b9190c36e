// Owns `dns-tool test`: runs policy test cases (schemas/tests.schema.json) against a config,
// offline, each evaluated exactly as `explain` does; prints each failure and one total.
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import {
  type ConfigProblem,
  formatProblems,
  type Locator,
  parseYamlText,
  sortProblems,
} from '../config/load.js';
import { compileSchema } from '../config/schema.js';
import { type Explanation, PolicyEngine, QueryInputError, type QueryTransport } from '../policy/engine.js';
import { EXIT_DIFFERENT, EXIT_INVALID, EXIT_OK, parseArgs, UsageError } from './args.js';
import { loadOrReport } from './explain.js';

export const TEST_USAGE = `usage: dns-tool test [--config FILE] CASES.yaml...

Runs the policy test cases in each CASES.yaml (schema: schemas/tests.schema.json) against
the config, offline, each evaluated as \`dns-tool explain\` does. Prints each failing case
with what was expected and what the config does, then "N passed, M failed".

  --config FILE     the config (default: config.yaml)

Exit 0 when every case passes, 1 when any fails, 2 for invalid input (problems printed
as FILE:LINE:COL: message).
`;

// Beside src/ so it ships as a plain file; this URL holds for src/ and the built dist/.
const SCHEMA_URL = new URL('../../schemas/tests.schema.json', import.meta.url);
let checkSchema: ((raw: unknown, locate: Locator) => ConfigProblem[]) | null = null;

/** A case as the schema (with its defaults) guarantees it. */
export interface TestCase {
  name: string;
  client: string;
  qname: string;
  qtype: string;
  transport: QueryTransport;
  expect: Partial<Record<ExpectKey, string | null>>;
}

/** The keys of `expect`, and how each is read from an explanation. */
const EXPECTED: Record<string, (e: Explanation) => string | null> = {
  decision: (e) => e.decision,
  would: (e) => e.would,
  policy: (e) => e.policy,
  cidr: (e) => e.cidr,
  rcode: (e) => e.rcode,
  answer: (e) => e.answer,
  upstream: (e) => e.upstream,
  stage: (e) => e.rule?.stage ?? null,
  list: (e) => e.rule?.list ?? null,
  entry: (e) => e.rule?.entry ?? null,
  mode: (e) => e.mode,
};
type ExpectKey = keyof typeof EXPECTED;

interface Outcome {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  readonly name: string;
  /** Keys whose value differs: [key, expected, got]. */
  readonly mismatches: [string, string | null, string | null][];
}

export async function runTest(
  argv: readonly string[],
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
): Promise<number> {
  let configPath: string;
  let files: string[];
  try {
    const args = parseArgs(argv, ['config'], ['help']);
    if (args.switches.has('help')) {
      out.write(TEST_USAGE);
      return EXIT_OK;
    }
    if (args.positional.length === 0) throw new UsageError('give at least one CASES.yaml');
    configPath = args.values.get('config') ?? 'config.yaml';
    files = args.positional;
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    err.write(`dns-tool test: ${error.message}\n${TEST_USAGE}`);
    return EXIT_INVALID;
  }

  const config = await loadOrReport(configPath, err);
  if (config === null) return EXIT_INVALID;
  const engine = new PolicyEngine(config);

  // Every file is read and checked before any result is shown: an invalid file is a
  // broken test suite, not a failing case, and all of its problems are worth fixing at once.
  const invalid: string[] = [];
  const outcomes: Outcome[] = [];
  for (const file of files) {
    const result = await runFile(file, engine);
    if ('problems' in result) invalid.push(formatProblems(file, result.problems));
    else outcomes.push(...result.outcomes);
  }
  if (invalid.length > 0) {
    err.write(`${invalid.join('\n')}\n`);
    return EXIT_INVALID;
  }
  const failed = outcomes.filter((o) => o.mismatches.length > 0);
  for (const f of failed) {
    out.write(`FAIL ${f.file}:${f.line}:${f.col}: ${f.name}\n`);
    for (const [key, expected, got] of f.mismatches) {
      out.write(`  ${key}: expected ${show(expected)}, got ${show(got)}\n`);
    }
  }
  out.write(`${outcomes.length - failed.length} passed, ${failed.length} failed\n`);
  return failed.length === 0 ? EXIT_OK : EXIT_DIFFERENT;
}

function show(value: string | null): string {
  return value === null ? 'null' : value;
}

/** One file's outcomes, or its problems (YAML, schema, or a query that cannot be evaluated). */
export async function runFile(
  file: string,
  engine: PolicyEngine,
): Promise<{ outcomes: Outcome[] } | { problems: ConfigProblem[] }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    return { problems: [{ line: 0, col: 0, message: `cannot read test file: ${(error as Error).message}` }] };
  }
  const yaml = parseYamlText(text, 'test file is empty; expected a mapping with cases');
  if ('problems' in yaml) return yaml;
  checkSchema ??= compileSchema(JSON.parse(readFileSync(SCHEMA_URL, 'utf8')), 'test file');
  // The schema also fills in the defaults (qtype A, transport udp).
  const schemaProblems = checkSchema(yaml.raw, yaml.locate);
  if (schemaProblems.length > 0) return { problems: sortProblems(schemaProblems) };

  const cases = (yaml.raw as { cases: TestCase[] }).cases;
  const problems: ConfigProblem[] = [];
  const outcomes: Outcome[] = [];
  cases.forEach((c, index) => {
    let got: Explanation;
    try {
      got = engine.explain({ client: c.client, qname: c.qname, qtype: c.qtype, transport: c.transport });
    } catch (error) {
      if (!(error instanceof QueryInputError)) throw error;
      problems.push({
        ...yaml.locate(['cases', index, error.field], 'value'),
        message: `cases[${index}].${error.field}: ${error.message}`,
      });
      return;
    }
    const mismatches: Outcome['mismatches'] = [];
    for (const [key, expected] of Object.entries(c.expect)) {
      const actual = EXPECTED[key](got);
      if (actual !== expected) mismatches.push([key, expected ?? null, actual]);
    }
    outcomes.push({ file, ...yaml.locate(['cases', index], 'value'), name: c.name, mismatches });
  });
  return problems.length > 0 ? { problems: sortProblems(problems) } : { outcomes };
}
