// A shard: the groups one worker hosts, their Raft cores and state machines, one write-ahead
// log and one snapshot store for all of them, and the turn loop that drives everything
// (docs/internals.md, "The shard turn"). One turn:
//   1. report finished appends: persisted() each Ready in order, send messagesAfterPersist;
//   2. serve reads a full outbox held back (client-requests.ts); drain the in ring (at most
//      turnRecordsMax records; none while BATCHES_IN_FLIGHT_MAX batches wait for the log,
//      readies.ts): propose, read, step, admin;
//   3. tick every awake group if the shard's timer fired (quiesced ones are skipped, see
//      `awake`); time out old requests once in a while;
//   4. ready() every touched group: send messages, gather every group's entries and hard state
//      into ONE Wal.append (not awaited: the next turn gathers while this one syncs), apply
//      committed entries, answer reads, take snapshots;
//   5. flush: one out-ring record per destination node and per client connection.
// A turn starts when the in ring has data, the tick timer fires, or an append finishes.
//
// This file opens the shard, wires its parts and runs the loop; each part owns one concept
// (docs/internals.md, "Where things are in src/shard"): loop-control.ts (what wakes the loop,
// work under way, the fatal error), group-table.ts (the groups, awake and touched sets),
// in-ring-reader.ts (records to their parts), client-requests.ts, peer-input.ts, readies.ts
// (Readys and batches to the log), apply.ts, snapshots.ts, admin.ts.
import * as path from 'node:path';
import { systemClock, systemScheduler, type Clock, type Scheduler } from '../io/clock.js';
import { nodeFileSystem, type FileSystem } from '../io/file-system.js';
import { assert } from '../util/assert.js';
import type { Snapshot, SnapshotMeta } from '../raft/types.js';
import type { SpscRing } from '../ring/spsc-ring.js';
import type { ProtocolErrorCode } from '../protocol/client-frame.js';
import { SnapshotStore, snapshotStoreDefaults } from '../storage/snapshot-store.js';
import { Wal, type GroupWrite, type WalError } from '../storage/wal.js';
import { Admin } from './admin.js';
import { Applier } from './apply.js';
import { ClientRequests } from './client-requests.js';
import type { ShardContext } from './context.js';
import { ShardCounter } from './counters.js';
import type { GroupHost } from './group-host.js';
import { coreConfig, GroupTable } from './group-table.js';
import type { HeapTrim } from './heap-trim.js';
import { InRingReader } from './in-ring-reader.js';
import { LatencyHistogram } from './latency.js';
import type { ShardLogger } from './log.js';
import { LoopControl } from './loop-control.js';
import type { Outbox } from './outbox.js';
import { PeerInput, type PeerDrops } from './peer-input.js';
import { Readies } from './readies.js';
import { SnapshotAssembler } from './snapshot-assembler.js';
import { Snapshots } from './snapshots.js';
import type { StateMachineFactory } from './state-machine.js';
import { loadStateMachineFactory, withMetaGroup } from './state-machine-loader.js';
import type { GroupStatus, ShardTask } from './task.js';
import { HEAP_SAMPLE_MS, sampleHeap } from './heap-sample.js';

/** The log's free space is checked (statfs) at most this often, with the ticks. */
const SPACE_CHECK_MS = 100;

/** Unfinished incoming snapshots may hold this many times snapshotBytesMax in all. */
const SNAP_ASSEMBLY_FACTOR = 2;

const noop = (): void => {};

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
  /** Collects the heap once the shard has gone quiet (heap-trim.ts); shard-task.ts gives V8's, the simulator none. */
  heapTrim?: HeapTrim;
}

export class Shard {
  /** Latency of WAL appends (call to durable) and of client requests (read to answered). */
  readonly latency = { walAppend: new LatencyHistogram(), request: new LatencyHistogram() };

  private readonly log: ShardLogger;
  private readonly counters: Float64Array;
  private readonly outbox: Outbox;
  private readonly control: LoopControl;
  private readonly table: GroupTable;
  private readonly input: InRingReader;
  private readonly requests: ClientRequests;
  private readonly peers: PeerInput;
  private readonly readies: Readies;
  private readonly snapshots: Snapshots;
  private readonly clock: Clock;
  private spaceCheckedMs = -Infinity;
  private heapSampledMs = -Infinity;

