// Client requests as a shard serves them: a command is proposed (a write, answered when its
// entry is applied) or queued as a linearizable read (ReadIndex, answered once applied reaches
// the read index) or served at once (a stale read); refusals carry a stable code and, for
// NOT_LEADER and LEADER_TRANSFERRING, a hint naming the leader. Every request gets exactly one
// response: an answer, a rejection, or TIMEOUT from the sweep. The requests waiting on a group
// are kept on its GroupHost (proposals by log index, reads by read id). The writes of one group
// read in one turn are staged and proposed together at the end of the input (proposeStaged):
// one entry for all of them (command-batch.ts), each still answered on its own.
import type { Clock } from '../io/clock.js';
import { META_GROUP } from '../cluster/meta-group.js';
import { EntryType, Role, type ErrorCode, type NodeId } from '../raft/types.js';
import { FrameFlag, FrameKind, type FrameHeader, type LeaderHint, type ProtocolErrorCode } from '../protocol/client-frame.js';
import { copyPayloads } from '../protocol/payload-slab.js';
import { batchBytes, COMMANDS_PER_ENTRY_MAX, encodeBatch } from './command-batch.js';
import type { ShardContext } from './context.js';
import { ShardCounter } from './counters.js';
import { READ_GONE, type GroupHost, type PendingRead, type PendingWrite } from './group-host.js';
import type { GroupTable } from './group-table.js';
import type { LatencyHistogram } from './latency.js';
import type { LoopControl } from './loop-control.js';
import type { Outbox } from './outbox.js';
import type { Wal } from '../storage/wal.js';
import type { PeerInfo, ShardTask } from './task.js';
import { SlotOwners } from './slot-owners.js';
import { INTERNAL_TAG_MIN } from '../kv/kv-migration-command.js';
import { CONN_INTERNAL } from '../ring/records.js';

/** Requests are checked for TIMEOUT at most this often. */
const SWEEP_INTERVAL_MS_MAX = 1000;
/** Writes a group keeps staged while its last entry is uncommitted: past them they go as an entry of their own. */
const STAGED_PACED_MAX = COMMANDS_PER_ENTRY_MAX / 4;
/**
 * Longest a staged write waits for its group's last entry to commit before it is proposed
 * anyway: a bound for when that entry is slow (a follower repaired by heartbeats), not the
 * usual case (the commit comes first).
 */
const STAGED_MS_MAX = 50;

export class ClientRequests {
  private readonly task: ShardTask;
  private readonly groups: Map<number, GroupHost>;
  private readonly outbox: Outbox;
  private readonly counters: Float64Array;
  private readonly clock: Clock;
  private readonly wal: Wal;
  private readonly peersById: Map<number, PeerInfo>;
  private readonly sweepIntervalMs: number;
  private readSeq = 0;
  private lastSweep: number;
  /** Groups with writes staged this turn. */
  private readonly staging = new Set<GroupHost>();
  /**
   * Groups with confirmed reads left unserved because the turn's responses reached the outbox's
   * clientBytesMax; served from the next turn on (serveDeferredReads). At most every group.
   */
  private readonly readsDeferred = new Set<GroupHost>();
  private readonly control: LoopControl;
  /** The WRONG_GROUP check (slot-owners.ts); null: none (no slot table, or not the KV state machine). */
  private readonly slots: SlotOwners | null;

  constructor(
    ctx: ShardContext,
    private readonly table: GroupTable,
    /** Latency of client requests, read to answered. */
    private readonly latency: LatencyHistogram,
    /** Largest command accepted for proposing: its entry must fit one ring record in an append. */
    private readonly proposalBytesMax: number,
  ) {
    this.task = ctx.task;
    this.groups = table.groups;
    this.outbox = ctx.outbox;
    this.counters = ctx.counters;
    this.clock = ctx.clock;
    this.control = ctx.control;
    this.wal = ctx.wal;
    this.lastSweep = this.clock.nowMs();
    this.peersById = new Map(ctx.task.peers.map((p) => [p.id, p]));
    this.sweepIntervalMs = Math.min(SWEEP_INTERVAL_MS_MAX, Math.max(ctx.task.tickMs, ctx.task.requestTimeoutMs / 4));
    this.slots = ctx.task.slotTable !== undefined && ctx.task.stateMachine === null ? new SlotOwners(ctx.task.slotTable) : null;
  }

