// Unit tests for the query-type filter stage (src/stages/query-type.ts) with a fake `next`.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RecordType } from 'dns-packet';
import { QueryTypeStage } from '../../src/stages/query-type.js';
import { filterOutcome, passNext, queryContext } from '../helpers/ctx.js';

function outcome(stage: QueryTypeStage, type: RecordType): string {
  const ctx = queryContext('example.com', { type, id: 42 });
  return filterOutcome(stage, ctx, (answer) => assert.equal(answer.questions?.[0].type, type));
}

test('deny list filters the listed types and passes the rest', () => {
  // ANY = 255, AXFR = 252, IXFR = 251
  const stage = new QueryTypeStage({ allow: null, deny: [255, 252, 251] }, 'refused', 1232);
  assert.equal(outcome(stage, 'A'), 'pass');
  assert.equal(outcome(stage, 'AAAA'), 'pass');
  assert.equal(outcome(stage, 'AXFR'), 'REFUSED');
  assert.equal(outcome(stage, 'IXFR'), 'REFUSED');
});

test('allow list passes only the listed types', () => {
  const stage = new QueryTypeStage({ allow: [1, 28], deny: null }, 'nxdomain', 1232);
  assert.equal(outcome(stage, 'A'), 'pass');
  assert.equal(outcome(stage, 'AAAA'), 'pass');
  assert.equal(outcome(stage, 'TXT'), 'NXDOMAIN');
  assert.equal(outcome(stage, 'MX'), 'NXDOMAIN');
});

test('deny_with drop sends nothing; the highest type number works', () => {
  const stage = new QueryTypeStage({ allow: null, deny: [16, 65535] }, 'drop', 1232);
  assert.equal(outcome(stage, 'TXT'), 'drop');
  assert.equal(outcome(stage, 'A'), 'pass');
  const ctx = queryContext('example.com');
  ctx.query.writeUInt16BE(65535, ctx.questionEnd - 4);
  const high = { ...ctx, qtype: 65535 };
  assert.equal(stage.handle(high, passNext), null);
  assert.equal(high.decision, 'filtered');
});

test('an empty allow list filters everything, an empty deny list nothing', () => {
  assert.equal(outcome(new QueryTypeStage({ allow: [], deny: null }, 'refused', 1232), 'A'), 'REFUSED');
  assert.equal(outcome(new QueryTypeStage({ allow: null, deny: [] }, 'refused', 1232), 'A'), 'pass');
});

test('the verdict agrees with the stage for every type and names the listed entry', () => {
  for (const cfg of [
    { allow: null, deny: [255, 252, 65] },
    { allow: [1, 28], deny: null },
  ]) {
    const stage = new QueryTypeStage(cfg, 'refused', 1232);
    for (let type = 0; type <= 0xffff; type++) {
      const v = stage.filter.verdict(type);
      if (v.filtered !== stage.filter.filters(type))
        assert.fail(`type ${type}: verdict and filters disagree`);
    }
  }
  const deny = new QueryTypeStage({ allow: null, deny: [255, 65] }, 'refused', 1232).filter;
  assert.deepEqual(deny.verdict(65), {
    filtered: true,
    rule: 'deny',
    list: null,
    entry: 'HTTPS',
    line: null,
  });
  assert.deepEqual(deny.verdict(1), { filtered: false, rule: null, list: null, entry: null, line: null });
  const allow = new QueryTypeStage({ allow: [1, 28], deny: null }, 'refused', 1232).filter;
  assert.deepEqual(allow.verdict(28), {
    filtered: false,
    rule: 'allow',
    list: null,
    entry: 'AAAA',
    line: null,
  });
  assert.deepEqual(allow.verdict(16), {
    filtered: true,
    rule: 'not-allowed',
    list: null,
    entry: null,
    line: null,
  });
});

test('types above the highest listed one are not listed', () => {
  const deny = new QueryTypeStage({ allow: null, deny: [16] }, 'refused', 1232).filter;
  assert.equal(deny.filters(65535), false);
  assert.equal(deny.filters(24), false);
  assert.equal(deny.filters(16), true);
  const allow = new QueryTypeStage({ allow: [1], deny: null }, 'refused', 1232).filter;
  assert.equal(allow.filters(65535), true);
  assert.equal(allow.filters(1), false);
  assert.equal(new QueryTypeStage({ allow: null, deny: [] }, 'refused', 1232).filter.filters(0), false);
});
