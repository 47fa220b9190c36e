// Free loopback ports for tests that need the same number on UDP and TCP.
import dgram from 'node:dgram';
import net from 'node:net';

function tryTcp(port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(port, host, () => {
      const p = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(p));
    });
  });
}

function tryUdp(port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', (err) => {
      s.close();
      reject(err);
    });
    s.bind(port, host, () => s.close(() => resolve()));
  });
}

/** A port free for both TCP and UDP on `host` (tries at most 50 candidates). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = await tryTcp(0, host);
    try {
      await tryUdp(port, host);
      return port;
    } catch {
      // taken on UDP; try another
    }
  }
  throw new Error('no free port found');
}
