// The host of one replica (one group's member on one node): the Raft core, its "disk"
// (MemoryStorage holds exactly what is durable), the key-value state machine, and the host's
// side of the Ready contract — send, persist through the node's disk queue, report, apply,
// serve reads, snapshot and compact. Client requests that reach this replica are proposed or
// read here and answered when applied.
import { EntryType, Role, type ConfState, type Entry, type Message, type Ready } from '../../src/raft/types.js';
import { MemoryStorage } from '../../src/raft/memory-storage.js';
import { RaftNode } from '../../src/raft/raft.js';
import { ProgressState } from '../../src/raft/progress.js';
import { KvStateMachine, encodeCommand, type KvResult as SmResult } from '../../src/kv/kv-state-machine.js';
import type { KvResult } from './linearizability.js';
import type { Prng } from './prng.js';
import type { ClientRequest } from './workload.js';
import type { SimGroup, SimNode, Simulation } from './simulation.js';

interface PendingWrite {
  term: number;
  req: ClientRequest;
}

interface PendingRead {
  req: ClientRequest;
  /** Read index from the ReadState, -1 until it arrives. */
  index: number;
  sinceMs: number;
}

/** Bound on Readys drained in one go; the core always settles long before it. */
const READYS_PER_DRAIN_MAX = 10_000;

export class Replica {
  raft: RaftNode | null = null;
  kv = new KvStateMachine();
  /** Index of the last entry applied to `kv` (or of the snapshot it was restored from). */
  applied = 0;
  /** Configuration as of `applied`, for snapshots. */
  conf: ConfState;
  destroyed = false;
  /** Incarnations booted; 1 for the first. */
  boots = 0;

  private lastCommit = 0;
  private lastTerm = 0;
  private readonly proposals = new Map<number, PendingWrite[]>();
  private readonly reads = new Map<number, PendingRead>();
  private snapWritesPending = 0;
  /** Whether the core was quiesced when last looked at (to count transitions). */
  private quiescedSeen = false;
  /** The 'apply-twice' bug: an entry to apply once more. */
  private applyAgain: Uint8Array | null = null;

  constructor(
    readonly sim: Simulation,
    readonly group: SimGroup,
    readonly id: number,
    readonly node: SimNode,
    readonly storage: MemoryStorage,
    private readonly rng: Prng,
  ) {
    this.conf = storage.snapshot().meta.conf;
  }

  /** Starts (or restarts) from what is durable: storage, hard state, snapshot. */
  boot(): void {
    const snap = this.storage.snapshot();
    this.kv = KvStateMachine.restore(snap.data);
    this.applied = snap.meta.index;
    this.conf = snap.meta.conf;
    const hard = { ...this.storage.hardState };
    const random = this.rng.fork();
    this.raft = new RaftNode({ ...this.sim.profile.raft, id: this.id, random: () => random.next(), applied: this.applied }, this.storage, hard);
    this.boots++;
    this.lastCommit = this.raft.commit;
    this.lastTerm = this.raft.term;
    this.quiescedSeen = false;
    this.sim.trace(`boot g${this.group.id} r${this.id}@n${this.node.index} term ${hard.term} vote ${hard.vote} commit ${hard.commit} applied ${this.applied} log [${this.storage.firstIndex()}, ${this.storage.lastIndex()}]`);
    this.drain();
  }

  /** The node crashed (or the replica was destroyed): everything in memory is gone. */
  stop(): void {
    this.raft = null;
    this.kv = new KvStateMachine();
    this.proposals.clear();
    this.reads.clear();
    this.snapWritesPending = 0;
  }

  tick(): void {
    const raft = this.raft;
    if (raft === null) return;
    if (raft.quiesced) {
      // The host's side of quiescence: a quiesced member is not ticked. Now and then tick it
      // anyway, to check that the core ignores it as it says.
      if (this.rng.chance(0.01)) {
        raft.tick();
        if (!raft.quiesced || raft.hasReady()) this.fail('a tick changed a quiesced member');
      }
    } else {
      raft.tick();
      this.drain();
    }
    // Reads whose round never completed and was never aborted: the client gave up long ago.
    if (this.reads.size > 0) {
      const old = this.sim.now - 4 * this.sim.profile.clientTimeoutMs;
      for (const [id, r] of this.reads) if (r.sinceMs < old) this.reads.delete(id);
    }
  }

