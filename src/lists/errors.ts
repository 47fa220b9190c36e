// List loading errors with stable codes and messages that name the source and the fix.

export type ListErrorCode =
  /** A file could not be read (missing, unreadable, a directory). */
  | 'LIST_READ'
  /** Content over the size cap (files and URLs alike). */
  | 'LIST_TOO_LARGE'
  /** A URL answered something other than 200 (or 304 to a conditional request). */
  | 'LIST_HTTP_STATUS'
  /** No complete answer within the timeout. */
  | 'LIST_FETCH_TIMEOUT'
  /** Connection refused, reset, DNS failure, TLS failure... */
  | 'LIST_FETCH_FAILED'
  /** A URL that is not http: or https:. */
  | 'LIST_BAD_URL'
  /** Every line was skipped: whatever this is (an error page, the wrong format), it is not a list. */
  | 'LIST_NO_ENTRIES'
  /** Too many names for one source. */
  | 'LIST_TOO_MANY_NAMES'
  /** The list was closed while loading. */
  | 'LIST_CLOSED';

export class ListError extends Error {
  readonly code: ListErrorCode;
  constructor(code: ListErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ListError';
    this.code = code;
  }
}

/** The most specific message in an error chain (undici hides ECONNREFUSED in `cause`). */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    return code !== undefined
      ? `${err.message} (${code}: ${cause.message})`
      : `${err.message} (${cause.message})`;
  }
  return err.message;
}
