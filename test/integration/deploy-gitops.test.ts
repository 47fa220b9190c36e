// examples/gitops as a config repository's CI would run it: the workflow triggers on every change
// and its `dns-tool` steps, run with the built CLI in a copy of the repository laid out as the
// workflow expects (config.yaml = config.example.yaml), pass — and fail on a broken config or a
// wrong expectation. The test cases follow the DESIGN.md `test` format.
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { runCli } from '../helpers/proc.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const EXAMPLE = join(ROOT, 'examples/gitops');
const WORKFLOW = join(EXAMPLE, '.github/workflows/dns-tool.yml');
const TESTS = join(EXAMPLE, 'tests');

interface Step {
  name?: string;
  run?: string;
  uses?: string;
}

interface Workflow {
  on: Record<string, unknown>;
  jobs: Record<string, { steps: Step[] }>;
}

interface Case {
  name: string;
  client: string;
  qname: string;
  qtype?: string;
  transport?: string;
  expect: Record<string, unknown>;
}

async function workflow(): Promise<Workflow> {
  return parse(await readFile(WORKFLOW, 'utf8')) as Workflow;
}

/** The workflow's one `run:` line that starts with `dns-tool <command>`. */
async function dnsToolStep(command: string): Promise<string[]> {
  const steps = Object.values((await workflow()).jobs).flatMap((j) => j.steps);
  const lines = steps
    .flatMap((s) => (s.run ?? '').split('\n'))
    .map((l) => l.trim())
    .filter((l) => l.startsWith(`dns-tool ${command} `));
  assert.equal(lines.length, 1, `one step runs dns-tool ${command}`);
  return lines[0].split(/\s+/).slice(1);
}

/** Expands `dir/*.yaml`-style arguments the way the runner's shell would, relative to `cwd`. */
async function expand(args: string[], cwd: string): Promise<string[]> {
  const out: string[] = [];
  for (const arg of args) {
    const m = /^(.*)\/\*(\.\w+)$/.exec(arg);
    if (m === null) {
      out.push(arg);
      continue;
    }
    const names = (await readdir(join(cwd, m[1]))).filter((n) => n.endsWith(m[2])).sort();
    assert.ok(names.length > 0, `${arg} matches files`);
    out.push(...names.map((n) => `${m[1]}/${n}`));
  }
  return out;
}

