// Exercises the config file watcher against real files and real OS file events: in-place writes,
// rename-over, the Kubernetes ConfigMap symlink swap, debouncing, the fallback poll and close().
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type ConfigWatcher, watchConfigFile } from '../../src/config/watch.js';

// Upper bound for an expected call; the brief allows 3 s and the event path needs far less.
const CALL_TIMEOUT_MS = 3000;
// A large poll interval keeps the fallback poll out of tests that are about the event path.
const NO_POLL_MS = 60_000;
const DEBOUNCE_MS = 50;
// Proving that something did NOT happen needs the OS to deliver its events and the debounce to
// run out; there is no clock to inject for the kernel, so these tests wait this long, bounded.
const SETTLE_MS = DEBOUNCE_MS + 400;

const settle = (ms = SETTLE_MS) => new Promise<void>((done) => setTimeout(done, ms));

/** Counts calls and lets a test await the n-th one, bounded in time. */
class CallCounter {
  count = 0;
  private readonly waiters: { n: number; done: () => void }[] = [];

  readonly fn = (): void => {
    this.count++;
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const waiter = this.waiters[i];
      if (this.count >= waiter.n) {
        this.waiters.splice(i, 1);
        waiter.done();
      }
    }
  };

  waitFor(n: number, what: string, timeoutMs = CALL_TIMEOUT_MS): Promise<void> {
    if (this.count >= n) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`${what}: expected ${n} call(s) within ${timeoutMs} ms, saw ${this.count}`));
      }, timeoutMs);
      this.waiters.push({
        n,
        done: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }
}

interface Fixture {
  dir: string;
  errors: unknown[];
  watch(
    path: string,
    onChange: () => void,
    opts?: { debounceMs?: number; pollMs?: number },
  ): Promise<ConfigWatcher>;
}

/** A temp directory plus watchers that are all closed, and the directory removed, after the test. */
async function fixture(t: TestContext): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'dns-tool-watch-'));
  const watchers: ConfigWatcher[] = [];
  const errors: unknown[] = [];
  t.after(async () => {
    await Promise.all(watchers.map((w) => w.close()));
    await rm(dir, { recursive: true, force: true });
  });
  return {
    dir,
    errors,
    async watch(path, onChange, opts = {}) {
      const w = await watchConfigFile(path, onChange, {
        debounceMs: opts.debounceMs ?? DEBOUNCE_MS,
        pollMs: opts.pollMs ?? NO_POLL_MS,
        onError: (err) => errors.push(err),
      });
      watchers.push(w);
      return w;
    },
  };
}

test('an in-place write to the file calls onChange', async (t) => {
  const fx = await fixture(t);
  const path = join(fx.dir, 'config.yaml');
  await writeFile(path, 'version: 1\n');
  const calls = new CallCounter();
  await fx.watch(path, calls.fn);

  await writeFile(path, 'version: 1\n# edited in place\n');
  await calls.waitFor(1, 'in-place write');
  assert.deepEqual(fx.errors, []);
});

test('writing a temp file and renaming it over the config calls onChange', async (t) => {
  const fx = await fixture(t);
  const path = join(fx.dir, 'config.yaml');
  await writeFile(path, 'version: 1\n');
  const calls = new CallCounter();
  await fx.watch(path, calls.fn);

  const temp = join(fx.dir, '.config.yaml.tmp');
  await writeFile(temp, 'version: 1\n# saved by an editor\n');
  await rename(temp, path);
  await calls.waitFor(1, 'rename over');
  assert.equal(await readFile(path, 'utf8'), 'version: 1\n# saved by an editor\n');
  assert.deepEqual(fx.errors, []);
});

