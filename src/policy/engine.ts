// The offline decision engine behind `explain` and `test`: what a config does with one
// query, step by step, with the live pipeline's own parts: the PolicyTable lookup, the
// wire peek of the question, and the filters of compileRules in the order of POLICY_STEPS
// (src/pipeline/build.ts composes the live stages from the same two).
import { rrTypeName, rrTypeNumber } from '../config/rrtypes.js';
import { parseCidr } from '../config/semantic.js';
import type { GatewayConfig, PolicyConfig, PolicyMode, RateLimitConfig } from '../config/types.js';
import { RCODE_NAMES, RCODE_REFUSED } from '../dns/constants.js';
import { PEEK_OK, peekQuery } from '../dns/wire.js';
import type { Decision } from '../pipeline/context.js';
import { denyRcode, type FilterVerdict } from '../stages/deny.js';
import { PolicyTable } from '../stages/match-policy.js';
import { POLICY_STEPS, type PolicyStep } from './order.js';
import { addressValue, cidrRange } from './ranges.js';
import { compileRules, type PolicyRules } from './rules.js';

/** Transports a query can arrive on; the verdicts differ only in how a rate limit answers. */
export const TRANSPORTS = ['udp', 'tcp', 'tls', 'https'] as const;
export type QueryTransport = (typeof TRANSPORTS)[number];

export interface PolicyQuery {
  /** The client address: an IPv4 or IPv6 literal (IPv4-mapped IPv6 counts as IPv4). */
  readonly client: string;
  /** The query name in presentation form; a trailing dot is optional, "." is the root. */
  readonly qname: string;
  /** RR type mnemonic (A, AAAA, TYPE65, ...); default A. */
  readonly qtype?: string;
  readonly transport?: QueryTransport;
}

/** What one step of the pipeline found. */
export interface StepReport {
  readonly stage: 'match' | PolicyStep;
  /**
   * pass: the step lets the query on; denied / filtered / unmatched: it blocks it;
   * as_configured: stateful (the rate limit), reported as configured, not evaluated;
   * absent: the policy does not use this step.
   */
  readonly verdict: 'pass' | 'denied' | 'filtered' | 'unmatched' | 'as_configured' | 'absent';
  /** false for steps after the one that blocked (in enforce mode the query never gets there). */
  readonly reached: boolean;
  readonly rule: FilterVerdict['rule'];
  readonly list: string | null;
  readonly entry: string | null;
  readonly line: number | null;
  /** One line for people. */
  readonly detail: string;
}

/** The rule that decided: the blocking step, or an allow entry that let the query through. */
export interface DecidingRule {
  readonly stage: 'match' | PolicyStep;
  readonly list: string | null;
  readonly entry: string | null;
}

/** The whole answer to "what happens to this query"; `explain --json` prints it as is. */
export interface Explanation {
  /** The client policies are matched on (after identity rules, once those exist). */
  readonly client: string;
  readonly qname: string;
  readonly qtype: string;
  readonly transport: QueryTransport;
  readonly policy: string | null;
  /** The client CIDR that won the longest-prefix match. */
  readonly cidr: string | null;
  /** The next longest CIDR that also holds the client, the one the winner beat. */
  readonly runner_up: { readonly policy: string; readonly cidr: string } | null;
  readonly steps: readonly StepReport[];
  /** What dns_tool_queries_total counts: in audit mode what was done (allowed). */
  readonly decision: Decision;
  /** In audit mode, the decision enforce mode would take (null when it would allow too). */
  readonly would: Decision | null;
  /** The RCODE mnemonic the gateway answers with; null when the upstream decides or nothing is sent. */
  readonly rcode: string | null;
  /** Who answers: the gateway itself (rcode), nobody (drop), or the upstream set. */
  readonly answer: 'rcode' | 'drop' | 'upstream';
  /** The upstream set forwarded to; null when nothing is forwarded. */
  readonly upstream: string | null;
  /** That set's servers, `address:port (tls_name)`, in configured order. */
  readonly servers: readonly string[];
  /** Whether the answer cache is consulted first; null when nothing is forwarded. */
  readonly cache: boolean | null;
  readonly rule: DecidingRule | null;
  readonly mode: PolicyMode | null;
}

/** Thrown for a query that cannot be evaluated (a bad address, name or type). */
export class QueryInputError extends Error {
  readonly code = 'ERR_DNS_TOOL_QUERY';

