// Reference only, not the product: the least a Node UDP → pipelined DoT forwarder can do
// (no policy, no cache, no validation of answers). Usage: node bare-forwarder.mjs PORT HOST DOTPORT NAME CAFILE
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';

const [port, host, dotPort, name, caFile] = process.argv.slice(2);
const pending = new Map(); // upstream id → [client id, address, port]
let nextId = 0;
let batch = [];
let scheduled = false;
let buf = Buffer.alloc(0);
const tlsSock = tls.connect({ host, port: Number(dotPort), servername: name, ca: readFileSync(caFile) });
tlsSock.setNoDelay(true);
const udp = dgram.createSocket('udp4');
const flush = () => {
  scheduled = false;
  const out = Buffer.concat(batch);
  batch = [];
  // first byte in its own TLS record: unbound 1.17 holds answers otherwise
  tlsSock.write(out.subarray(0, 1));
  tlsSock.write(out.subarray(1));
};
udp.on('message', (msg, r) => {
  if (msg.length < 12) return;
  const id = (nextId = (nextId + 1) & 0xffff);
  pending.set(id, [msg.readUInt16BE(0), r.address, r.port]);
  const framed = Buffer.allocUnsafe(msg.length + 2);
  framed.writeUInt16BE(msg.length, 0);
  msg.copy(framed, 2);
  framed.writeUInt16BE(id, 2);
  batch.push(framed);
  if (!scheduled) { scheduled = true; setImmediate(flush); }
});
tlsSock.on('data', (chunk) => {
  buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
  while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
    const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
    buf = buf.subarray(2 + msg.length);
    const p = pending.get(msg.readUInt16BE(0));
    if (!p) continue;
    pending.delete(msg.readUInt16BE(0));
    msg.writeUInt16BE(p[0], 0);
    udp.send(msg, p[2], p[1]);
  }
});
udp.bind(Number(port), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
