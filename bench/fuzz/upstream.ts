// The fuzzer's in-process DoT upstream: a well-behaved resolver that echoes the question bytes
// exactly (as real resolvers do) and answers every query, so any bad reply the fuzzer sees is the
// gateway's own doing, not an artefact of a test server decoding and re-encoding names.
import { type ChildProcess, spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';

export interface EchoUpstream {
  readonly port: number;
  /** Queries received. */
  readonly queries: number;
  /** TLS connections accepted. */
  readonly connections: number;
  close(): Promise<void>;
}

/** A 192.0.2.1 A record whose owner is a pointer to the question name. */
const A_RECORD = Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0x01, 0x2c, 0, 4, 192, 0, 2, 1]);

/** Offset past the question (uncompressed name, type, class) of `msg`, or -1. */
function questionEnd(msg: Buffer): number {
  let pos = 12;
  for (let labels = 0; labels < 128; labels++) {
    if (pos >= msg.length) return -1;
    const len = msg[pos];
    if (len === 0) return pos + 5 <= msg.length ? pos + 5 : -1;
    if (len > 63) return -1;
    pos += len + 1;
  }
  return -1;
}

/** The answer to one query: its header and question echoed, an A record for class IN type A. */
export function echoAnswer(query: Buffer): Buffer | null {
  if (query.length < 12 || query[2] & 0x80) return null;
  const end = query.readUInt16BE(4) === 1 ? questionEnd(query) : -1;
  const head = Buffer.allocUnsafe(12);
  query.copy(head, 0, 0, 2);
  // QR, opcode and RD as asked, RA; FORMERR when there is no readable question
  head[2] = 0x80 | (query[2] & 0x79);
  head[3] = 0x80 | (end < 0 ? 1 : 0);
  if (end < 0) {
    head.fill(0, 4);
    return head;
  }
  const isA = query.readUInt16BE(end - 4) === 1 && query.readUInt16BE(end - 2) === 1;
  head.writeUInt16BE(1, 4);
  head.writeUInt16BE(isA ? 1 : 0, 6);
  head.writeUInt32BE(0, 8);
  return Buffer.concat(isA ? [head, query.subarray(12, end), A_RECORD] : [head, query.subarray(12, end)]);
}

export async function startEchoUpstream(key: string, cert: string): Promise<EchoUpstream> {
  const sockets = new Set<TLSSocket>();
  const stats = { queries: 0, connections: 0 };
  const server = tls.createServer({ key, cert }, (socket) => {
    stats.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let pending: Buffer | null = null;
    socket.on('data', (chunk: Buffer) => {
      let buf = pending === null ? chunk : Buffer.concat([pending, chunk]);
      const out: Buffer[] = [];
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const query = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + query.length);
        stats.queries++;
        const answer = echoAnswer(query);
        if (answer === null) continue;
        const len = Buffer.allocUnsafe(2);
        len.writeUInt16BE(answer.length);
        out.push(len, answer);
      }
      pending = buf.length > 0 ? buf : null;
      if (out.length > 0) socket.write(Buffer.concat(out));
    });
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    get queries() {
      return stats.queries;
    },
    get connections() {
      return stats.connections;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

export interface EchoUpstreamProcess {
  readonly port: number;
  readonly child: ChildProcess;
  stop(): Promise<void>;
}

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MAIN = fileURLToPath(new URL('./upstream-main.ts', import.meta.url));

/** The echo upstream in a child process (tsx runs the TypeScript); resolves once it listens. */
export function spawnEchoUpstream(
  keyPath: string,
  certPath: string,
  timeoutMs = 15_000,
): Promise<EchoUpstreamProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, keyPath, certPath], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.stdin?.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  };
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('echo upstream did not start'));
    }, timeoutMs);
    const onExit = (code: number | null) => {
      clearTimeout(timer);
      reject(new Error(`echo upstream exited (${code}) before listening`));
    };
    child.once('exit', onExit);
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      out += chunk;
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      child.off('exit', onExit);
      resolve({ port: (JSON.parse(out.slice(0, nl)) as { port: number }).port, child, stop });
    });
  });
}
