// The `adblock` list format (src/lists/formats/adblock.ts): the rules DNS can enforce, the
// ones it cannot (skipped and counted), and exceptions.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseList } from '../../src/lists/parse.js';
import { buildText } from '../helpers/lists.js';

const FEED = [
  '\uFEFF[Adblock Plus 2.0]', // 1  header
  '! Title: test', // 2
  '||ads.example^', // 3
  '@@||good.ads.example^', // 4  exception
  '||tracker.example^$third-party', // 5  options
  'example.com##.banner', // 6  cosmetic
  '##.ad', // 7  cosmetic
  'example.com#@#.ad', // 8  cosmetic exception
  '/banner/*/img^', // 9  path
  '||cdn.example/ads/*', // 10 path under a name
  '||UPPER.Example.^', // 11
  '||comment.example^ # trailing', // 12
  '||bang.example^ ! trailing', // 13
  '# plain comment', // 14
  '||*.wild.example^', // 15 wildcard
  '|http://x.example|', // 16 URL rule
  '/^ad[0-9]+\\./', // 17 regex
  '||xn--bcher-kva.example^', // 18
  '||bücher.example^', // 19
  '', // 20
  '@@||allowed.example^$important', // 21 exception with options
  'plain.example', // 22 not a ||name^ rule
].join('\r\n');

test('adblock: ||name^ blocks, @@||name^ exceptions, every other rule kind skipped', () => {
  const parsed = parseList('adblock', FEED);
  assert.deepEqual(
    parsed.entries.map((e) => [e.line, e.name, e.kind, e.action]),
    [
      [3, 'ads.example', 'subtree', 'deny'],
      [4, 'good.ads.example', 'subtree', 'allow'],
      [11, 'upper.example', 'subtree', 'deny'],
      [12, 'comment.example', 'subtree', 'deny'],
      [13, 'bang.example', 'subtree', 'deny'],
      [18, 'xn--bcher-kva.example', 'subtree', 'deny'],
    ],
  );
  assert.deepEqual(
    parsed.skipped.map((s) => s.line),
    [5, 6, 7, 8, 9, 10, 15, 16, 17, 19, 21, 22],
  );
  const reasons = new Map(parsed.skipped.map((s) => [s.line, s.reason]));
  assert.match(reasons.get(5)!, /options/);
  assert.match(reasons.get(6)!, /cosmetic/);
  assert.match(reasons.get(17)!, /regular-expression/);
  assert.match(reasons.get(19)!, /punycode/);
});

test('adblock: an exception beats a block, even a more specific one', () => {
  const list = buildText('adblock', `${FEED}\n||deep.good.ads.example^\n`);
  assert.deepEqual(list.match('ads.example'), {
    action: 'deny',
    entry: 'ads.example',
    kind: 'subtree',
    line: 3,
  });
  assert.deepEqual(list.match('x.ads.example'), {
    action: 'deny',
    entry: 'ads.example',
    kind: 'subtree',
    line: 3,
  });
  assert.deepEqual(list.match('good.ads.example'), {
    action: 'allow',
    entry: 'good.ads.example',
    kind: 'subtree',
    line: 4,
  });
  assert.equal(list.match('a.deep.good.ads.example')?.action, 'allow');
  assert.equal(list.match('tracker.example'), null, 'a rule with options is not enforced');
  assert.equal(list.match('example.com'), null, 'a cosmetic rule is not a block');
  assert.equal(list.build.skipped.count, 12);
  assert.equal(list.build.entries, 7);
});

test('adblock: an exception in one source beats a block in another', async () => {
  const { buildSource, runSync } = await import('../../src/lists/build.js');
  const { ListSnapshot } = await import('../../src/lists/list.js');
  const source = (name: string, text: string) => {
    const b = runSync(buildSource('adblock', [Buffer.from(text)], name, null))!;
    return { source: name, main: b.main, exceptions: b.exceptions, hash: b.hash, entries: b.entries };
  };
  const snap = new ListSnapshot('ads', 'adblock', 'enforce', [
    source('blocks.txt', '||cdn.example^\n'),
    source('allow.txt', '@@||static.cdn.example^\n'),
  ]);
  assert.equal(snap.match('static.cdn.example')?.action, 'allow');
  assert.equal(snap.match('static.cdn.example')?.source, 'allow.txt');
  assert.equal(snap.match('img.cdn.example')?.action, 'deny');
  assert.equal(snap.match('img.cdn.example')?.source, 'blocks.txt');
});
