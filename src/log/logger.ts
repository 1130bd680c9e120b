// One way to write log lines, for the main thread and every shard thread alike: pino, one
// line per event, ISO time, level names, every line carrying the process id and the node id
// (and the shard on shard threads), all of it on standard output.
//
// Two formats. `json`: the JSON line as pino makes it, for collectors. `pretty`: the same
// object turned into a readable line by pino-pretty. Both are written synchronously to fd 1
// from the thread that logs, with one write per line: lines from the main thread and from the
// shard threads never mix inside a line, the line that explains a crash is not lost with the
// process, and no thread depends on another (pino's worker-thread transports would put a
// thread of their own between a failing shard and its last words). The node logs life-cycle
// events and faults, never once per request, so formatting in the logging thread costs
// nothing that matters.
import { createRequire } from 'node:module';
import { pino } from 'pino';
import type PinoPretty from 'pino-pretty';

// pino-pretty (and what it brings) is loaded only by a process that prints pretty lines: a
// node logging JSON, in every one of its shard threads, never pays for it.
const require = createRequire(import.meta.url);

export type Logger = pino.Logger;

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** What the configuration says (`logFormat`): `auto` is pretty on a terminal, JSON otherwise. */
export type LogFormatSetting = 'auto' | 'json' | 'pretty';

/** How a thread writes its lines; plain data, so the main thread can hand it to shard threads. */
export interface LogOutput {
  level: LogLevel;
  format: 'json' | 'pretty';
  /** ANSI colours in pretty lines (only when standard output is a terminal). */
  color: boolean;
}

/** Fields every line of a logger carries, besides pid, time, level and msg. */
export interface LogBase {
  nodeId: number;
  shard?: number;
}

/**
 * Decides, in the main thread, how every thread of the process logs: `auto` looks at whether
 * standard output is a terminal (a worker thread cannot tell: its process.stdout is a pipe to
 * the main thread). NO_COLOR (https://no-color.org) turns colours off.
 */
export function resolveLogOutput(
  level: LogLevel,
  format: LogFormatSetting,
  stdout: { isTTY?: boolean } = process.stdout,
  env: Record<string, string | undefined> = process.env,
): LogOutput {
  const tty = stdout.isTTY === true;
  const chosen = format === 'auto' ? (tty ? 'pretty' : 'json') : format;
  const noColor = env['NO_COLOR'] !== undefined && env['NO_COLOR'] !== '';
  return { level, format: chosen, color: chosen === 'pretty' && tty && !noColor };
}

/** A logger writing to standard output as `out` says; `base` goes on every line. */
export function createLogger(out: LogOutput, base: LogBase): Logger {
  const options: pino.LoggerOptions = {
    level: out.level,
    base: { pid: process.pid, ...base },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Level names ("info") rather than pino's numbers: what an operator greps for.
    formatters: { level: (label) => ({ level: label }) },
  };
  const fd1 = pino.destination({ dest: 1, sync: true });
  if (out.format === 'json') return pino(options, fd1);
  const { prettyFactory } = require('pino-pretty') as typeof PinoPretty;
  const prettify = prettyFactory({
    colorize: out.color,
    singleLine: true,
    // `time` is already an ISO string: printed as it is, the same time format as the JSON lines.
    translateTime: false,
    ignore: 'pid,hostname,nodeId,shard',
    messageFormat: (log, messageKey) => {
      const shard = log['shard'];
      const who = `node ${String(log['nodeId'])}${shard !== undefined ? ` shard ${String(shard)}` : ''}`;
      return `${who}: ${String(log[messageKey] ?? '')}`;
    },
  });
  return pino(options, { write: (line: string) => void fd1.write(prettify(line)) });
}
