// Quorum arithmetic: how commit is computed and how elections are decided, for a simple
// majority and for a joint configuration (a majority of both halves).
import type { ConfState, NodeId } from './types.js';

export enum VoteResult {
  Pending = 0,
  Won = 1,
  Lost = 2,
}

/** A scratch array reused across calls: commit is computed on every append response. */
const scratch: number[] = [];

/**
 * The largest index that a majority of `voters` has reached, given each voter's index. An empty
 * set of voters places no constraint (it is the absent half of a non-joint configuration).
 */
export function majorityIndex(voters: readonly NodeId[], indexOf: (id: NodeId) => number): number {
  const n = voters.length;
  if (n === 0) return Number.MAX_SAFE_INTEGER;
  if (n === 1) return indexOf(voters[0]!);
  scratch.length = n;
  for (let i = 0; i < n; i++) scratch[i] = indexOf(voters[i]!);
  // Insertion sort, descending: n is the size of a group (3–7), where this beats Array#sort.
  for (let i = 1; i < n; i++) {
    const v = scratch[i]!;
    let j = i - 1;
    while (j >= 0 && scratch[j]! < v) { scratch[j + 1] = scratch[j]!; j--; }
    scratch[j + 1] = v;
  }
  return scratch[(n >> 1)]!;
}

export function jointIndex(conf: ConfState, indexOf: (id: NodeId) => number): number {
  return Math.min(majorityIndex(conf.voters, indexOf), majorityIndex(conf.votersOutgoing, indexOf));
}

export function majorityVote(voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  const n = voters.length;
  if (n === 0) return VoteResult.Won;
  let granted = 0;
  let rejected = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === true) granted++;
    else if (v === false) rejected++;
  }
  const q = (n >> 1) + 1;
  if (granted >= q) return VoteResult.Won;
  if (n - rejected < q) return VoteResult.Lost;
  return VoteResult.Pending;
}

export function jointVote(conf: ConfState, votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  const a = majorityVote(conf.voters, votes);
  const b = majorityVote(conf.votersOutgoing, votes);
  if (a === VoteResult.Won && b === VoteResult.Won) return VoteResult.Won;
  if (a === VoteResult.Lost || b === VoteResult.Lost) return VoteResult.Lost;
  return VoteResult.Pending;
}
