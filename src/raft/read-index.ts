// The leader's read path: `readIndex` requests and the heartbeat rounds that confirm them.
//
// A read is served at the commit index it arrived at, once a quorum has acknowledged a round
// sent after it (read-only.ts queues reads by round), or at once while the lease holds
// (lease.ts). The rounds go out as heartbeats (replication.ts, broadcastHeartbeat) and come
// back as HeartbeatResp (replication.ts, handleHeartbeatResp); every acknowledgement that may
// move the quorum's round lands in `confirmRounds`.
import { leaseValid } from './lease.js';
import { unquiesce } from './quiescence.js';
import type { RaftState } from './state.js';
import { Role, type ReadResult } from './types.js';

/** Bound on reads waiting for a round (or for the leader's first commit), per member. */
export const READS_PENDING_MAX = 1 << 16;

/**
 * Asks for a linearizable read. On success a ReadState with `requestId` arrives in a later
 * Ready (or `readsAborted` lists it if leadership is lost first).
 */
export function readIndex(r: RaftState, requestId: number): ReadResult {
  if (r.role !== Role.Leader) return { ok: false, code: 'NOT_LEADER', leader: r.leader };
  unquiesce(r);
  r.lease.readTick = r.time.ticks;
  if (r.log.term(r.log.committed) !== r.term) {
    // Until an entry of its own term commits, a new leader does not know the commit index;
    // its no-op commits within a round trip, and the read waits for it.
    if (r.reads.held.length + r.reads.size >= READS_PENDING_MAX) return { ok: false, code: 'OVERLOADED', leader: r.id };
    r.reads.held.push(requestId);
    return { ok: true };
  }
  if (r.trk.voterIds().length === 1 && r.trk.isVoter(r.id)) {
    r.out.readStates.push({ requestId, index: r.log.committed, lease: false });
    return { ok: true };
  }
  if (leaseValid(r)) {
    r.out.readStates.push({ requestId, index: r.log.committed, lease: true });
    return { ok: true };
  }
  if (!r.reads.add(requestId, r.log.committed)) return { ok: false, code: 'OVERLOADED', leader: r.id };
  return { ok: true };
}

/** Serves the reads of every round a quorum has now acknowledged, and extends the lease. */
export function confirmRounds(r: RaftState): void {
  const round = r.trk.roundQuorum(r.id, r.reads.round);
  if (round <= r.reads.roundQuorum) return;
  r.reads.confirm(round, r.out.readStates);
  r.lease.extend(round, r.reads.sentTick(round), r.reads.sentMs(round));
}
