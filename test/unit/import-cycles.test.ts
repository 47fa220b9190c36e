// The config and workers modules import in one direction only: no file reaches itself
// through its imports (type-only imports included), so each layer can be read and tested
// on its own.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));
/** The folders held to it; a cycle through any file in them fails the test. */
const CHECKED = ['config', 'workers'];

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) return sources(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

/** Relative imports and re-exports of every source file, as absolute .ts paths. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sources(SRC)) {
    const text = readFileSync(file, 'utf8');
    const deps = [...text.matchAll(/^(?:import|export)\s[^;]*?from\s+'(\.[^']+)'/gms)].map((m) =>
      resolve(dirname(file), m[1].replace(/\.js$/, '.ts')),
    );
    graph.set(file, deps);
  }
  return graph;
}

function cycles(graph: Map<string, string[]>): string[][] {
  const found: string[][] = [];
  const stack: string[] = [];
  const onStack = new Set<string>();
  const done = new Set<string>();
  const visit = (node: string): void => {
    stack.push(node);
    onStack.add(node);
    for (const dep of graph.get(node) ?? []) {
      if (onStack.has(dep)) found.push(stack.slice(stack.indexOf(dep)));
      else if (!done.has(dep)) visit(dep);
    }
    stack.pop();
    onStack.delete(node);
    done.add(node);
  };
  for (const node of graph.keys()) if (!done.has(node)) visit(node);
  return found;
}

test('no import cycle runs through src/config or src/workers', () => {
  const graph = importGraph();
  assert.ok(graph.size > 20, 'the sources were found');
  const inChecked = (file: string) => CHECKED.some((d) => relative(SRC, file).startsWith(`${d}/`));
  const offending = cycles(graph)
    .filter((cycle) => cycle.some(inChecked))
    .map((cycle) => cycle.map((f) => relative(SRC, f)).join(' -> '));
  assert.deepEqual(offending, []);
});
