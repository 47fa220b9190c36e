import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseIpv4 as parseIPv4 } from '../../src/net/ip.js';
import { PolicyTable } from '../../src/stages/match-policy.js';

test('longest prefix wins regardless of order', () => {
  const table = new PolicyTable([
    { cidr: '10.0.0.0/8', value: 'wide' },
    { cidr: '10.1.2.0/24', value: 'narrow' },
    { cidr: '10.1.0.0/16', value: 'mid' },
    { cidr: '10.1.2.3/32', value: 'host' },
  ]);
  assert.equal(table.lookup('10.9.9.9'), 'wide');
  assert.equal(table.lookup('10.1.9.9'), 'mid');
  assert.equal(table.lookup('10.1.2.9'), 'narrow');
  assert.equal(table.lookup('10.1.2.3'), 'host');
  assert.equal(table.lookup('11.0.0.1'), null);
});

test('IPv4-mapped IPv6 counts as IPv4, however it is spelled', () => {
  const table = new PolicyTable([
    { cidr: '127.0.0.0/8', value: 'lo' },
    { cidr: '::/0', value: 'any6' },
  ]);
  assert.equal(table.lookup('::ffff:127.0.0.2'), 'lo');
  assert.equal(table.lookup('::FFFF:127.0.0.2'), 'lo');
  assert.equal(table.lookup('::ffff:7f00:2'), 'lo', 'hex form');
  assert.equal(table.lookup('0:0:0:0:0:ffff:7f00:2'), 'lo', 'uncompressed');
  assert.equal(table.lookup('::ffff:127.0.0.2%lo'), 'lo', 'with a zone');
  assert.equal(table.lookup('::127.0.0.2'), 'any6', 'IPv4-compatible (deprecated) is plain IPv6');
});

test('IPv6 prefixes, default route and zone ids', () => {
  const table = new PolicyTable([
    { cidr: '2001:db8:1::/48', value: 'office' },
    { cidr: '2001:db8:1:2::/64', value: 'lab' },
    { cidr: '::/0', value: 'any6' },
    { cidr: '::1/128', value: 'lo6' },
  ]);
  assert.equal(table.lookup('2001:db8:1:2::5'), 'lab');
  assert.equal(table.lookup('2001:db8:1:3::5'), 'office');
  assert.equal(table.lookup('2001:db9::1'), 'any6');
  assert.equal(table.lookup('::1'), 'lo6');
  assert.equal(table.lookup('fe80::1%eth0'), 'any6');
  // IPv4 clients are not matched by ::/0
  assert.equal(table.lookup('192.0.2.1'), null);
});

test('0.0.0.0/0 matches every IPv4 client', () => {
  const table = new PolicyTable([{ cidr: '0.0.0.0/0', value: 'all' }]);
  assert.equal(table.lookup('203.0.113.9'), 'all');
});

test('garbage addresses never throw', () => {
  const table = new PolicyTable([
    { cidr: '::/0', value: 'x' },
    { cidr: '0.0.0.0/0', value: 'y' },
  ]);
  for (const bad of ['', 'abc', '1.2.3', '1.2.3.4.5', '256.1.1.1', ':::::', '1..2.3', '::1%', '1::2::3']) {
    assert.equal(table.lookup(bad), null, bad);
  }
  assert.equal(parseIPv4('256.1.1.1'), -1);
  assert.equal(parseIPv4('1.2.3.4'), 0x01020304);
  assert.equal(parseIPv4('255.255.255.255'), 0xffffffff);
});

test('matches: every containing prefix, longest first, the first being what lookup returns', () => {
  const table = new PolicyTable([
    { cidr: '10.0.0.0/8', value: 'wide' },
    { cidr: '10.1.2.0/24', value: 'narrow' },
    { cidr: '10.1.0.0/16', value: 'mid' },
    { cidr: '10.9.0.0/16', value: 'other' },
    { cidr: '2001:db8::/32', value: 'v6' },
    { cidr: '2001:db8:1::/48', value: 'v6-office' },
  ]);
  assert.deepEqual(table.matches('10.1.2.3'), [
    { length: 24, value: 'narrow' },
    { length: 16, value: 'mid' },
    { length: 8, value: 'wide' },
  ]);
  assert.deepEqual(table.matches('::ffff:10.1.2.3')[0], { length: 24, value: 'narrow' });
  assert.deepEqual(table.matches('2001:db8:1::9'), [
    { length: 48, value: 'v6-office' },
    { length: 32, value: 'v6' },
  ]);
  assert.deepEqual(table.matches('11.0.0.1'), []);
  for (const bad of ['', 'abc', '1.2.3', ':::::']) assert.deepEqual(table.matches(bad), []);
});
