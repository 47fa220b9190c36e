// Turns config text into a frozen GatewayConfig or a list of positioned problems: YAML
// parsing with source positions, then schema, semantic checks and freezing, in that order.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { type Document, isAlias, isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import { freezeConfig, type RawConfig } from './freeze.js';
import type { ConfigProblem, Locator } from './problems.js';
import { schemaProblems } from './schema.js';
import { type ReadConfigFile, semanticProblems } from './semantic.js';
import type { GatewayConfig } from './types.js';

// The shared vocabulary lives in problems.ts (so schema and semantic need not import this
// file); it is re-exported here for the callers that know only the loader.
export { type ConfigPath, type ConfigProblem, type Locator, NO_POSITION } from './problems.js';

export type ConfigResult = { config: GatewayConfig } | { problems: ConfigProblem[] };

/**
 * Everything a config is built from: its text, where it came from, and the contents of every
 * file it names (ca_file) as they were read when it was validated. Building from it reads
 * nothing from disk, so the primary sends it to its workers and each one builds the very
 * config the primary validated, whatever the files hold by then. It is plain data (it
 * crosses the IPC channel as JSON).
 */
export interface ConfigSource {
  readonly text: string;
  /** The file's path as given on the command line, for messages. */
  readonly path: string;
  /** Absolute directory that relative file names in the config (ca_file) are taken from. */
  readonly baseDir: string;
  /** The named files' contents by absolute path. */
  readonly files: readonly (readonly [path: string, contents: string])[];
}

export type LoadedConfig = { config: GatewayConfig; source: ConfigSource };

/** Stable code so callers can tell config errors from others without instanceof. */
export const CONFIG_ERROR_CODE = 'ERR_DNS_TOOL_CONFIG';

export class ConfigError extends Error {
  readonly code = CONFIG_ERROR_CODE;
  readonly source: string;
  readonly problems: readonly ConfigProblem[];

  constructor(source: string, problems: ConfigProblem[]) {
    super(formatProblems(source, problems));
    this.name = 'ConfigError';
    this.source = source;
    this.problems = problems;
  }

  /** One "FILE:LINE:COL: message" line per problem. */
  format(): string {
    return formatProblems(this.source, this.problems);
  }
}

export function formatProblems(source: string, problems: readonly ConfigProblem[]): string {
  return problems.map((p) => `${source}:${p.line}:${p.col}: ${p.message}`).join('\n');
}

/**
 * Parse + schema + semantic + freeze. Never throws for bad input: returns problems, all of them,
 * sorted by position. Reads ca_file contents through `readFile` (default: from disk); relative
 * paths are taken from baseDir.
 */
export function parseConfig(
  text: string,
  source: string,
  baseDir: string,
  readFile?: ReadConfigFile,
): ConfigResult {
  const yaml = parseYamlText(
    text,
    'config is empty; expected a mapping with version, listeners, upstreams, policies',
  );
  if ('problems' in yaml) return yaml;
  const hash = createHash('sha256').update(text).digest('hex');
  return buildConfig(yaml.raw, yaml.locate, { source, hash, baseDir }, readFile);
}

/**
 * YAML text to plain data plus a Locator into the source, or its syntax problems. The one
 * loader of every YAML file the tool reads (configs, policy test files). `emptyMessage`
 * is the problem reported for a document with no content.
 */
export function parseYamlText(
  text: string,
  emptyMessage: string,
): { raw: unknown; locate: Locator } | { problems: ConfigProblem[] } {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return {
      problems: sortProblems(
        doc.errors.map((e) => {
          const pos = e.linePos?.[0] ?? lineCounter.linePos(e.pos[0]);
          return { line: pos.line, col: pos.col, message: yamlMessage(e.message) };
        }),
      ),
    };
  }
  if (doc.contents === null) return { problems: [{ line: 1, col: 1, message: emptyMessage }] };
  let raw: unknown;
  try {
    // maxAliasCount bounds alias expansion so a small hostile file cannot blow up in memory.
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    return { problems: [{ line: 1, col: 1, message: (err as Error).message }] };
  }
  return { raw, locate: yamlLocator(doc, lineCounter) };
}

/** Reads and parses a config file; a relative ca_file is taken from the file's directory. */
export async function loadConfigFile(path: string): Promise<ConfigResult> {
  const loaded = await loadConfigSource(path);
  return 'problems' in loaded ? loaded : { config: loaded.config };
}

