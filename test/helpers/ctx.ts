// Builders for unit tests: real wire queries and answers (encoded with dns-packet) and the
// QueryContext the listeners would make from them (filled by the production wire peek).
import assert from 'node:assert/strict';
import dnsPacket, { type Answer, type DecodedPacket, type RecordType } from 'dns-packet';
import { PEEK_OK, peekQuery } from '../../src/dns/wire.js';
import type { QueryContext, Transport } from '../../src/pipeline/context.js';
import type { Handler, Stage } from '../../src/pipeline/stage.js';
import { encodeQuery } from './dns-client.js';

export interface QueryOptions {
  id?: number;
  type?: RecordType;
  /** Add an OPT record advertising this UDP size (0 = no EDNS). */
  udpSize?: number;
  dnssecOk?: boolean;
}

export interface ContextOptions {
  clientAddress?: string;
  clientPort?: number;
  transport?: Transport;
}

/** The context a listener builds for `query`; throws when the peek does not accept it. */
export function contextFor(query: Buffer, opts: ContextOptions = {}): QueryContext {
  const p = peekQuery(query);
  if (p.status !== PEEK_OK) throw new Error(`test query rejected by peek: status ${p.status}`);
  return {
    query,
    id: p.id,
    qname: p.qname,
    lname: p.lname,
    qtype: p.qtype,
    qclass: p.qclass,
    questionEnd: p.questionEnd,
    ednsUdpSize: p.ednsUdpSize,
    dnssecOk: p.dnssecOk,
    clientAddress: opts.clientAddress ?? '192.0.2.1',
    clientPort: opts.clientPort ?? 40000,
    via: null,
    transport: opts.transport ?? 'udp',
    startedAt: 0,
    policy: null,
    decision: 'allowed',
    would: null,
    cached: false,
    upstreamServer: null,
  };
}

export function queryContext(name: string, opts: QueryOptions & ContextOptions = {}): QueryContext {
  const udpSize = opts.udpSize ?? (opts.dnssecOk ? 1232 : 0);
  const query = encodeQuery(name, {
    id: opts.id ?? 4660,
    type: opts.type,
    edns: udpSize > 0 ? udpSize : false,
    dnssecOk: opts.dnssecOk,
  });
  return contextFor(query, opts);
}

export interface AnswerOptions {
  rcode?: number;
  truncated?: boolean;
  answers?: Answer[];
  authorities?: Answer[];
  additionals?: Answer[];
  /** Add an OPT record to the answer (as an EDNS upstream would). */
  opt?: boolean;
}

/** An upstream-style answer to ctx's question (same ID and question as the client's). */
export function answerFor(ctx: QueryContext, opts: AnswerOptions = {}): Buffer {
  const q = dnsPacket.decode(ctx.query);
  const additionals = [...(opts.additionals ?? [])];
  if (opts.opt) {
    additionals.push({
      type: 'OPT',
      name: '.',
      udpPayloadSize: 1232,
      extendedRcode: 0,
      ednsVersion: 0,
      flags: ctx.dnssecOk ? dnsPacket.DNSSEC_OK : 0,
      flag_do: ctx.dnssecOk,
      options: [],
    });
  }
  return dnsPacket.encode({
    type: 'response',
    id: ctx.id,
    flags:
      dnsPacket.RECURSION_DESIRED |
      dnsPacket.RECURSION_AVAILABLE |
      (opts.truncated ? dnsPacket.TRUNCATED_RESPONSE : 0) |
      (opts.rcode ?? 0),
    questions: q.questions,
    answers: opts.answers ?? [],
    authorities: opts.authorities ?? [],
    additionals,
  });
}

export function aRecord(name: string, ttl: number, address = '192.0.2.10'): Answer {
  return { type: 'A', name, ttl, class: 'IN', data: address };
}

export function soaRecord(name: string, ttl: number, minimum: number): Answer {
  return {
    type: 'SOA',
    name,
    ttl,
    class: 'IN',
    data: {
      mname: `ns.${name}`,
      rname: `hostmaster.${name}`,
      serial: 1,
      refresh: 3600,
      retry: 600,
      expire: 86400,
      minimum,
    },
  };
}

/** Every TTL of a decoded message except OPT's, in message order. */
export function ttlsOf(msg: Buffer): number[] {
  const d = dnsPacket.decode(msg);
  return [...(d.answers ?? []), ...(d.authorities ?? []), ...(d.additionals ?? [])]
    .filter((r) => r.type !== 'OPT')
    .map((r) => (r as { ttl?: number }).ttl ?? -1);
}

/** dns-packet's decode, typed with the `rcode` name it sets at run time. */
export function decodeMessage(msg: Buffer): DecodedPacket & { rcode: string } {
  return dnsPacket.decode(msg) as DecodedPacket & { rcode: string };
}

/** What `next` returns in filter-stage tests: the query passed the stage. */
export const PASSED = Buffer.from('passed');
export const passNext: Handler = () => PASSED;

/**
 * Run a filter stage on `ctx` with a `next` that marks a pass: 'pass' (decision allowed),
 * 'drop', or the RCODE name of the stage's own answer (decision filtered; its ID is the
 * query's, and `checkAnswer` may assert more of it).
 */
export function filterOutcome(
  stage: Stage,
  ctx: QueryContext,
  checkAnswer?: (answer: ReturnType<typeof decodeMessage>) => void,
): string {
  const result = stage.handle(ctx, passNext);
  if (result === PASSED) {
    assert.equal(ctx.decision, 'allowed');
    return 'pass';
  }
  assert.equal(ctx.decision, 'filtered');
  if (result === null) return 'drop';
  const d = decodeMessage(result as Buffer);
  assert.equal(d.id, ctx.id);
  checkAnswer?.(d);
  return d.rcode;
}
