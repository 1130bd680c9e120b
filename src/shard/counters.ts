// Hot counters of a shard in shared memory: the shard bumps plain Float64Array slots, the main
// thread reads them when /metrics is scraped. No locks: each slot has one writer, and a reader
// seeing a value a moment old is fine for metrics.

export enum ShardCounter {
  /** Turns run. */
  Turns,
  /** Client requests received (commands and admin). */
  Requests,
  /** Error responses sent, any code. */
  Errors,
  ErrorsNotLeader,
  ErrorsOverloaded,
  ErrorsBadRequest,
  ErrorsOther,
  /** Entries proposed by this shard's leaders. */
  Proposals,
  /** Entries applied to state machines. */
  Applied,
  /** WAL appends (batches) and their total duration in ms. */
  Appends,
  AppendMsTotal,
  /** Raft messages sent and received. */
  MessagesOut,
  MessagesIn,
  /** Groups hosted, and how many of them this node leads. */
  Groups,
  Leaders,
  /** Snapshots taken locally, and installed from a leader. */
  SnapshotsTaken,
  SnapshotsInstalled,
  /** Nonzero once the shard failed. */
  Failed,
  /** Timer ticks that fired while the previous one was still waiting for a turn: Raft time lost to a busy shard. */
  TicksMissed,
}

export const SHARD_COUNTER_SLOTS = 32;

export function createCounters(): SharedArrayBuffer {
  return new SharedArrayBuffer(SHARD_COUNTER_SLOTS * Float64Array.BYTES_PER_ELEMENT);
}