  step(m: Message): void {
    const raft = this.raft;
    if (raft === null) return;
    raft.step(m);
    this.drain();
  }

  /** The host's failure detector (or chance) wakes this replica if it is quiesced. */
  wake(why: string): void {
    const raft = this.raft;
    if (raft === null || !raft.quiesced) return;
    this.sim.trace(`wake g${this.group.id} r${this.id} ${Role[raft.role]} term ${raft.term}: ${why}`);
    raft.wake();
    this.drain();
  }

  // --- Client requests ---

  onClientRequest(req: ClientRequest): void {
    const raft = this.raft;
    if (raft === null) return;
    const op = req.op;
    if (op.kind === 'get' && !req.viaLog) {
      if (this.sim.opts.bug === 'stale-read') {
        this.sim.replyOk(this, req, { kind: 'get', value: this.kv.get(op.key) });
        return;
      }
      const requestId = this.sim.nextReadId++;
      const r = raft.readIndex(requestId);
      if (!r.ok) {
        this.sim.replyReject(this, req, r.code, r.leader);
        return;
      }
      this.reads.set(requestId, { req, index: -1, sinceMs: this.sim.now });
      this.drain();
      return;
    }
    const data = encodeCommand(op.kind === 'get' ? { op: 'get', key: op.key } : op.kind === 'cas'
      ? { op: 'cas', key: op.key, expect: op.expect, value: op.value }
      : op.kind === 'put' ? { op: 'put', key: op.key, value: op.value } : { op: 'delete', key: op.key });
    const p = raft.propose(data);
    if (!p.ok) {
      this.sim.replyReject(this, req, p.code, p.leader);
      return;
    }
    let list = this.proposals.get(p.index);
    if (list === undefined) this.proposals.set(p.index, (list = []));
    list.push({ term: p.term, req });
    this.drain();
  }

  // --- The Ready loop ---

  /** Hands every pending Ready to the host logic, until the core has nothing more. */
  drain(): void {
    const raft = this.raft;
    if (raft === null) return;
    let n = 0;
    while (this.raft === raft && raft.hasReady()) {
      if (++n > READYS_PER_DRAIN_MAX) this.fail(`the core hands out Readys without end (${n})`);
      this.observeCommit(raft);
      this.handleReady(raft, raft.ready());
    }
    if (this.raft === raft) this.observeCommit(raft);
    if (this.raft !== raft) return;
    if (raft.quiesced !== this.quiescedSeen) {
      this.quiescedSeen = raft.quiesced;
      if (raft.quiesced) {
        this.sim.stats.quiesces++;
        this.sim.trace(`quiesced g${this.group.id} r${this.id} ${Role[raft.role]} term ${raft.term} commit ${raft.commit}`);
      } else {
        this.sim.stats.wakes++;
        this.sim.trace(`awake g${this.group.id} r${this.id} ${Role[raft.role]} term ${raft.term}`);
      }
    }
    if (raft.term < this.lastTerm) this.fail(`term went back from ${this.lastTerm} to ${raft.term}`);
    this.lastTerm = raft.term;
  }

  /** Commit index never goes back; what a leader commits is recorded as committed for good. */
  private observeCommit(raft: RaftNode): void {
    const c = raft.commit;
    if (c < this.lastCommit) this.fail(`commit index went back from ${this.lastCommit} to ${c}`);
    if (c > this.lastCommit && raft.role === Role.Leader) this.group.inv.onLeaderCommit(raft, raft.term, this.lastCommit, c);
    this.lastCommit = c;
  }

  private handleReady(raft: RaftNode, rd: Ready): void {
    const sim = this.sim;
    if (rd.soft !== null) {
      sim.trace(`soft g${this.group.id} r${this.id} ${Role[rd.soft.role]} term ${rd.soft.term} leader ${rd.soft.leader}`);
      if (rd.soft.role === Role.Leader) {
        sim.stats.elections++;
        this.group.inv.onLeader(this.id, rd.soft.term);
        this.group.inv.checkLeaderCompleteness(raft, rd.soft.term);
      }
    }
    for (const m of rd.messages) sim.sendRaft(this, m);

    if (rd.snapshot !== null) this.restoreSnapshot(rd);
    this.persist(raft, rd);

    this.applyCommitted(rd.committedEntries, rd.conf);
    for (const rs of rd.readStates) {
      const r = this.reads.get(rs.requestId);
      if (r !== undefined) r.index = rs.index;
    }
    for (const id of rd.readsAborted) {
      const r = this.reads.get(id);
      if (r === undefined) continue;
      this.reads.delete(id);
      sim.replyReject(this, r.req, 'READ_ABORTED', raft.leader);
    }
    this.serveReads();
    this.maybeSnapshot();
  }

