// Fetching one list URL with Node's own fetch (undici): conditional requests, one timeout over
// the whole exchange, and a size cap enforced while the body streams in.
import { describeError, ListError } from './errors.js';

export interface FetchListOptions {
  /** Covers connecting, the headers and the whole body. */
  readonly timeoutMs: number;
  /** Bytes of (decoded) body accepted; the transfer is aborted past it. */
  readonly maxBytes: number;
  /** Validators of the content held, sent as If-None-Match / If-Modified-Since. */
  readonly etag?: string | null;
  readonly lastModified?: string | null;
  /** Aborts the fetch (the list is closing). */
  readonly signal?: AbortSignal;
}

export type FetchOutcome =
  | {
      readonly status: 'ok';
      /** The body as it arrived, chunk by chunk (never joined: a large copy would stall). */
      readonly chunks: readonly Uint8Array[];
      readonly bytes: number;
      readonly etag: string | null;
      readonly lastModified: string | null;
    }
  | { readonly status: 'not_modified' };

/** Longest the body loop runs before giving the event loop a turn. */
const READ_SLICE_MS = 1;

/** `url` as logs and reports show it: userinfo and the query string, where feeds put their
 *  access tokens, replaced by `…`. A string that is not a URL is shown as it is. */
export function displayUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return url;
  }
  const auth = u.username !== '' || u.password !== '' ? '…@' : '';
  return `${u.protocol}//${auth}${u.host}${u.pathname}${u.search !== '' ? '?…' : ''}`;
}

/**
 * GET `url`. 200 → the body; 304 to a conditional request → not_modified; anything else
 * throws a {@link ListError}: LIST_HTTP_STATUS, LIST_FETCH_TIMEOUT, LIST_TOO_LARGE (from the
 * Content-Length, or as soon as the body passes the cap), LIST_FETCH_FAILED, LIST_BAD_URL.
 * Redirects are followed (http and https only, as fetch does).
 */
export async function fetchList(url: string, opts: FetchListOptions): Promise<FetchOutcome> {
  const shown = displayUrl(url);
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    throw new ListError('LIST_BAD_URL', `${shown}: not a URL`);
  }
  if (target.protocol !== 'http:' && target.protocol !== 'https:')
    throw new ListError('LIST_BAD_URL', `${shown}: only http: and https: URLs can be fetched`);

  const controller = new AbortController();
  const timer = setTimeout(
    () =>
      controller.abort(
        new ListError('LIST_FETCH_TIMEOUT', `${shown}: no complete answer within ${opts.timeoutMs} ms`),
      ),
    opts.timeoutMs,
  );
  timer.unref();
  const outer = opts.signal;
  const onOuterAbort = (): void =>
    controller.abort(new ListError('LIST_CLOSED', `${shown}: the list was closed`));
  if (outer !== undefined) {
    if (outer.aborted) onOuterAbort();
    else outer.addEventListener('abort', onOuterAbort, { once: true });
  }

  const headers: Record<string, string> = { 'user-agent': 'dns-tool' };
  // fetch refuses a URL with credentials; they become Basic authentication (which fetch drops
  // on a redirect to another origin).
  if (target.username !== '' || target.password !== '') {
    const user = decodeURIComponent(target.username);
    const password = decodeURIComponent(target.password);
    headers.authorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    target.username = '';
    target.password = '';
  }
  const conditional = Boolean(opts.etag) || Boolean(opts.lastModified);
  if (opts.etag) headers['if-none-match'] = opts.etag;
  if (opts.lastModified) headers['if-modified-since'] = opts.lastModified;

  try {
    const res = await fetch(target, { headers, signal: controller.signal, redirect: 'follow' });
    if (res.status === 304 && conditional) {
      await res.body?.cancel();
      return { status: 'not_modified' };
    }
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new ListError(
        'LIST_HTTP_STATUS',
        `${shown}: HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`,
      );
    }
    const tooLarge = (): ListError =>
      new ListError('LIST_TOO_LARGE', `${shown}: larger than the ${opts.maxBytes}-byte cap`);
    const declared = Number(res.headers.get('content-length') ?? Number.NaN);
    if (declared > opts.maxBytes) {
      controller.abort(tooLarge());
      throw tooLarge();
    }
    const chunks: Uint8Array[] = [];
    let bytes = 0;
    if (res.body !== null) {
      const reader = res.body.getReader();
      let turnStarted = performance.now();
      for (;;) {
        // With the body already buffered, every read resolves as a microtask and the loop
        // never lets timers or sockets run: measured, a 32 MB body from loopback held the event
        // loop for 160-390 ms. A turn is given up every READ_SLICE_MS instead.
        if (performance.now() - turnStarted >= READ_SLICE_MS) {
          await new Promise((resolve) => setImmediate(resolve));
          turnStarted = performance.now();
        }
        const { done, value } = await reader.read();
        if (done) break;
        bytes += value.byteLength;
        if (bytes > opts.maxBytes) {
          controller.abort(tooLarge());
          throw tooLarge();
        }
        chunks.push(value);
      }
    }
    return {
      status: 'ok',
      chunks,
      bytes,
      etag: res.headers.get('etag'),
      lastModified: res.headers.get('last-modified'),
    };
  } catch (err) {
    const reason: unknown = controller.signal.aborted ? controller.signal.reason : undefined;
    if (reason instanceof ListError) throw reason;
    if (err instanceof ListError) throw err;
    // undici may quote the URL in its message: never with what `shown` leaves out.
    const detail = describeError(err).split(url).join(shown).split(target.href).join(shown);
    throw new ListError('LIST_FETCH_FAILED', `${shown}: ${detail}`);
  } finally {
    clearTimeout(timer);
    outer?.removeEventListener('abort', onOuterAbort);
  }
}