/** loadConfigFile, plus the source the config was built from (see ConfigSource). */
export async function loadConfigSource(path: string): Promise<LoadedConfig | { problems: ConfigProblem[] }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    return { problems: [{ line: 0, col: 0, message: `cannot read config file: ${(err as Error).message}` }] };
  }
  const baseDir = dirname(resolve(path));
  // Every file the checks read is recorded, so the source carries exactly the bytes validated.
  const files = new Map<string, string>();
  const result = parseConfig(text, path, baseDir, (file) => {
    const contents = readFileSync(file, 'utf8');
    files.set(file, contents);
    return contents;
  });
  if ('problems' in result) return result;
  return { config: result.config, source: { text, path, baseDir, files: [...files] } };
}

/**
 * Builds the config `source` describes without touching the disk: a file it names is taken
 * from `source.files`, and one missing there is a problem, as an unreadable file would be.
 * The same source gives the same config, hash included, in every process.
 */
export function parseConfigSource(source: ConfigSource): ConfigResult {
  const files = new Map(source.files);
  return parseConfig(source.text, source.path, source.baseDir, (file) => {
    const contents = files.get(file);
    if (contents === undefined) throw new Error('not among the files sent with the config');
    return contents;
  });
}

/** The `check` command's core: "FILE:LINE:COL: message" lines, none when the file is valid. */
export async function checkConfigFile(path: string): Promise<string[]> {
  const result = await loadConfigFile(path);
  return 'problems' in result ? result.problems.map((p) => formatProblems(path, [p])) : [];
}

/** Validates a YAML string (e.g. a README example); returns its problems, none when valid. */
export function validateConfigText(text: string, baseDir: string = process.cwd()): ConfigProblem[] {
  const result = parseConfig(text, '<text>', baseDir);
  return 'problems' in result ? result.problems : [];
}

/**
 * Schema (which also fills in defaults, mutating raw), semantic checks, then freeze when nothing
 * is wrong. Shared by files and the seed-flags mode so both get the same defaults and checks.
 */
export function buildConfig(
  raw: unknown,
  locate: Locator,
  meta: { source: string; hash: string; baseDir: string },
  readFile?: ReadConfigFile,
): ConfigResult {
  const problems = schemaProblems(raw, locate);
  const semantic = semanticProblems(raw, locate, meta.baseDir, readFile);
  problems.push(...semantic.problems);
  if (problems.length > 0) return { problems: sortProblems(problems) };
  return { config: freezeConfig(raw as RawConfig, semantic.caFiles, meta) };
}

export function sortProblems(problems: ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>();
  const unique = problems.filter((p) => {
    const key = `${p.line}:${p.col}:${p.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  // Array.prototype.sort is stable, so problems at one position keep the order they were found in.
  return unique.sort((a, b) => a.line - b.line || a.col - b.col);
}

/** yaml's pretty messages repeat the position and quote the source; keep only the first clause. */
function yamlMessage(message: string): string {
  const match = /^(.*?) at line \d+, column \d+/s.exec(message);
  return `YAML: ${(match ? match[1] : message.split('\n')[0]).trim()}`;
}

function yamlLocator(doc: Document, lineCounter: LineCounter): Locator {
  const positionOf = (node: Node | null | undefined): { line: number; col: number } | null => {
    const start = node?.range?.[0];
    return start === undefined ? null : lineCounter.linePos(start);
  };
  return (path, at) => {
    let node: unknown = doc.contents;
    let best = positionOf(doc.contents as Node) ?? { line: 1, col: 1 };
    for (let i = 0; i < path.length; i++) {
      if (isAlias(node)) node = node.resolve(doc);
      const segment = String(path[i]);
      if (isMap(node)) {
        const pair = node.items.find(
          (p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === segment,
        );
        if (pair === undefined) break;
        const keyPos = positionOf(pair.key as Node);
        if (i === path.length - 1 && at === 'key' && keyPos) return keyPos;
        // `key:` with nothing after it has a null value; its key is the best place to point.
        if (pair.value === null || pair.value === undefined) return keyPos ?? best;
        node = pair.value;
      } else if (isSeq(node)) {
        const item = node.items[Number(segment)];
        if (item === undefined) break;
        node = item;
      } else {
        break;
      }
      best = positionOf(node as Node) ?? best;
    }
    return best;
  };
}
