// A shard: the groups one worker hosts, their Raft cores and state machines, one write-ahead
// log and one snapshot store for all of them, and the turn loop that drives everything
// (docs/internals.md, "The shard turn"). One turn:
//   1. report finished appends: persisted() each Ready in order, send messagesAfterPersist;
//   2. drain the in ring (at most turnRecordsMax records): propose, read, step, admin;
//   3. tick every awake group if the shard's timer fired (quiesced ones are skipped, see
//      `awake`); time out old requests once in a while;
//   4. ready() every touched group: send messages, gather every group's entries and hard state
//      into ONE Wal.append (not awaited: the next turn gathers while this one syncs), apply
//      committed entries, answer reads, take snapshots;
//   5. flush: one out-ring record per destination node and per client connection.
// A turn starts when the in ring has data, the tick timer fires, or an append finishes.
import * as path from 'node:path';
import { pack } from 'msgpackr';
import { systemClock, systemScheduler, type Cancel, type Clock, type Scheduler } from '../io/clock.js';
import { nodeFileSystem, type FileSystem } from '../io/file-system.js';
import { assert } from '../raft/assert.js';
import { ChangeType, encodeConfChange } from '../raft/conf-change.js';
import { RaftNode } from '../raft/raft.js';
import {
  configDefaults, EntryType, Role,
  type Entry, type ErrorCode, type Message, type NodeId, type RaftConfig, type Ready, type Snapshot, type SnapshotMeta, type SoftState,
} from '../raft/types.js';
import { InKind, RECORD_HEADER_BYTES, recordArg } from '../ring/records.js';
import type { SpscRing } from '../ring/spsc-ring.js';
import {
  FRAME_HEADER_BYTES, FrameFlag, FrameKind, readHeader,
  type FrameHeader, type LeaderHint, type ProtocolErrorCode,
} from '../protocol/client-frame.js';
import { CodecError, copyPayloads, decodeHeartbeats, decodeRaftMessage, decodeSnapChunk } from '../protocol/raft-codec.js';
import { SUB_HEADER_BYTES, SubKind, subBytes, subGroup, subKind } from '../protocol/peer-wire.js';
import { SnapshotStore, snapshotStoreDefaults } from '../storage/snapshot-store.js';
import { Wal, WalError, type GroupWrite } from '../storage/wal.js';
import { adminError, parseAdminRequest } from './admin.js';
import { ShardCounter } from './counters.js';
import { copyConf, GroupHost } from './group-host.js';
import { LatencyHistogram } from './latency.js';
import type { ShardLogger } from './log.js';
import type { Outbox } from './outbox.js';
import { SnapshotAssembler } from './snapshot-assembler.js';
import type { StateMachine, StateMachineFactory } from './state-machine.js';
import { loadStateMachineFactory } from './state-machine-loader.js';
import type { AdminReply, AdminRequest, GroupStatus, PeerInfo, ShardTask } from './task.js';

/**
 * Generous bounds on what a Raft message adds to its entries' payloads on the wire (fixed
 * fields, and a header per entry). They size the core's message bounds so that every message
 * fits one ring record, whatever the codec's exact layout.
 */
const MESSAGE_FIXED_BYTES_MAX = 1024;
const ENTRY_HEADER_BYTES_MAX = 64;
/** Requests are checked for TIMEOUT at most this often. */
const SWEEP_INTERVAL_MS_MAX = 1000;
/** Unfinished incoming snapshots may hold this many times snapshotBytesMax in all. */
const SNAP_ASSEMBLY_FACTOR = 2;
/** Peer input problems (unknown groups, undecodable sub-records) are logged once per this many. */
const PEER_PROBLEMS_LOG_EVERY = 1000;

/** An idle group quiesces after this many election timeouts unless the task says otherwise. */
const TICKS_QUIESCE_ELECTIONS = 2;

const noop = (): void => {};
/** The body of every echo-mode Result. */
const EMPTY = new Uint8Array(0);

/** One turn's Readys, what they make durable, and what waits for it. */
interface Batch {
  writes: GroupWrite[];
  /** The host of each write, in step (a group removed meanwhile is left out of the append). */
  writeHosts: GroupHost[];
  /** Readys whose persisted() and messagesAfterPersist wait for this batch. */
  readies: { host: GroupHost; rd: Ready }[];
  /** Snapshots from leaders: written to the store and restored before the batch is appended. */
  installs: { host: GroupHost; snap: Snapshot }[];
  done: boolean;
}

export interface ShardIo {
  log: ShardLogger;
  counters: Float64Array;
  inRing: SpscRing;
  outbox: Outbox;
  /**
   * The world outside the thread, as seams: production leaves them out and gets node's own
   * (performance.now, timers, node:fs, Math.random, the in ring's doorbell); the simulator
   * passes its deterministic ones and drives the very same shard.
   */
  clock?: Clock;
  scheduler?: Scheduler;
  fs?: FileSystem;
  /** Randomness for the Raft cores' election timeouts, in [0, 1). */
  random?: () => number;
  /** Resolves once the in ring may hold records (default: the ring's own waitData). */
  waitInput?: () => Promise<void>;
  /** The groups' state machines, in place of the module `task.stateMachine` names. */
  stateMachines?: StateMachineFactory;
}

export class Shard {
  readonly groups = new Map<number, GroupHost>();
  /** Latency of WAL appends (call to durable) and of client requests (read to answered). */
  readonly latency = { walAppend: new LatencyHistogram(), request: new LatencyHistogram() };
  /** Peer input dropped: messages for groups not hosted here, undecodable sub-records. */
  readonly dropped = { unknownGroup: 0, undecodable: 0, wrongSender: 0 };

  private readonly log: ShardLogger;
  private readonly counters: Float64Array;
  private readonly inRing: SpscRing;
  private readonly outbox: Outbox;
  private readonly peersById: Map<number, PeerInfo>;
  private readonly assembler: SnapshotAssembler;
  private readonly raftConfig: Omit<RaftConfig, 'applied'>;
  /** Largest command accepted for proposing: its entry must fit one ring record in an append. */
  private readonly proposalBytesMax: number;
  private readonly sweepIntervalMs: number;

