// Tests the admin HTTP server over real loopback sockets: /healthz, /readyz switching,
// /metrics from a live Counters object, methods, unknown paths, bind errors and close.
import assert from 'node:assert/strict';
import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { createMetricsRegistry } from '../../src/admin/metrics.js';
import { AdminServer, type Readiness } from '../../src/admin/server.js';
import { createLogger } from '../../src/log.js';
import { Counters } from '../../src/metrics/counters.js';

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

function request(
  port: number,
  method: string,
  path: string,
  host = '127.0.0.1',
  agent?: Agent,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host, port, method, path, agent: agent ?? false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

class LogCapture extends Writable {
  readonly lines: Array<Record<string, unknown>> = [];
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    for (const line of chunk.toString('utf8').split('\n')) if (line !== '') this.lines.push(JSON.parse(line));
    done();
  }
}

describe('AdminServer', () => {
  const counters = new Counters();
  let readiness: Readiness = { ready: false, reason: 'listeners not bound' };
  const log = new LogCapture();
  let server: AdminServer;
  const registry = createMetricsRegistry(counters);

  before(async () => {
    counters.forPolicy('office').allowed = 42;
    counters.cacheHits = 7;
    server = new AdminServer({
      address: '127.0.0.1',
      port: 0,
      registry,
      readiness: () => readiness,
      logger: createLogger('info', log),
    });
    assert.equal(server.port, 0);
    await server.listen();
  });

  after(async () => {
    await server.close();
  });

  test('binds an assigned port when asked for port 0', () => {
    assert.ok(server.port > 0 && server.port < 65536);
  });

  test('/healthz answers 200 ok', async () => {
    const r = await request(server.port, 'GET', '/healthz');
    assert.equal(r.status, 200);
    assert.equal(r.body, 'ok\n');
    assert.equal(r.headers['content-type'], 'text/plain; charset=utf-8');
  });

  test('/readyz follows the readiness callback', async () => {
    readiness = { ready: false, reason: 'listeners not bound' };
    let r = await request(server.port, 'GET', '/readyz');
    assert.equal(r.status, 503);
    assert.equal(r.headers['content-type'], 'application/json; charset=utf-8');
    assert.deepEqual(JSON.parse(r.body), { ready: false, reason: 'listeners not bound' });

    readiness = { ready: true };
    r = await request(server.port, 'GET', '/readyz');
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), { ready: true });

    readiness = {
      ready: false,
      reason: 'no reachable server in upstream set',
      details: { sets: ['default'] },
    };
    r = await request(server.port, 'GET', '/readyz');
    assert.equal(r.status, 503);
    assert.deepEqual(JSON.parse(r.body), {
      ready: false,
      reason: 'no reachable server in upstream set',
      details: { sets: ['default'] },
    });

    readiness = { ready: false };
    r = await request(server.port, 'GET', '/readyz');
    assert.deepEqual(JSON.parse(r.body), { ready: false, reason: 'not ready' });
  });

  test('/metrics serves the Counters values at scrape time', async () => {
    let r = await request(server.port, 'GET', '/metrics');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], registry.contentType);
    assert.equal(r.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
    assert.equal(Number(r.headers['content-length']), Buffer.byteLength(r.body));
    assert.match(r.body, /^# TYPE dns_tool_queries_total counter$/m);
    assert.match(r.body, /^dns_tool_queries_total\{policy="office",decision="allowed"\} 42$/m);
    assert.match(r.body, /^dns_tool_cache_hits_total 7$/m);

    counters.forPolicy('office').allowed++;
    counters.cacheHits += 3;
    r = await request(server.port, 'GET', '/metrics?scrape=2');
    assert.equal(r.status, 200);
    assert.match(r.body, /^dns_tool_queries_total\{policy="office",decision="allowed"\} 43$/m);
    assert.match(r.body, /^dns_tool_cache_hits_total 10$/m);
  });

  test('HEAD gets headers without a body', async () => {
    const metrics = await request(server.port, 'HEAD', '/metrics');
    assert.equal(metrics.status, 200);
    assert.equal(metrics.body, '');
    assert.ok(Number(metrics.headers['content-length']) > 0);
    const health = await request(server.port, 'HEAD', '/healthz');
    assert.equal(health.status, 200);
    assert.equal(health.body, '');
  });

  test('other methods get 405 with Allow, unknown paths 404', async () => {
    const post = await request(server.port, 'POST', '/metrics');
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');
    const del = await request(server.port, 'DELETE', '/readyz');
    assert.equal(del.status, 405);
    for (const path of ['/', '/metrics/', '/healthz/x', '/favicon.ico']) {
      const r = await request(server.port, 'GET', path);
      assert.equal(r.status, 404, path);
    }
  });

  test('logs nothing per request at info', async () => {
    const before = log.lines.length;
    for (let i = 0; i < 5; i++) await request(server.port, 'GET', '/metrics');
    assert.equal(log.lines.length, before);
    assert.ok(log.lines.some((l) => l.msg === 'admin server listening' && l.port === server.port));
  });
});

