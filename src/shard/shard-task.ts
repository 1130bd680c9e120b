// The piscina task of one shard worker: `runShard(task)` runs the shard until an InKind.Stop
// record arrives, then resolves. The pool calls it by name; it never returns while the node
// runs. Events tell the main thread how it goes: 'ready' once every group is recovered and the
// bootstrap groups are durable, 'stopped' after a clean stop, 'failed' (and a rejection) when
// the log, the snapshot store or an invariant fails.
import { SpscRing } from '../ring/spsc-ring.js';
import { WalError } from '../storage/wal.js';
import { ShardCounter } from './counters.js';
import { v8HeapTrim } from './heap-trim.js';
import { createShardLogger } from './log.js';
import { Outbox } from './outbox.js';
import { Shard } from './shard.js';
import type { ShardTask } from './task.js';

/** How long a failing shard tries to answer waiting requests and report before it gives up. */
const FAILURE_REPORT_MS_MAX = 2000;

export async function runShard(task: ShardTask): Promise<void> {
  const log = createShardLogger(
    { level: task.logLevel, format: task.logFormat ?? 'json', color: task.logColor ?? false }, task.nodeId, task.shard);
  const counters = new Float64Array(task.counters);
  const inRing = new SpscRing(task.inRing);
  const outRing = new SpscRing(task.outRing);
  const outbox = new Outbox(outRing, task.snapChunkBytes);
  let shard: Shard | null = null;
  try {
    shard = await Shard.open(task, { log, counters, inRing, outbox, heapTrim: v8HeapTrim() });
    outbox.event({ type: 'ready', shard: task.shard });
    await outbox.flush();
    log.info({ groups: shard.groups.size }, 'shard ready');
    await shard.run();
    outbox.event({ type: 'stopped', shard: task.shard });
    await outbox.flush();
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    counters[ShardCounter.Failed] = 1;
    log.fatal({ err }, 'shard failed');
    await withTimeout(reportFailure(task, shard, outbox, err), FAILURE_REPORT_MS_MAX);
    throw err;
  } finally {
    inRing.close();
    outRing.close();
  }
}

/** Answers what waits (each request its one response), tells the main thread, closes the log. */
async function reportFailure(task: ShardTask, shard: Shard | null, outbox: Outbox, err: Error): Promise<void> {
  if (shard !== null) {
    shard.close();
    const storage = err instanceof WalError || (err as { code?: unknown }).code === 'WAL_FAILED';
    shard.abortAll(storage ? 'STORAGE_FAILED' : 'UNAVAILABLE', `shard ${task.shard} failed: ${err.message}`);
  }
  outbox.event({ type: 'failed', shard: task.shard, message: err.message });
  await outbox.flush();
  if (shard !== null) await shard.wal.close();
}

function withTimeout(p: Promise<void>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  return Promise.race([p.catch(() => undefined), late]).finally(() => clearTimeout(timer));
}
