// Runs one shard task in a worker thread, as the piscina pool does: workerData is the task.
// Reports how it ended; the thread must then exit on its own (nothing left holding it open).
import { parentPort, workerData } from 'node:worker_threads';
import { runShard } from '../../src/shard/shard-task.js';
import type { ShardTask } from '../../src/shard/task.js';

runShard(workerData as ShardTask).then(
  () => parentPort!.postMessage({ ok: true }),
  (e: unknown) => parentPort!.postMessage({ ok: false, message: e instanceof Error ? e.message : String(e) }),
);
