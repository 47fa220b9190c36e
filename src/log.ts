// The process logger: pino JSON on stdout. Components take child loggers once, at
// construction, so nothing is serialised per query.
import { type Logger, pino } from 'pino';

export type { Logger };

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    { level, base: { service: 'dns-tool' } },
    destination ?? pino.destination({ fd: 1, sync: false }),
  );
}
