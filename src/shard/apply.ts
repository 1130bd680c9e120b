// What a Ready changes on this member once its Raft messages and log write are on their way:
// committed entries applied to the state machine (each proposal made here answered with its
// result), configuration, ReadStates confirming reads (served once applied reaches their
// index), aborted reads, and role changes (waiting writes answered when leadership is lost).
// Then, every snapshotEntries applied commands, a snapshot (snapshots.ts).
import { assert } from '../util/assert.js';
import { EntryType, Role, type Entry, type Ready, type SoftState } from '../raft/types.js';
import { ClientRequests } from './client-requests.js';
import { forEachCommand } from './command-batch.js';
import { ShardCounter } from './counters.js';
import type { GroupHost } from './group-host.js';
import type { GroupTable } from './group-table.js';
import { MemberChanges } from './member-changes.js';
import type { Snapshots } from './snapshots.js';

export class Applier {
  constructor(
    private readonly table: GroupTable,
    private readonly requests: ClientRequests,
    private readonly snapshots: Snapshots,
    private readonly counters: Float64Array,
  ) {}

  /** What a Ready changes in the state machine and the requests waiting on it. */
  handleReadyState(h: GroupHost, rd: Ready): void {
    if (rd.committedEntries.length > 0) this.apply(h, rd.committedEntries);
    // A snapshot's configuration takes effect here when the snapshot is restored (install).
    if (rd.conf !== null && rd.snapshot === null) h.conf = rd.conf;
    for (const rs of rd.readStates) {
      const r = h.reads.byId.get(rs.requestId);
      if (r === undefined) continue;
      h.reads.byId.delete(rs.requestId);
      r.index = rs.index;
      r.lease = rs.lease;
      h.reads.ready.push(r);
      h.reads.confirmed++;
    }
    for (const id of rd.readsAborted) {
      // Only an unconfirmed read can be aborted: a confirmed one is served once applied.
      const r = h.reads.byId.get(id);
      if (r === undefined) continue;
      h.reads.byId.delete(id);
      this.requests.reject(r.conn, r.requestId, h.id, 'NOT_LEADER', this.requests.notLeaderMessage(h.id, h.core.leader), r.t0, h.core.leader);
    }
    if (rd.soft !== null) this.onSoft(h, rd.soft);
    if (h.reads.confirmed > 0) this.requests.serveReads(h);
    if (h.change !== null) MemberChanges.check(h);
    this.snapshots.maybeSnapshot(h);
  }

  private apply(h: GroupHost, entries: Entry[]): void {
    const requests = this.requests;
    for (const e of entries) {
      assert(e.index === h.applied + 1, `group ${h.id}: applies ${e.index} after ${h.applied}`);
      // The writes proposed here for this entry, if it is theirs (same index and term).
      let p = h.writes.proposals.size === 0 ? undefined : h.writes.proposals.get(e.index);
      if (p !== undefined) {
        h.writes.proposals.delete(e.index);
        if (p.term !== e.term) {
          requests.rejectWrite(h, p, 'NOT_LEADER', `the entry of this write was replaced (group ${h.id})`, h.core.leader);
          p = undefined;
        }
      }
      // A state machine must turn bad input into a result (state-machine.ts); an exception
      // here is a bug that would make replicas diverge, so it stops the shard.
      if (e.type === EntryType.Normal && e.data.length > 0) {
        const result = h.sm.apply(e.data, e.index);
        h.image.appliedBytesSince += e.data.length;
        h.image.appliedCommandsSince++;
        this.counters[ShardCounter.Applied]!++;
        if (p !== undefined) {
          requests.answer(p.conn, p.requestId, h.id, result, p.t0);
          h.writes.waiting--;
        }
      } else if (e.type === EntryType.Batch) {
        const n = forEachCommand(e.data, (command, i) => {
          const result = h.sm.apply(command, e.index);
          const w = p === undefined ? undefined : ClientRequests.writeAt(p, i);
          if (w !== undefined) requests.answer(w.conn, w.requestId, h.id, result, w.t0);
        });
        h.image.appliedBytesSince += e.data.length;
        h.image.appliedCommandsSince += n;
        this.counters[ShardCounter.Applied]! += n;
        if (p !== undefined) h.writes.waiting -= p.rest === null ? 1 : 1 + p.rest.length;
      } else if (p !== undefined) {
        // A proposal's index holds a no-op or a configuration entry of the same term: it cannot
        // be, the term's leader put the write there. Answered, so it is not left waiting.
        requests.rejectWrite(h, p, 'NOT_LEADER', `the entry of this write was replaced (group ${h.id})`, h.core.leader);
      }
      h.applied = e.index;
      h.appliedTerm = e.term;
    }
  }

  /**
   * Role, term or leader changed. A member that stops leading answers its waiting writes
   * OUTCOME_UNKNOWN (they may still commit under the next leader) and its unconfirmed reads
   * NOT_LEADER; reads already confirmed by a ReadState are still served once applied.
   */
  private onSoft(h: GroupHost, s: SoftState): void {
    const was = h.role === Role.Leader;
    const is = s.role === Role.Leader;
    h.role = s.role;
    h.leader = s.leader;
    h.term = s.term;
    if (was !== is) {
      this.table.leaders += is ? 1 : -1;
      h.writes.proposedLast = 0;
    }
    for (const [index, p] of h.writes.proposals) {
      if (is && p.term === s.term) continue;
      h.writes.proposals.delete(index);
      this.requests.rejectWrite(h, p, 'OUTCOME_UNKNOWN', `leadership of group ${h.id} was lost before the write was known to commit`);
    }
    if (is) return;
    // The unconfirmed reads (confirmed ones are in readsReady, served once applied).
    for (const r of h.reads.byId.values()) {
      this.requests.reject(r.conn, r.requestId, h.id, 'NOT_LEADER', this.requests.notLeaderMessage(h.id, s.leader), r.t0, s.leader);
    }
    h.reads.byId.clear();
  }

}
