// Builds a large source on a worker thread: the parse, its garbage and its garbage collections
// stay off the thread that answers queries, which only adopts the finished arrays.
import { Worker } from 'node:worker_threads';
import type { SourceBuild } from './build.js';
import { ListError } from './errors.js';
import { NameSet, type NameSetParts } from './name-set.js';
import type { ListFormat, SkipReport } from './types.js';

export interface BuildRequest {
  readonly format: ListFormat;
  /** The content, transferred. */
  readonly bytes: ArrayBuffer;
  readonly source: string;
  readonly previousHash: string | null;
}

export type BuildReply =
  | { readonly kind: 'unchanged' }
  | { readonly kind: 'error'; readonly message: string }
  | {
      readonly kind: 'built';
      readonly hash: string;
      readonly main: NameSetParts;
      readonly exceptions: NameSetParts | null;
      readonly entries: number;
      readonly skipped: SkipReport;
      readonly ignored: number;
      readonly duplicates: number;
      readonly lines: number;
    };

const ENTRY = new URL(
  import.meta.url.endsWith('.ts') ? './build-worker.ts' : './build-worker.js',
  import.meta.url,
);

function spawn(): Worker {
  if (ENTRY.pathname.endsWith('.ts')) {
    // Running from the TypeScript sources (tests, benchmarks): Node 20 does not hand `--import`
    // loaders to workers, so the worker registers tsx itself before loading its entry.
    return new Worker(
      `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(ENTRY.href)}); })`,
      { eval: true },
    );
  }
  return new Worker(ENTRY);
}

/** The worker could not build (it failed to start, crashed or threw); the caller may build on
 *  its own thread instead. */
export class BuildWorkerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BuildWorkerError';
  }
}

/**
 * Builds `bytes` (transferred: unusable by the caller afterwards) on a new worker thread.
 * Resolves null when the content hashes to `previousHash`. An abort of `signal` terminates
 * the worker and rejects with LIST_CLOSED; a worker failure rejects with BuildWorkerError.
 */
export function buildOnWorker(
  format: ListFormat,
  bytes: ArrayBuffer,
  source: string,
  previousHash: string | null,
  signal?: AbortSignal,
): Promise<SourceBuild | null> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new ListError('LIST_CLOSED', `${source}: the list was closed while loading`));
      return;
    }
    let worker: Worker;
    try {
      worker = spawn();
    } catch (err) {
      reject(
        new BuildWorkerError(
          `cannot start a build worker: ${err instanceof Error ? err.message : String(err)}`,
        ),
      );
      return;
    }
    let settled = false;
    const finish = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      void worker.terminate();
      fn();
    };
    const onAbort = (): void =>
      finish(() => reject(new ListError('LIST_CLOSED', `${source}: the list was closed while loading`)));
    signal?.addEventListener('abort', onAbort, { once: true });
    worker.once('message', (reply: BuildReply) =>
      finish(() => {
        if (reply.kind === 'unchanged') resolve(null);
        else if (reply.kind === 'error') reject(new BuildWorkerError(reply.message));
        else
          resolve({
            hash: reply.hash,
            main: new NameSet(reply.main),
            exceptions: reply.exceptions === null ? null : new NameSet(reply.exceptions),
            entries: reply.entries,
            skipped: reply.skipped,
            ignored: reply.ignored,
            duplicates: reply.duplicates,
            lines: reply.lines,
          });
      }),
    );
    worker.once('error', (err) =>
      finish(() => reject(new BuildWorkerError(`build worker failed: ${err.message}`))),
    );
    worker.once('exit', (code) =>
      finish(() => reject(new BuildWorkerError(`build worker exited (code ${code}) without a result`))),
    );
    const request: BuildRequest = { format, bytes, source, previousHash };
    worker.postMessage(request, [bytes]);
  });
}