  command(conn: number, f: FrameHeader, body: Uint8Array, t0: number): void {
    const h = this.groups.get(f.group);
    if (h === undefined) {
      this.reject(conn, f.requestId, f.group, 'NO_GROUP', `node ${this.task.nodeId} does not host group ${f.group}`, t0);
      return;
    }
    const read = (f.flags & FrameFlag.Read) !== 0;
    const stale = (f.flags & FrameFlag.Stale) !== 0;
    if (stale && !read) {
      this.reject(conn, f.requestId, f.group, 'BAD_REQUEST', 'the Stale flag needs the Read flag', t0);
      return;
    }
    if (body.length === 0) {
      this.reject(conn, f.requestId, f.group, 'BAD_REQUEST', 'empty command', t0);
      return;
    }
    // Every key of a read, a write or a batch must be in a slot this group owns (issue 15).
    // A migration's internal commands (kv-migration-command.ts) come only from the node itself.
    if (this.slots !== null && f.group !== META_GROUP) {
      if (body[0]! >= INTERNAL_TAG_MIN) {
        if (conn !== CONN_INTERNAL) {
          this.reject(conn, f.requestId, f.group, 'BAD_REQUEST', `command tag 0x${body[0]!.toString(16)} is internal to the nodes (migration); clients cannot send it`, t0);
          return;
        }
      } else if (this.slots.wrongOwner(f.group, body)) {
        this.wrongGroup(conn, f.requestId, f.group, t0);
        return;
      }
    }
    if (stale) {
      // Served at once, so it cannot wait for room like a linearizable read: refused instead.
      if (this.outbox.clientFull) {
        this.reject(conn, f.requestId, f.group, 'OVERLOADED', `shard ${this.task.shard} has ${this.outbox.clientBytesMax} bytes of responses waiting for the main thread`, t0);
        return;
      }
      // A copy: ring memory is a SharedArrayBuffer, which some decoders (msgpackr) refuse.
      this.query(h, conn, f.requestId, body.slice(), t0);
      return;
    }
    if (h.pending >= this.task.pendingPerGroupMax) {
      this.reject(conn, f.requestId, f.group, 'OVERLOADED', `group ${f.group} has ${h.pending} requests waiting`, t0);
      return;
    }
    if (read) {
      const id = ++this.readSeq;
      const r = h.core.readIndex(id);
      if (!r.ok) {
        this.refused(conn, f.requestId, f.group, r.code, r.leader, t0);
        return;
      }
      h.reads.byId.set(id, { conn, requestId: f.requestId, body: body.slice(), index: -1, t0, lease: false });
    } else {
      // Room for the command in an entry of its own (the batch layout's header included).
      if (batchBytes(1, body.length) > this.proposalBytesMax) {
        this.reject(conn, f.requestId, f.group, 'TOO_LARGE', `command of ${body.length} bytes exceeds ${this.proposalBytesMax - batchBytes(1, 0)}`, t0);
        return;
      }
      // A value over the state machine's bound would be replicated and logged only to fail at apply.
      const tooLarge = h.sm.admit === undefined ? null : h.sm.admit(body);
      if (tooLarge !== null) {
        this.reject(conn, f.requestId, f.group, 'TOO_LARGE', tooLarge, t0);
        return;
      }
      const refused = h.core.role === Role.Leader ? null : h.core.leader;
      if (refused !== null) {
        // Not the leader: refused now, as the core would, rather than at the end of the turn.
        this.reject(conn, f.requestId, f.group, 'NOT_LEADER', this.notLeaderMessage(f.group, refused), t0, refused);
        return;
      }
      if (this.wal.noSpace !== null) {
        // Refused before it is proposed: it can never be applied. Reads go on (they write nothing).
        this.reject(conn, f.requestId, f.group, 'NO_SPACE', `the disk of node ${this.task.nodeId} shard ${this.task.shard} is full; the write was not applied (retry once there is room)`, t0);
        return;
      }
      if (h.writes.staged.length >= COMMANDS_PER_ENTRY_MAX || batchBytes(h.writes.staged.length + 1, h.writes.stagedBytes + body.length) > this.proposalBytesMax) this.proposeStagedOf(h);
      // A copy out of the ring, carved from a shared slab: a fresh ArrayBuffer per command
      // costs twice the copy (≈ 1.1 against 0.5 µs for 270 bytes) and one more object to track.
      h.writes.staged.push(copyPayloads(body, 0, body.length));
      h.writes.stagedWaiting.push({ conn, requestId: f.requestId, t0 });
      h.writes.stagedBytes += body.length;
      h.writes.waiting++;
      this.staging.add(h);
    }
    this.table.touched.add(h);
  }

