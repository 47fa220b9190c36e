// Builds a large source on a worker thread: the parse, its garbage and its garbage collections
// stay off the thread that answers queries, which only adopts the finished arrays.
import { Worker } from 'node:worker_threads';
import type { SourceBuild } from './build.js';
import { ListError, type ListErrorCode } from './errors.js';
import { NameSet, type NameSetParts } from './name-set.js';
import type { ListFormat, SkipReport } from './types.js';

/** The content to build: bytes (transferred), or a file the worker reads itself. */
export type BuildInput = ArrayBuffer | { readonly path: string; readonly maxBytes: number };

export interface BuildRequest {
  readonly format: ListFormat;
  readonly input: BuildInput;
  readonly source: string;
  readonly previousHash: string | null;
}

export type BuildReply =
  | { readonly kind: 'unchanged' }
  | { readonly kind: 'error'; readonly message: string }
  /** The content cannot be loaded (unreadable, over the cap): a failed load, not a failed worker. */
  | { readonly kind: 'failed'; readonly code: ListErrorCode; readonly message: string }
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
 * Builds `input` on a new worker thread (bytes are transferred: unusable by the caller
 * afterwards; a file is read there). Resolves null when the content hashes to `previousHash`.
 * An abort of `signal` terminates the worker and rejects with LIST_CLOSED; content that cannot
 * be loaded rejects with its ListError; any other failure rejects with BuildWorkerError.
 */
export function buildOnWorker(
  format: ListFormat,
  input: BuildInput,
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
        else if (reply.kind === 'failed') reject(new ListError(reply.code, reply.message));
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
    const request: BuildRequest = { format, input, source, previousHash };
    worker.postMessage(request, input instanceof ArrayBuffer ? [input] : []);
  });
}
