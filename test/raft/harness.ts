// A scripted, synchronous network of RaftNodes for scenario tests: every Ready is made durable
// at once, messages are delivered in FIFO order, and links can be cut. Deterministic.
//
// Beyond that default, a test may: hold messages back and release them later (a slow link
// rather than a lossy one), drain a member's Readys itself (`manual`) to control exactly when
// its writes become durable, watch every Ready (`onReady`) and every message handed out (`sent`).
import { RaftNode } from '../../src/raft/raft.js';
import { bootstrap, MemoryStorage } from '../../src/raft/memory-storage.js';
import {
  configDefaults, EntryType, message, Role,
  type ConfState, type Entry, type HardState, type Message, type MessageType, type NodeId, type RaftConfig, type ReadState, type Ready, type Snapshot,
} from '../../src/raft/types.js';

export function seeded(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    // xorshift32: enough for election jitter in scripted tests.
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s / 0x100000000;
  };
}

export interface Member {
  raft: RaftNode;
  storage: MemoryStorage;
  applied: Entry[];
  reads: ReadState[];
  readsAborted: number[];
  /** Every non-null `Ready.conf`, in order. */
  confs: ConfState[];
  /** Every snapshot a Ready asked this member to install. */
  snapshots: Snapshot[];
  /** Every non-null `Ready.hardState`, in order. */
  hardStates: HardState[];
}

export class Cluster {
  readonly members = new Map<NodeId, Member>();
  readonly queue: Message[] = [];
  /** Cut links, as "from-to". */
  private readonly cut = new Set<string>();
  /** Every message delivered, for assertions on traffic. */
  readonly delivered: Message[] = [];
  /** Messages for which this returns false are dropped. */
  filter: (m: Message) => boolean = () => true;
  /** Messages for which this returns true are set aside in `held` (delayed, not lost). */
  hold: (m: Message) => boolean = () => false;
  readonly held: Message[] = [];
  /** Every message handed out by a Ready, in order, whether or not it was delivered. */
  readonly sent: Message[] = [];
  /** Members whose Readys the test drains itself: `flush` leaves them alone. */
  readonly manual = new Set<NodeId>();
  /** Called with every Ready the harness drains, before anything in it is acted on. */
  onReady: ((id: NodeId, rd: Ready) => void) | null = null;

  constructor(ids: NodeId[], readonly overrides: Partial<RaftConfig> = {}, voters: NodeId[] = ids) {
    for (const id of ids) this.add(id, voters.includes(id) ? voters : null);
  }

  add(id: NodeId, bootstrapVoters: NodeId[] | null, storage = new MemoryStorage(), applied = storage.snapshot().meta.index): Member {
    if (bootstrapVoters !== null && storage.lastIndex() === 0) bootstrap(storage, bootstrapVoters);
    const raft = new RaftNode(
      { ...configDefaults, id, random: seeded(id * 7919), applied, ...this.overrides } as RaftConfig,
      storage, storage.hardState,
    );
    const m: Member = { raft, storage, applied: [], reads: [], readsAborted: [], confs: [], snapshots: [], hardStates: [] };
    this.members.set(id, m);
    return m;
  }

  /**
   * Restarts `id` from its storage, losing everything in memory (and whatever it handed out
   * that was not persisted). `applied` is what the host's state machine had applied; by default
   * the snapshot index, so that entries after it are applied again.
   */
  restart(id: NodeId, applied?: number): Member {
    const old = this.members.get(id)!;
    this.manual.delete(id);
    return this.add(id, null, old.storage, applied);
  }

  member(id: NodeId): Member { return this.members.get(id)!; }

  get(id: NodeId): RaftNode { return this.members.get(id)!.raft; }

  isolate(id: NodeId): void {
    for (const other of this.members.keys()) {
      if (other === id) continue;
      this.cut.add(`${id}-${other}`);
      this.cut.add(`${other}-${id}`);
    }
  }

  cutLink(from: NodeId, to: NodeId): void { this.cut.add(`${from}-${to}`); }
  heal(): void { this.cut.clear(); }

  /** Drains every member's Ready, persisting at once (members in `manual` excepted). */
  flush(): void {
    for (const [id, m] of this.members) {
      if (this.manual.has(id)) continue;
      while (m.raft.hasReady()) {
        const rd = m.raft.ready();
        this.onReady?.(id, rd);
        this.send(rd.messages);
        this.persist(id, rd);
      }
    }
  }

  /** Queues messages for delivery, as the host does with `Ready.messages`. */
  send(msgs: Message[]): void {
    for (const msg of msgs) {
      this.sent.push(msg);
      this.queue.push(msg);
    }
  }

  /**
   * Makes `rd` durable on `id`'s storage and reports it, then queues its messagesAfterPersist
   * and applies what it commits: steps 2–4 of the Ready contract, for a manual member.
   */
  persist(id: NodeId, rd: Ready): void {
    const m = this.members.get(id)!;
    if (rd.snapshot !== null) {
      m.storage.applySnapshot(rd.snapshot);
      m.snapshots.push(rd.snapshot);
    }
    m.storage.append(rd.entries);
    if (rd.hardState !== null) {
      m.storage.hardState = rd.hardState;
      m.hardStates.push(rd.hardState);
    }
    m.raft.persisted(rd);
    this.send(rd.messagesAfterPersist);
    for (const e of rd.committedEntries) m.applied.push(e);
    for (const r of rd.readStates) m.reads.push(r);
    for (const r of rd.readsAborted) m.readsAborted.push(r);
    if (rd.conf !== null) m.confs.push(rd.conf);
  }