describe('AdminServer edge cases', () => {
  const silent = (): ReturnType<typeof createLogger> => createLogger('silent', new LogCapture());

  test('a readiness callback that throws answers 503', async () => {
    const server = new AdminServer({
      address: '127.0.0.1',
      port: 0,
      registry: createMetricsRegistry(new Counters()),
      readiness: () => {
        throw new Error('boom');
      },
      logger: silent(),
    });
    await server.listen();
    try {
      const r = await request(server.port, 'GET', '/readyz');
      assert.equal(r.status, 503);
      assert.deepEqual(JSON.parse(r.body), { ready: false, reason: 'readiness check failed' });
    } finally {
      await server.close();
    }
  });

  test('listen rejects with EADDRINUSE when the port is taken', async () => {
    const holder = createTcpServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const address = holder.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    const server = new AdminServer({
      address: '127.0.0.1',
      port,
      registry: createMetricsRegistry(new Counters()),
      readiness: () => ({ ready: true }),
      logger: silent(),
    });
    try {
      await assert.rejects(server.listen(), (error: NodeJS.ErrnoException) => {
        assert.equal(error.code, 'EADDRINUSE');
        assert.match(error.message, new RegExp(`127\\.0\\.0\\.1:${port}.*EADDRINUSE`));
        return true;
      });
      await server.close();
    } finally {
      await new Promise<void>((resolve) => holder.close(() => resolve()));
    }
  });

  test('close ends keep-alive connections and stops accepting', async () => {
    const server = new AdminServer({
      address: '127.0.0.1',
      port: 0,
      registry: createMetricsRegistry(new Counters()),
      readiness: () => ({ ready: true }),
      logger: silent(),
    });
    await server.listen();
    const port = server.port;
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      assert.equal((await request(port, 'GET', '/healthz', '127.0.0.1', agent)).status, 200);
      assert.equal((await request(port, 'GET', '/metrics', '127.0.0.1', agent)).status, 200);
      const started = performance.now();
      await server.close();
      assert.ok(performance.now() - started < 1000, 'close waited on an idle keep-alive socket');
      await server.close();
      await assert.rejects(request(port, 'GET', '/healthz'), { code: 'ECONNREFUSED' });
    } finally {
      agent.destroy();
    }
  });

  test('serves on IPv6 loopback and logs requests at debug', async (t) => {
    const log = new LogCapture();
    const server = new AdminServer({
      address: '::1',
      port: 0,
      registry: createMetricsRegistry(new Counters()),
      readiness: () => ({ ready: true }),
      logger: createLogger('debug', log),
    });
    try {
      await server.listen();
    } catch (error) {
      if (
        (error as NodeJS.ErrnoException).code === 'EADDRNOTAVAIL' ||
        (error as NodeJS.ErrnoException).code === 'EAFNOSUPPORT'
      ) {
        t.skip('no IPv6 loopback');
        return;
      }
      throw error;
    }
    try {
      const r = await request(server.port, 'GET', '/readyz', '::1');
      assert.equal(r.status, 200);
      assert.deepEqual(JSON.parse(r.body), { ready: true });
      assert.ok(
        log.lines.some((l) => l.msg === 'admin request' && l.path === '/readyz' && l.method === 'GET'),
      );
    } finally {
      await server.close();
    }
  });
});
