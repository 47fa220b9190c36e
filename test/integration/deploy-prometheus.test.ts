// The monitoring kit against the real tools and a running gateway: deploy/prometheus/alerts.yaml
// passes `promtool check rules` and its unit tests (which fail when a rule is weakened), every
// metric the alerts and deploy/grafana/dns-tool.json name is a family the gateway exposes on
// /metrics, and `promtool check metrics` finds nothing wrong with that exposition.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { requireBinary, skipUnlessBinaries } from '../helpers/binaries.js';
import { rcodeName, udpQuery } from '../helpers/dns-client.js';
import { useDotUpstream } from '../helpers/dot-fixture.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { httpGet } from '../helpers/http.js';
import { runProcess } from '../helpers/proc.js';

const DEPLOY = fileURLToPath(new URL('../../deploy/', import.meta.url));
const ALERTS = join(DEPLOY, 'prometheus/alerts.yaml');
const ALERTS_TEST = join(DEPLOY, 'prometheus/alerts.test.yaml');
const DASHBOARD = join(DEPLOY, 'grafana/dns-tool.json');

const TOOL_TIMEOUT_MS = 60_000;
/** Grafana's reference to the dashboard's data source variable (a literal, not a template). */
const DATASOURCE_VARIABLE = ['$', '{datasource}'].join('');

interface Rule {
  alert: string;
  expr: string;
}

async function alertRules(): Promise<Rule[]> {
  const doc = parse(await readFile(ALERTS, 'utf8')) as { groups: { rules: Rule[] }[] };
  return doc.groups.flatMap((g) => g.rules);
}

/** Every `expr` in the dashboard (panels, rows, nested panels), and the metrics its variables query. */
async function dashboardExpressions(): Promise<{ exprs: string[]; variableMetrics: string[] }> {
  const dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8')) as {
    panels: unknown[];
    templating: { list: { type: string; definition?: string }[] };
  };
  const exprs: string[] = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(walk);
    else if (node !== null && typeof node === 'object') {
      for (const [key, value] of Object.entries(node)) {
        if (key === 'expr' && typeof value === 'string') exprs.push(value);
        else walk(value);
      }
    }
  };
  walk(dashboard.panels);
  const variableMetrics: string[] = [];
  for (const variable of dashboard.templating.list) {
    if (variable.type !== 'query') continue;
    const m = /^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(variable.definition ?? '');
    assert.ok(m, `variable query is label_values(metric, label): ${variable.definition}`);
    variableMetrics.push(m[1]);
  }
  return { exprs, variableMetrics };
}

const PROMQL_KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring']);

/**
 * The metric names a PromQL expression selects: what is left after removing strings, Grafana
 * variables, label matchers, ranges, grouping label lists, offsets and numbers, minus function
 * and aggregation names (followed by "(") and keywords.
 */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ')
    .replace(/\$\{[^}]*\}|\$\w+/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\boffset\s+-?\w+/g, ' ')
    .replace(/(?<![a-zA-Z0-9_:.])\d+(?:\.\d+)?(?:e[+-]?\d+)?/gi, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const rest = stripped.slice((m.index ?? 0) + m[0].length).trimStart();
    if (rest.startsWith('(') || PROMQL_KEYWORDS.has(m[0])) continue;
    names.add(m[0]);
  }
  return [...names].sort();
}

/** `# TYPE` of every family on a /metrics page, checking each also has a `# HELP`. */
function families(text: string): Map<string, string> {
  const types = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(m[1], m[2]);
  for (const name of types.keys()) assert.match(text, new RegExp(`^# HELP ${name} \\S`, 'm'), `${name} HELP`);
  return types;
}

/** Whether `name` (as a query names it) is a sample of one of `types`' families, or `up`. */
function exported(name: string, types: Map<string, string>): boolean {
  if (name === 'up' || types.has(name)) return true;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  return m !== null && ['histogram', 'summary'].includes(types.get(m[1]) ?? '');
}

/** Runs `command` with `input` on stdin; bounded in time. */
function runWithInput(
  command: string,
  args: string[],
  input: string,
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => {
      output += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      output += c.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), TOOL_TIMEOUT_MS);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
    child.stdin.end(input);
  });
}

function promtool(args: string[]) {
  return runProcess(requireBinary('promtool'), args, { timeoutMs: TOOL_TIMEOUT_MS });
}

