// URL sources of a list (src/lists/fetch.ts, src/lists/list.ts, src/lists/state.ts) against a
// real HTTP server on loopback: first load, conditional refresh (304), failures keeping the
// last good content (500, timeout, size cap, junk), and restarts with a state_dir copy.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { ManagedList, type SourceLoadReport } from '../../src/lists/list.js';
import { ListManager } from '../../src/lists/manager.js';
import { readStateCopy, stateCopyPath } from '../../src/lists/state.js';
import type { ListConfig } from '../../src/lists/types.js';
import { waitUntil } from '../helpers/lists.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

interface SeenRequest {
  readonly path: string;
  readonly authorization: string | undefined;
  readonly ifNoneMatch: string | undefined;
  readonly ifModifiedSince: string | undefined;
}

/** Requests a test server records; far above what any test here makes. */
const MAX_SEEN = 1000;

/** An HTTP server on 127.0.0.1 whose behaviour a test swaps; records what it was asked. */
class ListServer {
  readonly seen: SeenRequest[] = [];
  handler: Handler = (_req, res) => res.writeHead(404).end();
  private constructor(
    private server: Server,
    readonly port: number,
  ) {}

  static async start(port = 0): Promise<ListServer> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    const ls = new ListServer(server, (server.address() as AddressInfo).port);
    server.on('request', (req, res) => {
      if (ls.seen.length < MAX_SEEN)
        ls.seen.push({
          path: req.url ?? '',
          authorization: req.headers.authorization,
          ifNoneMatch: req.headers['if-none-match'],
          ifModifiedSince: req.headers['if-modified-since'],
        });
      ls.handler(req, res);
    });
    return ls;
  }

  url(path = '/list.txt'): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  /** Serves `body` with validators, answering 304 to a request that carries them. */
  serve(body: string, etag: string, lastModified = 'Mon, 01 Jan 2024 00:00:00 GMT'): void {
    this.handler = (req, res) => {
      if (req.headers['if-none-match'] === etag) {
        res.writeHead(304, { etag }).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain', etag, 'last-modified': lastModified }).end(body);
    };
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dns-tool-lists-fetch-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

let stateCount = 0;
const freshStateDir = () => join(dir, `state-${++stateCount}`);

function urlList(name: string, url: string, extra: Partial<ListConfig> = {}): ListConfig {
  return { name, format: 'domains', files: [], urls: [url], refreshMs: null, mode: 'enforce', ...extra };
}

/** A port nothing listens on (a server bound and closed). */
async function deadPort(): Promise<number> {
  const s = await ListServer.start();
  await s.close();
  return s.port;
}

test('first load, a 304 on refresh keeps the same set, new content swaps in, the copy follows', async () => {
  const server = await ListServer.start();
  const stateDir = freshStateDir();
  const loads: SourceLoadReport[] = [];
  const errors: Error[] = [];
  // Built on a worker thread (the body goes there as a copy; the copy in state_dir is still
  // written from the body as received).
  const list = new ManagedList(urlList('feed', server.url()), {
    stateDir,
    workerMinBytes: 0,
    events: { load: (r) => loads.push(r), error: (_l, e) => errors.push(e) },
  });
  try {
    server.serve('one.example\ntwo.example\n', '"v1"');
    await list.start();
    assert.equal(list.ready, true);
    assert.equal(list.match('www.two.example')?.source, server.url());
    assert.equal(list.match('www.two.example')?.line, 2);
    assert.equal(loads.at(-1)?.origin, 'network');
    assert.equal(server.seen[0].ifNoneMatch, undefined, 'nothing held yet: an unconditional request');
    const copy = await readStateCopy(stateCopyPath(stateDir, 'feed', server.url()), server.url());
    assert.equal(Buffer.from(copy!.body).toString(), 'one.example\ntwo.example\n');
    assert.equal(copy!.meta.etag, '"v1"');

    const set = list.snapshot.sources[0].main;
    assert.equal(await list.refresh(), 'not_modified');
    assert.equal(server.seen[1].ifNoneMatch, '"v1"');
    assert.equal(server.seen[1].ifModifiedSince, 'Mon, 01 Jan 2024 00:00:00 GMT');
    assert.equal(list.snapshot.sources[0].main, set, 'a 304 keeps the set as it is');

    server.serve('three.example\n', '"v2"');
    assert.equal(await list.refresh(), 'success');
    assert.notEqual(list.match('three.example'), null);
    assert.equal(list.match('one.example'), null);
    const copy2 = await readStateCopy(stateCopyPath(stateDir, 'feed', server.url()), server.url());
    assert.equal(Buffer.from(copy2!.body).toString(), 'three.example\n');
    assert.deepEqual(list.stats().refreshes, { success: 2, not_modified: 1, failure: 0 });
    assert.deepEqual(errors, [], 'no fallback from the worker');
    // No temporary files are left beside the copy.
    assert.deepEqual(
      (await readdir(join(stateDir, 'lists'))).filter((f) => f.endsWith('.tmp')),
      [],
    );
  } finally {
    await list.close();
    await server.close();
  }
});

test('a 500, a junk body and an unchanged body keep the last good content', async () => {
  const server = await ListServer.start();
  const stateDir = freshStateDir();
  const list = new ManagedList(urlList('keep', server.url()), { stateDir });
  const copyPath = stateCopyPath(stateDir, 'keep', server.url());
  try {
    server.serve('good.example\n', '"g"');
    await list.start();
    const lastSuccess = list.stats().lastSuccessMs;
    const copyMtime = (await stat(copyPath)).mtimeMs;

    server.handler = (_req, res) => res.writeHead(500).end('oops');
    assert.equal(await list.refresh(), 'failure');
    assert.equal(list.stats().sources[0].lastErrorCode, 'LIST_HTTP_STATUS');
    assert.match(list.stats().sources[0].lastError ?? '', /HTTP 500/);
    assert.notEqual(list.match('good.example'), null);
    assert.equal(list.stats().lastSuccessMs, lastSuccess);

    // A captive portal or error page served as 200.
    server.handler = (_req, res) => res.writeHead(200).end('<html>\n<body>Sign in</body>\n</html>\n');
    assert.equal(await list.refresh(), 'failure');
    assert.equal(list.stats().sources[0].lastErrorCode, 'LIST_NO_ENTRIES');
    assert.notEqual(list.match('good.example'), null);
    const copy = await readStateCopy(copyPath, server.url());
    assert.equal(Buffer.from(copy!.body).toString(), 'good.example\n', 'the copy is still the good content');

    // A server without validators sending the same body: hashed, not rebuilt, copy untouched.
    const set = list.snapshot.sources[0].main;
    server.handler = (_req, res) => res.writeHead(200).end('good.example\n');
    assert.equal(await list.refresh(), 'not_modified');
    assert.equal(list.snapshot.sources[0].main, set);
    assert.deepEqual(list.stats().refreshes, { success: 1, not_modified: 1, failure: 2 });
    assert.ok((await stat(copyPath)).mtimeMs >= copyMtime);
  } finally {
    await list.close();
    await server.close();
  }
});

test('no answer, or a body that never ends, times out and keeps the content', async () => {
  const server = await ListServer.start();
  const list = new ManagedList(urlList('slow', server.url()), { fetchTimeoutMs: 300 });
  const open: ServerResponse[] = [];
  try {
    server.serve('fast.example\n', '"f"');
    await list.start();

    server.handler = (_req, res) => {
      open.push(res); // never answered
    };
    const t0 = performance.now();
    assert.equal(await list.refresh(), 'failure');
    assert.equal(list.stats().sources[0].lastErrorCode, 'LIST_FETCH_TIMEOUT');
    assert.ok(performance.now() - t0 < 5000);

    server.handler = (_req, res) => {
      open.push(res);
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial.example\n'); // and nothing more
    };
    assert.equal(await list.refresh(), 'failure');
    assert.equal(list.stats().sources[0].lastErrorCode, 'LIST_FETCH_TIMEOUT');
    assert.notEqual(list.match('fast.example'), null);
    assert.equal(list.match('partial.example'), null);
  } finally {
    await list.close();
    for (const res of open) res.destroy();
    await server.close();
  }
});

test('a body over the size cap is refused, declared or streamed, and the transfer is cut', async () => {
  const server = await ListServer.start();
  const list = new ManagedList(urlList('big', server.url()), { maxBytes: 64 * 1024 });
  let written = 0;
  let aborted = false;
  try {
    server.handler = (_req, res) => res.writeHead(200, { 'content-length': String(10 * 1024 * 1024) }).end();
    await list.start();
    assert.equal(list.ready, false);
    assert.equal(list.stats().sources[0].lastErrorCode, 'LIST_TOO_LARGE');

    const CHUNKS = 400; // 400 × 16 KiB: far past the cap, bounded
    server.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' }); // chunked: no length to go by
      const line = Buffer.from('x.example\n'.repeat(1638));
      res.on('close', () => {
        aborted = written < CHUNKS;
      });
      const pump = (): void => {
        if (res.destroyed || written >= CHUNKS) {
          res.end();
          return;
        }
        written++;
        res.write(line);
        setTimeout(pump, 2);
      };
      pump();
    };
    assert.equal(await list.refresh(), 'failure');
    assert.equal(list.stats().sources[0].lastErrorCode, 'LIST_TOO_LARGE');
    await waitUntil(() => aborted || written >= CHUNKS, 'the server to see the transfer end');
    assert.ok(aborted, `the client cut the transfer (after ${written} of ${CHUNKS} chunks)`);
  } finally {
    await list.close();
    await server.close();
  }
});

test('restart with state_dir: server down → the copy; server up → a conditional first request', async () => {
  const stateDir = freshStateDir();
  let server = await ListServer.start();
  const port = server.port;
  const url = server.url();
  server.serve('copied.example\n', '"c1"');
  const first = new ManagedList(urlList('threats', url), { stateDir });
  await first.start();
  await first.close();
  await server.close();

  // Down: the copy serves, the fetch counts as a failure.
  const loads: SourceLoadReport[] = [];
  const second = new ManagedList(urlList('threats', url), {
    stateDir,
    fetchTimeoutMs: 2000,
    events: { load: (r) => loads.push(r) },
  });
  await second.start();
  try {
    assert.equal(second.ready, true);
    assert.notEqual(second.match('copied.example'), null);
    assert.equal(loads[0].origin, 'state_copy');
    assert.equal(loads[0].result, 'failure');
    assert.equal(loads[0].error?.code, 'LIST_FETCH_FAILED');
  } finally {
    await second.close();
  }

  // Up again, unchanged: the first request carries the copy's validators and gets a 304.
  server = await ListServer.start(port);
  server.serve('copied.example\n', '"c1"');
  const third = new ManagedList(urlList('threats', url), { stateDir });
  try {
    await third.start();
    assert.equal(server.seen[0].ifNoneMatch, '"c1"');
    assert.equal(third.stats().sources[0].origin, 'state_copy');
    assert.equal(third.stats().sources[0].lastResult, 'not_modified');
    assert.notEqual(third.match('copied.example'), null);
  } finally {
    await third.close();
    await server.close();
  }
});

test('no copy and the server down: never loaded, not ready, until a refresh succeeds', async () => {
  const port = await deadPort();
  const url = `http://127.0.0.1:${port}/list.txt`;
  const manager = new ListManager({ fetchTimeoutMs: 2000 });
  let server: ListServer | null = null;
  try {
    await manager.apply({ lists: [urlList('never', url)], stateDir: freshStateDir() });
    assert.equal(manager.ready, false);
    const missing = manager.notReady();
    assert.deepEqual(
      missing.map((m) => [m.list, m.kind, m.source]),
      [['never', 'url', url]],
    );
    assert.match(missing[0].error ?? '', /ECONNREFUSED/);
    assert.equal(manager.get('never')?.match('anything.example'), null);

    server = await ListServer.start(port);
    server.serve('now.example\n', '"n"');
    assert.equal(await manager.get('never')!.refresh(), 'success');
    assert.equal(manager.ready, true);
  } finally {
    await manager.close();
    await server?.close();
  }
});

test('the refresh timer fetches again; after a failure it retries sooner, backing off', async () => {
  const server = await ListServer.start();
  server.serve('timed.example\n', '"t"');
  const list = new ManagedList(urlList('timed', server.url(), { refreshMs: 1000 }));
  try {
    await list.start();
    await waitUntil(() => server.seen.length >= 2, 'a timed refresh', 10_000);
    assert.equal(server.seen[1].ifNoneMatch, '"t"');
  } finally {
    await list.close();
  }

  server.seen.length = 0;
  server.handler = (_req, res) => res.writeHead(503).end();
  const failing = new ManagedList(urlList('failing', server.url(), { refreshMs: 3_600_000 }), {
    retryMinMs: 50,
  });
  try {
    await failing.start();
    // 50 ms, then 100, then 200: four failures well within seconds, with a period of an hour.
    await waitUntil(() => failing.stats().refreshes.failure >= 4, 'retries after failures', 10_000);
    assert.ok(server.seen.length >= 4);
  } finally {
    await failing.close();
    await server.close();
  }
});

test('gzip bodies are decoded, redirects followed, and only http(s) URLs fetched', async () => {
  const server = await ListServer.start();
  const list = new ManagedList(urlList('gz', server.url('/start')));
  const local = new ManagedList(urlList('local', 'file:///etc/hostname'));
  try {
    server.handler = (req, res) => {
      if (req.url === '/start') res.writeHead(302, { location: '/final' }).end();
      else res.writeHead(200, { 'content-encoding': 'gzip' }).end(gzipSync('zipped.example\n'));
    };
    await list.start();
    assert.notEqual(list.match('zipped.example'), null);
    assert.deepEqual(
      server.seen.map((s) => s.path),
      ['/start', '/final'],
    );
    await local.start();
    assert.equal(local.ready, false);
    assert.equal(local.stats().sources[0].lastErrorCode, 'LIST_BAD_URL');
  } finally {
    await list.close();
    await local.close();
    await server.close();
  }
});

test('closing a list during a hung fetch returns at once, without waiting for the timeout', async () => {
  const server = await ListServer.start();
  const open: ServerResponse[] = [];
  server.handler = (_req, res) => {
    open.push(res);
  };
  const list = new ManagedList(urlList('hung', server.url()), { fetchTimeoutMs: 60_000 });
  try {
    const starting = list.start();
    await waitUntil(() => server.seen.length === 1, 'the request to arrive');
    const t0 = performance.now();
    await list.close();
    await starting;
    assert.ok(performance.now() - t0 < 5000, 'close did not wait for the 60 s timeout');
    assert.equal(list.ready, false);
  } finally {
    for (const res of open) res.destroy();
    await server.close();
  }
});

test('tokens in a URL stay out of messages, reports, hits and the state_dir copy', async () => {
  const server = await ListServer.start();
  const stateDir = freshStateDir();
  const url = `${server.url()}?token=SECRET1`;
  const reports: SourceLoadReport[] = [];
  const list = new ManagedList(urlList('vendor', url), {
    stateDir,
    events: { load: (r) => reports.push(r) },
  });
  const withAuth = new ManagedList(urlList('auth', `http://user:SECRET2@127.0.0.1:${server.port}/list.txt`));
  try {
    server.serve('vendor.example\nnot a name\n', '"t"');
    await list.start();
    assert.equal(server.seen[0].path, '/list.txt?token=SECRET1', 'the full URL is what is fetched');
    assert.equal(list.match('vendor.example')?.source, `${server.url()}?…`);
    server.handler = (_req, res) => res.writeHead(500).end();
    await list.refresh();
    await withAuth.start();
    const copyDir = join(stateDir, 'lists');
    const copies = await readdir(copyDir);
    const shown = JSON.stringify({
      reports,
      stats: [list.stats(), withAuth.stats()],
      copies,
      copy: await readFile(join(copyDir, copies[0]), 'utf8'),
    });
    assert.doesNotMatch(shown, /SECRET/);
    assert.match(shown, /HTTP 500/);
    // Credentials in the URL are sent as Basic authentication.
    const authRequest = server.seen.find((r) => r.authorization !== undefined);
    assert.equal(authRequest?.authorization, `Basic ${Buffer.from('user:SECRET2').toString('base64')}`);
    assert.equal(withAuth.ready, false, 'the server answered 500 to it');
    // The copy is still found for the URL it was made from.
    const copy = await readStateCopy(stateCopyPath(stateDir, 'vendor', url), url);
    assert.equal(Buffer.from(copy!.body).toString(), 'vendor.example\nnot a name\n');
    assert.equal(await readStateCopy(stateCopyPath(stateDir, 'vendor', url), server.url()), null);
  } finally {
    await list.close();
    await withAuth.close();
    await server.close();
  }
});
