// The `hosts` list format (src/lists/formats/hosts.ts): a published hosts file's header and
// odd lines.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseList } from '../../src/lists/parse.js';
import { buildText } from '../helpers/lists.js';

const FEED = [
  '\uFEFF# Title: StevenBlack/hosts style', // 1
  '127.0.0.1 localhost', // 2  the machine's own names: ignored
  '127.0.0.1 localhost.localdomain', // 3
  '255.255.255.255 broadcasthost', // 4  another address: ignored
  '::1 localhost ip6-localhost ip6-loopback', // 5
  'fe80::1%lo0 localhost', // 6  scoped address: ignored
  'ff00::0 ip6-localnet', // 7
  '0.0.0.0 0.0.0.0', // 8
  '0.0.0.0 Ads.Example.COM. tracker.example # two names, a comment', // 9
  '127.0.0.1\tclick.example', // 10 tab
  ':: v6.example', // 11
  '::1 v6b.example', // 12
  '192.168.1.1 router.lan', // 13 a real mapping: ignored
  '0.0.0.0', // 14 no names
  'garbage line here', // 15
  '0.0.0.0 fine.example bad!name.example', // 16 one good, one bad
  '0.0.0.0 xn--bcher-kva.example bücher.example', // 17
  '', // 18
  '#0.0.0.0 commented.example', // 19
].join('\r\n');

test('hosts: block addresses, several names per line, comments and the header lines', () => {
  const parsed = parseList('hosts', FEED);
  assert.deepEqual(
    parsed.entries.map((e) => [e.line, e.name, e.kind]),
    [
      [9, 'ads.example.com', 'exact'],
      [9, 'tracker.example', 'exact'],
      [10, 'click.example', 'exact'],
      [11, 'v6.example', 'exact'],
      [12, 'v6b.example', 'exact'],
      [16, 'fine.example', 'exact'],
      [17, 'xn--bcher-kva.example', 'exact'],
    ],
  );
  assert.deepEqual(
    parsed.skipped.map((s) => [s.line, s.reason]),
    [
      [14, 'an address without names'],
      [15, 'does not start with an address (0.0.0.0 name ...)'],
      [16, 'not a host name: "bad!name.example"'],
      [17, 'not ASCII (an IDN must be written in punycode, xn--)'],
    ],
  );
  // localhost x2, broadcasthost, the ::1 line's three local names, fe80, ff00, 0.0.0.0, router
  assert.equal(parsed.ignored, 10);
});

test('hosts: names are matched exactly, not their subdomains', () => {
  const list = buildText('hosts', FEED, '/etc/hosts.block');
  assert.deepEqual(list.match('ADS.example.com'), {
    action: 'deny',
    entry: 'ads.example.com',
    kind: 'exact',
    line: 9,
  });
  assert.equal(list.match('sub.ads.example.com'), null);
  assert.equal(list.match('example.com'), null);
  assert.equal(list.match('localhost'), null, 'the header never blocks localhost');
  assert.equal(list.match('router.lan'), null, 'a real mapping is not a block');
  assert.deepEqual(
    list.build.skipped.samples.map((s) => `${s.source}:${s.line}`),
    ['/etc/hosts.block:14', '/etc/hosts.block:15', '/etc/hosts.block:16', '/etc/hosts.block:17'],
  );
});
