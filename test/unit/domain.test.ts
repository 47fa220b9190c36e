// Unit tests for the domain suffix set and the domain filter stage (src/stages/domain.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DomainFilterConfig } from '../../src/config/types.js';
import type { QueryContext } from '../../src/pipeline/context.js';
import { DomainSet, DomainStage } from '../../src/stages/domain.js';
import { contextFor, filterOutcome, queryContext } from '../helpers/ctx.js';
import { encodeQuery } from '../helpers/dns-client.js';

test('suffix match on label boundaries', () => {
  const set = new DomainSet(['example.com', 'ads.example.net']);
  assert.equal(set.size, 2);
  assert.equal(set.has('example.com'), true);
  assert.equal(set.has('a.b.example.com'), true);
  assert.equal(set.has('notexample.com'), false);
  assert.equal(set.has('example.com.evil'), false);
  assert.equal(set.has('com'), false, 'a parent of a listed name is not listed');
  assert.equal(set.has('x.ads.example.net'), true);
  assert.equal(set.has('example.net'), false);
  assert.equal(set.has(''), false);
});

test('case-insensitive on both sides; trailing dots and the root', () => {
  const set = new DomainSet(['Example.COM.', 'tracker.test']);
  assert.equal(set.has('WWW.example.com'), true);
  assert.equal(set.has('www.EXAMPLE.com'), true);
  assert.equal(set.has('Tracker.Test'), true);
  const everything = new DomainSet(['.']);
  assert.equal(everything.has('anything.at.all'), true);
  assert.equal(everything.has(''), true);
  assert.equal(new DomainSet([]).has('example.com'), false);
});

test('100,000 names: every name and its subdomains match, nothing else does', () => {
  // Speed is the benchmark's business (bench/); this checks the set at a realistic size.
  const names = Array.from({ length: 100_000 }, (_, i) => `host${i}.zone${i % 997}.example`);
  const set = new DomainSet(names);
  assert.equal(set.size, 100_000);
  let hits = 0;
  for (let i = 0; i < 100_000; i++) {
    if (set.has(`a.b.c.host${i}.zone${i % 997}.example`)) hits++;
    if (set.has(`a.b.c.host${i}.other.example`)) hits++;
  }
  assert.equal(hits, 100_000);
});

function outcome(
  cfg: DomainFilterConfig,
  ctxOrName: string | QueryContext,
  denyWith: 'refused' | 'drop' = 'refused',
) {
  const ctx = typeof ctxOrName === 'string' ? queryContext(ctxOrName, { id: 5 }) : ctxOrName;
  return filterOutcome(new DomainStage(cfg, denyWith, 1232), ctx);
}

test('deny list: names under it are filtered, everything else passes', () => {
  const cfg = { allow: [], deny: ['ads.example'] };
  assert.equal(outcome(cfg, 'ads.example'), 'REFUSED');
  assert.equal(outcome(cfg, 'Banner.ADS.example'), 'REFUSED');
  assert.equal(outcome(cfg, 'badads.example'), 'pass');
  assert.equal(outcome(cfg, 'example'), 'pass');
  assert.equal(outcome(cfg, 'x.ads.example', 'drop'), 'drop');
});

test('allow wins over deny', () => {
  const cfg = { allow: ['good.ads.example'], deny: ['ads.example'] };
  assert.equal(outcome(cfg, 'good.ads.example'), 'pass');
  assert.equal(outcome(cfg, 'cdn.good.ads.example'), 'pass');
  assert.equal(outcome(cfg, 'bad.ads.example'), 'REFUSED');
  assert.equal(outcome(cfg, 'elsewhere.example'), 'pass', 'under neither: passes when a deny list exists');
});

test('allow-only list: everything not under it is filtered', () => {
  const cfg = { allow: ['corp.example', 'update.vendor.test'], deny: [] };
  assert.equal(outcome(cfg, 'corp.example'), 'pass');
  assert.equal(outcome(cfg, 'mail.CORP.example'), 'pass');
  assert.equal(outcome(cfg, 'update.vendor.test'), 'pass');
  assert.equal(outcome(cfg, 'vendor.test'), 'REFUSED');
  assert.equal(outcome(cfg, 'notcorp.example'), 'REFUSED');
  assert.equal(outcome(cfg, 'example.org'), 'REFUSED');
});

test('a dot inside a label cannot pose as a name under the allow-list', () => {
  // One label "evil.corp" under "example": the wire peek writes it as "evil\.corp.example".
  const query = encodeQuery('x.example');
  const forged = Buffer.concat([
    query.subarray(0, 12),
    Buffer.from([9, ...Buffer.from('evil.corp'), 7, ...Buffer.from('example'), 0]),
    query.subarray(query.length - 4),
  ]);
  const ctx = contextFor(forged);
  assert.equal(ctx.lname, 'evil\\.corp.example');
  assert.equal(outcome({ allow: ['corp.example'], deny: [] }, ctx), 'REFUSED');
  // ...while the deny-list still catches a label ending in a backslash before a real boundary.
  const tricky = Buffer.concat([
    query.subarray(0, 12),
    Buffer.from([2, 0x78, 0x5c, 3, ...Buffer.from('ads'), 7, ...Buffer.from('example'), 0]),
    query.subarray(query.length - 4),
  ]);
  assert.equal(outcome({ allow: [], deny: ['ads.example'] }, contextFor(tricky)), 'REFUSED');
});

test('empty lists pass everything', () => {
  assert.equal(outcome({ allow: [], deny: [] }, 'example.com'), 'pass');
});

test('match names the listed entry: the name itself or its nearest listed parent', () => {
  const set = new DomainSet(['example.com', 'a.example.com', 'Tracker.TEST.']);
  assert.equal(set.match('x.y.a.example.com'), 'a.example.com');
  assert.equal(set.match('b.example.com'), 'example.com');
  assert.equal(set.match('EXAMPLE.com'), 'example.com');
  assert.equal(set.match('www.tracker.test'), 'tracker.test');
  assert.equal(set.match('notexample.com'), null);
  assert.equal(new DomainSet(['.']).match('any.name'), '.');
});

test('the filter verdict the stage acts on carries the rule and entry explain prints', () => {
  const filter = new DomainStage({ allow: ['ok.ads.example'], deny: ['ads.example'] }, 'refused', 1232)
    .filter;
  assert.deepEqual(filter.verdict('www.ok.ads.example'), {
    filtered: false,
    rule: 'allow',
    list: null,
    entry: 'ok.ads.example',
    line: null,
  });
  assert.deepEqual(filter.verdict('x.ads.example'), {
    filtered: true,
    rule: 'deny',
    list: null,
    entry: 'ads.example',
    line: null,
  });
  assert.deepEqual(filter.verdict('www.example'), {
    filtered: false,
    rule: null,
    list: null,
    entry: null,
    line: null,
  });
  const allowOnly = new DomainStage({ allow: ['corp.example'], deny: [] }, 'refused', 1232).filter;
  assert.equal(allowOnly.verdict('www.example').rule, 'not-allowed');
  assert.equal(allowOnly.verdict('www.example').filtered, true);
  // A "\." inside a label never counts as allowed, as in the stage.
  assert.equal(allowOnly.verdict('evil\\.corp.example').filtered, true);
});
