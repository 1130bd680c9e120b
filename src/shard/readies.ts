// The Readys of a turn, and the batches they make for the log. Every touched group hands out
// its Ready; its messages go to the out ring, its entries and hard state join ONE batch for all
// groups (one Wal.append: one write, one fdatasync when syncForce), not awaited: the next turn
// gathers while this one syncs. Then what the Ready changes on this member is applied (apply.ts).
// A batch carrying a leader's snapshot waits for its install, and every later batch waits behind
// it (`held`), so that the log's order stays the order the Readys were handed out. Once a batch
// is durable, each of its Readys is persisted() and its messagesAfterPersist (a follower's
// acknowledgements) sent, oldest batch first.
import type { Clock } from '../io/clock.js';
import type { Message, Ready, Snapshot } from '../raft/types.js';
import type { GroupWrite, Wal } from '../storage/wal.js';
import type { Applier } from './apply.js';
import type { ShardContext } from './context.js';
import { ShardCounter } from './counters.js';
import type { GroupHost } from './group-host.js';
import type { GroupTable } from './group-table.js';
import type { LatencyHistogram } from './latency.js';
import type { LoopControl } from './loop-control.js';
import type { Outbox } from './outbox.js';
import type { Snapshots } from './snapshots.js';

const noop = (): void => {};

/**
 * Batches handed to the log (or held behind a snapshot install) and not yet completed, at most.
 * A turn makes one batch while earlier ones sync, which is how group commit overlaps gathering
 * with the fdatasync; a few are normal, this many means the disk is far behind. Then the loop
 * takes no more input (shard.ts) until the oldest is durable: the in ring fills, and the main
 * thread stops reading the sockets that feed it, instead of Readys, entries and their waiting
 * requests piling up here for as long as the disk stalls.
 */
export const BATCHES_IN_FLIGHT_MAX = 64;

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

export class Readies {
  private readonly wal: Wal;
  private readonly outbox: Outbox;
  private readonly counters: Float64Array;
  private readonly clock: Clock;
  private readonly control: LoopControl;
  /** Batches handed to the log (or held), in order; completed from the front. */
  private readonly batches: Batch[] = [];
  /** Batches waiting behind a snapshot install, in order. */
  private readonly held: Batch[] = [];
  private holding = false;
  /** Resolves once every append made so far is durable. */
  private lastAppend: Promise<void> = Promise.resolve();
  /** Hosts and Readys of the turn, in pairs, between the two halves of collect (reused). */
  private readonly readies: (GroupHost | Ready)[] = [];

  constructor(
    ctx: ShardContext,
    private readonly table: GroupTable,
    private readonly applier: Applier,
    private readonly snapshots: Snapshots,
    /** Latency of WAL appends, call to durable. */
    private readonly latency: LatencyHistogram,
  ) {
    this.wal = ctx.wal;
    this.outbox = ctx.outbox;
    this.counters = ctx.counters;
    this.clock = ctx.clock;
    this.control = ctx.control;
  }

  /** BATCHES_IN_FLIGHT_MAX batches wait for the log: the loop takes no input until the oldest completes. */
  get backlogged(): boolean {
    return this.batches.length >= BATCHES_IN_FLIGHT_MAX && !this.batches[0]!.done;
  }

  collect(): void {
    const batch: Batch = { writes: [], writeHosts: [], readies: [], installs: [], done: false };
    const table = this.table;
    const touched = table.takeTouched();
    const awake = table.awake;
    const readies = this.readies;
    for (const h of touched) {
      if (h.removed) continue;
      if (h.core.quiesced) awake.delete(h);
      else awake.add(h);
      if (!h.core.hasReady()) continue;
      const rd = h.core.ready();
      this.handleReadyIo(h, rd, batch);
      readies.push(h, rd);
      if (h.core.hasReady()) {
        // More than one Ready's worth (a large apply backlog): the next turn comes at once.
        table.touched.add(h);
        this.control.turnAgain();
      }
    }
    // Log and messages first, applying after: the log's write (and fdatasync) and the peers'
    // work on these messages overlap with applying, instead of waiting for it.
    if (batch.writes.length > 0 || batch.readies.length > 0) this.submit(batch);
    this.outbox.sendPeersNow();
    for (let i = 0; i < readies.length; i += 2) this.applier.handleReadyState(readies[i] as GroupHost, readies[i + 1] as Ready);
    readies.length = 0;
  }

  /** What a Ready asks of the log and the network. */
  private handleReadyIo(h: GroupHost, rd: Ready, batch: Batch): void {
    for (const m of rd.messages) this.send(h, m);
    if (rd.snapshot !== null) {
      h.image.installing++;
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

  private send(h: GroupHost, m: Message): void {
    this.outbox.raft(h.id, m);
    this.counters[ShardCounter.MessagesOut]!++;
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
    this.control.track(this.runHeld());
  }

  private async runHeld(): Promise<void> {
    try {
      while (this.held.length > 0) {
        const b = this.held[0]!;
        for (const ins of b.installs) await this.snapshots.install(ins.host, ins.snap);
        this.held.shift();
        this.append(b);
      }
    } catch (e) {
      this.control.failWith(e);
    } finally {
      this.holding = false;
    }
  }

  private append(b: Batch): void {
    let writes = b.writes;
    if (b.writeHosts.some((h) => h.removed)) writes = writes.filter((_, i) => !b.writeHosts[i]!.removed);
    for (const ins of b.installs) {
      // The image becomes the group's snapshot data in the same step as the log's marker.
      if (!ins.host.removed) this.snapshots.images.set(ins.host.id, ins.snap);
    }
    const t0 = this.clock.nowMs();
    const durable = writes.length > 0 ? this.wal.append(writes) : this.lastAppend;
    if (writes.length > 0) this.lastAppend = durable.then(noop, noop);
    this.control.track(durable.then(() => {
      if (writes.length > 0) {
        const ms = this.clock.nowMs() - t0;
        this.latency.recordMs(ms);
        this.counters[ShardCounter.Appends]!++;
        this.counters[ShardCounter.AppendMsTotal]! += ms;
      }
      b.done = true;
      this.control.wake();
    }, (e: unknown) => this.control.failWith(e)));
  }

  /** Finished batches, in order: each Ready is persisted() and its messagesAfterPersist sent. True if any message was. */
  completeBatches(): boolean {
    let sent = false;
    while (this.batches.length > 0 && this.batches[0]!.done) {
      const b = this.batches.shift()!;
      for (const { host, rd } of b.readies) {
        if (host.removed) continue;
        host.core.persisted(rd);
        for (const m of rd.messagesAfterPersist) this.send(host, m);
        if (rd.messagesAfterPersist.length > 0) sent = true;
        this.table.touched.add(host);
      }
    }
    return sent;
  }
}