  constructor(
    /** The input at fault. */
    readonly field: 'client' | 'qname' | 'qtype',
    message: string,
  ) {
    super(message);
  }
}

interface TableEntry {
  readonly cidr: string;
  readonly policy: PolicyConfig;
}

interface Prefix {
  readonly v6: boolean;
  readonly start: bigint;
  readonly end: bigint;
  readonly entry: TableEntry;
}

/**
 * Built once per config; `explain` answers from memory. The match runs the live
 * pipeline's PolicyTable code (lookup, and matches for the runner-up) over the config's
 * CIDRs that hold the client: the longest-prefix match depends on those alone, and a
 * table of them is built in microseconds, where the table of every CIDR of a 10,000-policy
 * config takes seconds to parse. A policy's rules are compiled the first time a query
 * matches it, so such a config costs one compile per policy explained.
 */
export class PolicyEngine {
  /** Every client CIDR as numbers; one entry per CIDR in the config. */
  private readonly prefixes: Prefix[] = [];
  /** Bounded by the number of policies in the config. */
  private readonly rules = new Map<PolicyConfig, PolicyRules>();

  constructor(readonly config: GatewayConfig) {
    for (const policy of config.policies) {
      for (const cidr of policy.clients) {
        const { v6, start, end } = cidrRange(cidr);
        this.prefixes.push({ v6, start, end, entry: { cidr, policy } });
      }
    }
  }

  /** The live lookup's table, holding the CIDRs that contain `client` (canonical, as clientAddress gives). */
  private tableFor(client: string): PolicyTable<TableEntry> {
    const v6 = client.includes(':');
    const value = addressValue(client, v6);
    const holding: { cidr: string; value: TableEntry }[] = [];
    for (const p of this.prefixes) {
      if (p.v6 === v6 && value >= p.start && value <= p.end)
        holding.push({ cidr: p.entry.cidr, value: p.entry });
    }
    return new PolicyTable(holding);
  }

  private rulesOf(policy: PolicyConfig): PolicyRules {
    let rules = this.rules.get(policy);
    if (rules === undefined) {
      rules = compileRules(policy);
      this.rules.set(policy, rules);
    }
    return rules;
  }

  explain(query: PolicyQuery): Explanation {
    const client = clientAddress(query.client);
    const transport = query.transport ?? 'udp';
    const { qname, lname, qtype } = readQuestion(query.qname, query.qtype ?? 'A');
    const base = { client, qname, qtype: rrTypeName(qtype), transport };

    const table = this.tableFor(client);
    const winner = table.lookup(client);
    if (winner === null) {
      return {
        ...base,
        policy: null,
        cidr: null,
        runner_up: null,
        steps: [step('match', 'unmatched', true, null, 'no policy holds this client: answered REFUSED')],
        decision: 'unmatched',
        would: null,
        rcode: RCODE_NAMES[RCODE_REFUSED],
        answer: 'rcode',
        upstream: null,
        servers: [],
        cache: null,
        rule: { stage: 'match', list: null, entry: null },
        mode: null,
      };
    }
    const beaten = table.matches(client).find((m) => m.value !== winner);
    const runnerUp = beaten ? { policy: beaten.value.policy.name, cidr: beaten.value.cidr } : null;
    const { policy } = winner;
    const rules = this.rulesOf(policy);
    const steps: StepReport[] = [
      step(
        'match',
        'pass',
        true,
        null,
        `policy ${policy.name} by ${winner.cidr}${runnerUp ? ` (beats ${runnerUp.cidr} of ${runnerUp.policy})` : ''}`,
      ),
    ];

    // The first step that blocks decides, as the live chain stops at it; the steps after it
    // are still evaluated, to show what else would apply, but marked as not reached.
    let blocked: { stage: PolicyStep; decision: Decision; verdict: FilterVerdict | null } | null = null;
    for (const name of POLICY_STEPS) {
      const report = evaluateStep(name, rules, lname, qtype, transport, blocked === null);
      steps.push(report.step);
      if (blocked === null && report.blocks !== null) {
        blocked = { stage: name, decision: report.blocks, verdict: report.verdict };
      }
    }

    const audit = policy.mode === 'audit';
    const rule =
      blocked !== null
        ? { stage: blocked.stage, list: blocked.verdict?.list ?? null, entry: blocked.verdict?.entry ?? null }
        : allowedByRule(steps);
    if (blocked !== null && !audit) {
      const rcode = denyRcode(policy.denyWith);
      return {
        ...base,
        policy: policy.name,
        cidr: winner.cidr,
        runner_up: runnerUp,
        steps,
        decision: blocked.decision,
        would: null,
        rcode: rcode < 0 ? null : RCODE_NAMES[rcode],
        answer: rcode < 0 ? 'drop' : 'rcode',
        upstream: null,
        servers: [],
        cache: null,
        rule,
        mode: policy.mode,
      };
    }
    return {
      ...base,
      policy: policy.name,
      cidr: winner.cidr,
      runner_up: runnerUp,
      steps: audit ? steps.map((s) => (s.reached ? s : { ...s, reached: true })) : steps,
      decision: 'allowed',
      would: blocked?.decision ?? null,
      rcode: null,
      answer: 'upstream',
      upstream: policy.upstream,
      servers: this.serversOf(policy.upstream),
      cache: policy.cache,
      rule,
      mode: policy.mode,
    };
  }