test('the Kubernetes ConfigMap ..data symlink swap calls onChange and the path reads the new content', async (t) => {
  const fx = await fixture(t);
  // The layout kubelet's atomic writer produces.
  await mkdir(join(fx.dir, '..2026_a'));
  await writeFile(join(fx.dir, '..2026_a', 'config.yaml'), 'generation: a\n');
  await symlink('..2026_a', join(fx.dir, '..data'));
  const path = join(fx.dir, 'config.yaml');
  await symlink(join('..data', 'config.yaml'), path);
  const calls = new CallCounter();
  await fx.watch(path, calls.fn);

  await mkdir(join(fx.dir, '..2026_b'));
  await writeFile(join(fx.dir, '..2026_b', 'config.yaml'), 'generation: b\n');
  await symlink('..2026_b', join(fx.dir, '..data_tmp'));
  await rename(join(fx.dir, '..data_tmp'), join(fx.dir, '..data'));
  await rm(join(fx.dir, '..2026_a'), { recursive: true });

  await calls.waitFor(1, 'ConfigMap swap');
  assert.equal(await readFile(path, 'utf8'), 'generation: b\n');
  // The swap and the removal of the old generation are one change, not several.
  await settle();
  assert.equal(calls.count, 1);
  assert.deepEqual(fx.errors, []);
});

test('a burst of 10 writes within 50 ms is debounced into one or two calls', async (t) => {
  const fx = await fixture(t);
  const path = join(fx.dir, 'config.yaml');
  await writeFile(path, 'version: 1\n');
  const calls = new CallCounter();
  await fx.watch(path, calls.fn, { debounceMs: 200 });

  const started = Date.now();
  for (let i = 0; i < 10; i++) await writeFile(path, `version: 1\n# write ${i}\n`);
  const burstMs = Date.now() - started;
  assert.ok(burstMs < 200, `the burst itself took ${burstMs} ms, longer than the debounce`);

  await calls.waitFor(1, 'burst of writes');
  await settle(200 + 400);
  assert.ok(calls.count >= 1 && calls.count <= 2, `expected 1 or 2 calls, saw ${calls.count}`);
});

test('a change to another file in the same directory does not call onChange', async (t) => {
  const fx = await fixture(t);
  const path = join(fx.dir, 'config.yaml');
  await writeFile(path, 'version: 1\n');
  const sibling = join(fx.dir, 'notes.txt');
  await writeFile(sibling, 'first\n');
  const calls = new CallCounter();
  await fx.watch(path, calls.fn);

  await writeFile(sibling, 'second, longer\n');
  const temp = join(fx.dir, 'notes.txt.tmp');
  await writeFile(temp, 'third\n');
  await rename(temp, sibling);
  await unlink(sibling);
  await settle();
  assert.equal(calls.count, 0);

  // The watcher is still live: the quiet above was not a dead watch.
  await writeFile(path, 'version: 1\n# real change\n');
  await calls.waitFor(1, 'change after unrelated activity');
  assert.deepEqual(fx.errors, []);
});

test('the fallback poll catches a change no watched event reports', async (t) => {
  const fx = await fixture(t);
  // The watched directory holds only a link to a link in another directory, whose swap changes
  // which file the config path names without touching anything the watcher has a watch on.
  const elsewhere = join(fx.dir, 'elsewhere');
  const watched = join(fx.dir, 'watched');
  await mkdir(elsewhere);
  await mkdir(watched);
  await writeFile(join(elsewhere, 'v1.yaml'), 'version: 1\n# v1\n');
  await writeFile(join(elsewhere, 'v2.yaml'), 'version: 1\n# v2\n');
  await symlink('v1.yaml', join(elsewhere, 'current'));
  const path = join(watched, 'config.yaml');
  await symlink(join(elsewhere, 'current'), path);

  // The polling watcher starts first: its first read of v1.yaml updates the access time, an
  // event the other watcher would see if it were already watching.
  const polled = new CallCounter();
  await fx.watch(path, polled.fn, { pollMs: 100 });
  const eventOnly = new CallCounter();
  await fx.watch(path, eventOnly.fn);

  await symlink('v2.yaml', join(elsewhere, 'current.tmp'));
  await rename(join(elsewhere, 'current.tmp'), join(elsewhere, 'current'));
  await polled.waitFor(1, 'poll fallback');
  assert.equal(await readFile(path, 'utf8'), 'version: 1\n# v2\n');
  await settle();
  assert.equal(eventOnly.count, 0, 'the event path alone cannot see this swap');
  assert.deepEqual(fx.errors, []);
});