  private constructor(
    readonly task: ShardTask,
    io: ShardIo,
    readonly wal: Wal,
    readonly store: SnapshotStore,
    /** The newest snapshot image of each group that has one, for leaders to send (see open). */
    images: Map<number, Snapshot>,
    factory: StateMachineFactory,
  ) {
    this.log = io.log;
    this.counters = io.counters;
    this.outbox = io.outbox;
    const clock = io.clock ?? systemClock;
    this.clock = clock;
    this.control = new LoopControl(io.scheduler ?? systemScheduler, io.inRing, io.waitInput ?? (() => io.inRing.waitData()), io.counters);
    const ctx: ShardContext = { task, log: io.log, counters: io.counters, clock, outbox: io.outbox, wal, control: this.control };
    const config = coreConfig(task, this.outbox.payloadBytesMax, io.random ?? Math.random, () => clock.nowMs());
    this.table = new GroupTable(wal, images, factory, config.raft, io.counters, io.heapTrim ?? null);
    this.requests = new ClientRequests(ctx, this.table, this.latency.request, config.proposalBytesMax);
    this.snapshots = new Snapshots(ctx, store, this.table.groups, images, this.requests);
    const applier = new Applier(this.table, this.requests, this.snapshots, io.counters);
    this.readies = new Readies(ctx, this.table, applier, this.snapshots, this.latency.walAppend);
    const assembler = new SnapshotAssembler(task.snapshotBytesMax, SNAP_ASSEMBLY_FACTOR * task.snapshotBytesMax);
    this.peers = new PeerInput(this.table, assembler, io.counters, io.log);
    const admin = new Admin(ctx, this.table, this.requests, this.snapshots, assembler, this.latency);
    this.input = new InRingReader(ctx, io.inRing, this.requests, this.peers, admin);
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
    // The log tells of a full disk before the shard exists (recovery's first batch may meet one).
    let noSpaceChanged = (e: WalError | null): void => {
      if (e !== null) io.log.warn({ err: e.message }, 'disk full while opening the shard; waiting for room');
    };
    const wal = Wal.open({
      fs,
      clock: io.clock,
      scheduler: io.scheduler,
      dir: path.join(task.dir, 'wal'),
      syncForce: task.syncForce,
      segmentBytes: task.segmentBytes,
      // Every cut of a torn tail is logged: what recovery dropped must never go unsaid.
      onCut: (cut) => io.log.warn({ file: cut.file, offset: cut.offset, bytesDropped: cut.bytesDropped, reason: cut.reason },
        'log recovery cut a torn tail'),
      onNoSpace: (e) => noSpaceChanged(e),
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
      const factory = withMetaGroup(io.stateMachines ?? await loadStateMachineFactory(task.stateMachine), (image) => {
        if (!io.outbox.mapChanged(image)) io.log.warn({ bytes: image.length }, 'the key map is larger than a ring record; the main thread fetches it from a meta member');
      });
      const shard = new Shard(task, io, wal, store, images, factory);
      noSpaceChanged = (e): void => shard.noSpaceChanged(e);
      if (wal.noSpace !== null) shard.noSpaceChanged(wal.noSpace);
      shard.checkSpace();
      await shard.table.recover(store, task, shard.log);
      return shard;
    } catch (e) {
      await wal.close().catch(noop);
      throw e;
    }
  }

  /**
   * The disk filled (`e`: the log holds a batch and tries it again) or has room again (null).
   * While full: new writes are refused NO_SPACE before they are proposed, waiting ones are
   * answered NO_SPACE (they may still be applied), reads go on, and nothing is acknowledged to
   * peers that is not durable (their acknowledgements wait for the held batch, readies.ts).
   */
  noSpaceChanged(e: WalError | null): void {
    if (e !== null) {
      if (this.counters[ShardCounter.NoSpace] === 0) this.log.warn({ err: e.message }, 'disk full: writes are refused (NO_SPACE) until there is room; reads go on');
      this.counters[ShardCounter.NoSpace] = 1;
      // Only a held batch leaves writes waiting on the disk; with space merely low they are written.
      if (this.wal.batchHeld) this.requests.rejectWaitingWrites();
    } else {
      this.counters[ShardCounter.NoSpace] = 0;
      this.log.info('the disk has room again: writes resume');
    }
    this.control.wake();
  }

  /** The groups hosted here, by id. */
  get groups(): Map<number, GroupHost> {
    return this.table.groups;
  }

  /** Peer input dropped: messages for groups not hosted here, undecodable sub-records. */
  get dropped(): PeerDrops {
    return this.peers.dropped;
  }

  // --- The loop ---

  /** Runs turns until an InKind.Stop record, then closes the log. Rejects on a fatal error. */
  async run(): Promise<void> {
    const control = this.control;
    control.startTicks(this.task.tickMs);
    try {
      for (;;) {
        // While the log is far behind (Readies.backlogged) only its completions, ticks and
        // failures wake the loop: input waits in the ring.
        const backlogged = this.readies.backlogged;
        await control.waitForWork(this.input.moreInput && !backlogged, !backlogged);
        if (control.fatal !== null) throw control.fatal;
        this.turn();
        await this.outbox.flush();
        if (control.fatal !== null) throw control.fatal;
        if (this.input.stopRequested) break;
      }
      await this.shutdown();
    } finally {
      this.close();
    }
  }

  /** Lets go of the timer and this thread's ring waits (they keep the event loop alive). */
  close(): void {
    this.control.close();
  }

  private turn(): void {
    this.counters[ShardCounter.Turns]!++;
    // Acknowledgements of what just became durable leave before this turn takes new input: the
    // leader's commit waits for them, not for the work that arrived meanwhile.
    if (this.readies.completeBatches()) this.outbox.sendPeersNow();
    // Reads a full outbox held back last turn go before this turn's input.
    this.requests.serveDeferredReads();
    if (!this.readies.backlogged) this.input.drain();
    // The writes read this turn go into the log as one entry per group.
    this.requests.proposeStaged();
    if (this.control.takeTick()) {
      this.table.tick();
      this.checkSpace();
    }
    // Pinned log segments are checked at the pace of the request sweep.
    if (this.requests.sweepIfDue()) this.snapshots.unpin();
    this.readies.collect();
    this.counters[ShardCounter.Leaders] = this.table.leaders;
  }

  /**
   * Free space, at most every SPACE_CHECK_MS: the log reports a disk nearly full before a batch
   * meets it; and the heap's figures, at most every HEAP_SAMPLE_MS.
   */
  private checkSpace(): void {
    const now = this.clock.nowMs();
    if (now - this.heapSampledMs >= HEAP_SAMPLE_MS) {
      this.heapSampledMs = now;
      sampleHeap(this.counters);
    }
    if (now - this.spaceCheckedMs < SPACE_CHECK_MS) return;
    this.spaceCheckedMs = now;
    this.wal.checkSpace();
  }

  private async shutdown(): Promise<void> {
    this.control.stopTicks();
    // A batch (or a snapshot install) held by a full disk would wait for room for ever: it is
    // given up on (nothing in it was acknowledged).
    this.control.abandonNoSpace();
    this.wal.abandonHeld();
    await this.control.settle();
    if (this.control.fatal !== null) throw this.control.fatal;
    this.readies.completeBatches();
    this.abortAll('UNAVAILABLE', `shard ${this.task.shard} is stopping`);
    await this.outbox.flush();
    // Commit indexes not written yet (Readies.handleReadyIo): a restart then applies up to them at once.
    const pending: GroupWrite[] = [];
    for (const h of this.groups.values()) if (h.hardPending !== null && !h.removed) pending.push({ group: h.id, entries: [], hardState: h.hardPending });
    if (pending.length > 0 && this.wal.error === null) await this.wal.append(pending);
    await this.wal.close();
    this.log.info({ groups: this.groups.size }, 'shard stopped');
  }

  /** Waits for every append, snapshot write and admin operation under way. */
  settle(): Promise<void> {
    return this.control.settle();
  }

  /** Makes the loop stop with `e` (the log or the snapshot store failed, or a bug). */
  failWith(e: unknown): void {
    this.control.failWith(e);
  }

  /** Answers every request waiting in the shard; each gets its one response. */
  abortAll(code: ProtocolErrorCode, message: string): void {
    this.requests.abortAll(code, message);
  }

  status(): GroupStatus[] {
    return this.table.status();
  }
}