  /**
   * Proposes the writes staged so far: one entry per group (more only past the entry's bounds).
   * A group whose last entry is not committed yet keeps them staged (pacing), up to a quarter
   * of an entry's commands or STAGED_MS_MAX: they cannot commit before that entry anyway, and
   * proposed when it commits (in the turn whose acknowledgement commits it, which runs this
   * right after reading the acknowledgement) they make one entry, one append to each follower,
   * one log record on each node and one answer back, where proposing them turn by turn made
   * one of each per turn. At many groups with a few writes a turn each, those per-entry costs
   * were most of a write's CPU.
   */
  proposeStaged(): void {
    if (this.staging.size === 0) return;
    const now = this.clock.nowMs();
    for (const h of this.staging) {
      if (h.writes.proposedLast > h.core.commit && h.writes.staged.length < STAGED_PACED_MAX && h.writes.staged.length > 0 &&
          now - h.writes.stagedWaiting[0]!.t0 < STAGED_MS_MAX && h.core.role === Role.Leader) continue;
      this.proposeStagedOf(h);
      this.staging.delete(h);
    }
  }

  private proposeStagedOf(h: GroupHost): void {
    const n = h.writes.staged.length;
    if (n === 0) return;
    const waiting = h.writes.stagedWaiting.splice(0, n);
    const data = n === 1 ? h.writes.staged[0]! : encodeBatch(h.writes.staged, h.writes.stagedBytes);
    h.writes.staged.length = 0;
    h.writes.stagedBytes = 0;
    const first = waiting[0]!;
    const p: PendingWrite = { term: 0, conn: first.conn, requestId: first.requestId, t0: first.t0, rest: n === 1 ? null : waiting.slice(1) };
    const r = h.core.propose(data, n === 1 ? EntryType.Normal : EntryType.Batch);
    if (!r.ok) {
      this.refusedWrite(h, p, r.code, r.leader);
      return;
    }
    const old = h.writes.proposals.get(r.index);
    // The entry these waited for was replaced by a new leader's log: it never commits.
    if (old !== undefined) this.rejectWrite(h, old, 'NOT_LEADER', `the entry of this write was replaced (group ${h.id})`, h.leader);
    p.term = r.term;
    h.writes.proposals.set(r.index, p);
    h.writes.proposedLast = r.index;
    this.counters[ShardCounter.Proposals]! += n;
    this.table.touched.add(h);
  }

  /** Answers every write of `p` (one, or a batch entry's) with `code`; they wait no more. */
  rejectWrite(h: GroupHost, p: PendingWrite, code: ProtocolErrorCode, message: string, leader: NodeId = 0): void {
    this.reject(p.conn, p.requestId, h.id, code, message, p.t0, leader);
    if (p.rest !== null) for (const w of p.rest) this.reject(w.conn, w.requestId, h.id, code, message, w.t0, leader);
    h.writes.waiting -= p.rest === null ? 1 : 1 + p.rest.length;
  }