describe('metricNames reads the metrics out of PromQL', () => {
  test('keeps metric names, drops functions, labels, variables, keywords and numbers', () => {
    assert.deepEqual(
      metricNames(
        'histogram_quantile(0.99, sum by (le) (rate(dns_tool_x_bucket{job=~"$job", a="b c"}[$__rate_interval])))' +
          ' / on (instance) group_left(version) up offset 5m > 1e3 and bool time() - dns_tool_y' +
          ' + nodejs_eventloop_lag_p99_seconds * 0.5',
      ),
      ['dns_tool_x_bucket', 'dns_tool_y', 'nodejs_eventloop_lag_p99_seconds', 'up'],
    );
    assert.deepEqual(metricNames('sum(rate(a_total[5m])) by (policy, decision) unless b'), ['a_total', 'b']);
  });
});

describe('deploy/prometheus/alerts.yaml', { skip: skipUnlessBinaries('promtool') }, () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dns-tool-alerts-'));
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('promtool check rules', async () => {
    const result = await promtool(['check', 'rules', ALERTS]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /SUCCESS: \d+ rules found/);
  });

  test('promtool test rules', async () => {
    const result = await promtool(['test', 'rules', ALERTS_TEST]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /SUCCESS/);
  });

  test('the alerts the issue asks for exist, and every alert has a firing test case', async () => {
    const rules = await alertRules();
    const exprOf = (alert: string) => rules.find((r) => r.alert === alert)?.expr ?? '';
    assert.match(exprOf('DnsToolUpstreamPinFailure'), /dns_tool_upstream_pin_failures_total/);
    assert.match(exprOf('DnsToolUpstreamCertExpiringSoon'), /14 \* 86400/);
    assert.match(exprOf('DnsToolListenerCertExpiringSoon'), /14 \* 86400/);
    assert.match(exprOf('DnsToolConfigReloadFailed'), /dns_tool_config_reloads_total\{result="failure"\}/);
    assert.match(exprOf('DnsToolUpstreamSetDown'), /dns_tool_upstream_up/);
    assert.match(exprOf('DnsToolHighServfailRatio'), /rcode="SERVFAIL"/);
    assert.match(exprOf('DnsToolListStale'), /dns_tool_list_last_success_timestamp_seconds/);

    const tests = parse(await readFile(ALERTS_TEST, 'utf8')) as {
      tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[];
    };
    const firing = new Set(
      tests.tests
        .flatMap((t) => t.alert_rule_test ?? [])
        .filter((c) => c.exp_alerts.length > 0)
        .map((c) => c.alertname),
    );
    assert.deepEqual(
      rules.map((r) => r.alert).filter((a) => !firing.has(a)),
      [],
    );
  });

  test('the unit tests fail when a rule is weakened', async () => {
    const original = await readFile(ALERTS, 'utf8');
    await copyFile(ALERTS_TEST, join(dir, 'alerts.test.yaml'));
    const mutations: [string, string][] = [
      ['14 * 86400', '16 * 86400'],
      ['> 0.05', '> 0.5'],
      ['sum by (job, instance) (rate(dns_tool_responses_total[5m])) > 1', 'vector(1)'],
      [
        'max by (job, instance, upstream) (dns_tool_upstream_up)',
        'min by (job, instance, upstream) (dns_tool_upstream_up)',
      ],
      ['unless on (job, instance, listener)', 'or on (job, instance, listener)'],
      ['6 * 3600', '8 * 3600'],
      [' and on (job, instance) (up offset 10m == 1)', ''],
    ];
    for (const [from, to] of mutations) {
      assert.ok(original.includes(from), `alerts.yaml contains ${from}`);
      await writeFile(join(dir, 'alerts.yaml'), original.replace(from, to));
      const result = await promtool(['test', 'rules', join(dir, 'alerts.test.yaml')]);
      assert.notEqual(result.code, 0, `promtool test rules passed with ${from} -> ${to}`);
    }
  });
});

