// Reference only, not the product: a Node UDP socket answering every query with one canned
// A record — the ceiling of Node's dgram path on one core. Usage: node bare-responder.mjs PORT
import dgram from 'node:dgram';
import net from 'node:net';

const port = Number(process.argv[2]);
// answer = query header/question + one A record pointing back at the name (0xc00c)
const RR = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x01, 0x2c, 0, 4, 198, 18, 0, 1]);
function answer(q) {
  let end = 12;
  while (end < q.length && q[end] !== 0) end += q[end] + 1;
  end += 5;
  const out = Buffer.allocUnsafe(end + RR.length);
  q.copy(out, 0, 0, end);
  out[2] = 0x81; out[3] = 0x80;
  out.writeUInt16BE(1, 6); out.writeUInt16BE(0, 8); out.writeUInt16BE(0, 10);
  RR.copy(out, end);
  return out;
}
const udp = dgram.createSocket('udp4');
udp.on('message', (msg, r) => { if (msg.length >= 12) udp.send(answer(msg), r.port, r.address); });
udp.bind(port, '127.0.0.1');
// TCP only so the harness's readiness and sanity checks get an answer
net.createServer((s) => s.on('data', (d) => {
  const q = d.subarray(2);
  const a = answer(q);
  const len = Buffer.alloc(2); len.writeUInt16BE(a.length);
  s.write(Buffer.concat([len, a]));
})).listen(port, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