  private restoreSnapshot(rd: Ready): void {
    const s = rd.snapshot!;
    if (s.meta.index < this.applied) this.fail(`the core hands out snapshot ${s.meta.index}, behind applied index ${this.applied}`);
    const known = this.group.inv.termAt(s.meta.index);
    if (known !== 0 && known !== s.meta.term) {
      this.fail(`snapshot at index ${s.meta.index} has term ${s.meta.term}, but term ${known} was applied there`);
    }
    this.sim.trace(`snapshot-in g${this.group.id} r${this.id} index ${s.meta.index} term ${s.meta.term}`);
    this.kv = KvStateMachine.restore(s.data);
    this.applied = s.meta.index;
    this.conf = s.meta.conf;
    this.group.onConfApplied(s.meta.index, s.meta.conf);
    // Proposals the snapshot covers were applied or not; only the client's timeout can tell.
    for (const idx of this.proposals.keys()) if (idx <= s.meta.index) this.proposals.delete(idx);
    this.snapWritesPending++;
  }

  /** Queues the Ready's durable part on the node's disk; reports it when the disk is done. */
  private persist(raft: RaftNode, rd: Ready): void {
    const storage = this.storage;
    const applyRecords = (count: number): void => {
      // Records in their durable order: snapshot, entries, hard state.
      let left = count;
      if (rd.snapshot !== null) {
        if (left-- <= 0) return;
        storage.applySnapshot(rd.snapshot);
      }
      if (rd.entries.length > 0) {
        const k = Math.min(left, rd.entries.length);
        if (k > 0) storage.append(k === rd.entries.length ? rd.entries : rd.entries.slice(0, k));
        left -= k;
        if (k < rd.entries.length) return;
      }
      if (rd.hardState !== null && left > 0) storage.hardState = { ...rd.hardState };
    };
    const records = (rd.snapshot !== null ? 1 : 0) + rd.entries.length + (rd.hardState !== null ? 1 : 0);
    this.node.disk.write({
      live: () => !this.destroyed,
      apply: () => applyRecords(records),
      applyTorn: (fraction) => applyRecords(Math.floor(fraction * records)),
      done: () => this.node.run(() => {
        if (this.raft !== raft) return;
        if (rd.snapshot !== null) this.snapWritesPending--;
        raft.persisted(rd);
        for (const m of rd.messagesAfterPersist) this.sim.sendRaft(this, m);
        this.drain();
      }),
    }, records === 0);
  }

  private applyCommitted(entries: Entry[], conf: ConfState | null): void {
    let confIndex = 0;
    if (this.applyAgain !== null && entries.length > 0) {
      this.kv.apply(this.applyAgain);
      this.applyAgain = null;
    }
    for (const e of entries) {
      if (e.index !== this.applied + 1) this.fail(`applies index ${e.index} after ${this.applied}: not contiguous`);
      // The contract: committed entries handed out are durable locally already.
      const durable = e.index <= this.storage.lastIndex() && (e.index < this.storage.firstIndex() || this.storage.term(e.index) === e.term);
      if (!durable) {
        this.fail(`applies index ${e.index} term ${e.term} which is not durable locally (storage [${this.storage.firstIndex()}, ${this.storage.lastIndex()}])`);
      }
      this.group.inv.onApply(this.id, e.index, e.term, e.type, e.data);
      this.sim.traceApply(this, e);
      this.applied = e.index;
      let result: SmResult | null = null;
      if (e.type === EntryType.Normal) {
        if (e.data.length > 0) result = this.kv.apply(e.data);
        if (this.sim.opts.bug === 'apply-twice' && e.data.length > 0 && this.rng.chance(0.05)) this.applyAgain = e.data;
      } else {
        confIndex = e.index;
      }
      const waiting = this.proposals.get(e.index);
      if (waiting !== undefined) {
        this.proposals.delete(e.index);
        for (const w of waiting) {
          if (w.term === e.term && result !== null) {
            this.sim.replyOk(this, w.req, toHistoryResult(result), e.index, e.term);
          } else {
            // Another entry took the index: this proposal can never be applied.
            this.sim.replyReject(this, w.req, 'LOST', this.raft!.leader);
          }
        }
      }
    }
    if (conf !== null) {
      this.conf = conf;
      if (confIndex > 0) this.group.onConfApplied(confIndex, conf);
    }
  }

