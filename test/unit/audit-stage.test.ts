// Audit mode around the real blocking stages (src/policy/audit.ts): what a stage would
// deny, filter or rate-limit passes on as allowed, the first such decision is kept in
// ctx.would and counted once; what the stage lets through is untouched.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RateLimitConfig } from '../../src/config/types.js';
import { type AuditCounts, Counters } from '../../src/metrics/counters.js';
import type { Handler } from '../../src/pipeline/stage.js';
import { compose } from '../../src/pipeline/stage.js';
import { AuditStage } from '../../src/policy/audit.js';
import { DenyStage } from '../../src/stages/deny.js';
import { DomainStage } from '../../src/stages/domain.js';
import { QueryTypeStage } from '../../src/stages/query-type.js';
import { RateLimiter, RateLimitStage } from '../../src/stages/rate-limit.js';
import { PASSED, queryContext } from '../helpers/ctx.js';

const forward: Handler = () => PASSED;

function counts(): AuditCounts {
  return new Counters().forAudit('trial');
}

test('a filtered name is passed on as allowed, would = filtered, counted once', () => {
  const c = counts();
  const chain = compose(
    [new AuditStage(new DomainStage({ allow: [], deny: ['ads.example'] }, 'refused', 1232), c)],
    forward,
  );
  const ctx = queryContext('x.ads.example');
  assert.equal(chain(ctx), PASSED, 'the query reaches the upstream');
  assert.equal(ctx.decision, 'allowed');
  assert.equal(ctx.would, 'filtered');
  assert.deepEqual(c, { denied: 0, rate_limited: 0, filtered: 1 });
});

test('a query the stage lets through is untouched and not counted', () => {
  const c = counts();
  const chain = compose(
    [new AuditStage(new QueryTypeStage({ allow: null, deny: [255] }, 'drop', 1232), c)],
    forward,
  );
  const ctx = queryContext('www.example', { type: 'A' });
  assert.equal(chain(ctx), PASSED);
  assert.equal(ctx.would, null);
  assert.deepEqual(c, { denied: 0, rate_limited: 0, filtered: 0 });
});

test('the first stage that would block decides would; later ones add nothing', () => {
  const c = counts();
  const chain = compose(
    [
      new AuditStage(new DenyStage('refused', 1232), c),
      new AuditStage(new QueryTypeStage({ allow: null, deny: [16] }, 'refused', 1232), c),
      new AuditStage(new DomainStage({ allow: [], deny: ['ads.example'] }, 'refused', 1232), c),
    ],
    forward,
  );
  const ctx = queryContext('ads.example', { type: 'TXT' });
  assert.equal(chain(ctx), PASSED);
  assert.equal(ctx.would, 'denied');
  assert.equal(ctx.decision, 'allowed');
  assert.deepEqual(c, { denied: 1, rate_limited: 0, filtered: 0 });
});

test('rate limiting in audit: over the limit still forwarded, would = rate_limited, tokens still taken', () => {
  const c = counts();
  const cfg: RateLimitConfig = {
    qps: 1,
    burst: 2,
    scope: 'client',
    exceed: 'drop',
    ipv4Prefix: 32,
    ipv6Prefix: 64,
  };
  const limiter = new RateLimiter(cfg, 100, () => 0);
  const chain = compose([new AuditStage(new RateLimitStage(limiter, cfg, 1232), c)], forward);
  const woulds: (string | null)[] = [];
  for (let i = 0; i < 4; i++) {
    const ctx = queryContext(`n${i}.example`, { clientAddress: '192.0.2.9' });
    assert.equal(chain(ctx), PASSED, 'nothing is dropped');
    woulds.push(ctx.would);
  }
  assert.deepEqual(woulds, [null, null, 'rate_limited', 'rate_limited']);
  assert.deepEqual(c, { denied: 0, rate_limited: 2, filtered: 0 });
});

test('without the wrapper the same stages block (the audit wrapper is what lets them through)', () => {
  const chain = compose([new DomainStage({ allow: [], deny: ['ads.example'] }, 'refused', 1232)], forward);
  const ctx = queryContext('ads.example');
  assert.notEqual(chain(ctx), PASSED);
  assert.equal(ctx.decision, 'filtered');
  assert.equal(ctx.would, null);
});