  private refusedWrite(h: GroupHost, p: PendingWrite, code: ErrorCode, leader: NodeId): void {
    switch (code) {
      case 'NOT_LEADER':
        this.rejectWrite(h, p, 'NOT_LEADER', this.notLeaderMessage(h.id, leader), leader);
        return;
      case 'OVERLOADED':
        this.rejectWrite(h, p, 'OVERLOADED', `group ${h.id} has too much uncommitted or waiting work`);
        return;
      case 'LEADER_TRANSFERRING':
        this.rejectWrite(h, p, 'LEADER_TRANSFERRING', `group ${h.id} is handing leadership to node ${leader}`, leader);
        return;
      default:
        this.rejectWrite(h, p, 'BAD_REQUEST', `refused: ${code}`);
    }
  }

  /** The i-th write of `p` (0: `p` itself). */
  static writeAt(p: PendingWrite, i: number): { conn: number; requestId: number; t0: number } | undefined {
    return i === 0 ? p : p.rest?.[i - 1];
  }

  /**
   * Serves the confirmed reads of `h` that applied has reached. Stops while the outbox holds
   * clientBytesMax of responses (a read's result may be large: a 250 KB value times thousands
   * of reads would otherwise be made in one turn); the rest are served in later turns.
   */
  serveReads(h: GroupHost): void {
    const ready = h.reads.ready;
    let head = h.reads.readyHead;
    // Whether the lease holds, looked at (on the clock) at the first lease read served here:
    // nothing changes the state machine until the loop ends, so that one look covers them all.
    let leaseHolds: boolean | null = null;
    while (head < ready.length) {
      const r = ready[head]!;
      if (r.index === READ_GONE) {
        head++;
        continue;
      }
      if (r.index > h.applied) break;
      if (this.outbox.clientFull) {
        this.readsDeferred.add(h);
        this.control.turnAgain();
        break;
      }
      head++;
      h.reads.confirmed--;
      // A lease read is served only while the lease still holds, on the clock read now: the
      // turn that confirmed it may have been long (a pause, a GC), and the lease run out
      // meanwhile. Between this check and the query nothing changes the state machine, so
      // what it reads was current while the lease held. Otherwise it asks again, by a round.
      if (r.lease) {
        leaseHolds ??= this.clock.nowMs() < h.core.leaseUntilMs();
        if (!leaseHolds) {
          this.askAgain(h, r);
          continue;
        }
        this.counters[ShardCounter.LeaseReads]!++;
      }
      this.query(h, r.conn, r.requestId, r.body, r.t0);
    }
    if (head === ready.length) {
      h.reads.ready = [];
      h.reads.readyHead = 0;
    } else {
      h.reads.readyHead = head;
    }
  }

  /** A lease read whose lease ran out before it was served: confirmed again, by a round. */
  private askAgain(h: GroupHost, r: PendingRead): void {
    const id = ++this.readSeq;
    const again = h.core.readIndex(id);
    if (!again.ok) {
      this.refused(r.conn, r.requestId, h.id, again.code, again.leader, r.t0);
      return;
    }
    r.index = -1;
    r.lease = false;
    h.reads.byId.set(id, r);
    this.counters[ShardCounter.LeaseReadsAskedAgain]!++;
    // The round it asked for comes with the group's next Ready: collect it in the next turn.
    // (Without this a group that had just quiesced, out of the awake set, kept its reads until
    // another request touched it: with all a client's reads waiting there, for good.)
    this.table.touched.add(h);
    this.control.turnAgain();
  }

  /** Serves, as far as the outbox has room, the reads a full outbox left for this turn. */
  serveDeferredReads(): void {
    if (this.readsDeferred.size === 0) return;
    for (const h of this.readsDeferred) {
      if (this.outbox.clientFull) {
        this.control.turnAgain();
        return;
      }
      this.readsDeferred.delete(h);
      if (!h.removed && h.reads.confirmed > 0) this.serveReads(h);
    }
  }

