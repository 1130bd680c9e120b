// The shard's logger: the same lines as the main thread's (src/log/logger.ts), on the same
// standard output, written from the shard's own thread, every line tagged with node and shard.
// The main thread decides the format (only it can tell whether stdout is a terminal) and hands
// it over in the task. The shard logs life-cycle events and faults, never once per request.
import { createLogger, type LogOutput, type Logger } from '../log/logger.js';

export type ShardLogger = Logger;

export function createShardLogger(out: LogOutput, nodeId: number, shard: number): ShardLogger {
  return createLogger(out, { nodeId, shard });
}
