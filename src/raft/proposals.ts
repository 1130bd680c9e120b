// What a leader appends to its own log: proposals from the host, configuration changes
// (membership.ts validates them) and a new term's no-op (election.ts); when it refuses; and the
// bound on what is proposed but not yet committed (`uncommittedEntriesMax`/`BytesMax`).
import { unquiesce } from './quiescence.js';
import type { RaftState } from './state.js';
import { EntryType, NONE, Role, type ErrorCode, type NodeId, type ProposeResult } from './types.js';

export class Proposals {
  /** New entries were proposed: broadcast them at the next Ready, once for all of them. */
  appendWanted = false;
  /** Entries and payload bytes appended by this leader and not yet applied here. */
  uncommittedEntries = 0;
  uncommittedBytes = 0;
  /** Index of the latest conf change appended by this leader; none may follow until it applies. */
  pendingConfIndex = 0;

  resetUncommitted(): void {
    this.uncommittedEntries = 0;
    this.uncommittedBytes = 0;
  }

  /** An entry of `bytes` payload bytes was applied at the leader. */
  applied(bytes: number): void {
    this.uncommittedEntries = Math.max(0, this.uncommittedEntries - 1);
    this.uncommittedBytes = Math.max(0, this.uncommittedBytes - bytes);
  }
}

export function propose(r: RaftState, data: Uint8Array, type: EntryType.Normal | EntryType.Batch = EntryType.Normal): ProposeResult {
  const refused = refusal(r);
  if (refused !== null) return refused;
  const p = r.proposals;
  if (p.uncommittedEntries > 0 &&
      (p.uncommittedEntries >= r.cfg.uncommittedEntriesMax || p.uncommittedBytes + data.length > r.cfg.uncommittedBytesMax)) {
    return { ok: false, code: 'OVERLOADED', leader: r.id };
  }
  return appendLocal(r, type, data);
}

/** Why this member takes no proposal now, or null if it does. */
export function refusal(r: RaftState): { ok: false; code: ErrorCode; leader: NodeId } | null {
  if (r.role !== Role.Leader) return { ok: false, code: 'NOT_LEADER', leader: r.leader };
  // A leader removed from the configuration only hands over (see handOver): were its log to
  // grow past the voters', it would refuse their candidates as less up to date.
  if (!r.trk.isVoter(r.id)) return { ok: false, code: 'NOT_LEADER', leader: r.transferee };
  if (r.transferee !== NONE) return { ok: false, code: 'LEADER_TRANSFERRING', leader: r.transferee };
  return null;
}

export function appendLocal(r: RaftState, type: EntryType, data: Uint8Array): { ok: true; index: number; term: number } {
  // New entries (a proposal, a configuration change) wake the group.
  unquiesce(r);
  const index = r.log.lastIndex() + 1;
  r.log.append([{ term: r.term, index, type, data }]);
  const p = r.proposals;
  p.uncommittedEntries++;
  p.uncommittedBytes += data.length;
  p.appendWanted = true;
  return { ok: true, index, term: r.term };
}