  /** Serves a read from the local state machine as it is now. */
  query(h: GroupHost, conn: number, requestId: number, body: Uint8Array, t0: number): void {
    let result: Uint8Array;
    try {
      result = h.sm.query(body);
    } catch (e) {
      this.reject(conn, requestId, h.id, 'BAD_REQUEST', e instanceof Error ? e.message : String(e), t0);
      return;
    }
    this.answer(conn, requestId, h.id, result, t0);
  }

  /** Answers a read the core refused, with the client's code for the core's. */
  private refused(conn: number, requestId: number, group: number, code: ErrorCode, leader: NodeId, t0: number): void {
    switch (code) {
      case 'NOT_LEADER':
        this.reject(conn, requestId, group, 'NOT_LEADER', this.notLeaderMessage(group, leader), t0, leader);
        return;
      case 'OVERLOADED':
        this.reject(conn, requestId, group, 'OVERLOADED', `group ${group} has too much uncommitted or waiting work`, t0);
        return;
      case 'LEADER_TRANSFERRING':
        this.reject(conn, requestId, group, 'LEADER_TRANSFERRING', `group ${group} is handing leadership to node ${leader}`, t0, leader);
        return;
      default:
        this.reject(conn, requestId, group, 'BAD_REQUEST', `refused: ${code}`, t0);
    }
  }

  /** Answers WRONG_GROUP with what the check found (this.slots): the map version, the owner, its leader if hosted here. */
  private wrongGroup(conn: number, requestId: number, group: number, t0: number): void {
    const { version, owner, slot } = this.slots!;
    const leader = owner === 0 ? 0 : this.groups.get(owner)?.core.leader ?? 0;
    const message = owner === 0
      ? `slot ${slot} is owned by no group in map version ${version}`
      : `slot ${slot} is group ${owner}'s, not group ${group}'s, in map version ${version}`;
    this.outbox.wrongGroup(conn, requestId, group, message, version, owner, slot, this.hint(leader));
    this.latency.recordMs(this.clock.nowMs() - t0);
    this.counters[ShardCounter.Errors]!++;
    this.counters[ShardCounter.ErrorsOther]!++;
  }

  notLeaderMessage(group: number, leader: NodeId): string {
    return leader === 0
      ? `node ${this.task.nodeId} is not the leader of group ${group}; the leader is not known`
      : `node ${this.task.nodeId} is not the leader of group ${group}; node ${leader} is`;
  }

  private hint(leader: NodeId): LeaderHint | undefined {
    const p = leader === 0 ? undefined : this.peersById.get(leader);
    return p === undefined ? undefined : { id: p.id, host: p.host, clientPort: p.clientPort, wsPort: p.wsPort };
  }

  answer(conn: number, requestId: number, group: number, result: Uint8Array, t0: number): void {
    this.outbox.respond(conn, FrameKind.Result, requestId, group, result);
    this.latency.recordMs(this.clock.nowMs() - t0);
  }

  reject(conn: number, requestId: number, group: number, code: ProtocolErrorCode, message: string, t0: number, leader: NodeId = 0): void {
    this.outbox.error(conn, requestId, group, code, message, code === 'NOT_LEADER' || code === 'LEADER_TRANSFERRING' ? this.hint(leader) : undefined);
    this.latency.recordMs(this.clock.nowMs() - t0);
    const c = this.counters;
    c[ShardCounter.Errors]!++;
    if (code === 'NOT_LEADER') c[ShardCounter.ErrorsNotLeader]!++;
    else if (code === 'OVERLOADED') c[ShardCounter.ErrorsOverloaded]!++;
    else if (code === 'BAD_REQUEST') c[ShardCounter.ErrorsBadRequest]!++;
    else if (code === 'NO_SPACE') c[ShardCounter.ErrorsNoSpace]!++;
    else c[ShardCounter.ErrorsOther]!++;
  }

