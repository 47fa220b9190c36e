// Every npm script that runs the built CLI (dist/cli.js), itself or through the tests and
// scripts it runs, builds first: a stale or missing dist/ must never be what a test measures.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const scripts: Record<string, string> = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts;

/** Files a command runs: test globs (dir/*.test.ts) expanded, and named .ts/.mjs/.sh files. */
function filesRunBy(command: string): string[] {
  const files: string[] = [];
  for (const [, dir, suffix] of command.matchAll(/(test\/[\w/-]+)\/\*(\.[\w.]+)/g)) {
    const abs = join(root, dir);
    if (!existsSync(abs)) continue;
    for (const f of readdirSync(abs)) if (f.endsWith(suffix)) files.push(join(abs, f));
  }
  for (const [file] of command.matchAll(/\b(?:bench|test|scripts)\/[\w/.-]+\.(?:ts|mjs|sh)\b/g)) {
    if (!file.includes('*') && existsSync(join(root, file))) files.push(join(root, file));
  }
  return files;
}

/** Whether a file runs the built CLI, itself or through the test helper that spawns it. */
function runsCli(file: string): boolean {
  if (file === fileURLToPath(import.meta.url)) return false; // names it, runs nothing
  const text = readFileSync(file, 'utf8');
  return text.includes('dist/cli.js') || /helpers\/proc(\.js)?['"]/.test(text);
}

function buildsFirst(name: string): boolean {
  const pre = scripts[`pre${name}`] ?? '';
  return /^npm run build\b/.test(scripts[name]) || /\bnpm run build\b/.test(pre);
}

test('every script that runs dist/cli.js builds it first', () => {
  const needing: string[] = [];
  for (const [name, command] of Object.entries(scripts)) {
    if (name.startsWith('pre') || name.startsWith('post') || name === 'build') continue;
    if (command.includes('dist/cli.js') || filesRunBy(command).some(runsCli)) needing.push(name);
  }
  assert.ok(
    needing.includes('test:integration'),
    'the integration tests spawn the CLI (reload-cli, workers)',
  );
  const missing = needing.filter((name) => !buildsFirst(name));
  assert.deepEqual(
    missing,
    [],
    `scripts that run dist/cli.js without building it first: ${missing.join(', ')}`,
  );
});