describe('examples/gitops', () => {
  let repo: string;
  let cases: Case[];

  before(async () => {
    // The config repository as CI checks it out.
    repo = await mkdtemp(join(tmpdir(), 'dns-tool-gitops-'));
    await copyFile(join(ROOT, 'config.example.yaml'), join(repo, 'config.yaml'));
    await mkdir(join(repo, 'tests'));
    for (const name of await readdir(TESTS)) await copyFile(join(TESTS, name), join(repo, 'tests', name));
    const file = parse(await readFile(join(TESTS, 'config.example.test.yaml'), 'utf8')) as { cases: Case[] };
    cases = file.cases;
  });
  after(async () => {
    if (repo) await rm(repo, { recursive: true, force: true });
  });

  test('the workflow runs on every push and pull request, whatever the branch or path', async () => {
    const on = (await workflow()).on;
    for (const event of ['push', 'pull_request']) {
      assert.ok(event in on, `triggered by ${event}`);
      const filter = (on[event] ?? {}) as Record<string, unknown>;
      for (const key of ['branches', 'paths', 'tags', 'branches-ignore', 'paths-ignore']) {
        assert.equal(filter[key], undefined, `${event} is not narrowed by ${key}`);
      }
    }
  });

  test("the workflow's check step passes on config.example.yaml and fails on a broken config", async () => {
    const args = await expand(await dnsToolStep('check'), repo);
    const ok = await runCli(args, { cwd: repo, timeoutMs: 30_000 });
    assert.equal(ok.code, 0, ok.stderr);

    const broken = await mkdtemp(join(tmpdir(), 'dns-tool-gitops-broken-'));
    try {
      const text = await readFile(join(repo, 'config.yaml'), 'utf8');
      await writeFile(
        join(broken, 'config.yaml'),
        text.replace('clients: [127.0.0.0/8', 'clients: [127.0.0.0/33'),
      );
      const failed = await runCli(args, { cwd: broken, timeoutMs: 30_000 });
      assert.equal(failed.code, 1);
      assert.match(failed.stderr, /^config\.yaml:\d+:\d+: .*127\.0\.0\.0\/33/m);
    } finally {
      await rm(broken, { recursive: true, force: true });
    }
  });

  test('the test cases follow the DESIGN format and name what config.example.yaml defines', async () => {
    const config = parse(await readFile(join(ROOT, 'config.example.yaml'), 'utf8')) as {
      upstreams: Record<string, unknown>;
      policies: { name: string }[];
    };
    const policies = new Set(config.policies.map((p) => p.name));
    const upstreams = new Set(Object.keys(config.upstreams));
    const decisions = new Set(['allowed', 'denied', 'rate_limited', 'filtered', 'unmatched']);
    const rcodes = new Set(['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED']);
    assert.ok(cases.length >= 5);
    assert.equal(new Set(cases.map((c) => c.name)).size, cases.length, 'case names are unique');
    for (const c of cases) {
      assert.deepEqual(
        Object.keys(c).filter(
          (k) => !['name', 'client', 'qname', 'qtype', 'transport', 'expect'].includes(k),
        ),
        [],
        `${c.name}: known keys only`,
      );
      assert.ok(c.name.length > 0 && isIP(c.client) !== 0, `${c.name}: client ${c.client} is an IP`);
      assert.equal(typeof c.qname, 'string');
      assert.ok(c.transport === undefined || ['udp', 'tcp', 'tls', 'https'].includes(c.transport));
      const keys = Object.keys(c.expect);
      assert.ok(keys.length > 0, `${c.name}: expect has a key`);
      assert.deepEqual(
        keys.filter((k) => !['decision', 'policy', 'rcode', 'upstream', 'list'].includes(k)),
        [],
        `${c.name}: expect keys`,
      );
      const { decision, policy, rcode, upstream } = c.expect;
      if (decision !== undefined) assert.ok(decisions.has(String(decision)), `${c.name}: decision`);
      if (policy !== undefined) assert.ok(policies.has(String(policy)), `${c.name}: policy ${policy}`);
      if (upstream !== undefined) assert.ok(upstreams.has(String(upstream)), `${c.name}: upstream`);
      if (rcode !== undefined) assert.ok(rcodes.has(String(rcode)), `${c.name}: rcode`);
    }
    // Both sides of the policy: something allowed, something refused.
    const decided = new Set(cases.map((c) => c.expect.decision));
    for (const d of ['allowed', 'filtered', 'unmatched']) assert.ok(decided.has(d), `a case expects ${d}`);
  });

  test("the workflow's test step passes, and fails on a wrong expectation", async () => {
    const args = await expand(await dnsToolStep('test'), repo);
    const ok = await runCli(args, { cwd: repo, timeoutMs: 30_000 });
    assert.equal(ok.code, 0, `${ok.stdout}${ok.stderr}`);
    assert.match(`${ok.stdout}${ok.stderr}`, new RegExp(`^${cases.length} passed, 0 failed$`, 'm'));

    // A case claiming ANY is allowed: the run must fail and name it.
    await writeFile(
      join(repo, 'tests', 'wrong.yaml'),
      'cases:\n  - { name: ANY claimed allowed, client: 127.0.0.1, qname: example.com, qtype: ANY, expect: { decision: allowed } }\n',
    );
    try {
      const wrong = await runCli(await expand(await dnsToolStep('test'), repo), {
        cwd: repo,
        timeoutMs: 30_000,
      });
      assert.equal(wrong.code, 1, `${wrong.stdout}${wrong.stderr}`);
      assert.match(`${wrong.stdout}${wrong.stderr}`, /ANY claimed allowed/);
    } finally {
      await rm(join(repo, 'tests', 'wrong.yaml'));
    }
  });
});
