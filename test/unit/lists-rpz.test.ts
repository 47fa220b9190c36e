// The `rpz` list format (src/lists/formats/rpz.ts): a response policy zone reduced to its
// QNAME triggers and their actions.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseList } from '../../src/lists/parse.js';
import { buildText } from '../helpers/lists.js';

const ZONE = [
  '\uFEFF; a vendor feed', // 1
  '$TTL 2h', // 2
  '$ORIGIN rpz.example.', // 3
  '@ IN SOA ns1.rpz.example. hostmaster.rpz.example. (', // 4
  '      2024010101 ; serial', // 5
  '      3600 600 86400 60 )', // 6
  '@ IN NS ns1.rpz.example.', // 7  the zone's own NS: ignored
  'nx.example           CNAME .', // 8
  '*.nx.example         CNAME .', // 9
  'nodata.example       CNAME *.', // 10
  'pass.nx.example      CNAME rpz-passthru.', // 11
  'drop.example         CNAME rpz-drop.', // 12
  'local.example   300  A     192.0.2.1', // 13
  '                     A     192.0.2.2', // 14 owner omitted: the previous one
  '                IN   AAAA  2001:DB8::1', // 15
  '                     TXT   "v=spf1 -all" "two \\"quoted\\" words"', // 16
  'abs.example.rpz.example. CNAME .', // 17 absolute owner under the origin
  'UPPER.Example        CNAME .', // 18
  'xn--bcher-kva.example CNAME .', // 19
  '32.2.0.0.192.rpz-ip  CNAME .', // 20 IP trigger
  'ns.evil.rpz-nsdname  CNAME .', // 21
  '24.0.2.0.192.rpz-client-ip CNAME rpz-drop.', // 22
  '32.1.0.0.127.rpz-nsip CNAME .', // 23
  'tcp.example CNAME rpz-tcp-only.', // 24
  'rewrite.example CNAME Safe.Example.NET.', // 25 rewrite to a name: local CNAME
  'wildrw.example CNAME *.garden.example.', // 26 rewrite keeping the query name
  'mx.example MX 10 mail.example.', // 27
  'outside.other. CNAME .', // 28 outside the zone
  'bad.example A 999.1.1.1', // 29
  '$INCLUDE other.zone', // 30
  'ch.example CH TXT "x"', // 31
  'trailing.example CNAME . ; a comment', // 32
  'bücher.example CNAME .', // 33
  '$ORIGIN sub.rpz.example.', // 34
  'rel CNAME .', // 35 relative to the new origin: rel.sub
  'old.pass.example.rpz.example. CNAME old.pass.example.', // 36 PASSTHRU, older spelling
  'ttl.example 1h30m IN A 192.0.2.7', // 37
].join('\r\n');

test('rpz: QNAME triggers and their actions; every other trigger and action skipped', () => {
  const parsed = parseList('rpz', ZONE);
  assert.deepEqual(
    parsed.entries.map((e) => [e.line, e.name, e.kind, e.action]),
    [
      [8, 'nx.example', 'exact', 'nxdomain'],
      [9, 'nx.example', 'wildcard', 'nxdomain'],
      [10, 'nodata.example', 'exact', 'nodata'],
      [11, 'pass.nx.example', 'exact', 'allow'],
      [12, 'drop.example', 'exact', 'drop'],
      [13, 'local.example', 'exact', 'local'],
      [14, 'local.example', 'exact', 'local'],
      [15, 'local.example', 'exact', 'local'],
      [16, 'local.example', 'exact', 'local'],
      [17, 'abs.example', 'exact', 'nxdomain'],
      [18, 'upper.example', 'exact', 'nxdomain'],
      [19, 'xn--bcher-kva.example', 'exact', 'nxdomain'],
      [25, 'rewrite.example', 'exact', 'local'],
      [32, 'trailing.example', 'exact', 'nxdomain'],
      [35, 'rel.sub', 'exact', 'nxdomain'],
      [36, 'old.pass.example', 'exact', 'allow'],
      [37, 'ttl.example.sub', 'exact', 'local'],
    ],
  );
  const skipped = new Map(parsed.skipped.map((s) => [s.line, s.reason]));
  assert.deepEqual([...skipped.keys()], [20, 21, 22, 23, 24, 26, 27, 28, 29, 30, 31, 33]);
  assert.match(skipped.get(20)!, /unsupported trigger rpz-ip/);
  assert.match(skipped.get(21)!, /unsupported trigger rpz-nsdname/);
  assert.match(skipped.get(22)!, /unsupported trigger rpz-client-ip/);
  assert.match(skipped.get(23)!, /unsupported trigger rpz-nsip/);
  assert.match(skipped.get(24)!, /rpz-tcp-only/);
  assert.match(skipped.get(26)!, /rewrite/);
  assert.match(skipped.get(27)!, /MX/);
  assert.match(skipped.get(28)!, /outside the zone rpz\.example/);
  assert.match(skipped.get(30)!, /\$INCLUDE/);
  assert.match(skipped.get(31)!, /class CH/);
  assert.match(skipped.get(33)!, /punycode/);
});