  private touched = new Set<GroupHost>();
  /**
   * Groups whose core is not quiesced: the only ones ticked, so that an idle shard with
   * thousands of groups does next to nothing per tick. Kept up to date as groups are handled
   * (collectReadies): whatever can wake a core also touches its group.
   */
  private readonly awake = new Set<GroupHost>();
  private leaders = 0;
  private readSeq = 0;
  private lastSweep: number;

  /** Batches handed to the log (or held), in order; completed from the front. */
  private readonly batches: Batch[] = [];
  /** Batches waiting behind a snapshot install, in order. */
  private readonly held: Batch[] = [];
  private holding = false;
  /** Resolves once every append made so far is durable. */
  private lastAppend: Promise<void> = Promise.resolve();
  /** Snapshot store writes run one at a time, in order (installs, local snapshots, removals). */
  private snapChain: Promise<void> = Promise.resolve();
  /** Work the shard must see finish before it closes the log. */
  private readonly inflight = new Set<Promise<unknown>>();
  /** Groups created by addGroup whose founding entry is not durable yet, with their members. */
  private readonly founding = new Map<number, { members: number[]; durable: Promise<void> }>();
  private readonly removing = new Set<number>();

  private tickDue = false;
  private stopRequested = false;
  private fatal: Error | null = null;
  private moreInput = false;
  private woken = false;
  private wakeResolve: (() => void) | null = null;
  private dataWaiting = false;
  private stopTimer: Cancel | null = null;
  private readonly clock: Clock;
  private readonly scheduler: Scheduler;
  private readonly waitInput: () => Promise<void>;

  private constructor(
    readonly task: ShardTask,
    io: ShardIo,
    readonly wal: Wal,
    readonly store: SnapshotStore,
    /** The newest snapshot image of each group that has one, for leaders to send (see snapshotDataSource). */
    private readonly images: Map<number, Snapshot>,
    private readonly factory: StateMachineFactory,
  ) {
    this.log = io.log;
    this.counters = io.counters;
    this.inRing = io.inRing;
    this.outbox = io.outbox;
    this.clock = io.clock ?? systemClock;
    this.scheduler = io.scheduler ?? systemScheduler;
    this.waitInput = io.waitInput ?? (() => io.inRing.waitData());
    this.lastSweep = this.clock.nowMs();
    this.peersById = new Map(task.peers.map((p) => [p.id, p]));
    this.assembler = new SnapshotAssembler(task.snapshotBytesMax, SNAP_ASSEMBLY_FACTOR * task.snapshotBytesMax);
    // Every message must fit one out-ring record (the main thread forwards records as they are).
    const room = this.outbox.payloadBytesMax - SUB_HEADER_BYTES - MESSAGE_FIXED_BYTES_MAX;
    const entriesPerMsgMax = Math.min(configDefaults.entriesPerMsgMax, Math.floor(room / (2 * ENTRY_HEADER_BYTES_MAX)));
    const bytesPerMsgMax = Math.min(configDefaults.bytesPerMsgMax, room - entriesPerMsgMax * ENTRY_HEADER_BYTES_MAX);
    assert(entriesPerMsgMax >= 1 && bytesPerMsgMax >= 1024, `out ring records of ${this.outbox.payloadBytesMax} bytes are too small for Raft messages`);
    this.proposalBytesMax = room - ENTRY_HEADER_BYTES_MAX;
    this.raftConfig = {
      ...configDefaults,
      id: task.nodeId,
      ticksElection: task.ticksElection,
      ticksHeartbeat: task.ticksHeartbeat,
      entriesPerMsgMax,
      bytesPerMsgMax,
      // Not in ShardTask yet: read as an optional field (0 turns quiescence off).
      ticksQuiesce: task.ticksQuiesce ?? TICKS_QUIESCE_ELECTIONS * task.ticksElection,
      // The host may use Math.random; only the core must not (it gets it injected).
      random: io.random ?? Math.random,
    };
    this.sweepIntervalMs = Math.min(SWEEP_INTERVAL_MS_MAX, Math.max(task.tickMs, task.requestTimeoutMs / 4));
  }

  /**
   * Opens the shard's log and snapshot store under task.dir, recovers every group the log holds
   * (state machine from the snapshot the log points at; the core re-delivers what was committed
   * after it), and creates the bootstrap groups the log does not have, durably.
   *
   * Memory: the newest snapshot image of every group that has one stays in memory (`images`),
   * because the log's LogStorage must hand a snapshot to the core synchronously when a leader
   * sends one. That is one serialized state machine per group — about the size of its live
   * data — on top of the state machine itself.
   */
  static async open(task: ShardTask, io: ShardIo): Promise<Shard> {
    const images = new Map<number, Snapshot>();
    const fs = io.fs ?? nodeFileSystem;
    const wal = Wal.open({
      fs,
      clock: io.clock,
      scheduler: io.scheduler,
      dir: path.join(task.dir, 'wal'),
      syncForce: task.syncForce,
      segmentBytes: task.segmentBytes,
      snapshotData: (group: number, meta: SnapshotMeta): Uint8Array => {
        const s = images.get(group);
        assert(s !== undefined && s.meta.index === meta.index && s.meta.term === meta.term,
          `group ${group}: no image in memory for snapshot ${meta.index}/${meta.term}`);
        return s.data;
      },
    });
    try {
      await wal.syncRecovered();
      const store = await SnapshotStore.open(path.join(task.dir, 'snapshots'), {
        fs,
        bytesReadAllMax: Math.max(snapshotStoreDefaults.bytesReadAllMax, task.snapshotBytesMax),
      });
      const factory = io.stateMachines ?? await loadStateMachineFactory(task.stateMachine);
      const shard = new Shard(task, io, wal, store, images, factory);
      await shard.recover();
      return shard;
    } catch (e) {
      await wal.close().catch(noop);
      throw e;
    }
  }

