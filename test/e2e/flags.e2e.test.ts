// End to end in the original flags mode (-address -port -resolver-addr ...): the upstream is
// validated by CA and name against the system roots, so the test certificate is added with
// NODE_EXTRA_CA_CERTS, exactly as an operator of the old tool would.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { requireBinary, skipUnlessBinaries } from '../helpers/binaries.js';
import { freePort } from '../helpers/ports.js';
import { type GatewayProcess, kdig, startGateway } from '../helpers/proc.js';
import { startUnbound, type UnboundUpstream, ZONE } from '../helpers/unbound.js';

function flags(dash: '-' | '--', port: number, up: UnboundUpstream, pin: string): string[] {
  return [
    `${dash}address`,
    '127.0.0.1',
    `${dash}port`,
    String(port),
    `${dash}resolver-addr`,
    `127.0.0.1:${up.dotPort}`,
    `${dash}resolver-fqdn`,
    up.tlsName,
    `${dash}resolver-pin`,
    pin,
    `${dash}timeout`,
    '2',
  ];
}

describe('original flags mode', {
  skip: skipUnlessBinaries('unbound', 'unbound-checkconf', 'kdig', 'openssl'),
}, () => {
  let upstream: UnboundUpstream | null = null;
  const gateways: GatewayProcess[] = [];

  before(async () => {
    requireBinary('kdig');
    upstream = await startUnbound();
  });

  after(async () => {
    for (const g of gateways) await g.stop('SIGKILL');
    await upstream?.stop();
  });

  const env = (): NodeJS.ProcessEnv => ({ ...process.env, NODE_EXTRA_CA_CERTS: upstream!.certPath });

  test('answers a.test over UDP and TCP through the pinned upstream', async () => {
    const port = await freePort();
    const gateway = await startGateway({ args: flags('-', port, upstream!, upstream!.pin), env: env() });
    gateways.push(gateway);
    for (const transport of ['+notcp', '+tcp']) {
      const answer = await kdig([transport, '-p', String(port), '@127.0.0.1', ZONE.a.name, 'A']);
      assert.equal(answer.rcode, 'NOERROR', transport);
      assert.deepEqual(
        answer.answers.map((r) => r.data),
        [ZONE.a.A],
        transport,
      );
    }
    assert.deepEqual(await gateway.stop('SIGTERM', 10_000), { code: 0, signal: null });
  });

  test('a wrong -resolver-pin (given with double dashes) yields SERVFAIL', async () => {
    const port = await freePort();
    const wrongPin = createHash('sha256').update('some other key').digest('base64');
    const gateway = await startGateway({ args: flags('--', port, upstream!, wrongPin), env: env() });
    gateways.push(gateway);
    for (const transport of ['+notcp', '+tcp']) {
      const answer = await kdig([
        transport,
        '+timeout=4',
        '-p',
        String(port),
        '@127.0.0.1',
        ZONE.a.name,
        'A',
      ]);
      assert.equal(answer.rcode, 'SERVFAIL', transport);
      assert.equal(answer.answers.length, 0, transport);
    }
  });
});
