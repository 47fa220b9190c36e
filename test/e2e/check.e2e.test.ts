// The `check` command as a GitOps pipeline runs it: the shipped example passes, and a broken file
// fails with one FILE:LINE:COL line per problem pointing at the offending key or value.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runCli } from '../helpers/proc.js';

const EXAMPLE = fileURLToPath(new URL('../../config.example.yaml', import.meta.url));

// Four planted problems: a pin that is not 32 bytes, a bad CIDR, an unknown upstream, an unknown key.
const BAD_CONFIG = `version: 1
listeners:
  - name: lan
    address: 127.0.0.1
    port: 5353
upstreams:
  default:
    servers:
      - address: 127.0.0.1
        port: 853
        tls_name: upstream.test
        pins: ["c2hvcnQ="]
policies:
  - name: office
    clients: [10.0.0.300/8]
    upstream: nowhere
    colour: blue
`;

/** 1-based line and column of the first occurrence of `needle` in `text`. */
function position(text: string, needle: string): { line: number; col: number } {
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const col = lines[i].indexOf(needle);
    if (col !== -1) return { line: i + 1, col: col + 1 };
  }
  throw new Error(`${needle} not in text`);
}

describe('dns-tool check', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'dns-tool-check-'));
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('config.example.yaml is valid', async () => {
    const result = await runCli(['check', EXAMPLE], { timeoutMs: 20_000 });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr.trim(), '');
  });

  test('a broken file exits 1 with FILE:LINE:COL lines at each problem', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, BAD_CONFIG);
    const result = await runCli(['check', file], { timeoutMs: 20_000 });
    assert.equal(result.code, 1, `stdout: ${result.stdout}\nstderr: ${result.stderr}`);
    const lines = result.stderr.split('\n').filter((l) => l.trim() !== '');
    assert.ok(lines.length >= 4, `expected one line per problem, got:\n${result.stderr}`);
    const format = /^(.+):(\d+):(\d+): (.+)$/;
    const reported = lines.map((l) => {
      const m = format.exec(l);
      assert.ok(m, `not FILE:LINE:COL: message: ${l}`);
      assert.equal(m[1], file);
      return { line: Number(m[2]), col: Number(m[3]), message: m[4] };
    });
    // each planted problem is reported on its own line, at its key or value
    for (const needle of ['c2hvcnQ=', '10.0.0.300/8', 'nowhere', 'colour']) {
      const at = position(BAD_CONFIG, needle);
      const hit = reported.find((r) => r.line === at.line);
      assert.ok(hit, `no problem reported on line ${at.line} (${needle}):\n${result.stderr}`);
      assert.ok(hit.col >= 1, `column must be 1-based: ${JSON.stringify(hit)}`);
    }
    // where the offending thing is unambiguous, the column must point at it exactly
    for (const needle of ['10.0.0.300/8', 'colour']) {
      const at = position(BAD_CONFIG, needle);
      assert.ok(
        reported.some((r) => r.line === at.line && r.col === at.col),
        `expected ${file}:${at.line}:${at.col} for ${needle}:\n${result.stderr}`,
      );
    }
  });

  test('a file that is not YAML is reported with its position, not a stack trace', async () => {
    const file = join(dir, 'broken.yaml');
    writeFileSync(file, 'version: 1\nlisteners: [\n  { name: x\n');
    const result = await runCli(['check', file], { timeoutMs: 20_000 });
    assert.equal(result.code, 1);
    const first = result.stderr.split('\n')[0] ?? '';
    assert.match(first, new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: `));
    assert.doesNotMatch(result.stderr, /\n\s+at /, 'stack trace printed');
  });
});