  private serveReads(): void {
    if (this.reads.size === 0) return;
    for (const [id, r] of this.reads) {
      if (r.index < 0 || r.index > this.applied) continue;
      this.reads.delete(id);
      const op = r.req.op;
      if (op.kind !== 'get') this.fail('a read request that is not a get');
      this.sim.replyOk(this, r.req, { kind: 'get', value: this.kv.get(op.key) });
    }
  }

  /** Every `snapshotEvery` applied entries: snapshot the state machine and compact the log. */
  private maybeSnapshot(): void {
    const s = this.storage;
    const p = this.sim.profile;
    if (this.snapWritesPending > 0 || this.applied > s.lastIndex()) return; // not durable yet
    if (this.applied - s.snapshot().meta.index < p.snapshotEvery) return;
    // Like etcd's server, snapshot only what the durable hard state says is committed: the
    // commit index that covers `applied` may still sit in a pending write, and a restart from
    // a snapshot beyond the durable commit index trips the core (test/sim/README.md, "What the core simulator found").
    if (s.hardState.commit < this.applied) return;
    s.createSnapshot(this.applied, this.conf, this.kv.serialize());
    s.compact(Math.max(0, this.applied - p.snapshotKeep));
    this.sim.trace(`snapshot g${this.group.id} r${this.id} at ${this.applied}, log now [${s.firstIndex()}, ${s.lastIndex()}]`);
  }

  fail(what: string): never {
    return this.sim.fail(this.group.id, `replica ${this.id} on node ${this.node.index}: ${what}`);
  }

  describe(): string {
    const r = this.raft;
    if (r === null) return `r${this.id}@n${this.node.index} down (log [${this.storage.firstIndex()}, ${this.storage.lastIndex()}])`;
    let s = `r${this.id}@n${this.node.index} ${Role[r.role]}${r.quiesced ? ' (quiesced)' : ''} term ${r.term} leader ${r.leader} commit ${r.commit} applied ${this.applied} log [${r.firstIndex()}, ${r.lastIndex()}]`;
    if (r.role === Role.Leader) {
      const prs: string[] = [];
      for (const id of this.group.replicas.keys()) {
        const pr = r.progressOf(id);
        if (pr !== undefined) prs.push(`${id}: ${ProgressState[pr.state]} match ${pr.match} next ${pr.next}${pr.probeSent ? ' probe-sent' : ''} inflight ${pr.inflights.count}`);
      }
      s += ` progress {${prs.join(', ')}}`;
    }
    return s;
  }
}

function toHistoryResult(r: SmResult): KvResult {
  switch (r.op) {
    case 'put':
      return { kind: 'put' };
    case 'get':
      return { kind: 'get', value: r.value };
    case 'delete':
      return { kind: 'delete' };
    case 'cas':
      return { kind: 'cas', ok: r.ok };
    default:
      throw new Error(`unexpected state-machine result ${JSON.stringify(r)}`);
  }
}

export function cloneMessage(m: Message): Message {
  return {
    ...m,
    entries: m.entries.length === 0 ? [] : m.entries.map((e) => ({ term: e.term, index: e.index, type: e.type, data: e.data.slice() })),
    snapshot: m.snapshot === null ? null : {
      meta: { index: m.snapshot.meta.index, term: m.snapshot.meta.term, conf: cloneConf(m.snapshot.meta.conf) },
      data: m.snapshot.data.slice(),
    },
  };
}

function cloneConf(c: ConfState): ConfState {
  return { voters: [...c.voters], votersOutgoing: [...c.votersOutgoing], learners: [...c.learners], learnersNext: [...c.learnersNext] };
}

