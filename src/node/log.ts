// The main thread's logger: the process-wide line format of src/log/logger.ts, every line
// tagged with this node's id. Child loggers add fields; none may repeat pid, nodeId or time.
import { createLogger as createLineLogger, type LogOutput, type Logger } from '../log/logger.js';

export type { Logger, LogOutput };
export { resolveLogOutput } from '../log/logger.js';

/** The node's logger, writing as `out` says (resolveLogOutput decides it from the config). */
export function createLogger(out: LogOutput, nodeId: number): Logger {
  return createLineLogger(out, { nodeId });
}