  /** Delivers messages until none are left (bounded, to catch message storms). */
  settle(stepsMax = 100_000): void {
    this.flush();
    let steps = 0;
    while (this.queue.length > 0) {
      if (++steps > stepsMax) throw new Error('cluster did not settle');
      const msg = this.queue.shift()!;
      const to = this.members.get(msg.to);
      if (to === undefined || this.cut.has(`${msg.from}-${msg.to}`) || !this.filter(msg)) continue;
      if (this.hold(msg)) {
        this.held.push(msg);
        continue;
      }
      this.delivered.push(msg);
      to.raft.step(msg);
      this.flush();
    }
  }

  /**
   * Delivers the message at `i` in the queue (not necessarily the oldest: the network may
   * reorder), unless its link is cut or the filter drops it, and drains the Readys it causes.
   */
  deliverAt(i: number): void {
    const msg = this.queue.splice(i, 1)[0];
    if (msg === undefined) return;
    const to = this.members.get(msg.to);
    if (to === undefined || this.cut.has(`${msg.from}-${msg.to}`) || !this.filter(msg)) return;
    if (this.hold(msg)) {
      this.held.push(msg);
      return;
    }
    this.delivered.push(msg);
    to.raft.step(msg);
    this.flush();
  }

  /** Puts held messages back on the network (in the order they were held) and settles. */
  release(): void {
    this.hold = () => false;
    for (const msg of this.held.splice(0)) this.queue.push(msg);
    this.settle();
  }

  /**
   * Steps `m` into its recipient and drains the Readys (persisting them) without delivering
   * anything; returns what the recipient sent. The rest of the queue is dropped.
   */
  answer(m: Message): Message[] {
    const before = this.sent.length;
    this.get(m.to).step(m);
    this.flush();
    const out = this.sent.slice(before).filter((x) => x.from === m.to);
    this.queue.length = 0;
    return out;
  }

  /** Delivers `m` as if it came over the network, and settles. */
  inject(m: Message): void {
    this.queue.push(m);
    this.settle();
  }

  /** Messages delivered so far that match. */
  deliveredWhere(type: MessageType, from?: NodeId, to?: NodeId): Message[] {
    return this.delivered.filter((m) => m.type === type && (from === undefined || m.from === from) && (to === undefined || m.to === to));
  }

  /** Messages handed out so far (delivered or not) that match. */
  sentWhere(type: MessageType, from?: NodeId, to?: NodeId): Message[] {
    return this.sent.filter((m) => m.type === type && (from === undefined || m.from === from) && (to === undefined || m.to === to));
  }

  /** The member that leads at the highest term, if any. */
  leader(): NodeId | null {
    let best: NodeId | null = null;
    for (const [id, m] of this.members) {
      if (m.raft.role === Role.Leader && (best === null || m.raft.term > this.get(best).term)) best = id;
    }
    return best;
  }

  /** Ticks every member until one of `among` leads (at most `ticksMax` ticks); returns it. */
  tickUntilLeader(among: NodeId[], ticksMax = 200): NodeId {
    for (let i = 0; i < ticksMax; i++) {
      const l = this.leader();
      if (l !== null && among.includes(l)) return l;
      this.tickAll();
    }
    throw new Error(`no leader among ${among.join(',')} after ${ticksMax} ticks`);
  }

  /** What leader `leaderId` knows `id` to have (its progress `match`). */
  matchOf(leaderId: NodeId, id: NodeId): number | undefined {
    return this.get(leaderId).progressOf(id)?.match;
  }

  /** (index, term) of every entry of `id`'s log from `from` on, as "index:term". */
  logTerms(id: NodeId, from = 1): string[] {
    const r = this.get(id);
    const out: string[] = [];
    for (let i = Math.max(from, r.firstIndex() - 1); i <= r.lastIndex(); i++) out.push(`${i}:${r.entryTerm(i)}`);
    return out;
  }

  tick(id: NodeId, n = 1): void {
    for (let i = 0; i < n; i++) this.get(id).tick();
    this.settle();
  }

  tickAll(n = 1): void {
    for (let i = 0; i < n; i++) {
      for (const [, m] of this.members) m.raft.tick();
      this.settle();
    }
  }

  /** Makes `id` campaign and settles; returns whether it won. */
  elect(id: NodeId): boolean {
    this.get(id).campaign();
    this.settle();
    return this.get(id).role === 3;
  }

  /** Application entries (non-empty, non-conf) applied by `id`, as strings. */
  appliedData(id: NodeId): string[] {
    return this.members.get(id)!.applied
      .filter((e) => e.type === EntryType.Normal && e.data.length > 0)
      .map((e) => new TextDecoder().decode(e.data));
  }

  propose(id: NodeId, text: string): ReturnType<RaftNode['propose']> {
    const r = this.get(id).propose(new TextEncoder().encode(text));
    this.settle();
    return r;
  }
}

export const text = (s: string): Uint8Array => new TextEncoder().encode(s);

/** A message with the given fields set over the blank one from `message()`. */
export function msg(type: MessageType, from: NodeId, to: NodeId, term: number, fields: Partial<Message> = {}): Message {
  return { ...message(type, from, to, term), ...fields };
}

/**
 * A 3-member group led by member 1. With lease reads, freshly started members stay out of
 * elections for a timeout (they may have been in a lease before a crash): that passes first,
 * with the network silent.
 */
export function ledByOne(overrides: Partial<RaftConfig> = {}): Cluster {
  const c = new Cluster([1, 2, 3], overrides);
  c.settle();
  if (overrides.leaseRead === true) {
    c.filter = () => false;
    c.tickAll(10);
    c.filter = () => true;
  }
  if (!c.elect(1)) throw new Error('member 1 did not win the first election');
  return c;
}

export const entry = (index: number, term: number, data = ''): Entry => ({ index, term, type: EntryType.Normal, data: text(data) });
