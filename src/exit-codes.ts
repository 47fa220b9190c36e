// Owns the process exit codes: one table for the CLI, the primary and its workers (the
// README's "Exit codes" section lists the same four).
export const ExitCode = {
  /** Done, including after a clean SIGTERM/SIGINT drain. */
  ok: 0,
  /** The config is invalid (`check`, or at startup); the problems went to stderr. */
  invalidConfig: 1,
  /** Unknown arguments or a bad original flag. */
  usage: 2,
  /** A listener, the admin port or a worker could not be started. */
  cannotStart: 3,
} as const;

export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];
