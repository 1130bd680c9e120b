// Handing work to the host: the Ready batch (types.ts describes the contract), gathered in an
// `Outbox` as the member steps and ticks, and `persisted`, the host's word that a Ready is
// durable. Committed entries are applied here, as they are handed out, so that a conf change
// takes effect before the messages of the same Ready are chosen.
import { assert } from '../util/assert.js';
import { applyConfEntry, maybeLeaveJoint } from './membership.js';
import { broadcastAppend, broadcastHeartbeat, maybeCommit } from './replication.js';
import type { RaftState } from './state.js';
import {
  EntryType, MessageType, NONE, Role,
  type Entry, type HardState, type Message, type ReadState, type Ready, type SoftState,
} from './types.js';

/** Bound on the bytes of committed entries handed out by one Ready. */
export const BYTES_APPLY_MAX = 8 << 20;

/** What the next Ready hands out, and what the previous ones did. */
export class Outbox {
  msgs: Message[] = [];
  msgsAfterPersist: Message[] = [];
  readStates: ReadState[] = [];
  readsAborted: number[] = [];
  confChanged = false;
  /** The hard and soft state as last handed out: a Ready carries them only when they changed. */
  handedHard: HardState = { term: 0, vote: NONE, commit: 0 };
  handedSoft: SoftState = { role: Role.Follower, leader: NONE, term: 0 };

  send(m: Message): void {
    switch (m.type) {
      // These promise something about this member's durable state (an entry, a vote, a term),
      // so they wait until what was handed out before them is durable.
      case MessageType.AppResp:
      case MessageType.Vote:
      case MessageType.VoteResp:
        this.msgsAfterPersist.push(m);
        break;
      default:
        this.msgs.push(m);
    }
  }
}

export function hasReady(r: RaftState): boolean {
  const o = r.out;
  const log = r.log;
  if (o.msgs.length > 0 || o.msgsAfterPersist.length > 0 || o.readStates.length > 0 || o.readsAborted.length > 0) return true;
  if (log.hasUnhandedEntries() || log.unhandedSnapshot() !== null) return true;
  if (r.proposals.appendWanted || r.reads.roundWanted || r.quiet.heartbeatWanted || o.confChanged) return true;
  if (log.unhandedSnapshot() === null && log.hasApplicable()) return true;
  const h = o.handedHard;
  if (h.term !== r.term || h.vote !== r.vote || h.commit !== log.committed) return true;
  const s = o.handedSoft;
  return s.role !== r.role || s.leader !== r.leader || s.term !== r.term;
}

export function ready(r: RaftState): Ready {
  const o = r.out;
  const log = r.log;
  // Apply first: a conf change may step this leader down or add members to send to.
  const committedEntries = nextCommitted(r);
  maybeLeaveJoint(r);
  if (r.role === Role.Leader) {
    if (r.proposals.appendWanted) {
      r.proposals.appendWanted = false;
      broadcastAppend(r);
    }
    if (r.reads.roundWanted || r.quiet.heartbeatWanted) {
      r.quiet.heartbeatWanted = false;
      r.time.heartbeatElapsed = 0;
      broadcastHeartbeat(r, false);
    }
  }

  const snapshot = log.unhandedSnapshot();
  const entries = log.hasUnhandedEntries() ? log.unhandedEntries() : [];
  const last = entries.length > 0 ? entries[entries.length - 1]! : null;
  let hardState: HardState | null = null;
  const h = o.handedHard;
  if (h.term !== r.term || h.vote !== r.vote || h.commit !== log.committed) {
    hardState = { term: r.term, vote: r.vote, commit: log.committed };
    o.handedHard = hardState;
  }
  let soft: SoftState | null = null;
  const s = o.handedSoft;
  if (s.role !== r.role || s.leader !== r.leader || s.term !== r.term) {
    soft = { role: r.role, leader: r.leader, term: r.term };
    o.handedSoft = soft;
  }
  const rd: Ready = {
    soft,
    hardState,
    snapshot,
    entries,
    messages: o.msgs,
    messagesAfterPersist: o.msgsAfterPersist,
    committedEntries,
    readStates: o.readStates,
    readsAborted: o.readsAborted,
    conf: o.confChanged ? r.trk.conf : null,
    lastIndex: last === null ? 0 : last.index,
    lastTerm: last === null ? 0 : last.term,
  };
  log.markHanded();
  o.msgs = [];
  o.msgsAfterPersist = [];
  o.readStates = [];
  o.readsAborted = [];
  o.confChanged = false;
  return rd;
}

/** The committed entries to apply next, durable locally, applied here as they are handed out. */
function nextCommitted(r: RaftState): Entry[] {
  const log = r.log;
  if (log.unhandedSnapshot() !== null || !log.hasApplicable()) return [];
  const hi = log.applicableIndex();
  const ents = log.slice(log.applied + 1, hi + 1, BYTES_APPLY_MAX);
  assert(ents !== null, `committed entries after ${log.applied} were compacted before being applied`);
  for (const e of ents) {
    log.applied = e.index;
    if (r.role === Role.Leader) r.proposals.applied(e.data.length);
    if (e.type === EntryType.ConfChange) applyConfEntry(r, e);
  }
  return ents;
}

/** The host made everything in `rd` durable. */
export function persisted(r: RaftState, rd: Ready): void {
  const log = r.log;
  if (rd.snapshot !== null) log.stableSnapTo(rd.snapshot.meta.index);
  if (rd.lastIndex > 0) log.stableTo(rd.lastIndex, rd.lastTerm);
  if (r.role !== Role.Leader || rd.lastIndex === 0) return;
  // The leader counts itself toward a quorum only for what is durable on its own disk.
  const self = r.trk.progress.get(r.id);
  if (self !== undefined && log.term(rd.lastIndex) === rd.lastTerm && self.maybeUpdate(Math.min(rd.lastIndex, log.stableIndex()))) {
    if (maybeCommit(r)) r.proposals.appendWanted = true;
  }
}
