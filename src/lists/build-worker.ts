// Entry of a build worker: builds one source from the bytes it is sent and posts the sets back,
// their buffers transferred. One build per worker; it ends when the reply is sent.
import { readFileSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { buildSource, runSync } from './build.js';
import { describeError, ListError } from './errors.js';
import type { BuildReply, BuildRequest } from './worker.js';

const port = parentPort;
if (port === null) throw new Error('build-worker.ts runs as a worker thread only');

port.once('message', (req: BuildRequest) => {
  let reply: BuildReply;
  const transfer: ArrayBuffer[] = [];
  try {
    let bytes: Uint8Array;
    if (req.input instanceof ArrayBuffer) {
      bytes = new Uint8Array(req.input);
    } else {
      const { path, maxBytes } = req.input;
      try {
        bytes = readFileSync(path);
      } catch (err) {
        throw new ListError('LIST_READ', `${path}: ${describeError(err)}`);
      }
      if (bytes.length > maxBytes)
        throw new ListError('LIST_TOO_LARGE', `${path}: over the ${maxBytes}-byte cap`);
    }
    const build = runSync(buildSource(req.format, [bytes], req.source, req.previousHash));
    if (build === null) {
      reply = { kind: 'unchanged' };
    } else {
      const main = build.main.transferable();
      const exceptions = build.exceptions?.transferable() ?? null;
      transfer.push(...main.transfer, ...(exceptions?.transfer ?? []));
      reply = {
        kind: 'built',
        hash: build.hash,
        main: main.parts,
        exceptions: exceptions?.parts ?? null,
        entries: build.entries,
        skipped: build.skipped,
        ignored: build.ignored,
        duplicates: build.duplicates,
        lines: build.lines,
      };
    }
  } catch (err) {
    reply =
      err instanceof ListError
        ? { kind: 'failed', code: err.code, message: err.message }
        : { kind: 'error', message: err instanceof Error ? err.message : String(err) };
  }
  port.postMessage(reply, transfer);
  port.close();
});
