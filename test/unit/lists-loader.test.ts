// File sources of a list (src/lists/list.ts, src/lists/manager.ts): loaded, watched, reloaded
// alone, unchanged content reused, failures keeping the last good content.
import assert from 'node:assert/strict';
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type ListEvents, ManagedList, type SourceLoadReport } from '../../src/lists/list.js';
import { ListManager, loadListsOffline } from '../../src/lists/manager.js';
import { type ListConfig, type ListHit, parseRefresh, type RefreshResult } from '../../src/lists/types.js';
import { replaceFile } from '../helpers/files.js';
import { waitUntil } from '../helpers/lists.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dns-tool-lists-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const WATCH = { watchDebounceMs: 20, watchPollMs: 200 };

function listConfig(name: string, files: string[], extra: Partial<ListConfig> = {}): ListConfig {
  return { name, format: 'domains', files, urls: [], refreshMs: null, mode: 'enforce', ...extra };
}

/** Records what the list reports. */
function recorder() {
  const loads: SourceLoadReport[] = [];
  const refreshes: { list: string; result: RefreshResult }[] = [];
  const changes: string[] = [];
  const errors: Error[] = [];
  const events: ListEvents = {
    load: (r) => loads.push(r),
    refresh: (list, result) => refreshes.push({ list, result }),
    change: (l) => changes.push(l.name),
    error: (_list, err) => errors.push(err),
  };
  return { loads, refreshes, changes, errors, events };
}

test('a file list loads, answers with file and line, and reports the load once', async () => {
  const path = join(dir, 'basic.txt');
  await writeFile(path, '# feed\nads.example\nbad name\n');
  const rec = recorder();
  const list = new ManagedList(listConfig('basic', [path]), { ...WATCH, events: rec.events });
  try {
    assert.equal(list.ready, false);
    assert.equal(list.match('ads.example'), null);
    await list.start();
    assert.equal(list.ready, true);
    const hit = list.match('x.ads.example');
    assert.deepEqual(hit?.source, path);
    assert.equal(hit?.line, 2);
    assert.equal(hit?.list, 'basic');
    assert.equal(rec.loads.length, 1);
    assert.equal(rec.loads[0].result, 'success');
    assert.equal(rec.loads[0].origin, 'file');
    assert.deepEqual(
      rec.loads[0].skipped?.samples.map((s) => `${s.source}:${s.line}`),
      [`${path}:3`],
    );
    assert.deepEqual(rec.refreshes, [{ list: 'basic', result: 'success' }]);
    const stats = list.stats();
    assert.equal(stats.entries, 1);
    assert.deepEqual(stats.refreshes, { success: 1, not_modified: 0, failure: 0 });
    assert.ok(stats.lastSuccessMs !== null);
  } finally {
    await list.close();
  }
});

test('a changed file reloads that list alone; the same content again is not rebuilt', async () => {
  const a = join(dir, 'a.txt');
  const b = join(dir, 'b.txt');
  await writeFile(a, 'one.example\n');
  await writeFile(b, 'other.example\n');
  const rec = recorder();
  const manager = new ListManager({ ...WATCH, events: rec.events });
  try {
    await manager.apply({ lists: [listConfig('a', [a]), listConfig('b', [b])], stateDir: null });
    const listA = manager.get('a')!;
    const listB = manager.get('b')!;
    const bSnapshot = listB.snapshot;

    await replaceFile(a, 'one.example\ntwo.example\n');
    await waitUntil(() => listA.match('two.example') !== null, 'list a to reload');
    assert.equal(listB.snapshot, bSnapshot, 'list b was not touched');
    assert.ok(rec.changes.includes('a'));
    assert.ok(!rec.changes.slice(2).includes('b'));

    const setBefore = listA.snapshot.sources[0].main;
    const loadsBefore = rec.loads.length;
    await writeFile(a, 'one.example\ntwo.example\n'); // in place, same bytes
    await waitUntil(() => rec.loads.length > loadsBefore, 'the rewrite to be noticed');
    assert.equal(rec.loads.at(-1)?.result, 'not_modified');
    assert.equal(listA.snapshot.sources[0].main, setBefore, 'the same set, not a rebuilt one');
    assert.equal(listA.stats().refreshes.not_modified, 1);
  } finally {
    await manager.close();
  }
});