  private serversOf(setName: string): string[] {
    return (this.config.upstreams.get(setName)?.servers ?? []).map((s) => `${s.id} (${s.tlsName})`);
  }
}

/**
 * For a query that passes: the allow entry that let it through, as the deciding rule (the
 * last one in pipeline order, so a domain allow entry wins over a query-type allow-list).
 */
function allowedByRule(steps: readonly StepReport[]): DecidingRule | null {
  for (let i = steps.length - 1; i >= 0; i--) {
    const s = steps[i];
    if (s.verdict === 'pass' && s.rule === 'allow') return { stage: s.stage, list: s.list, entry: s.entry };
  }
  return null;
}

function step(
  stage: StepReport['stage'],
  verdict: StepReport['verdict'],
  reached: boolean,
  found: FilterVerdict | null,
  detail: string,
): StepReport {
  return {
    stage,
    verdict,
    reached,
    rule: found?.rule ?? null,
    list: found?.list ?? null,
    entry: found?.entry ?? null,
    line: found?.line ?? null,
    detail,
  };
}

interface StepOutcome {
  readonly step: StepReport;
  /** The decision when this step blocks the query; null when it lets it on. */
  readonly blocks: Decision | null;
  readonly verdict: FilterVerdict | null;
}

function evaluateStep(
  name: PolicyStep,
  rules: PolicyRules,
  lname: string,
  qtype: number,
  transport: QueryTransport,
  reached: boolean,
): StepOutcome {
  const { policy } = rules;
  switch (name) {
    case 'action':
      if (policy.action === 'deny') {
        return {
          step: step(name, 'denied', reached, null, `deny: ${answerText(policy)}`),
          blocks: 'denied',
          verdict: null,
        };
      }
      return { step: step(name, 'pass', reached, null, 'allow'), blocks: null, verdict: null };
    case 'rate-limit':
      return {
        step: policy.rateLimit
          ? step(name, 'as_configured', reached, null, rateLimitText(policy.rateLimit, transport))
          : step(name, 'absent', reached, null, 'no rate limit'),
        blocks: null,
        verdict: null,
      };
    case 'query-type': {
      if (rules.queryTypes === null) {
        return {
          step: step(name, 'absent', reached, null, 'no query type filter'),
          blocks: null,
          verdict: null,
        };
      }
      const v = rules.queryTypes.verdict(qtype);
      const type = rrTypeName(qtype);
      return filterOutcome(name, v, reached, policy, describeFilter(v, `type ${type}`, 'query_types'));
    }
    case 'domain': {
      if (rules.domains === null) {
        return { step: step(name, 'absent', reached, null, 'no domain filter'), blocks: null, verdict: null };
      }
      const v = rules.domains.verdict(lname);
      return filterOutcome(name, v, reached, policy, describeFilter(v, 'name', 'domains'));
    }
  }
}

function filterOutcome(
  name: PolicyStep,
  v: FilterVerdict,
  reached: boolean,
  policy: PolicyConfig,
  detail: string,
): StepOutcome {
  if (!v.filtered) return { step: step(name, 'pass', reached, v, detail), blocks: null, verdict: v };
  return {
    step: step(name, 'filtered', reached, v, `${detail}: ${answerText(policy)}`),
    blocks: 'filtered',
    verdict: v,
  };
}

