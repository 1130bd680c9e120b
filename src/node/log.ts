// The node's logger: pino, JSON lines on stdout. One logger per node; child loggers add fields.
import { pino } from 'pino';

export type Logger = pino.Logger;

/**
 * A logger at `level` ('fatal' … 'trace', or 'silent') whose every line carries `base`
 * (for example `{ node: 1 }`) and the process id. Writes synchronously to stdout, so the line
 * that explains a crash is not lost with the process.
 */
export function createLogger(level: string, base: object): Logger {
  return pino({
    level,
    base: { pid: process.pid, ...base },
    timestamp: pino.stdTimeFunctions.isoTime,
  }, pino.destination({ dest: 1, sync: true }));
}