test('a deleted or junk file keeps the last good content and counts a failure', async () => {
  const path = join(dir, 'keep.txt');
  await writeFile(path, 'kept.example\n');
  const rec = recorder();
  const list = new ManagedList(listConfig('keep', [path]), { ...WATCH, events: rec.events });
  try {
    await list.start();
    await replaceFile(path, '<html><body>502 Bad Gateway</body></html>\n');
    await waitUntil(() => list.stats().refreshes.failure === 1, 'the junk file to fail');
    assert.equal(list.stats().sources[0].lastErrorCode, 'LIST_NO_ENTRIES');
    assert.notEqual(list.match('kept.example'), null);

    await unlink(path);
    await waitUntil(() => list.stats().refreshes.failure === 2, 'the deletion to fail');
    assert.equal(list.stats().sources[0].lastErrorCode, 'LIST_READ');
    assert.notEqual(list.match('kept.example'), null);
    assert.equal(list.ready, true, 'content from an earlier load still counts');

    await writeFile(path, 'back.example\n');
    await waitUntil(() => list.match('back.example') !== null, 'the file to come back');
    assert.equal(list.match('kept.example'), null);
  } finally {
    await list.close();
  }
});

test('a file never loaded leaves the list not ready until it appears', async () => {
  const path = join(dir, 'later.txt');
  const manager = new ListManager(WATCH);
  try {
    await manager.apply({ lists: [listConfig('later', [path])], stateDir: null });
    assert.equal(manager.ready, false);
    const missing = manager.notReady();
    assert.equal(missing.length, 1);
    assert.equal(missing[0].list, 'later');
    assert.equal(missing[0].kind, 'file');
    assert.match(missing[0].error ?? '', /ENOENT|no such file/);
    await writeFile(path, 'late.example\n');
    await waitUntil(() => manager.ready, 'the file to be loaded');
    assert.notEqual(manager.get('later')?.match('late.example'), null);
  } finally {
    await manager.close();
  }
});

test('a file over the size cap is refused', async () => {
  const path = join(dir, 'big.txt');
  await writeFile(path, 'a.example\n'.repeat(200));
  const list = new ManagedList(listConfig('big', [path]), { maxBytes: 1000, watch: false });
  try {
    await list.start();
    assert.equal(list.ready, false);
    assert.equal(list.stats().sources[0].lastErrorCode, 'LIST_TOO_LARGE');
  } finally {
    await list.close();
  }
});

test('reload: unchanged lists keep their handle, changed ones reuse unchanged sources, removed ones close', async () => {
  const x = join(dir, 'x.txt');
  const y = join(dir, 'y.txt');
  await writeFile(x, 'x.example\n');
  await writeFile(y, 'y.example\n');
  const rec = recorder();
  const manager = new ListManager({ ...WATCH, events: rec.events });
  try {
    await manager.apply({
      lists: [listConfig('keep', [x]), listConfig('grow', [x]), listConfig('gone', [y])],
      stateDir: null,
    });
    const keep = manager.get('keep')!;
    const grow = manager.get('grow')!;
    const gone = manager.get('gone')!;
    const xSet = grow.snapshot.sources[0].main;

    rec.loads.length = 0;
    await manager.apply({
      lists: [listConfig('keep', [x], { mode: 'audit' }), listConfig('grow', [x, y])],
      stateDir: null,
    });
    assert.equal(manager.get('keep'), keep, 'same sources: the same list');
    assert.equal(keep.snapshot.mode, 'audit');
    const grown = manager.get('grow')!;
    assert.notEqual(grown, grow);
    assert.equal(grown.snapshot.sources[0].main, xSet, 'the shared file was not rebuilt');
    // The two sources load side by side: their reports come in either order.
    assert.deepEqual(rec.loads.map((l) => [l.list, l.source, l.result]).sort(), [
      ['grow', x, 'not_modified'],
      ['grow', y, 'success'],
    ]);
    assert.notEqual(grown.match('y.example'), null);
    assert.equal(manager.get('gone'), undefined);

    // The closed lists no longer watch.
    rec.loads.length = 0;
    await replaceFile(y, 'y2.example\n');
    await waitUntil(() => grown.match('y2.example') !== null, 'the new list to reload y');
    assert.deepEqual(
      rec.loads.map((l) => l.list),
      ['grow'],
    );
    assert.equal(gone.match('y2.example'), null);
  } finally {
    await manager.close();
  }
});

