// Free loopback ports for tests that need the same number on UDP and TCP (DNS listeners
// bind both).
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

function bindTcp(port: number, host: string): Promise<{ port: number; close: () => Promise<void> } | null> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(null));
    server.listen({ host, port, exclusive: true }, () => {
      const address = server.address();
      const bound = typeof address === 'object' && address !== null ? address.port : 0;
      resolve({ port: bound, close: () => new Promise((done) => server.close(() => done())) });
    });
  });
}

function udpFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    socket.once('error', () => {
      socket.close();
      resolve(false);
    });
    socket.bind({ address: host, port, exclusive: true }, () => socket.close(() => resolve(true)));
  });
}

/**
 * A port on `host` free for both TCP and UDP right now. The kernel picks it on TCP, which
 * stays bound while UDP is tried; the usual close-then-reuse race is accepted because the
 * ephemeral range is large. At most 50 candidates.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const tcp = await bindTcp(0, host);
    if (tcp === null) continue;
    const ok = await udpFree(tcp.port, host);
    await tcp.close();
    if (ok) return tcp.port;
  }
  throw new Error(`no port on ${host} free for both TCP and UDP after 50 attempts`);
}
