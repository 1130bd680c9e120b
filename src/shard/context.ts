// What every part of a shard is built from. shard.ts makes one and wires the parts with it;
// each part copies into its own fields what it uses, so that no hot path goes through this.
import type { Clock } from '../io/clock.js';
import type { Wal } from '../storage/wal.js';
import type { ShardLogger } from './log.js';
import type { LoopControl } from './loop-control.js';
import type { Outbox } from './outbox.js';
import type { ShardTask } from './task.js';

export interface ShardContext {
  task: ShardTask;
  log: ShardLogger;
  counters: Float64Array;
  clock: Clock;
  outbox: Outbox;
  wal: Wal;
  control: LoopControl;
}
