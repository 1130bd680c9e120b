// Log replication, both sides. The leader: appends and snapshots to each follower, paced by
// its Progress (progress.ts), heartbeats, the answers to both, and advancing the commit index
// (quorum.ts decides it). The follower: accepting or rejecting appends, installing snapshots,
// answering heartbeats.
import { assert } from '../util/assert.js';
import { ProgressState, type Progress } from './progress.js';
import { followQuiesce } from './quiescence.js';
import { confirmRounds } from './read-index.js';
import type { RaftState } from './state.js';
import { sendTimeoutNow } from './transfer.js';
import { APP_NO_ANSWER, message, MessageType, Role, type Message, type NodeId } from './types.js';

/** Leader ticks a snapshot may stay unacknowledged before it is presumed lost and resent. */
const TICKS_SNAPSHOT_RESEND_FACTOR = 10;

// --- Leader ---

/**
 * Commits what a quorum holds durably, if that moves the commit index (only entries of this
 * leader's term count, Raft §5.4.2, which RaftLog.maybeCommit checks). Reads held until
 * this leader's first commit may then join a round.
 */
export function maybeCommit(r: RaftState): boolean {
  if (!r.log.maybeCommit(r.trk.committed(), r.term)) return false;
  r.reads.release(r.log.committed);
  return true;
}

export function broadcastAppend(r: RaftState): void {
  for (const id of r.trk.members) if (id !== r.id) sendAppend(r, id, true);
}

/** Sends the next entries (or a snapshot) to `to` unless its flow is paused. */
export function sendAppend(r: RaftState, to: NodeId, sendIfEmpty: boolean): boolean {
  const pr = r.trk.progress.get(to);
  if (pr === undefined || pr.isPaused()) return false;
  const log = r.log;
  const prev = pr.next - 1;
  const prevTerm = log.term(prev);
  const last = log.lastIndex();
  const ents = prevTerm === null ? null :
    log.slice(pr.next, Math.min(last + 1, pr.next + r.cfg.entriesPerMsgMax), r.cfg.bytesPerMsgMax);
  if (prevTerm === null || ents === null) return sendSnapshot(r, to, pr);
  if (ents.length === 0 && !sendIfEmpty) return false;
  const m = message(MessageType.App, r.id, to, r.term);
  m.index = prev;
  m.logTerm = prevTerm;
  m.entries = ents;
  m.commit = log.committed;
  // Only news of the commit index, to a follower that holds all before it and has nothing in
  // flight: its answer would say what the leader knows. Without it a new commit costs one
  // message per follower, not two (at many groups with a command an entry, a quarter of all
  // messages). A follower that cannot accept it (it lost its tail) still answers.
  if (ents.length === 0 && pr.state === ProgressState.Replicate && pr.match === prev) m.context = APP_NO_ANSWER;
  let bytes = 0;
  for (const e of ents) bytes += e.data.length;
  pr.sentEntries(ents.length, prev + ents.length, bytes);
  r.out.send(m);
  return true;
}

function sendSnapshot(r: RaftState, to: NodeId, pr: Progress): boolean {
  if (!pr.recentActive) return false;
  const snap = r.log.snapshot();
  assert(snap.meta.index > 0, 'entries were compacted but there is no snapshot');
  pr.becomeSnapshot(snap.meta.index);
  const m = message(MessageType.Snap, r.id, to, r.term);
  m.snapshot = snap;
  r.out.send(m);
  return true;
}

/**
 * The leader's heartbeat tick. A heartbeat keeps followers from campaigning, tells them the
 * commit index, and finds appends that were lost; while appends flow both ways, each of them
 * does all of that already. So when every member answered an append since the last tick, no
 * read waits for a round and no lease is kept (leases are extended by rounds), the tick sends
 * nothing: a busy group's heartbeats cost no messages. Anything else sends them to all.
 */
export function tickHeartbeat(r: RaftState): void {
  // A group going idle needs rounds to quiesce (quiescence.ts), and a group of one has no
  // member to answer anything: both heartbeat as before. With leases, rounds keep the lease
  // fresh while reads come (lease.ts, readTick).
  const leaseWanted = r.cfg.leaseRead && r.time.ticks - r.lease.readTick < r.cfg.ticksElection;
  let allAnswered = !leaseWanted && r.reads.size === 0 && r.quiet.ticksIdle === 0;
  let others = 0;
  for (const id of r.trk.members) {
    if (id === r.id) continue;
    others++;
    const pr = r.trk.progress.get(id)!;
    if (!pr.answeredSinceHeartbeat) allAnswered = false;
    pr.answeredSinceHeartbeat = false;
  }
  if (!allAnswered || others === 0) broadcastHeartbeat(r, false);
}

/** Heartbeats to every member, opening a new read round (read-only.ts); `quiesce`: the last one. */
export function broadcastHeartbeat(r: RaftState, quiesce: boolean): void {
  // The host's clock only matters to a lease bounded on it (leaseMs): not read otherwise.
  const round = r.reads.startRound(r.time.ticks, r.cfg.leaseMs > 0 ? r.cfg.nowMs() : 0);
  for (const id of r.trk.members) {
    if (id === r.id) continue;
    const pr = r.trk.progress.get(id)!;
    const m = message(MessageType.Heartbeat, r.id, id, r.term);
    // A follower may not have the leader's commit index yet: never tell it more than it has.
    m.commit = Math.min(pr.match, r.log.committed);
    m.context = round;
    m.quiesce = quiesce;
    r.out.send(m);
  }
  confirmRounds(r);
}

