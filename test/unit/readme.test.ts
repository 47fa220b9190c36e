// Every config example in the README and config.example.yaml must be a valid config.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { validateConfigText } from '../../src/config/load.js';

const root = new URL('../../', import.meta.url);

test('README config examples are valid', () => {
  const readme = readFileSync(new URL('README.md', root), 'utf8');
  const blocks = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)]
    .map((m) => m[1])
    .filter((b) => /^version: 1/m.test(b));
  assert.ok(blocks.length >= 1, 'README has at least one full config example');
  for (const block of blocks) {
    const problems = validateConfigText(block);
    assert.deepEqual(problems, [], `README example invalid:\n${JSON.stringify(problems, null, 2)}`);
  }
});

test('config.example.yaml is valid', () => {
  const text = readFileSync(new URL('config.example.yaml', root), 'utf8');
  assert.deepEqual(validateConfigText(text), []);
});
