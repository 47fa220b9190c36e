// The `domains` list format (src/lists/formats/domains.ts) with the odd lines real feeds hold.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseList } from '../../src/lists/parse.js';
import { buildText } from '../helpers/lists.js';

const FEED = [
  '\uFEFF# Title: test feed', // 1  BOM then a comment
  'Example.COM.', // 2  upper case and a trailing dot
  'ads.example.net # tracker', // 3  comment after the entry
  '', // 4
  '   \t  ', // 5  blank but for spaces
  'xn--bcher-kva.example', // 6  IDN in punycode
  'bücher.example', // 7  IDN not in punycode
  '*.wild.example', // 8  subdomains only
  '.squid.example', // 9  squid style leading dot
  'two words', // 10
  'bad..name', // 11
  `${'a'.repeat(63)}.example`, // 12 longest label
  `${'a'.repeat(64)}.example`, // 13 label too long
  '||adblock.example^', // 14 another format's rule
  'tracker.example#no-space-comment', // 15
  '  indented.example  ', // 16
  '_dmarc.under_score.example', // 17
].join('\r\n');

test('domains: entries, comments, CRLF, BOM, case, trailing dots and punycode', () => {
  const parsed = parseList('domains', FEED);
  assert.deepEqual(
    parsed.entries.map((e) => [e.line, e.name, e.kind, e.action]),
    [
      [2, 'example.com', 'subtree', 'deny'],
      [3, 'ads.example.net', 'subtree', 'deny'],
      [6, 'xn--bcher-kva.example', 'subtree', 'deny'],
      [8, 'wild.example', 'wildcard', 'deny'],
      [9, 'squid.example', 'subtree', 'deny'],
      [12, `${'a'.repeat(63)}.example`, 'subtree', 'deny'],
      [15, 'tracker.example', 'subtree', 'deny'],
      [16, 'indented.example', 'subtree', 'deny'],
      [17, '_dmarc.under_score.example', 'subtree', 'deny'],
    ],
  );
  assert.deepEqual(
    parsed.skipped.map((s) => s.line),
    [7, 10, 11, 13, 14],
  );
  assert.match(parsed.skipped[0].reason, /punycode/);
  assert.match(parsed.skipped[1].reason, /one name per line/);
  assert.equal(parsed.skipped[1].text, 'two words', 'the line is reported without its CR');
});

test('domains: a name covers its subdomains; *.name only the subdomains', () => {
  const list = buildText('domains', FEED, '/lists/feed.txt');
  assert.deepEqual(list.match('example.com'), {
    action: 'deny',
    entry: 'example.com',
    kind: 'subtree',
    line: 2,
  });
  assert.deepEqual(list.match('A.B.EXAMPLE.COM.'), {
    action: 'deny',
    entry: 'example.com',
    kind: 'subtree',
    line: 2,
  });
  assert.equal(list.match('notexample.com'), null, 'a suffix that is not on a label boundary');
  assert.equal(list.match('com'), null, 'a parent of a listed name');
  assert.equal(list.match('wild.example'), null, '*.name does not cover name');
  assert.deepEqual(list.match('x.wild.example'), {
    action: 'deny',
    entry: '*.wild.example',
    kind: 'wildcard',
    line: 8,
  });
  assert.equal(list.match('bücher.example'), null);
  assert.notEqual(list.match('www.xn--bcher-kva.example'), null);
  // An attacker's label holding a dot ("x.example.com" as one label under "evil") is not
  // under example.com, and nor is a name that only ends with an escaped dot sequence.
  assert.equal(list.match('x\\.example.com.evil'), null);
  assert.equal(list.match('ads\\.example.net'), null);
});

test('domains: skipped lines are reported once per load with file and line', () => {
  const { build } = buildText('domains', FEED, '/lists/feed.txt');
  assert.equal(build.skipped.count, 5);
  assert.deepEqual(
    build.skipped.samples.map((s) => `${s.source}:${s.line}`),
    [
      '/lists/feed.txt:7',
      '/lists/feed.txt:10',
      '/lists/feed.txt:11',
      '/lists/feed.txt:13',
      '/lists/feed.txt:14',
    ],
  );
  assert.equal(build.entries, 9);
  assert.equal(build.lines, 17);
});

test('domains: at most five examples, however many lines are skipped', () => {
  const text = Array.from({ length: 50 }, (_, i) => `bad name ${i}`).join('\n');
  const { build } = buildText('domains', `${text}\ngood.example\n`);
  assert.equal(build.skipped.count, 50);
  assert.equal(build.skipped.samples.length, 5);
  assert.deepEqual(
    build.skipped.samples.map((s) => s.line),
    [1, 2, 3, 4, 5],
  );
});

test('domains: a name listed twice keeps its first line; a duplicate is not a skip', () => {
  const { build, match } = buildText('domains', 'a.example\nb.example\nA.EXAMPLE.\n');
  assert.equal(build.entries, 2);
  assert.equal(build.duplicates, 1);
  assert.equal(build.skipped.count, 0);
  assert.equal(match('a.example')?.line, 1);
});