function describeFilter(v: FilterVerdict, what: string, key: string): string {
  const where =
    v.list === null ? `${key}.${v.rule}` : `list ${v.list}${v.line === null ? '' : ` line ${v.line}`}`;
  switch (v.rule) {
    case 'allow':
      return `${what} allowed by ${where} entry ${v.entry}`;
    case 'deny':
      return `${what} filtered by ${where} entry ${v.entry}`;
    case 'not-allowed':
      return `${what} not under ${key}.allow (an allow-list)`;
    default:
      return `${what} not listed`;
  }
}

function answerText(policy: PolicyConfig): string {
  const rcode = denyRcode(policy.denyWith);
  return rcode < 0
    ? 'dropped (deny_with: drop)'
    : `answered ${RCODE_NAMES[rcode]} (deny_with: ${policy.denyWith})`;
}

function rateLimitText(rl: RateLimitConfig, transport: QueryTransport): string {
  const who =
    rl.scope === 'policy'
      ? 'one bucket shared by the policy'
      : `a bucket per client /${rl.ipv4Prefix} (IPv6 /${rl.ipv6Prefix})`;
  let over: string;
  if (rl.exceed === 'drop') over = 'dropped';
  else if (rl.exceed === 'refused' || transport !== 'udp') over = 'answered REFUSED';
  else over = 'answered empty with TC=1 (the client retries over TCP)';
  return `qps ${rl.qps}, burst ${rl.burst}, ${who}; over it: ${over} (as configured: taken as under the limit)`;
}

/** The address policies are matched on: canonical, IPv4-mapped IPv6 as IPv4. */
export function clientAddress(text: string): string {
  const parsed = parseCidr(text.trim());
  if (typeof parsed !== 'string' || text.includes('/')) {
    throw new QueryInputError('client', `client "${text}" is not an IPv4 or IPv6 address`);
  }
  return parsed.slice(0, parsed.indexOf('/'));
}

/**
 * The question as the live pipeline reads it: the name and type are written into a
 * wire query and read back by the same peek the listeners use, so the lowercased name
 * the filters see is exactly the one a client's query would give.
 */
function readQuestion(name: string, type: string): { qname: string; lname: string; qtype: number } {
  const qtype = rrTypeNumber(type);
  if (qtype === null)
    throw new QueryInputError(
      'qtype',
      `unknown RR type "${type}" (use a name such as A, AAAA, ANY, or TYPEn)`,
    );
  const problem = nameProblem(name);
  if (problem !== null) throw new QueryInputError('qname', problem);
  const wireName = encodeName(name);
  const msg = Buffer.alloc(12 + wireName.length + 4);
  msg.writeUInt16BE(0x0100, 2); // RD
  msg.writeUInt16BE(1, 4); // QDCOUNT
  wireName.copy(msg, 12);
  msg.writeUInt16BE(qtype, 12 + wireName.length);
  msg.writeUInt16BE(1, 14 + wireName.length); // IN
  const peek = peekQuery(msg);
  if (peek.status !== PEEK_OK) throw new QueryInputError('qname', `"${name}" is not a usable query name`);
  return { qname: peek.qname === '' ? '.' : peek.qname, lname: peek.lname, qtype };
}

/** Wire form of a name nameProblem accepted: labels of printable ASCII, no escapes. */
function encodeName(name: string): Buffer {
  const labels = name === '.' ? [] : name.replace(/\.$/, '').split('.');
  const parts: Buffer[] = [];
  for (const label of labels) parts.push(Buffer.from([label.length]), Buffer.from(label, 'latin1'));
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

function nameProblem(name: string): string | null {
  if (name === '.') return null;
  const bare = name.endsWith('.') ? name.slice(0, -1) : name;
  if (bare === '') return 'the query name is empty (use "." for the root)';
  if (/[^\x21-\x7e]/.test(bare))
    return `"${name}" holds spaces or non-ASCII characters (write IDNs in xn-- form)`;
  if (bare.includes('\\')) return `"${name}": escapes are not supported`;
  if (bare.length > 253) return `"${name}" is longer than 253 characters`;
  for (const label of bare.split('.')) {
    if (label === '') return `"${name}" has an empty label`;
    if (label.length > 63) return `"${name}" has a label longer than 63 characters`;
  }
  return null;
}