  private async recover(): Promise<void> {
    const ids = this.wal.groupIds();
    for (const g of ids) {
      const meta = this.wal.group(g).snap;
      const sm = this.factory(g);
      if (meta.index > 0) {
        const snap = await this.store.readAll(g, meta.index, meta.term);
        if (snap === null) {
          throw new Error(`group ${g}: the log points at snapshot ${meta.index}/${meta.term}, which is not in ${this.store.dir}`);
        }
        sm.restore(snap.data);
        this.images.set(g, { meta, data: snap.data });
      }
      this.makeHost(g, sm);
    }
    // Snapshots of groups the log no longer has: a removal that stopped half-way.
    const present = new Set(ids);
    for (const g of await this.store.groups()) if (!present.has(g)) await this.store.removeGroup(g);
    const fresh = this.task.bootstrapGroups.filter((g) => !present.has(g));
    const members = this.task.peers.map((p) => p.id).sort((a, b) => a - b);
    if (fresh.length > 0) await this.bootstrap(fresh, members);
    this.log.info({ recovered: ids.length, bootstrapped: fresh.length }, 'shard open');
  }

  /**
   * Creates groups as committed conf entry 1 with `members` as voters (hard state term 1,
   * commit 1), the way every member of a new group starts. The hosts exist at once (the log's
   * index has the entry as soon as it is laid out, and everything they write later lands in a
   * later batch); the promise says when the founding records are durable.
   */
  private bootstrap(groups: number[], members: number[]): Promise<void> {
    const data = encodeConfChange({ leave: false, changes: members.map((node) => ({ type: ChangeType.AddVoter, node })) });
    const writes: GroupWrite[] = groups.map((group) => ({
      group,
      entries: [{ index: 1, term: 1, type: EntryType.ConfChange, data }],
      hardState: { term: 1, vote: 0, commit: 1 },
    }));
    const durable = this.wal.append(writes);
    for (const g of groups) this.makeHost(g, this.factory(g));
    return durable;
  }

  private makeHost(group: number, sm: StateMachine): GroupHost {
    const gl = this.wal.group(group);
    const core = new RaftNode({ ...this.raftConfig, applied: gl.snap.index }, gl, gl.hardState);
    const host = new GroupHost(group, core, sm, gl.snap);
    host.imageBytes = this.images.get(group)?.data.length ?? 0;
    this.groups.set(group, host);
    this.counters[ShardCounter.Groups] = this.groups.size;
    this.touched.add(host);
    return host;
  }

  // --- The loop ---

  /** Runs turns until an InKind.Stop record, then closes the log. Rejects on a fatal error. */
  async run(): Promise<void> {
    this.stopTimer = this.scheduler.every(this.task.tickMs, this.onTick);
    try {
      for (;;) {
        await this.waitForWork();
        if (this.fatal !== null) throw this.fatal;
        this.turn();
        await this.outbox.flush();
        if (this.fatal !== null) throw this.fatal;
        if (this.stopRequested) break;
      }
      await this.shutdown();
    } finally {
      this.close();
    }
  }

  /** Lets go of the timer and this thread's ring waits (they keep the event loop alive). */
  close(): void {
    this.stopTimer?.();
    this.stopTimer = null;
    this.inRing.close();
  }

  private readonly onTick = (): void => {
    // A busy shard runs one tick for all the firings it missed (Raft time slows rather than
    // jumps); count what was lost so that it shows in /metrics.
    if (this.tickDue) this.counters[ShardCounter.TicksMissed]!++;
    this.tickDue = true;
    this.wake();
  };

  private readonly wake = (): void => {
    this.woken = true;
    const r = this.wakeResolve;
    if (r !== null) {
      this.wakeResolve = null;
      r();
    }
  };

  private readonly onData = (): void => {
    this.dataWaiting = false;
    this.wake();
  };

  private async waitForWork(): Promise<void> {
    if (this.woken || this.moreInput) {
      // Work is waiting; still give the event loop a turn, so that finished fsyncs and timers
      // are seen even while the ring stays busy.
      this.woken = false;
      await new Promise<void>((r) => this.scheduler.soon(r));
      return;
    }
    if (!this.dataWaiting) {
      this.dataWaiting = true;
      this.waitInput().then(this.onData, noop);
    }
    await new Promise<void>((r) => {
      this.wakeResolve = r;
    });
    this.woken = false;
  }

  private turn(): void {
    this.counters[ShardCounter.Turns]!++;
    // Acknowledgements of what just became durable leave before this turn takes new input: the
    // leader's commit waits for them, not for the work that arrived meanwhile.
    if (this.completeBatches()) this.outbox.sendPeersNow();
    this.drainIn();
    if (this.tickDue) {
      this.tickDue = false;
      // A group woken during this turn joins `awake` in collectReadies: it misses this tick at most.
      for (const h of this.awake) {
        h.core.tick();
        this.touched.add(h);
      }
    }
    const now = this.clock.nowMs();
    if (now - this.lastSweep >= this.sweepIntervalMs) {
      this.lastSweep = now;
      this.sweep(now);
      this.unpin();
    }
    this.collectReadies();
    this.counters[ShardCounter.Leaders] = this.leaders;
  }

  private async shutdown(): Promise<void> {
    this.stopTimer?.();
    this.stopTimer = null;
    await this.settle();
    if (this.fatal !== null) throw this.fatal;
    this.completeBatches();
    this.abortAll('UNAVAILABLE', `shard ${this.task.shard} is stopping`);
    await this.outbox.flush();
    // Commit indexes not written yet (handleReadyIo): a restart then applies up to them at once.
    const pending: GroupWrite[] = [];
    for (const h of this.groups.values()) if (h.hardPending !== null && !h.removed) pending.push({ group: h.id, entries: [], hardState: h.hardPending });
    if (pending.length > 0) await this.wal.append(pending);
    await this.wal.close();
    this.log.info({ groups: this.groups.size }, 'shard stopped');
  }