  /**
   * The disk filled: every write waiting for its entry to commit is answered NO_SPACE now, rather
   * than TIMEOUT later. Its entry stays in the Raft log (it may already be on other members, and
   * is written here once there is room), so it may still be applied: the message says so.
   */
  rejectWaitingWrites(): void {
    const message = `the disk of node ${this.task.nodeId} shard ${this.task.shard} filled before the write was known to commit; it may still be applied once there is room`;
    for (const h of this.groups.values()) {
      if (h.writes.proposals.size === 0) continue;
      for (const p of h.writes.proposals.values()) this.rejectWrite(h, p, 'NO_SPACE', message);
      h.writes.proposals.clear();
    }
  }

  /** Answers every request waiting on `h` with `code` (removal, stop, failure), a membership change too. */
  abortGroup(h: GroupHost, code: ProtocolErrorCode, message: string): void {
    for (const p of h.writes.proposals.values()) this.rejectWrite(h, p, code, message);
    for (const w of h.writes.stagedWaiting) this.reject(w.conn, w.requestId, h.id, code, message, w.t0);
    h.writes.waiting -= h.writes.stagedWaiting.length;
    h.writes.stagedWaiting.length = 0;
    h.writes.staged.length = 0;
    h.writes.stagedBytes = 0;
    for (const r of h.reads.byId.values()) this.reject(r.conn, r.requestId, h.id, code, message, r.t0);
    for (let i = h.reads.readyHead; i < h.reads.ready.length; i++) {
      const r = h.reads.ready[i]!;
      if (r.index !== READ_GONE) this.reject(r.conn, r.requestId, h.id, code, message, r.t0);
    }
    h.writes.proposals.clear();
    h.reads.byId.clear();
    h.reads.ready = [];
    h.reads.readyHead = 0;
    h.reads.confirmed = 0;
    const change = h.change;
    h.change = null;
    change?.reply({ ok: false, code, message });
  }

  /** Answers every request waiting in the shard; each gets its one response. */
  abortAll(code: ProtocolErrorCode, message: string): void {
    for (const h of this.groups.values()) this.abortGroup(h, code, message);
  }

  /**
   * Once every sweep interval: requests without an outcome after requestTimeoutMs get TIMEOUT
   * (a write may still commit later). True when the sweep ran.
   */
  sweepIfDue(): boolean {
    const now = this.clock.nowMs();
    if (now - this.lastSweep < this.sweepIntervalMs) return false;
    this.lastSweep = now;
    const limit = now - this.task.requestTimeoutMs;
    for (const h of this.groups.values()) {
      const change = h.change;
      if (change !== null && change.t0 <= limit) {
        h.change = null;
        change.reply({ ok: false, code: 'TIMEOUT', message: `membership change of group ${h.id} not in effect within ${this.task.requestTimeoutMs} ms; it may still take effect` });
      }
      if (h.pending === 0) continue;
      for (const [index, p] of h.writes.proposals) {
        if (p.t0 > limit) continue;
        h.writes.proposals.delete(index);
        this.rejectWrite(h, p, 'TIMEOUT', `no outcome within ${this.task.requestTimeoutMs} ms; the write may still be applied`);
      }
      for (const [id, r] of h.reads.byId) {
        if (r.t0 > limit) continue;
        h.reads.byId.delete(id);
        this.reject(r.conn, r.requestId, h.id, 'TIMEOUT', `read not confirmed within ${this.task.requestTimeoutMs} ms`, r.t0);
      }
      for (let i = h.reads.readyHead; i < h.reads.ready.length; i++) {
        const r = h.reads.ready[i]!;
        if (r.index === READ_GONE || r.t0 > limit) continue;
        r.index = READ_GONE;
        h.reads.confirmed--;
        this.reject(r.conn, r.requestId, h.id, 'TIMEOUT', `read confirmed but not served within ${this.task.requestTimeoutMs} ms`, r.t0);
      }
    }
    return true;
  }
}
