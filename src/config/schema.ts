// The config JSON Schema, compiled once at import, and the mapping of its errors to
// positioned, readable problems. Validation also fills in the schema's defaults.
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject } from 'ajv';
import { type ConfigPath, type ConfigProblem, describePath, type Locator } from './problems.js';

// The schema sits outside src/ so it ships as a plain file (editors can use it too); this
// relative URL holds both for src/config/*.ts and for the built dist/config/*.js.
const SCHEMA_URL = new URL('../../schemas/config.schema.json', import.meta.url);

/** The parsed schema, for documentation tools and tests. */
export const configSchema: Readonly<Record<string, unknown>> = JSON.parse(readFileSync(SCHEMA_URL, 'utf8'));

const ajv = new Ajv({
  allErrors: true,
  useDefaults: true,
  verbose: true,
  strict: true,
  allowUnionTypes: true,
});
const validate = ajv.compile(configSchema);

/** Validates raw config data, filling in defaults in place; returns one problem per schema error. */
export function schemaProblems(raw: unknown, locate: Locator): ConfigProblem[] {
  if (validate(raw)) return [];
  const problems: ConfigProblem[] = [];
  for (const error of validate.errors ?? []) {
    const problem = toProblem(error, locate);
    if (problem) problems.push(problem);
  }
  return problems;
}

/**
 * Compiles another JSON Schema of the tool's (e.g. schemas/tests.schema.json) with the same
 * options, defaults and problem messages as the config schema.
 */
export function compileSchema(
  schema: Record<string, unknown>,
  rootName: string,
): (raw: unknown, locate: Locator) => ConfigProblem[] {
  const check = ajv.compile(schema);
  return (raw, locate) => {
    if (check(raw)) return [];
    const problems: ConfigProblem[] = [];
    for (const error of check.errors ?? []) {
      const problem = toProblem(error, locate);
      // Messages name the root "config"; this document is something else.
      if (problem)
        problems.push({ ...problem, message: problem.message.replace(/^config:/, `${rootName}:`) });
    }
    return problems;
  };
}

function toProblem(error: ErrorObject, locate: Locator): ConfigProblem | null {
  const path = parsePointer(error.instancePath);
  const where = describePath(path);
  const params = error.params as Record<string, unknown>;
  const at = (p: ConfigPath, which: 'key' | 'value', message: string): ConfigProblem => ({
    ...locate(p, which),
    message,
  });

  // Errors about a map key's spelling come from propertyNames; ajv reports them twice (the
  // inner keyword with propertyName set, then propertyNames itself). Keep the inner one.
  if (error.propertyName !== undefined) {
    const name = error.propertyName;
    return at([...path, name], 'key', `${where}: invalid name "${name}": ${nameRule(error)}`);
  }
  switch (error.keyword) {
    case 'propertyNames':
      return null;
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      const known = Object.keys((error.parentSchema?.properties as object | undefined) ?? {});
      const hint = known.length > 0 ? ` (expected one of: ${known.join(', ')})` : '';
      return at([...path, key], 'key', `${where}: unknown key "${key}"${hint}`);
    }
    case 'required':
      return at(path, 'value', `${where}: missing required key "${String(params.missingProperty)}"`);
    case 'type':
      return at(
        path,
        'value',
        `${where}: expected ${article(String(params.type))}, got ${describeValue(error.data)}`,
      );
    case 'enum': {
      const allowed = (params.allowedValues as unknown[]).map(String).join(', ');
      return at(path, 'value', `${where}: must be one of ${allowed} (got ${describeValue(error.data)})`);
    }
    case 'const':
      return at(
        path,
        'value',
        `${where}: must be ${JSON.stringify(params.allowedValue)} (got ${describeValue(error.data)})`,
      );
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return at(
        path,
        'value',
        `${where}: must be ${String(params.comparison)} ${String(params.limit)} (got ${String(error.data)})`,
      );
    case 'minItems':
      return at(path, 'value', `${where}: must list at least ${String(params.limit)} item(s)`);
    case 'maxItems':
      return at(path, 'value', `${where}: must list at most ${String(params.limit)} items`);
    case 'minProperties':
      return at(path, 'value', `${where}: must not be empty`);
    case 'minLength':
      return at(path, 'value', `${where}: must not be empty`);
    case 'uniqueItems': {
      // ajv's i is the later duplicate, j the earlier one.
      const later = Number(params.i);
      const value = (error.data as unknown[])[later];
      return at([...path, later], 'value', `${where}: ${describeValue(value)} is listed twice`);
    }
    case 'pattern':
      return at(path, 'value', `${where}: ${describeValue(error.data)} is invalid: ${nameRule(error)}`);
    default:
      return at(path, 'value', `${where}: ${error.message ?? 'invalid'}`);
  }
}

function nameRule(error: ErrorObject): string {
  const description = error.parentSchema?.description;
  return typeof description === 'string' ? description : (error.message ?? 'invalid');
}

/** "/policies/0/clients/2" -> ["policies", 0, "clients", 2] (RFC 6901 unescaping). */
function parsePointer(pointer: string): (string | number)[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => {
      const segment = s.replace(/~1/g, '/').replace(/~0/g, '~');
      return /^\d+$/.test(segment) ? Number(segment) : segment;
    });
}

function article(type: string): string {
  const words = type.split(',').map((t) => (t === 'object' ? 'mapping' : t === 'array' ? 'list' : t));
  const first = words[0];
  return `${/^[aeiou]/.test(first) ? 'an' : 'a'} ${words.join(' or ')}`;
}

function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return JSON.stringify(value);
  return String(value);
}