  /** Waits for every append, snapshot write and admin operation under way. */
  async settle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }

  /** Makes the loop stop with `e` (the log or the snapshot store failed, or a bug). */
  failWith(e: unknown): void {
    if (this.fatal !== null) return;
    this.fatal = e instanceof Error ? e : new Error(String(e));
    this.wake();
  }

  private track(p: Promise<unknown>): void {
    this.inflight.add(p);
    const forget = (): void => {
      this.inflight.delete(p);
    };
    p.then(forget, forget);
  }

  // --- In ring ---

  private drainIn(): void {
    const ring = this.inRing;
    const max = this.task.turnRecordsMax;
    let n = 0;
    while (n < max && !this.stopRequested) {
      const at = ring.read();
      if (at < 0) break;
      const end = at + ring.readBytes;
      if (end - at >= RECORD_HEADER_BYTES) this.record(ring.data, at, end);
      ring.release();
      n++;
    }
    if (n > 0) ring.notifyRoom();
    this.moreInput = n === max;
  }

  private record(buf: Uint8Array, at: number, end: number): void {
    const arg = recordArg(buf, at);
    const from = at + RECORD_HEADER_BYTES;
    switch (buf[at]) {
      case InKind.Client:
        this.client(arg, buf, from, end);
        return;
      case InKind.Peer:
        this.peer(arg, buf, from, end);
        return;
      case InKind.PeerState:
        this.peerState(arg, end > from && buf[from] !== 0);
        return;
      case InKind.Admin:
        // A copy: msgpackr does not read strings out of a SharedArrayBuffer.
        this.nodeAdmin(arg, buf.slice(from, end));
        return;
      case InKind.Stop:
        this.stopRequested = true;
        return;
      default:
        this.log.warn({ kind: buf[at] }, 'in-ring record of unknown kind ignored');
    }
  }

  // --- Peers ---

  private peer(fromNode: number, buf: Uint8Array, at: number, end: number): void {
    let p = at;
    while (p < end) {
      const bytes = end - p >= SUB_HEADER_BYTES ? subBytes(buf, p) : 0;
      if (bytes < SUB_HEADER_BYTES || p + bytes > end) {
        this.peerProblem('undecodable', fromNode, 'a sub-record overruns its record');
        return;
      }
      const group = subGroup(buf, p);
      const body = p + SUB_HEADER_BYTES;
      const stop = p + bytes;
      try {
        switch (subKind(buf, p)) {
          case SubKind.RaftMessage: {
            const h = this.groups.get(group);
            if (h === undefined) this.peerProblem('unknownGroup', fromNode, `group ${group}`);
            else this.stepIn(h, decodeRaftMessage(buf, body, stop), fromNode);
            break;
          }
          case SubKind.Heartbeats:
          case SubKind.HeartbeatResps:
            this.heartbeatSender = fromNode;
            decodeHeartbeats(buf, body, stop, this.ownsGroup, this.visitHeartbeat);
            break;
          case SubKind.SnapChunk: {
            const h = this.groups.get(group);
            if (h === undefined) {
              this.peerProblem('unknownGroup', fromNode, `group ${group}`);
              break;
            }
            const m = this.assembler.add(group, decodeSnapChunk(buf, body, stop));
            if (m !== null) this.stepIn(h, m, fromNode);
            break;
          }
          default:
            this.peerProblem('undecodable', fromNode, `sub-record kind ${subKind(buf, p)}`);
        }
      } catch (e) {
        if (!(e instanceof CodecError)) throw e;
        this.peerProblem('undecodable', fromNode, e.message);
      }
      p = stop;
    }
  }

  private heartbeatSender = 0;
  private readonly ownsGroup = (group: number): boolean => this.groups.has(group);
  /** Heartbeat messages may be reused by the decoder: stepped at once. */
  private readonly visitHeartbeat = (group: number, m: Message): void => {
    this.stepIn(this.groups.get(group)!, m, this.heartbeatSender);
  };

  private stepIn(h: GroupHost, m: Message, fromNode: number): void {
    if (m.from !== fromNode) {
      this.peerProblem('wrongSender', fromNode, `message from ${m.from}`);
      return;
    }
    h.core.step(m);
    this.counters[ShardCounter.MessagesIn]!++;
    this.touched.add(h);
  }

  private peerProblem(kind: keyof Shard['dropped'], from: number, what: string): void {
    const n = ++this.dropped[kind];
    if (n % PEER_PROBLEMS_LOG_EVERY !== 1) return;
    // Messages for a group not hosted here are normal after a removal (peers still send for a
    // while); anything else means a peer speaks something this node does not understand.
    if (kind === 'unknownGroup') this.log.info({ from, kind, count: n }, `peer input dropped: ${what}`);
    else this.log.warn({ from, kind, count: n }, `peer input dropped: ${what}`);
  }

  /**
   * A link went down: snapshots in flight to that node are reported failed, so that its
   * groups' leaders probe again (and resend) once it is back instead of waiting for the
   * resend timeout; snapshots coming from it are abandoned. Quiesced groups led from that node
   * are woken: their followers here hear nothing more, and campaign after an election timeout
   * unless the leader speaks first. A link coming up needs nothing (docs/raft.md, "Quiescence").
   */
  private peerState(node: number, up: boolean): void {
    if (up) return;
    this.assembler.dropFrom(node);
    for (const h of this.groups.values()) {
      const core = h.core;
      if (core.role === Role.Leader) {
        core.reportSnapshot(node, false);
      } else if (core.quiesced && core.leader === node) {
        core.wake();
        this.touched.add(h);
      }
    }
  }

  private send(h: GroupHost, m: Message): void {
    this.outbox.raft(h.id, m);
    this.counters[ShardCounter.MessagesOut]!++;
  }

  // --- Clients ---

  private client(conn: number, buf: Uint8Array, at: number, end: number): void {
    const t0 = this.clock.nowMs();
    this.counters[ShardCounter.Requests]!++;
    if (end - at < FRAME_HEADER_BYTES) {
      this.reject(conn, 0, 0, 'BAD_REQUEST', 'record too short for a frame header', t0);
      return;
    }
    const f = readHeader(buf, at);
    if (f.frameBytes !== end - at) {
      this.reject(conn, f.requestId, f.group, 'BAD_REQUEST', `frame says ${f.frameBytes} bytes, its record holds ${end - at}`, t0);
      return;
    }
    const body = buf.subarray(at + FRAME_HEADER_BYTES, end);
    if (f.kind === FrameKind.Command && this.task.echo === true) this.answer(conn, f.requestId, f.group, EMPTY, t0);
    else if (f.kind === FrameKind.Command) this.command(conn, f, body, t0);
    else if (f.kind === FrameKind.Admin) this.groupAdmin(conn, f, body, t0);
    else this.reject(conn, f.requestId, f.group, 'BAD_REQUEST', `frame kind 0x${f.kind.toString(16)} is not served by a shard`, t0);
  }

  private command(conn: number, f: FrameHeader, body: Uint8Array, t0: number): void {
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
    if (stale) {
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
        this.refused(conn, f, r.code, r.leader, t0);
        return;
      }
      h.reads.set(id, { conn, requestId: f.requestId, body: body.slice(), index: -1, t0 });
    } else {
      if (body.length > this.proposalBytesMax) {
        this.reject(conn, f.requestId, f.group, 'TOO_LARGE', `command of ${body.length} bytes exceeds ${this.proposalBytesMax}`, t0);
        return;
      }
      // A copy out of the ring, carved from a shared slab: a fresh ArrayBuffer per proposal
      // costs twice the copy (≈ 1.1 against 0.5 µs for 270 bytes) and one more object to track.
      const r = h.core.propose(copyPayloads(body, 0, body.length));
      if (!r.ok) {
        this.refused(conn, f, r.code, r.leader, t0);
        return;
      }
      const old = h.proposals.get(r.index);
      if (old !== undefined) {
        // The entry this one waited for was replaced by a new leader's log: it never commits.
        this.reject(old.conn, old.requestId, h.id, 'NOT_LEADER', `the entry of this write was replaced (group ${h.id})`, old.t0, h.leader);
      }
      h.proposals.set(r.index, { term: r.term, conn, requestId: f.requestId, t0 });
      this.counters[ShardCounter.Proposals]!++;
    }
    this.touched.add(h);
  }

  /** Serves a read from the local state machine as it is now. */
  private query(h: GroupHost, conn: number, requestId: number, body: Uint8Array, t0: number): void {
    let result: Uint8Array;
    try {
      result = h.sm.query(body);
    } catch (e) {
      this.reject(conn, requestId, h.id, 'BAD_REQUEST', e instanceof Error ? e.message : String(e), t0);
      return;
    }
    this.answer(conn, requestId, h.id, result, t0);
  }

  private refused(conn: number, f: FrameHeader, code: ErrorCode, leader: NodeId, t0: number): void {
    switch (code) {
      case 'NOT_LEADER':
        this.reject(conn, f.requestId, f.group, 'NOT_LEADER', this.notLeaderMessage(f.group, leader), t0, leader);
        return;
      case 'OVERLOADED':
        this.reject(conn, f.requestId, f.group, 'OVERLOADED', `group ${f.group} has too much uncommitted or waiting work`, t0);
        return;
      case 'LEADER_TRANSFERRING':
        this.reject(conn, f.requestId, f.group, 'LEADER_TRANSFERRING', `group ${f.group} is handing leadership to node ${leader}`, t0, leader);
        return;
      default:
        this.reject(conn, f.requestId, f.group, 'BAD_REQUEST', `refused: ${code}`, t0);
    }
  }

  private notLeaderMessage(group: number, leader: NodeId): string {
    return leader === 0
      ? `node ${this.task.nodeId} is not the leader of group ${group}; the leader is not known`
      : `node ${this.task.nodeId} is not the leader of group ${group}; node ${leader} is`;
  }

  private hint(leader: NodeId): LeaderHint | undefined {
    const p = leader === 0 ? undefined : this.peersById.get(leader);
    return p === undefined ? undefined : { id: p.id, host: p.host, clientPort: p.clientPort, wsPort: p.wsPort };
  }

  private answer(conn: number, requestId: number, group: number, result: Uint8Array, t0: number): void {
    this.outbox.respond(conn, FrameKind.Result, requestId, group, result);
    this.latency.request.recordMs(this.clock.nowMs() - t0);
  }

  private reject(conn: number, requestId: number, group: number, code: ProtocolErrorCode, message: string, t0: number, leader: NodeId = 0): void {
    this.outbox.error(conn, requestId, group, code, message, code === 'NOT_LEADER' || code === 'LEADER_TRANSFERRING' ? this.hint(leader) : undefined);
    this.latency.request.recordMs(this.clock.nowMs() - t0);
    const c = this.counters;
    c[ShardCounter.Errors]!++;
    if (code === 'NOT_LEADER') c[ShardCounter.ErrorsNotLeader]!++;
    else if (code === 'OVERLOADED') c[ShardCounter.ErrorsOverloaded]!++;
    else if (code === 'BAD_REQUEST') c[ShardCounter.ErrorsBadRequest]!++;
    else c[ShardCounter.ErrorsOther]!++;
  }

  /** Answers every request waiting on `h` with `code` (removal, stop, failure). */
  private abortGroup(h: GroupHost, code: ProtocolErrorCode, message: string): void {
    for (const p of h.proposals.values()) this.reject(p.conn, p.requestId, h.id, code, message, p.t0);
    for (const r of h.reads.values()) this.reject(r.conn, r.requestId, h.id, code, message, r.t0);
    h.proposals.clear();
    h.reads.clear();
    h.readsConfirmed = 0;
  }

  /** Answers every request waiting in the shard; each gets its one response. */
  abortAll(code: ProtocolErrorCode, message: string): void {
    for (const h of this.groups.values()) this.abortGroup(h, code, message);
  }

  /** Requests without an outcome after requestTimeoutMs get TIMEOUT (a write may still commit later). */
  private sweep(now: number): void {
    const limit = now - this.task.requestTimeoutMs;
    for (const h of this.groups.values()) {
      if (h.pending === 0) continue;
      for (const [index, p] of h.proposals) {
        if (p.t0 > limit) continue;
        h.proposals.delete(index);
        this.reject(p.conn, p.requestId, h.id, 'TIMEOUT', `no outcome within ${this.task.requestTimeoutMs} ms; the write may still be applied`, p.t0);
      }
      for (const [id, r] of h.reads) {
        if (r.t0 > limit) continue;
        h.reads.delete(id);
        if (r.index >= 0) h.readsConfirmed--;
        this.reject(r.conn, r.requestId, h.id, 'TIMEOUT', `read not confirmed within ${this.task.requestTimeoutMs} ms`, r.t0);
      }
    }
  }

  // --- Readys ---

  private collectReadies(): void {
    const batch: Batch = { writes: [], writeHosts: [], readies: [], installs: [], done: false };
    const touched = this.touched;
    this.touched = new Set();
    const readies = this.readies;
    for (const h of touched) {
      if (h.removed) continue;
      if (h.core.quiesced) this.awake.delete(h);
      else this.awake.add(h);
      if (!h.core.hasReady()) continue;
      const rd = h.core.ready();
      this.handleReadyIo(h, rd, batch);
      readies.push(h, rd);
      if (h.core.hasReady()) {
        // More than one Ready's worth (a large apply backlog): the next turn comes at once.
        this.touched.add(h);
        this.woken = true;
      }
    }
    // Log and messages first, applying after: the log's write (and fdatasync) and the peers'
    // work on these messages overlap with applying, instead of waiting for it.
    if (batch.writes.length > 0 || batch.readies.length > 0) this.submit(batch);
    this.outbox.sendPeersNow();
    for (let i = 0; i < readies.length; i += 2) this.handleReadyState(readies[i] as GroupHost, readies[i + 1] as Ready);
    readies.length = 0;
  }

  /** Hosts and Readys of the turn, in pairs, between the two halves of collectReadies (reused). */
  private readonly readies: (GroupHost | Ready)[] = [];

  /** What a Ready asks of the log and the network. */
  private handleReadyIo(h: GroupHost, rd: Ready, batch: Batch): void {
    for (const m of rd.messages) this.send(h, m);
    if (rd.snapshot !== null) {
      h.installing++;
      batch.installs.push({ host: h, snap: rd.snapshot });
    }
    const writesLog = rd.snapshot !== null || rd.entries.length > 0;
    let hard = rd.hardState;
    if (hard !== null && !writesLog) {
      // Only the commit index moved: Raft needs term and vote durable, never commit (a restart
      // learns it again from the leader, or from its own next commit). It waits for the group's
      // next log write instead of costing a record, and a sync, of its own.
      const written = this.wal.group(h.id).hardState;
      if (hard.term === written.term && hard.vote === written.vote) {
        h.hardPending = hard;
        hard = null;
      }
    } else if (hard === null && writesLog) {
      hard = h.hardPending;
    }
    if (hard !== null) h.hardPending = null;
    if (writesLog || hard !== null) {
      batch.writes.push({ group: h.id, snapshot: rd.snapshot?.meta ?? null, entries: rd.entries, hardState: hard });
      batch.writeHosts.push(h);
    }
    // persisted() matters for a snapshot or entries; messagesAfterPersist wait for this batch
    // (and so for every earlier one) even when the Ready itself wrote nothing.
    if (rd.snapshot !== null || rd.lastIndex > 0 || rd.messagesAfterPersist.length > 0) batch.readies.push({ host: h, rd });
  }

  /** What a Ready changes in the state machine and the requests waiting on it. */
  private handleReadyState(h: GroupHost, rd: Ready): void {
    if (rd.committedEntries.length > 0) this.apply(h, rd.committedEntries);
    // A snapshot's configuration takes effect here when the snapshot is restored (install).
    if (rd.conf !== null && rd.snapshot === null) h.conf = copyConf(rd.conf);
    for (const rs of rd.readStates) {
      const r = h.reads.get(rs.requestId);
      if (r !== undefined && r.index < 0) {
        r.index = rs.index;
        h.readsConfirmed++;
      }
    }
    for (const id of rd.readsAborted) {
      const r = h.reads.get(id);
      if (r === undefined) continue;
      h.reads.delete(id);
      if (r.index >= 0) h.readsConfirmed--;
      this.reject(r.conn, r.requestId, h.id, 'NOT_LEADER', this.notLeaderMessage(h.id, h.core.leader), r.t0, h.core.leader);
    }
    if (rd.soft !== null) this.onSoft(h, rd.soft);
    if (h.readsConfirmed > 0) this.serveReads(h);
    this.maybeSnapshot(h);
  }

  private apply(h: GroupHost, entries: Entry[]): void {
    for (const e of entries) {
      assert(e.index === h.applied + 1, `group ${h.id}: applies ${e.index} after ${h.applied}`);
      let result: Uint8Array | null = null;
      if (e.type === EntryType.Normal && e.data.length > 0) {
        // A state machine must turn bad input into a result (state-machine.ts); an exception
        // here is a bug that would make replicas diverge, so it stops the shard.
        result = h.sm.apply(e.data, e.index);
        h.appliedBytesSinceImage += e.data.length;
        this.counters[ShardCounter.Applied]!++;
      }
      h.applied = e.index;
      h.appliedTerm = e.term;
      if (h.proposals.size === 0) continue;
      const p = h.proposals.get(e.index);
      if (p === undefined) continue;
      h.proposals.delete(e.index);
      if (p.term === e.term && result !== null) this.answer(p.conn, p.requestId, h.id, result, p.t0);
      else this.reject(p.conn, p.requestId, h.id, 'NOT_LEADER', `the entry of this write was replaced (group ${h.id})`, p.t0, h.core.leader);
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
    if (was !== is) this.leaders += is ? 1 : -1;
    for (const [index, p] of h.proposals) {
      if (is && p.term === s.term) continue;
      h.proposals.delete(index);
      this.reject(p.conn, p.requestId, h.id, 'OUTCOME_UNKNOWN', `leadership of group ${h.id} was lost before the write was known to commit`, p.t0);
    }
    if (is) return;
    for (const [id, r] of h.reads) {
      if (r.index >= 0) continue;
      h.reads.delete(id);
      this.reject(r.conn, r.requestId, h.id, 'NOT_LEADER', this.notLeaderMessage(h.id, s.leader), r.t0, s.leader);
    }
  }

  private serveReads(h: GroupHost): void {
    for (const [id, r] of h.reads) {
      if (r.index < 0 || r.index > h.applied) continue;
      h.reads.delete(id);
      h.readsConfirmed--;
      this.query(h, r.conn, r.requestId, r.body, r.t0);
    }
  }

  // --- The log ---

  private submit(b: Batch): void {
    this.batches.push(b);
    if (!this.holding && b.installs.length === 0) {
      this.append(b);
      return;
    }
    // A snapshot install goes first to the store; this batch and every later one wait for it,
    // so that the log's order stays the order the Readys were handed out.
    this.held.push(b);
    if (this.holding) return;
    this.holding = true;
    this.track(this.runHeld());
  }

  private async runHeld(): Promise<void> {
    try {
      while (this.held.length > 0) {
        const b = this.held[0]!;
        for (const ins of b.installs) await this.install(ins.host, ins.snap);
        this.held.shift();
        this.append(b);
      }
    } catch (e) {
      this.failWith(e);
    } finally {
      this.holding = false;
    }
  }

  private append(b: Batch): void {
    let writes = b.writes;
    if (b.writeHosts.some((h) => h.removed)) writes = writes.filter((_, i) => !b.writeHosts[i]!.removed);
    for (const ins of b.installs) {
      // The image becomes the group's snapshot data in the same step as the log's marker.
      if (!ins.host.removed) this.images.set(ins.host.id, ins.snap);
    }
    const t0 = this.clock.nowMs();
    const durable = writes.length > 0 ? this.wal.append(writes) : this.lastAppend;
    if (writes.length > 0) this.lastAppend = durable.then(noop, noop);
    this.track(durable.then(() => {
      if (writes.length > 0) {
        const ms = this.clock.nowMs() - t0;
        this.latency.walAppend.recordMs(ms);
        this.counters[ShardCounter.Appends]!++;
        this.counters[ShardCounter.AppendMsTotal]! += ms;
      }
      b.done = true;
      this.wake();
    }, (e: unknown) => this.failWith(e)));
  }

  /** Finished batches, in order: each Ready is persisted() and its messagesAfterPersist sent. True if any message was. */
  private completeBatches(): boolean {
    let sent = false;
    while (this.batches.length > 0 && this.batches[0]!.done) {
      const b = this.batches.shift()!;
      for (const { host, rd } of b.readies) {
        if (host.removed) continue;
        host.core.persisted(rd);
        for (const m of rd.messagesAfterPersist) this.send(host, m);
        if (rd.messagesAfterPersist.length > 0) sent = true;
        this.touched.add(host);
      }
    }
    return sent;
  }

  // --- Snapshots ---

  private serialSnapshotWork<T>(work: () => Promise<T>): Promise<T> {
    const run = this.snapChain.then(work);
    this.snapChain = run.then(noop, noop);
    return run;
  }

  /** A leader's snapshot: to the store first, then into the state machine (the append follows). */
  private async install(h: GroupHost, snap: Snapshot): Promise<void> {
    if (h.removed) return;
    await this.serialSnapshotWork(() => this.store.write(h.id, snap.meta, snap.data));
    h.installing--;
    if (h.removed) return;
    h.sm.restore(snap.data);
    h.imageBytes = snap.data.length;
    h.appliedBytesSinceImage = 0;
    h.applied = snap.meta.index;
    h.appliedTerm = snap.meta.term;
    h.conf = copyConf(snap.meta.conf);
    h.snapIndex = snap.meta.index;
    this.counters[ShardCounter.SnapshotsInstalled]!++;
    for (const [index, p] of h.proposals) {
      if (index > snap.meta.index) continue;
      h.proposals.delete(index);
      this.reject(p.conn, p.requestId, h.id, 'OUTCOME_UNKNOWN', `a snapshot from the leader replaced the log of group ${h.id}`, p.t0);
    }
    this.log.info({ group: h.id, index: snap.meta.index, term: snap.meta.term, bytes: snap.data.length }, 'snapshot installed');
  }

  /**
   * Every snapshotEntries applied entries: image the state machine, write it to the store,
   * record it in the log, and compact the log up to snapshotKeepEntries behind it (followers a
   * little behind still get entries rather than the whole snapshot).
   */
  private maybeSnapshot(h: GroupHost, keepEntries = this.task.snapshotKeepEntries): void {
    if (h.snapshotting || h.installing > 0 || h.removed) return;
    if (keepEntries === 0) {
      if (h.applied === h.snapIndex) return;
    } else if (h.applied - h.snapIndex < this.task.snapshotEntries || h.appliedBytesSinceImage < h.imageBytes) {
      // Imaging costs the size of the state; waiting until the log since the last image is as
      // large keeps that cost at most the cost of the log itself, however large the state.
      return;
    }
    h.snapshotting = true;
    const image = h.sm.snapshot();
    h.imageBytes = image.length;
    h.appliedBytesSinceImage = 0;
    const meta: SnapshotMeta = { index: h.applied, term: h.appliedTerm, conf: copyConf(h.conf) };
    this.track(this.serialSnapshotWork(() => this.takeSnapshot(h, meta, image, keepEntries))
      .catch((e: unknown) => this.failWith(e))
      .finally(() => {
        h.snapshotting = false;
      }));
  }

  /**
   * The log deletes a segment only once no group needs it, and rewrites small groups that hold
   * the oldest one back; a group with more live log than that (rewriteBytesMax) that went quiet
   * before reaching snapshotEntries would keep every later segment on disk. Such groups are
   * snapshotted now and compacted right up to the snapshot. Checked with the request sweep.
   */
  private unpin(): void {
    for (const g of this.wal.groupsPinning()) {
      const h = this.groups.get(g);
      if (h === undefined || h.snapshotting || h.installing > 0) continue;
      if (h.applied > h.snapIndex) {
        this.maybeSnapshot(h, 0);
      } else if (this.wal.group(g).compactedIndex < h.snapIndex) {
        this.track(this.wal.compact(g, h.snapIndex).catch((e: unknown) => this.failWith(e)));
      }
    }
  }

  private async takeSnapshot(h: GroupHost, meta: SnapshotMeta, image: Uint8Array, keepEntries: number): Promise<void> {
    if (h.removed || h.snapIndex >= meta.index) return;
    await this.store.write(h.id, meta, image);
    if (h.removed || h.snapIndex >= meta.index) return;
    // In one synchronous step: the image for snapshotData, and the log's marker it answers to.
    this.images.set(h.id, { meta, data: image });
    h.snapIndex = meta.index;
    const recorded = this.wal.recordSnapshot(h.id, meta);
    const to = meta.index - keepEntries;
    const compacted = to > this.wal.group(h.id).compactedIndex ? this.wal.compact(h.id, to) : Promise.resolve();
    await Promise.all([recorded, compacted]);
    // Older snapshot files may go only once the log's marker for this one is durable.
    await this.store.prune(h.id);
    this.counters[ShardCounter.SnapshotsTaken]!++;
  }

  // --- Admin ---

  private nodeAdmin(id: number, bytes: Uint8Array): void {
    this.counters[ShardCounter.Requests]!++;
    const req = parseAdminRequest(bytes, null);
    if (typeof req === 'string') {
      this.outbox.adminReply(id, adminError('BAD_REQUEST', req));
      return;
    }
    this.runAdmin(req, null, (reply) => this.outbox.adminReply(id, reply));
  }

  private groupAdmin(conn: number, f: FrameHeader, body: Uint8Array, t0: number): void {
    const req = parseAdminRequest(body.slice(), f.group);
    if (typeof req === 'string') {
      this.reject(conn, f.requestId, f.group, 'BAD_REQUEST', req, t0);
      return;
    }
    this.runAdmin(req, f.group, (reply) => {
      this.outbox.respond(conn, FrameKind.AdminResult, f.requestId, f.group, pack(reply) as Uint8Array);
      this.latency.request.recordMs(this.clock.nowMs() - t0);
    });
  }

  /** Runs an admin request; `reply` is called exactly once, inside or after this call. */
  private runAdmin(req: AdminRequest, scope: number | null, reply: (r: AdminReply) => void): void {
    let out: AdminReply | Promise<AdminReply>;
    try {
      out = this.admin(req, scope);
    } catch (e) {
      this.failWith(e);
      reply(adminError('UNAVAILABLE', `shard failed: ${e instanceof Error ? e.message : String(e)}`));
      return;
    }
    if (!(out instanceof Promise)) {
      reply(out);
      return;
    }
    this.track(out.then((r) => {
      reply(r);
      this.wake();
    }, (e: unknown) => {
      this.failWith(e);
      reply(adminError(e instanceof WalError ? 'STORAGE_FAILED' : 'UNAVAILABLE', e instanceof Error ? e.message : String(e)));
      this.wake();
    }));
  }

  private admin(req: AdminRequest, scope: number | null): AdminReply | Promise<AdminReply> {
    switch (req.op) {
      case 'status': {
        if (scope === null) return { ok: true, groups: this.status() };
        const h = this.groups.get(scope);
        return h === undefined ? adminError('NO_GROUP', `node ${this.task.nodeId} does not host group ${scope}`) : { ok: true, groups: [h.status()] };
      }
      case 'metrics':
        // Microseconds; `append`: a WAL append from the call to durable; `request`: read to answered.
        return { ok: true, latency: { append: this.latency.walAppend.summary(), request: this.latency.request.summary() } };
      case 'addGroup':
        return this.addGroup(req.group, req.members);
      case 'removeGroup':
        return this.removeGroup(req.group);
      case 'transferLeader': {
        const h = this.groups.get(req.group);
        if (h === undefined) return adminError('NO_GROUP', `node ${this.task.nodeId} does not host group ${req.group}`);
        const r = h.core.transferLeader(req.to);
        this.touched.add(h);
        this.wake();
        if (r.ok) return { ok: true };
        return adminError(r.code, r.code === 'NOT_LEADER' ? this.notLeaderMessage(h.id, r.leader) : `node ${req.to} is not a voter of group ${h.id}`);
      }
    }
  }

  status(): GroupStatus[] {
    return [...this.groups.values()].sort((a, b) => a.id - b.id).map((h) => h.status());
  }

  /** Creates the group here (idempotent when it exists with the same voters); resolves once durable. */
  private async addGroup(group: number, members: number[]): Promise<AdminReply> {
    const { shard, shards, nodeId } = this.task;
    if (group % shards !== shard) return adminError('BAD_REQUEST', `group ${group} belongs on shard ${group % shards}, not ${shard}`);
    if (!members.includes(nodeId)) return adminError('BAD_REQUEST', `members [${members.join(', ')}] do not include this node (${nodeId})`);
    const existing = this.groups.get(group);
    if (existing !== undefined) {
      const founding = this.founding.get(group);
      const c = existing.core.confState();
      const voters = founding !== undefined ? founding.members : c.votersOutgoing.length === 0 ? [...c.voters].sort((a, b) => a - b) : [];
      if (!sameIds(voters, members)) {
        return adminError('BAD_REQUEST', `group ${group} exists here with voters [${c.voters.join(', ')}]${c.votersOutgoing.length > 0 ? ` (joint with [${c.votersOutgoing.join(', ')}])` : ''}`);
      }
      if (founding !== undefined) await founding.durable;
      return { ok: true };
    }
    if (this.removing.has(group)) return adminError('UNAVAILABLE', `group ${group} is being removed; retry`);
    const durable = this.bootstrap([group], members);
    this.founding.set(group, { members, durable });
    this.wake();
    try {
      await durable;
    } finally {
      if (this.founding.get(group)?.durable === durable) this.founding.delete(group);
    }
    this.log.info({ group, members }, 'group added');
    return { ok: true };
  }

  /** Forgets the group: its waiting requests get NO_GROUP, its log records and snapshots go. */
  private async removeGroup(group: number): Promise<AdminReply> {
    const h = this.groups.get(group);
    // NO_GROUP, also for a removal retried after it succeeded: once the log records are gone a
    // node cannot tell "removed" from "never here"; the caller decides (docs/operations.md).
    if (h === undefined) return adminError('NO_GROUP', `node ${this.task.nodeId} does not host group ${group}`);
    h.removed = true;
    this.groups.delete(group);
    this.touched.delete(h);
    this.awake.delete(h);
    this.founding.delete(group);
    if (h.role === Role.Leader) this.leaders--;
    this.counters[ShardCounter.Groups] = this.groups.size;
    this.counters[ShardCounter.Leaders] = this.leaders;
    this.abortGroup(h, 'NO_GROUP', `group ${group} was removed from node ${this.task.nodeId}`);
    this.assembler.dropGroup(group);
    this.images.delete(group);
    this.removing.add(group);
    try {
      await this.wal.removeGroup(group);
      // After any snapshot write of the group still queued, so that none lands after the removal.
      await this.serialSnapshotWork(() => this.store.removeGroup(group));
    } finally {
      this.removing.delete(group);
    }
    this.log.info({ group }, 'group removed');
    return { ok: true };
  }
}

function sameIds(a: number[], b: number[]): boolean {
  if (a.length !== b.length) return false;
  const sa = [...a].sort((x, y) => x - y);
  const sb = [...b].sort((x, y) => x - y);
  return sa.every((v, i) => v === sb[i]);
}
