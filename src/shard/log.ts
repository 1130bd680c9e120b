// The shard's logger: pino to stderr, one JSON line per event, every line tagged with the
// shard. The shard logs life-cycle events and faults, never once per request.
import { pino, type Logger } from 'pino';

export type ShardLogger = Logger;

export function createShardLogger(level: string, shard: number): ShardLogger {
  // Synchronous writes to fd 2: a worker's log lines must not be lost when it fails, and the
  // shard logs rarely enough that the cost does not matter.
  return pino({ level, base: { shard } }, pino.destination({ dest: 2, sync: true }));
}
