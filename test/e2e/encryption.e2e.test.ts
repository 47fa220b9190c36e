// Proves on the wire that a queried name never crosses loopback in cleartext towards the upstream:
// tcpdump captures the DoT port while the same name is visible in a capture of the client side.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isCi, requireBinary, skipUnlessBinaries } from '../helpers/binaries.js';
import { freePort } from '../helpers/ports.js';
import { type GatewayProcess, kdig, startGateway } from '../helpers/proc.js';
import { startUnbound, type UnboundUpstream, unboundServerEntry, ZONE } from '../helpers/unbound.js';

const runningAsRoot = process.getuid?.() === 0;

interface Capture {
  readonly file: string;
  /** SIGINT, then resolves once tcpdump has flushed and exited. */
  stop(): Promise<void>;
}

/** Starts `tcpdump -i lo -U -w file FILTER` and resolves once it says it is listening. */
function startCapture(file: string, filter: string): Promise<Capture> {
  const tcpdump = requireBinary('tcpdump');
  return new Promise((resolve, reject) => {
    // --immediate-mode: without it, packets still in the kernel ring when SIGINT arrives are never
    // written (seen as "N received by filter, 0 captured"). -Z root: the capture file lives in a
    // private temp dir that the unprivileged tcpdump user could not write to.
    const args = ['-i', 'lo', '--immediate-mode', '-U', '-n', '-s', '0', '-w', file];
    if (runningAsRoot) args.push('-Z', 'root');
    const child: ChildProcess = spawn(tcpdump, [...args, filter], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    const exited = new Promise<void>((done) => child.once('exit', () => done()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`tcpdump did not start listening within 10 s: ${stderr}`));
    }, 10_000);
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      if (stderr.length < 64 * 1024) stderr += chunk;
      if (stderr.includes('listening on')) {
        clearTimeout(timer);
        resolve({
          file,
          stop: async () => {
            if (child.exitCode !== null || child.signalCode !== null) return;
            child.kill('SIGINT');
            const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
            await exited;
            clearTimeout(kill);
          },
        });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (!stderr.includes('listening on')) reject(new Error(`tcpdump exited (${code}): ${stderr}`));
    });
  });
}

/** Number of packets in a classic pcap file (24-byte global header, 16-byte record headers). */
function pcapPacketCount(pcap: Buffer): number {
  assert.ok(pcap.length >= 24, 'not a pcap file');
  const magic = pcap.readUInt32LE(0);
  const little = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  let count = 0;
  for (let offset = 24; offset + 16 <= pcap.length; count++) {
    const capLen = little ? pcap.readUInt32LE(offset + 8) : pcap.readUInt32BE(offset + 8);
    offset += 16 + capLen;
  }
  return count;
}

/** The name in DNS wire form (length-prefixed labels, root label last). */
function wireName(name: string): Buffer {
  const parts = name
    .split('.')
    .map((label) => Buffer.concat([Buffer.from([label.length]), Buffer.from(label)]));
  return Buffer.concat([...parts, Buffer.from([0])]);
}

// Case-insensitive byte search: a forwarder may randomise the case of the name (0x20 encoding).
function contains(haystack: Buffer, needle: Buffer): boolean {
  return haystack.toString('latin1').toLowerCase().includes(needle.toString('latin1').toLowerCase());
}

describe('upstream traffic is encrypted', {
  skip:
    skipUnlessBinaries('unbound', 'unbound-checkconf', 'kdig', 'openssl', 'tcpdump') ||
    (!runningAsRoot && !isCi() ? 'tcpdump needs root' : false),
}, () => {
  let upstream: UnboundUpstream | null = null;
  let gateway: GatewayProcess | null = null;
  let port = 0;
  let dir = '';

  before(async () => {
    requireBinary('kdig');
    dir = mkdtempSync(join(tmpdir(), 'dns-tool-capture-'));
    upstream = await startUnbound();
    port = await freePort();
    const configPath = join(dir, 'config.yaml');
    writeFileSync(
      configPath,
      `version: 1
listeners: [{ name: t, address: 127.0.0.1, port: ${port} }]
upstreams:
  default:
    servers: [${unboundServerEntry(upstream)}]
policies:
  - { name: local, clients: [127.0.0.0/8], upstream: default }
limits: { timeout_ms: 2000 }
log: { level: info }
`,
    );
    gateway = await startGateway({ args: ['--config', configPath] });
  });

  after(async () => {
    await gateway?.stop('SIGKILL');
    await upstream?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the queried name appears on the client side and never on the DoT connection', async () => {
    const label = `secret-${randomBytes(6).toString('hex')}`;
    const name = `${label}.${ZONE.wild.suffix}`;
    const upstreamCapture = await startCapture(join(dir, 'upstream.pcap'), `tcp port ${upstream!.dotPort}`);
    let clientCapture: Capture | null = null;
    try {
      clientCapture = await startCapture(join(dir, 'client.pcap'), `port ${port}`);
      for (const transport of ['+notcp', '+tcp']) {
        const answer = await kdig([transport, '-p', String(port), '@127.0.0.1', name, 'A']);
        assert.equal(answer.rcode, 'NOERROR', transport);
        assert.deepEqual(
          answer.answers.map((r) => r.data),
          [ZONE.wild.A],
        );
      }
      // a second, uncached type so the name certainly crosses the upstream connection again
      await kdig(['-p', String(port), '@127.0.0.1', name, 'AAAA']);
    } finally {
      await clientCapture?.stop();
      await upstreamCapture.stop();
    }

    const upstreamBytes = readFileSync(upstreamCapture.file);
    const clientBytes = readFileSync(join(dir, 'client.pcap'));
    assert.ok(
      pcapPacketCount(upstreamBytes) > 0,
      'no packets on the DoT port: the query never went upstream',
    );
    // TLS 1.2/1.3 application-data records start 17 03 03
    assert.ok(contains(upstreamBytes, Buffer.from([0x17, 0x03, 0x03])), 'no TLS application data seen');
    assert.ok(!contains(upstreamBytes, Buffer.from(label)), `"${label}" visible in the DoT capture`);
    assert.ok(!contains(upstreamBytes, wireName(name)), 'wire-form name visible in the DoT capture');

    // control: the capture method does see the name where it is cleartext by design
    assert.ok(pcapPacketCount(clientBytes) > 0);
    assert.ok(contains(clientBytes, wireName(name)), 'control capture does not contain the name');
    assert.ok(contains(clientBytes, Buffer.from(label)));
  });
});