test('a missing file calls nothing, is reported once, and its return calls onChange', async (t) => {
  const fx = await fixture(t);
  const path = join(fx.dir, 'config.yaml');
  await writeFile(path, 'version: 1\n');
  const calls = new CallCounter();
  await fx.watch(path, calls.fn, { pollMs: 100 });

  await unlink(path);
  // Several polls and the debounced event all find it missing.
  await settle();
  assert.equal(calls.count, 0);
  assert.equal(fx.errors.length, 1);
  assert.equal((fx.errors[0] as NodeJS.ErrnoException).code, 'ENOENT');

  await writeFile(path, 'version: 1\n# restored\n');
  await calls.waitFor(1, 'file restored');
  assert.equal(fx.errors.length, 1);
});

test('errors thrown or rejected by onChange go to onError and the watch goes on', async (t) => {
  const fx = await fixture(t);
  const path = join(fx.dir, 'config.yaml');
  await writeFile(path, 'version: 1\n');
  const calls = new CallCounter();
  let attempt = 0;
  // A reload handler may be synchronous or async; both kinds of failure must be caught.
  const failingReload = (): Promise<void> => {
    calls.fn();
    attempt++;
    if (attempt === 1) throw new Error('sync failure');
    return Promise.reject(new Error('async failure'));
  };
  await fx.watch(path, failingReload);

  await writeFile(path, 'version: 1\n# one\n');
  await calls.waitFor(1, 'first change');
  await writeFile(path, 'version: 1\n# two, longer\n');
  await calls.waitFor(2, 'second change');
  // Let the rejection reach its handler.
  await new Promise<void>((done) => setImmediate(done));
  assert.deepEqual(
    fx.errors.map((e) => (e as Error).message),
    ['sync failure', 'async failure'],
  );
});

test('close() stops further calls', async (t) => {
  const fx = await fixture(t);
  const path = join(fx.dir, 'config.yaml');
  await writeFile(path, 'version: 1\n');
  const calls = new CallCounter();
  const watcher = await fx.watch(path, calls.fn, { pollMs: 100 });

  await writeFile(path, 'version: 1\n# before close\n');
  await calls.waitFor(1, 'change before close');
  await watcher.close();
  await watcher.close(); // idempotent

  await writeFile(path, 'version: 1\n# after close, longer\n');
  await settle();
  assert.equal(calls.count, 1);
});

test('close() leaves no handles: a process that watches, sees a change and closes exits on its own', async (t) => {
  const fx = await fixture(t);
  const path = join(fx.dir, 'config.yaml');
  await writeFile(path, 'version: 1\n');
  const moduleUrl = new URL('../../src/config/watch.ts', import.meta.url).href;
  // The child exits only if nothing is left on its event loop; the parent bounds the wait.
  const script = `
    import { writeFile } from 'node:fs/promises';
    const { watchConfigFile } = await import(${JSON.stringify(moduleUrl)});
    const path = ${JSON.stringify(path)};
    let seen;
    const changed = new Promise((resolve) => { seen = resolve; });
    const watcher = await watchConfigFile(path, () => seen(), { debounceMs: 20, pollMs: 100 });
    await writeFile(path, 'version: 1\\n# child\\n');
    await changed;
    await watcher.close();
    process.stdout.write('closed\\n');
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: fileURLToPath(new URL('../..', import.meta.url)),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk;
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk;
  });
  const exitCode = await new Promise<number | null>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`child did not exit within 10 s; stderr: ${stderr}`)),
      10_000,
    );
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
  assert.equal(exitCode, 0, stderr);
  assert.equal(stdout, 'closed\n');
});
