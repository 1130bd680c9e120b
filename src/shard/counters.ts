// Hot counters of a shard in shared memory: the shard bumps plain Float64Array slots, the main
// thread reads them when /metrics is scraped. No locks: each slot has one writer, and a reader
// seeing a value a moment old is fine for metrics.
import type { MessageProblem } from '../raft/message-check.js';

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
  /** Peer input dropped, by reason (peer-input.ts): the sub-record or message, not the link. */
  PeerDropUnknownGroup,
  PeerDropUndecodable,
  PeerDropWrongSender,
  PeerDropBadSender,
  PeerDropBadEntries,
  PeerDropBadSnapshot,
  PeerDropBadIndex,
  PeerDropNotMember,
  /** 1 while the shard's disk is full (its log holds a batch and tries it again), else 0. */
  NoSpace,
  /** Writes answered NO_SPACE (refused up front, or waiting when the disk filled). */
  ErrorsNoSpace,
  /** Linearizable reads served on a leader's lease (readMode lease), without a round. */
  LeaseReads,
  /** Reads confirmed by a leader's lease that had run out when they were served: asked again by a round. */
  LeaseReadsAskedAgain,
  /** Gauges of the shard thread's heap (heap-sample.ts): used, total, and the young generation's size. */
  HeapUsedBytes,
  HeapTotalBytes,
  HeapYoungBytes,
}

export const SHARD_COUNTER_SLOTS = 40;

/** Why peer input was dropped (peer-input.ts); stable names, the `reason` label of flotilla_peer_dropped_total. */
export type PeerDropReason = 'unknownGroup' | 'undecodable' | 'wrongSender' | MessageProblem;

/** The counter slot of each reason. */
export const PEER_DROP_SLOTS: Readonly<Record<PeerDropReason, ShardCounter>> = Object.freeze({
  unknownGroup: ShardCounter.PeerDropUnknownGroup,
  undecodable: ShardCounter.PeerDropUndecodable,
  wrongSender: ShardCounter.PeerDropWrongSender,
  badSender: ShardCounter.PeerDropBadSender,
  badEntries: ShardCounter.PeerDropBadEntries,
  badSnapshot: ShardCounter.PeerDropBadSnapshot,
  badIndex: ShardCounter.PeerDropBadIndex,
  notMember: ShardCounter.PeerDropNotMember,
});

export const PEER_DROP_REASONS = Object.keys(PEER_DROP_SLOTS) as PeerDropReason[];

export function createCounters(): SharedArrayBuffer {
  return new SharedArrayBuffer(SHARD_COUNTER_SLOTS * Float64Array.BYTES_PER_ELEMENT);
}
