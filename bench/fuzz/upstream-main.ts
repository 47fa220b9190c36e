// Runs the fuzzer's echo upstream in a process of its own (so the sender's busy event loop never
// delays its answers): `upstream-main.ts KEY.pem CERT.pem` prints `{"port":N}` and serves until
// its stdin closes or it gets SIGTERM.
import { readFileSync } from 'node:fs';
import { startEchoUpstream } from './upstream.js';

const [keyPath, certPath] = process.argv.slice(2);
if (!keyPath || !certPath) {
  console.error('usage: upstream-main.ts KEY.pem CERT.pem');
  process.exit(2);
}
const upstream = await startEchoUpstream(readFileSync(keyPath, 'utf8'), readFileSync(certPath, 'utf8'));
process.stdout.write(`${JSON.stringify({ port: upstream.port })}\n`);
const stop = async () => {
  await upstream.close();
  process.exit(0);
};
process.stdin.on('end', stop);
process.stdin.resume();
process.on('SIGTERM', stop);
