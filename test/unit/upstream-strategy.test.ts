// Unit tests of server ordering per strategy and of the reuse key of upstream servers.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { UpstreamServerConfig, UpstreamSetConfig } from '../../src/config/types.js';
import { serverKey } from '../../src/upstream/hub.js';
import { EXPLORE_EVERY, orderServers } from '../../src/upstream/strategy.js';

const s = (name: string, up = true, latencyMs = 0) => ({ name, up, latencyMs });
const names = (list: readonly { name: string }[]) => list.map((x) => x.name).join(',');

test('failover: configured order, down servers left out while any is up', () => {
  const servers = [s('a', false), s('b'), s('c')];
  assert.equal(names(orderServers('failover', servers, 0)), 'b,c');
  assert.equal(names(orderServers('failover', servers, 7)), 'b,c');
});

test('all servers down: every server, in configured order', () => {
  const servers = [s('a', false), s('b', false)];
  assert.equal(names(orderServers('failover', servers, 0)), 'a,b');
  assert.equal(names(orderServers('fastest', servers, 0)), 'a,b');
});

test('round_robin rotates the healthy servers per query', () => {
  const servers = [s('a'), s('b'), s('c')];
  const firsts = [0, 1, 2, 3].map((seq) => orderServers('round_robin', servers, seq)[0].name);
  assert.deepEqual(firsts, ['a', 'b', 'c', 'a']);
  assert.equal(names(orderServers('round_robin', servers, 1)), 'b,c,a');
});

test('fastest: unmeasured first, then lowest latency; others explored now and then', () => {
  const servers = [s('slow', true, 30), s('fast', true, 2), s('new', true, 0)];
  assert.equal(names(orderServers('fastest', servers, 0)), 'new,fast,slow');
  const measured = [s('slow', true, 30), s('fast', true, 2), s('mid', true, 10)];
  let explored = 0;
  for (let seq = 0; seq < EXPLORE_EVERY * 4; seq++) {
    const first = orderServers('fastest', measured, seq)[0].name;
    if (first !== 'fast') explored++;
  }
  assert.equal(explored, 4, 'one query in EXPLORE_EVERY goes to another server');
  assert.equal(names(measured), 'slow,fast,mid', 'the input is not reordered');
});

test('serverKey: pin order does not matter, every connection-shaping setting does', () => {
  const server: UpstreamServerConfig = {
    address: '192.0.2.53',
    port: 853,
    tlsName: 'dns.test',
    pins: ['p1', 'p2'],
    ca: null,
    caFile: null,
    verifyCa: true,
    id: '192.0.2.53:853',
  };
  const set: UpstreamSetConfig = {
    name: 'default',
    strategy: 'failover',
    timeoutMs: 1500,
    connections: 2,
    idleTimeoutMs: 30000,
    servers: [server],
  };
  const key = serverKey(server, set);
  assert.equal(serverKey({ ...server, pins: ['p2', 'p1'] }, set), key);
  assert.equal(serverKey(server, { ...set, timeoutMs: 900, strategy: 'fastest' }), key);
  assert.notEqual(serverKey({ ...server, pins: ['p1'] }, set), key);
  assert.notEqual(serverKey({ ...server, ca: '-----BEGIN CERTIFICATE-----' }, set), key);
  assert.notEqual(serverKey({ ...server, tlsName: 'other.test' }, set), key);
  assert.notEqual(serverKey({ ...server, verifyCa: false }, set), key);
  assert.notEqual(serverKey(server, { ...set, connections: 3 }), key);
  assert.notEqual(serverKey(server, { ...set, idleTimeoutMs: 1000 }), key);
});
