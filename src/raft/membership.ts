// Membership changes in a running member: proposing one (validated by conf-change.ts, which
// also encodes it), applying a committed one, leaving a joint configuration, and replaying the
// changes a restarted member had applied. A configuration takes effect when its entry is
// applied, on every member alike.
import { applyConfChange, decodeConfChange, encodeConfChange, isJoint, type ConfChange } from './conf-change.js';
import { appendLocal, refusal } from './proposals.js';
import { confirmRounds } from './read-index.js';
import { BYTES_APPLY_MAX } from './ready.js';
import { maybeCommit } from './replication.js';
import type { RaftState } from './state.js';
import { handOver } from './transfer.js';
import { EntryType, NONE, Role, type Entry, type ProposeResult } from './types.js';

/** Starts a membership change (joint consensus; the leader leaves the joint configuration itself). */
export function proposeConfChange(r: RaftState, cc: ConfChange): ProposeResult & { reason?: string } {
  const refused = refusal(r);
  if (refused !== null) return refused;
  if (r.proposals.pendingConfIndex > r.log.applied || isJoint(r.trk.conf)) {
    return { ok: false, code: 'CONF_CHANGE_PENDING', leader: r.id };
  }
  if (cc.leave) return { ok: false, code: 'BAD_CONF_CHANGE', leader: r.id, reason: 'leave is proposed by the leader itself' };
  const next = applyConfChange(r.trk.conf, cc);
  if (typeof next === 'string') return { ok: false, code: 'BAD_CONF_CHANGE', leader: r.id, reason: next };
  const res = appendLocal(r, EntryType.ConfChange, encodeConfChange(cc));
  if (res.ok) r.proposals.pendingConfIndex = res.index;
  return res;
}

/** A leader whose joint configuration's entry is applied appends the entry that leaves it. */
export function maybeLeaveJoint(r: RaftState): void {
  if (r.role === Role.Leader && isJoint(r.trk.conf) && r.proposals.pendingConfIndex <= r.log.applied) {
    const leave = appendLocal(r, EntryType.ConfChange, encodeConfChange({ leave: true, changes: [] }));
    r.proposals.pendingConfIndex = leave.index;
  }
}

/** Applies a committed conf change entry (ready.ts, as it hands out committed entries). */
export function applyConfEntry(r: RaftState, e: Entry): void {
  const next = applyConfChange(r.trk.conf, decodeConfChange(e.data));
  // A committed change that does not apply is ignored by every member alike (only a change
  // proposed by a deposed leader can be stale; proposals are validated).
  if (typeof next === 'string') return;
  r.trk.setConf(next, r.log.lastIndex() + 1);
  r.out.confChanged = true;
  if (r.role !== Role.Leader) return;
  if (r.transferee !== NONE && !r.trk.isVoter(r.transferee)) r.transferee = NONE;
  if (!r.trk.isVoter(r.id) && !isJoint(next)) handOver(r, NONE);
  r.lease.forfeit(r.reads.round + 1);
  const self = r.trk.progress.get(r.id);
  if (self !== undefined && self.match === 0) self.match = r.log.stableIndex();
  if (maybeCommit(r)) r.proposals.appendWanted = true;
  confirmRounds(r);
}

/**
 * Conf changes in [lo, hi] were applied by the host before a restart; replaying them makes the
 * configuration match the applied index.
 */
export function replayConfChanges(r: RaftState, lo: number, hi: number): void {
  while (lo <= hi) {
    const ents = r.log.slice(lo, hi + 1, BYTES_APPLY_MAX);
    if (ents === null || ents.length === 0) return;
    for (const e of ents) if (e.type === EntryType.ConfChange) applyConfEntry(r, e);
    lo += ents.length;
  }
}

/** A committed conf change not yet applied means our view of the voters may be stale. */
export function hasUnappliedConfChanges(r: RaftState): boolean {
  const hi = r.log.applicableIndex();
  for (let lo = r.log.applied + 1; lo <= hi;) {
    const ents = r.log.slice(lo, hi + 1, BYTES_APPLY_MAX);
    if (ents === null || ents.length === 0) return false;
    for (const e of ents) if (e.type === EntryType.ConfChange) return true;
    lo += ents.length;
  }
  return false;
}