/** The leader's tick for snapshots in flight: one unacknowledged for too long is presumed lost. */
export function tickSnapshots(r: RaftState): void {
  const ticksSnapshotMax = r.cfg.ticksElection * TICKS_SNAPSHOT_RESEND_FACTOR;
  for (const id of r.trk.members) {
    const pr = r.trk.progress.get(id)!;
    if (pr.state === ProgressState.Snapshot && ++pr.ticksInSnapshot >= ticksSnapshotMax) pr.becomeProbe();
  }
}

/** The host delivered (ok) or gave up on (not ok) a snapshot sent to `to`. */
export function reportSnapshot(r: RaftState, to: NodeId, ok: boolean): void {
  const pr = r.trk.progress.get(to);
  if (r.role !== Role.Leader || pr === undefined || pr.state !== ProgressState.Snapshot) return;
  if (!ok) pr.pendingSnapshot = 0;
  pr.becomeProbe();
  // Wait for the follower's answer (or the next heartbeat) before probing.
  pr.probeSent = true;
}

export function handleAppendResp(r: RaftState, m: Message, pr: Progress): void {
  const log = r.log;
  pr.recentActive = true;
  pr.answeredSinceHeartbeat = true;
  if (m.reject) {
    let hint = m.rejectHint;
    if (m.logTerm > 0) hint = log.findConflictByTerm(m.rejectHint, m.logTerm);
    if (pr.maybeDecrTo(m.index, hint)) {
      if (pr.state === ProgressState.Replicate) pr.becomeProbe();
      sendAppend(r, m.from, false);
    }
    return;
  }
  if (m.index > log.lastIndex()) return;
  if (pr.maybeUpdate(m.index)) {
    if (pr.state === ProgressState.Probe) {
      pr.becomeReplicate();
    } else if (pr.state === ProgressState.Snapshot && pr.match + 1 >= log.firstIndex()) {
      // The follower has what it needs to continue from the log (usually the snapshot).
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === ProgressState.Replicate) {
      pr.inflights.freeLE(m.index);
    }
    if (maybeCommit(r)) r.proposals.appendWanted = true;
    else sendAppend(r, m.from, false);
    while (pr.state === ProgressState.Replicate && pr.next <= log.lastIndex() && sendAppend(r, m.from, false)) { /* drain */ }
    if (m.from === r.transferee && pr.match === log.lastIndex()) sendTimeoutNow(r, m.from);
  } else if (pr.state === ProgressState.Probe && pr.match < log.lastIndex()) {
    sendAppend(r, m.from, false);
  }
}

export function handleHeartbeatResp(r: RaftState, m: Message, pr: Progress): void {
  pr.recentActive = true;
  pr.probeSent = false;
  // Even with nothing new to send: an append whose entries the follower dropped would
  // otherwise never be resent, and an empty append makes it say where it stands.
  // A window full of appends that were all lost would block the follower for good.
  if (pr.state === ProgressState.Replicate && pr.inflights.full()) pr.inflights.freeFirstOne();
  if (pr.match < r.log.lastIndex()) sendAppend(r, m.from, true);
  if (m.context > pr.roundAcked && m.context <= r.reads.round) {
    pr.roundAcked = m.context;
    confirmRounds(r);
  }
}

// --- Follower ---

export function handleAppend(r: RaftState, m: Message): void {
  const log = r.log;
  if (m.index < log.committed) {
    const resp = message(MessageType.AppResp, r.id, m.from, r.term);
    resp.index = log.committed;
    r.out.send(resp);
    return;
  }
  const lastNew = log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
  if (lastNew !== null) {
    if (m.context === APP_NO_ANSWER && m.entries.length === 0) return;
    const resp = message(MessageType.AppResp, r.id, m.from, r.term);
    resp.index = lastNew;
    r.out.send(resp);
    return;
  }
  // Mismatch: point the leader at the last entry that can possibly match, skipping every
  // entry of a term newer than the leader's (index, logTerm).
  const hint = log.findConflictByTerm(Math.min(m.index, log.lastIndex()), m.logTerm);
  const resp = message(MessageType.AppResp, r.id, m.from, r.term);
  resp.index = m.index;
  resp.reject = true;
  resp.rejectHint = hint;
  resp.logTerm = log.term(hint) ?? 0;
  r.out.send(resp);
}

export function handleHeartbeat(r: RaftState, m: Message): void {
  r.log.commitTo(Math.min(m.commit, r.log.lastIndex()));
  if (followQuiesce(r, m)) return;
  const resp = message(MessageType.HeartbeatResp, r.id, m.from, r.term);
  resp.context = m.context;
  r.out.send(resp);
}

export function handleSnapshot(r: RaftState, m: Message): void {
  const snap = m.snapshot;
  if (snap === null) return;
  const resp = message(MessageType.AppResp, r.id, m.from, r.term);
  if (snap.meta.index <= r.log.committed) {
    resp.index = r.log.committed;
  } else if (r.log.restore(snap)) {
    r.trk.setConf(snap.meta.conf, r.log.lastIndex() + 1);
    r.out.confChanged = true;
    resp.index = snap.meta.index;
  } else {
    resp.index = r.log.committed;
  }
  r.out.send(resp);
}
