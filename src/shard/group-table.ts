// The groups a shard hosts: which ones live here (recovered from the log at open, bootstrapped,
// added and removed by admin), how each one's Raft core is made and configured, which are awake
// (ticked), which were touched since the last Readys were collected, and how many lead.
import { assert } from '../util/assert.js';
import { META_GROUP } from '../cluster/meta-group.js';
import { ChangeType, encodeConfChange } from '../raft/conf-change.js';
import { RaftNode } from '../raft/raft.js';
import { configDefaults, EntryType, Role, type RaftConfig, type Snapshot } from '../raft/types.js';
import { SUB_HEADER_BYTES } from '../protocol/peer-wire.js';
import type { SnapshotStore } from '../storage/snapshot-store.js';
import type { GroupWrite, Wal } from '../storage/wal.js';
import { ShardCounter } from './counters.js';
import { GroupHost } from './group-host.js';
import type { HeapTrim } from './heap-trim.js';
import { LeaderSpread } from './leader-spread.js';
import type { ShardLogger } from './log.js';
import type { StateMachine, StateMachineFactory } from './state-machine.js';
import type { GroupStatus, ShardTask } from './task.js';

/**
 * Generous bounds on what a Raft message adds to its entries' payloads on the wire (fixed
 * fields, and a header per entry). They size the core's message bounds so that every message
 * fits one ring record, whatever the codec's exact layout.
 */
const MESSAGE_FIXED_BYTES_MAX = 1024;
const ENTRY_HEADER_BYTES_MAX = 64;
/** An idle group quiesces after this many election timeouts unless the task says otherwise. */
const TICKS_QUIESCE_ELECTIONS = 2;

/**
 * The configuration every core of the shard gets, and the largest command accepted for
 * proposing (its entry must fit one ring record in an append), for out-ring records whose
 * payload holds at most `payloadBytesMax`.
 */
/**
 * Share of the election timeout a lease may last, on this node's monotonic clock: the rest
 * absorbs the members' clocks running at different rates (a follower's timer running fast
 * ends its election timeout early in real time, the leader's running slow makes its lease
 * look younger), with room to spare (real clock rates differ by parts per million; the
 * simulator skews them by up to 2 %).
 */
export const LEASE_SHARE = 0.8;

/**
 * How long a leader's lease lasts (ms) after the round that gave it was sent: a follower that
 * heard that round ignores campaigns for ticksElection of its ticks, and the tick right after
 * a message may come at once, so (ticksElection − 1) ticks of real time at least (ticks come
 * late, never early), times LEASE_SHARE.
 */
export function leaseMsFor(tickMs: number, ticksElection: number): number {
  return (ticksElection - 1) * tickMs * LEASE_SHARE;
}

export function coreConfig(task: ShardTask, payloadBytesMax: number, random: () => number, nowMs: () => number): { raft: Omit<RaftConfig, 'applied'>; proposalBytesMax: number } {
  // Every message must fit one out-ring record (the main thread forwards records as they are).
  const room = payloadBytesMax - SUB_HEADER_BYTES - MESSAGE_FIXED_BYTES_MAX;
  const entriesPerMsgMax = Math.min(configDefaults.entriesPerMsgMax, Math.floor(room / (2 * ENTRY_HEADER_BYTES_MAX)));
  const bytesPerMsgMax = Math.min(configDefaults.bytesPerMsgMax, room - entriesPerMsgMax * ENTRY_HEADER_BYTES_MAX);
  assert(entriesPerMsgMax >= 1 && bytesPerMsgMax >= 1024, `out ring records of ${payloadBytesMax} bytes are too small for Raft messages`);
  return {
    proposalBytesMax: room - ENTRY_HEADER_BYTES_MAX,
    raft: {
      ...configDefaults,
      id: task.nodeId,
      ticksElection: task.ticksElection,
      ticksHeartbeat: task.ticksHeartbeat,
      entriesPerMsgMax,
      bytesPerMsgMax,
      // Not in ShardTask yet: read as an optional field (0 turns quiescence off).
      ticksQuiesce: task.ticksQuiesce ?? TICKS_QUIESCE_ELECTIONS * task.ticksElection,
      // The host may use Math.random; only the core must not (it gets it injected).
      random,
      // Leases on the monotonic clock, read fresh each time (not the tick count: a late shard
      // runs its ticks late), and checked again before a read is served (serveReads).
      leaseRead: task.readMode === 'lease',
      leaseMs: task.readMode === 'lease' ? leaseMsFor(task.tickMs, task.ticksElection) : 0,
      nowMs,
    },
  };
}

export class GroupTable {
  readonly groups = new Map<number, GroupHost>();
  /** The config every core is made from, `applied` and `startedFresh` set before each (see makeHost). */
  private readonly raftConfig: RaftConfig;
  /**
   * Groups whose core is not quiesced: the only ones ticked, so that an idle shard with
   * thousands of groups does next to nothing per tick. Kept up to date as groups are handled
   * (Readies.collect): whatever can wake a core also touches its group.
   */
  readonly awake = new Set<GroupHost>();
  /** Groups handled since the Readys were last collected: the only ones that can have one. */
  touched = new Set<GroupHost>();
  /** Groups this node leads (the Leaders counter). */
  leaders = 0;
  /** Where the groups' first leaders go (leader-spread.ts). */
  readonly spread: LeaderSpread;

