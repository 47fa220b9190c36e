// The original tool's flags: spellings, defaults, the config they build, and their errors.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { configFromFlags, FLAGS_SOURCE } from '../../src/config/flags.js';
import { ConfigError } from '../../src/config/load.js';
import type { GatewayConfig } from '../../src/config/types.js';

const PIN = Buffer.alloc(32, 9).toString('base64');

function build(argv: string[]): GatewayConfig {
  const config = configFromFlags(argv);
  assert.ok(config, 'expected a config');
  return config;
}

function problemsOf(argv: string[]): string[] {
  try {
    configFromFlags(argv);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.source, FLAGS_SOURCE);
    for (const p of err.problems) assert.deepEqual([p.line, p.col], [0, 0]);
    return err.problems.map((p) => p.message);
  }
  return assert.fail('expected a ConfigError');
}

describe('configFromFlags', () => {
  test('returns null when none of the original flags is given', () => {
    assert.equal(configFromFlags([]), null);
    assert.equal(configFromFlags(['--config', 'x.yaml']), null);
    assert.equal(configFromFlags(['serve']), null);
  });

  test('defaults match the original tool', () => {
    const config = build(['-port', '53']);
    assert.deepEqual(config.listeners, [
      {
        name: 'main',
        address: '0.0.0.0',
        port: 53,
        protocols: ['udp', 'tcp'],
        proxyProtocolFrom: null,
        ecsClientFrom: null,
      },
    ]);
    const set = config.upstreams.get('default');
    assert.ok(set);
    assert.deepEqual(set.servers, [
      {
        address: '1.1.1.1',
        port: 853,
        tlsName: 'cloudflare-dns.com',
        pins: [],
        ca: null,
        caFile: null,
        verifyCa: true,
        id: '1.1.1.1:853',
      },
    ]);
    assert.equal(config.limits.timeoutMs, 3000);
    assert.deepEqual(
      config.policies.map((p) => [p.name, p.clients, p.action, p.upstream]),
      [['all', ['0.0.0.0/0', '::/0'], 'allow', 'default']],
    );
    assert.equal(config.source, FLAGS_SOURCE);
    assert.match(config.hash, /^[0-9a-f]{64}$/);
    assert.ok(Object.isFrozen(config.listeners[0]));
    // The rest comes from the schema defaults, as for a file.
    assert.equal(config.limits.udpMaxPayload, 1232);
    assert.equal(config.cache.maxEntries, 100000);
    assert.equal(config.admin, null);
  });

  test('single and double dashes, separate and = values, last one wins', () => {
    const config = build([
      '-address',
      '127.0.0.1',
      '--port=5353',
      '--resolver-addr',
      '[2620:fe::fe]:853',
      '-resolver-fqdn=dns.quad9.net',
      '-resolver-pin',
      PIN,
      '-timeout=1.5',
      '-port',
      '5354',
    ]);
    assert.equal(config.listeners[0].address, '127.0.0.1');
    assert.equal(config.listeners[0].port, 5354);
    const server = config.upstreams.get('default')?.servers[0];
    assert.deepEqual(
      [server?.address, server?.port, server?.tlsName, server?.pins, server?.id],
      ['2620:fe::fe', 853, 'dns.quad9.net', [PIN], '[2620:fe::fe]:853'],
    );
    assert.equal(config.limits.timeoutMs, 1500);
    assert.equal(config.upstreams.get('default')?.timeoutMs, 1500);
  });

  test('a bare resolver IP means port 853', () => {
    const server = build(['-resolver-addr', '9.9.9.9']).upstreams.get('default')?.servers[0];
    assert.equal(server?.id, '9.9.9.9:853');
  });

  test('different flags give different hashes', () => {
    assert.notEqual(build(['-port', '53']).hash, build(['-port', '54']).hash);
    assert.equal(build(['-port', '53']).hash, build(['--port=53']).hash);
  });

  test('bad values are all reported, each naming its flag', () => {
    const messages = problemsOf([
      '-address',
      'localhost',
      '-port',
      '99999',
      '-resolver-addr',
      'one.one.one.one:853',
      '-resolver-fqdn',
      'bad name',
      '-resolver-pin',
      'c2hvcnQ=',
      '-timeout',
      '0',
    ]);
    assert.equal(messages.length, 6, messages.join('\n'));
    assert.match(messages[0], /^-address: "localhost" is not an IPv4 or IPv6 literal/);
    assert.match(messages[1], /^-port: must be an integer 0\.\.65535/);
    assert.match(messages[2], /^-resolver-addr: "one\.one\.one\.one" is not an IPv4 or IPv6 literal/);
    assert.match(messages[3], /^-resolver-fqdn: /);
    assert.match(messages[4], /^-resolver-pin: pin decodes to 5 bytes, not 32/);
    assert.match(messages[5], /^-timeout: must be a number of seconds/);
  });

  test('a missing value, an unknown flag and a stray argument are problems', () => {
    const messages = problemsOf(['-port', '53', '-verbose', 'extra', '-timeout']);
    assert.deepEqual(messages.length, 3, messages.join('\n'));
    assert.match(messages[0], /unexpected argument "-verbose"/);
    assert.match(messages[1], /unexpected argument "extra"/);
    assert.match(messages[2], /-timeout needs a value/);
  });

  test('resolver-addr needs a port after an IPv6 address in brackets', () => {
    assert.match(problemsOf(['-resolver-addr', '[::1]'])[0], /expected IP:PORT/);
    assert.match(problemsOf(['-resolver-addr', '1.1.1.1:0'])[0], /expected IP:PORT/);
  });
});