test('rpz: local data keeps every record of the name, with $TTL and explicit TTLs', () => {
  const parsed = parseList('rpz', ZONE);
  const records = parsed.entries.filter((e) => e.name === 'local.example').map((e) => e.record);
  assert.deepEqual(records, [
    { type: 'A', ttl: 300, address: '192.0.2.1' },
    { type: 'A', ttl: 7200, address: '192.0.2.2' },
    { type: 'AAAA', ttl: 7200, address: '2001:db8::1' },
    { type: 'TXT', ttl: 7200, strings: ['v=spf1 -all', 'two "quoted" words'] },
  ]);
  assert.deepEqual(parsed.entries.find((e) => e.name === 'rewrite.example')?.record, {
    type: 'CNAME',
    ttl: 7200,
    target: 'safe.example.net',
  });
  assert.equal(parsed.entries.find((e) => e.name === 'ttl.example.sub')?.record?.ttl, 5400);
});

test('rpz: exact beats wildcard, *.name covers subdomains only, a bare owner the name only', () => {
  const list = buildText('rpz', ZONE, 'threats.rpz');
  assert.deepEqual(list.match('nx.example'), {
    action: 'nxdomain',
    entry: 'nx.example',
    kind: 'exact',
    line: 8,
  });
  assert.deepEqual(list.match('a.b.nx.example'), {
    action: 'nxdomain',
    entry: '*.nx.example',
    kind: 'wildcard',
    line: 9,
  });
  assert.deepEqual(list.match('pass.nx.example'), {
    action: 'allow',
    entry: 'pass.nx.example',
    kind: 'exact',
    line: 11,
  });
  assert.equal(
    list.match('x.pass.nx.example')?.entry,
    '*.nx.example',
    'a bare owner does not cover subdomains',
  );
  assert.equal(list.match('nodata.example')?.action, 'nodata');
  assert.equal(list.match('www.nodata.example'), null);
  assert.equal(list.match('Drop.Example.')?.action, 'drop');
  const local = list.snapshot.match('local.example');
  assert.equal(local?.action, 'local');
  assert.equal(local?.line, 13);
  assert.deepEqual(
    local?.local?.map((r) => r.type),
    ['A', 'A', 'AAAA', 'TXT'],
  );
  assert.equal(list.snapshot.match('nx.example')?.local, null);
  assert.equal(list.match('rel.sub')?.action, 'nxdomain');
  assert.equal(list.match('rel'), null);
  assert.equal(list.match('32.2.0.0.192.rpz-ip'), null, 'an IP trigger never matches as a name');
  assert.equal(list.build.skipped.count, 12);
});

test('rpz: a name with contradicting actions keeps the first and reports the rest', () => {
  const { build, snapshot } = buildText(
    'rpz',
    [
      '$ORIGIN rpz.test.',
      'a.example CNAME .', // 2
      'a.example A 192.0.2.1', // 3 contradicts line 2
      'b.example CNAME other.example.', // 4
      'b.example A 192.0.2.1', // 5 a CNAME stands alone
      'c.example CNAME rpz-drop.', // 6
      'c.example CNAME rpz-drop.', // 7 a repeat, not a conflict
    ].join('\n'),
    'feed.rpz',
  );
  assert.equal(snapshot.match('a.example')?.action, 'nxdomain');
  assert.deepEqual(snapshot.match('b.example')?.local, [
    { type: 'CNAME', ttl: 3600, target: 'other.example' },
  ]);
  assert.deepEqual(
    build.skipped.samples.map((s) => [s.source, s.line]),
    [
      ['feed.rpz', 3],
      ['feed.rpz', 5],
    ],
  );
  assert.match(build.skipped.samples[0].reason, /line 2/);
  assert.equal(build.duplicates, 1);
});

test('rpz: without $ORIGIN the SOA owner is the zone; a top-level * covers every name', () => {
  const list = buildText(
    'rpz',
    [
      'policy.example. 3600 IN SOA ns. admin. 1 2 3 4 5',
      'policy.example. NS ns.',
      'ok.test.policy.example. CNAME rpz-passthru.',
      '*.policy.example. CNAME .',
    ].join('\n'),
  );
  assert.equal(list.match('ok.test')?.action, 'allow');
  assert.deepEqual(list.match('anything.else'), {
    action: 'nxdomain',
    entry: '*',
    kind: 'wildcard',
    line: 4,
  });
  assert.equal(list.match(''), null, 'the root itself is not under *');
  assert.equal(list.build.skipped.count, 0);
});

test('rpz: zone-file syntax errors are reported at the line they start on', () => {
  const parsed = parseList(
    'rpz',
    [
      '$ORIGIN rpz.test.',
      'a.example TXT "unterminated', // 2
      'b.example CNAME .', // 3
      'c.example', // 4 no type
      '  A 192.0.2.1', // 5 owner omitted: c.example
      'd.example A (', // 6 never closed
      '   192.0.2.1',
    ].join('\n'),
  );
  assert.deepEqual(
    parsed.entries.map((e) => [e.line, e.name]),
    [
      [3, 'b.example'],
      [5, 'c.example'],
    ],
  );
  assert.deepEqual(
    parsed.skipped.map((s) => [s.line, s.reason]),
    [
      [2, 'unterminated quoted string'],
      [4, 'record without a type'],
      [6, 'parenthesis not closed'],
    ],
  );
});

test('rpz: an owner-less first record and @ without an origin are reported, not guessed', () => {
  const parsed = parseList('rpz', ['  A 192.0.2.1', '@ CNAME .', 'x.example CNAME .'].join('\n'));
  assert.deepEqual(
    parsed.skipped.map((s) => s.line),
    [1, 2],
  );
  assert.deepEqual(
    parsed.entries.map((e) => e.name),
    ['x.example'],
  );
});