  constructor(
    private readonly wal: Wal,
    /** The newest snapshot image of each group that has one (owned by Snapshots). */
    private readonly images: Map<number, Snapshot>,
    private readonly factory: StateMachineFactory,
    raftConfig: Omit<RaftConfig, 'applied'>,
    private readonly counters: Float64Array,
    /** Collects the heap once every group has been quiet a while (heap-trim.ts); null: never. */
    private readonly trim: HeapTrim | null = null,
  ) {
    this.spread = new LeaderSpread(raftConfig.id);
    this.raftConfig = { ...raftConfig, applied: 0, startedFresh: false };
  }

  /**
   * Recovers every group the log holds (state machine from the snapshot the log points at; the
   * core re-delivers what was committed after it), and creates the bootstrap groups the log does
   * not have, durably.
   */
  async recover(store: SnapshotStore, task: ShardTask, log: ShardLogger): Promise<void> {
    const ids = this.wal.groupIds();
    for (const g of ids) {
      const meta = this.wal.group(g).snap;
      const sm = this.factory(g);
      if (meta.index > 0) {
        const snap = await store.readAll(g, meta.index, meta.term);
        if (snap === null) {
          throw new Error(`group ${g}: the log points at snapshot ${meta.index}/${meta.term}, which is not in ${store.dir}`);
        }
        sm.restore(snap.data);
        this.images.set(g, { meta, data: snap.data });
      }
      this.makeHost(g, sm, false);
    }
    // Snapshots of groups the log no longer has: a removal that stopped half-way.
    const present = new Set(ids);
    for (const g of await store.groups()) if (!present.has(g)) await store.removeGroup(g);
    const fresh = task.bootstrapGroups.filter((g) => !present.has(g));
    const members = task.peers.map((p) => p.id).sort((a, b) => a - b);
    if (fresh.length > 0) await this.bootstrap(fresh, members);
    const meta = task.bootstrapMeta;
    if (meta !== undefined && meta.length > 0 && !present.has(META_GROUP)) await this.bootstrap([META_GROUP], [...meta].sort((a, b) => a - b));
    log.info({ recovered: ids.length, bootstrapped: fresh.length, meta: meta !== undefined && !present.has(META_GROUP) }, 'shard open');
  }

  /**
   * Creates groups as committed conf entry 1 with `members` as voters (hard state term 1,
   * commit 1), the way every member of a new group starts. The hosts exist at once (the log's
   * index has the entry as soon as it is laid out, and everything they write later lands in a
   * later batch); the promise says when the founding records are durable.
   */
  bootstrap(groups: number[], members: number[]): Promise<void> {
    const data = encodeConfChange({ leave: false, changes: members.map((node) => ({ type: ChangeType.AddVoter, node })) });
    const writes: GroupWrite[] = groups.map((group) => ({
      group,
      entries: [{ index: 1, term: 1, type: EntryType.ConfChange, data }],
      hardState: { term: 1, vote: 0, commit: 1 },
    }));
    const durable = this.wal.append(writes);
    for (const g of groups) this.makeHost(g, this.factory(g), true);
    return durable;
  }

  /**
   * Creates an empty replica of an existing group: no entries, no configuration, a zero hard
   * state written so that the log knows the group after a restart. Its first leader's append
   * (or snapshot) brings the log and the configuration; until then it cannot campaign.
   */
  join(group: number): Promise<void> {
    const durable = this.wal.append([{ group, entries: [], hardState: { term: 0, vote: 0, commit: 0 } }]);
    this.makeHost(group, this.factory(group), true);
    return durable;
  }

  /** fresh: made now (bootstrap, join), not recovered from the log (RaftConfig.startedFresh). */
  private makeHost(group: number, sm: StateMachine, fresh: boolean): GroupHost {
    const gl = this.wal.group(group);
    // One config object for every core (RaftConfig.applied: read by the constructor only).
    const cfg = this.raftConfig;
    cfg.applied = gl.snap.index;
    cfg.startedFresh = fresh;
    const core = new RaftNode(cfg, gl, gl.hardState);
    const host = new GroupHost(group, core, sm, gl.snap, this.images.get(group)?.data.length ?? 0);
    this.groups.set(group, host);
    this.counters[ShardCounter.Groups] = this.groups.size;
    this.touched.add(host);
    this.spread.added(host);
    return host;
  }

  /** Forgets `h` here: late completions for it see `removed` and do nothing. */
  remove(h: GroupHost): void {
    h.removed = true;
    this.groups.delete(h.id);
    this.touched.delete(h);
    this.awake.delete(h);
    this.spread.removed(h);
    if (h.role === Role.Leader) this.leaders--;
    this.counters[ShardCounter.Groups] = this.groups.size;
    this.counters[ShardCounter.Leaders] = this.leaders;
  }

  /** The groups touched since the last call; a fresh set collects the next ones. */
  takeTouched(): Set<GroupHost> {
    const touched = this.touched;
    this.touched = new Set();
    return touched;
  }

  /** Ticks every awake group. */
  tick(): void {
    // A group woken during this turn joins `awake` in Readies.collect: it misses this tick at most.
    for (const h of this.awake) {
      h.core.tick();
      this.touched.add(h);
    }
    // Groups whose founding configuration was applied since the links came up (or single-member ones).
    if (this.spread.waiting) this.spread.campaign(this.touched);
    this.trim?.tick(this.awake.size === 0);
  }

  status(): GroupStatus[] {
    return [...this.groups.values()].sort((a, b) => a.id - b.id).map((h) => h.status());
  }
}