test('a format change rebuilds even identical content', async () => {
  const path = join(dir, 'fmt.txt');
  await writeFile(path, '0.0.0.0 host.example\n');
  const manager = new ListManager({ watch: false });
  try {
    await manager.apply({ lists: [listConfig('fmt', [path])], stateDir: null });
    assert.equal(manager.get('fmt')?.ready, false, 'as a domains list, a hosts line is junk');
    await manager.apply({ lists: [listConfig('fmt', [path], { format: 'hosts' })], stateDir: null });
    assert.equal(manager.get('fmt')?.match('host.example')?.kind, 'exact');
  } finally {
    await manager.close();
  }
});

test('offline loading reads files and reports URL lists without copies as not loaded', async () => {
  const path = join(dir, 'offline.txt');
  await writeFile(path, 'off.example\n');
  const manager = await loadListsOffline({
    lists: [listConfig('files', [path]), listConfig('urls', [], { urls: ['http://127.0.0.1:9/list.txt'] })],
    stateDir: join(dir, 'no-state'),
  });
  try {
    assert.notEqual(manager.get('files')?.match('off.example'), null);
    assert.deepEqual(
      manager.notReady().map((n) => [n.list, n.kind]),
      [['urls', 'url']],
    );
    assert.match(manager.notReady()[0].error ?? '', /offline and no copy/);
  } finally {
    await manager.close();
  }
});

test('refresh periods: <n>s|m|h|d, at least one second', () => {
  assert.equal(parseRefresh('30s'), 30_000);
  assert.equal(parseRefresh('15m'), 900_000);
  assert.equal(parseRefresh('1h'), 3_600_000);
  assert.equal(parseRefresh('1d'), 86_400_000);
  assert.equal(parseRefresh('1s'), 1000);
  for (const bad of ['0s', '', '1', '1.5h', '-1m', '1w', ' 1h', '1H', '01m'])
    assert.throws(() => parseRefresh(bad), RangeError, bad);
});

test('content built on a worker thread answers exactly as content built here', async () => {
  const path = join(dir, 'worker.rpz');
  const lines = ['$ORIGIN rpz.test.', '@ SOA ns. admin. 1 2 3 4 5'];
  for (let i = 0; i < 5000; i++) lines.push(`n${i}.example CNAME .`);
  lines.push(
    '*.n1.example CNAME rpz-passthru.',
    'local.example A 192.0.2.1',
    'local.example TXT "x"',
    'junk line',
  );
  await writeFile(path, lines.join('\n'));
  const config = { ...listConfig('w', [path]), format: 'rpz' as const };
  const loads: SourceLoadReport[] = [];
  const errors: Error[] = [];
  const onWorker = new ManagedList(config, {
    watch: false,
    workerMinBytes: 0,
    events: { load: (r) => loads.push(r), error: (_l, e) => errors.push(e) },
  });
  const here = new ManagedList(config, { watch: false, workerMinBytes: Number.POSITIVE_INFINITY });
  try {
    await Promise.all([onWorker.start(), here.start()]);
    assert.deepEqual(errors, [], 'the worker built it (no fallback to this thread)');
    assert.equal(onWorker.stats().entries, here.stats().entries);
    const plain = (h: ListHit | null) =>
      h && { action: h.action, entry: h.entry, kind: h.kind, source: h.source, line: h.line, local: h.local };
    for (const q of [
      'n0.example',
      'n1.example',
      'a.n1.example',
      'n4999.example',
      'x.n5.example',
      'local.example',
    ])
      assert.deepEqual(plain(onWorker.match(q)), plain(here.match(q)), q);
    assert.equal(onWorker.match('no.example'), null);
    assert.equal(onWorker.match('local.example')?.local?.length, 2);
    assert.equal(loads[0].skipped?.count, 1);
    assert.deepEqual(
      loads[0].skipped?.samples.map((s) => `${s.source}:${s.line}`),
      [`${path}:${lines.length}`],
    );
  } finally {
    await onWorker.close();
    await here.close();
  }
});