describe('deploy/grafana/dns-tool.json', () => {
  test('panels for QPS, rcodes, cache ratio, upstream latency and results, certificates, reloads, audit', async () => {
    const { exprs } = await dashboardExpressions();
    const all = exprs.join('\n');
    const wanted = [
      /sum by \(policy, decision\) \(rate\(dns_tool_queries_total/,
      /sum by \(rcode\) \(rate\(dns_tool_responses_total/,
      /dns_tool_cache_hits_total[\s\S]*dns_tool_cache_misses_total/,
      /sum by \(le\) \(increase\(dns_tool_upstream_duration_seconds_bucket/,
      /sum by \(upstream, server, result\) \(rate\(dns_tool_upstream_requests_total/,
      /dns_tool_upstream_cert_expiry_timestamp_seconds/,
      /dns_tool_listener_cert_expiry_timestamp_seconds/,
      /dns_tool_config_reloads_total/,
      /dns_tool_audit_total/,
    ];
    for (const re of wanted) assert.match(all, re);
    const dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8')) as {
      panels: {
        type: string;
        title: string;
        datasource?: { uid: string };
        targets?: { format?: string }[];
      }[];
    };
    const heatmap = dashboard.panels.find((p) => p.type === 'heatmap');
    assert.equal(heatmap?.targets?.[0]?.format, 'heatmap', 'the latency heatmap reads buckets as a heatmap');
    for (const panel of dashboard.panels.filter((p) => p.type !== 'row')) {
      assert.equal(panel.datasource?.uid, DATASOURCE_VARIABLE, `${panel.title}: the data source variable`);
    }
  });
});

describe('a running gateway exports what the alerts and the dashboard query', () => {
  const upstream = useDotUpstream();
  let gw: TestGateway;
  let text: string;

  before(async () => {
    await upstream.ready();
    gw = await startGateway(`
version: 1
listeners: [{ name: t, address: 127.0.0.1, port: 0, protocols: [udp] }]
upstreams:
  default: { timeout_ms: 1000, connections: 1, servers: [${upstream.serverEntry()}] }
policies:
  - { name: lo, clients: [127.0.0.1], query_types: { deny: [ANY] } }
log: { level: fatal }
admin: { address: 127.0.0.1, port: 0 }
`);
    // Traffic so that the exposition has samples of every kind: allowed, cached, filtered, unmatched.
    assert.equal(rcodeName(await udpQuery(gw.port, 'a.example')), 'NOERROR');
    assert.equal(rcodeName(await udpQuery(gw.port, 'a.example')), 'NOERROR');
    assert.equal(rcodeName(await udpQuery(gw.port, 'a.example', { type: 'ANY' })), 'REFUSED');
    assert.equal(rcodeName(await udpQuery(gw.port, 'a.example', { from: '127.0.0.9' })), 'REFUSED');
    const admin = gw.gateway.adminAddress();
    assert.ok(admin, 'admin server bound');
    const reply = await httpGet(admin.port, '/metrics');
    assert.equal(reply.status, 200);
    text = reply.body;
  });
  after(async () => {
    await gw?.stop();
  });

  test('every metric named in alerts.yaml and dns-tool.json is a family on /metrics', async () => {
    const types = families(text);
    const named = new Map<string, string>();
    for (const rule of await alertRules()) {
      for (const name of metricNames(rule.expr)) named.set(name, `alert ${rule.alert}`);
    }
    const { exprs, variableMetrics } = await dashboardExpressions();
    for (const expr of exprs) for (const name of metricNames(expr)) named.set(name, 'dashboard');
    for (const name of variableMetrics) named.set(name, 'dashboard variable');
    assert.ok(named.size >= 20, `found ${named.size} metric names`);
    const missing = [...named]
      .filter(([name]) => !exported(name, types))
      .map(([n, where]) => `${n} (${where})`);
    assert.deepEqual(missing, [], 'named but not exported');
  });

  test('promtool check metrics finds no problem in the exposition', {
    skip: skipUnlessBinaries('promtool'),
  }, async () => {
    const result = await runWithInput(requireBinary('promtool'), ['check', 'metrics'], text);
    assert.equal(result.output.trim(), '');
    assert.equal(result.code, 0);
    // The same check on a gauge named like a counter: it does report what it should.
    const bad = '# HELP x_total A gauge.\n# TYPE x_total gauge\nx_total 1\n';
    const flagged = await runWithInput(requireBinary('promtool'), ['check', 'metrics'], bad);
    assert.notEqual(flagged.code, 0);
    assert.match(flagged.output, /x_total/);
  });
});
