// A scripted, synchronous network of RaftNodes for scenario tests: every Ready is made durable
// at once, messages are delivered in FIFO order, and links can be cut. Deterministic.
import { RaftNode } from '../../src/raft/raft.js';
import { bootstrap, MemoryStorage } from '../../src/raft/memory-storage.js';
import { configDefaults, EntryType, type Entry, type Message, type NodeId, type RaftConfig, type ReadState } from '../../src/raft/types.js';

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

  constructor(ids: NodeId[], readonly overrides: Partial<RaftConfig> = {}, voters: NodeId[] = ids) {
    for (const id of ids) this.add(id, voters.includes(id) ? voters : null);
  }

  add(id: NodeId, bootstrapVoters: NodeId[] | null, storage = new MemoryStorage()): Member {
    if (bootstrapVoters !== null && storage.lastIndex() === 0) bootstrap(storage, bootstrapVoters);
    const raft = new RaftNode(
      { ...configDefaults, id, random: seeded(id * 7919), applied: storage.snapshot().meta.index, ...this.overrides } as RaftConfig,
      storage, storage.hardState,
    );
    const m: Member = { raft, storage, applied: [], reads: [], readsAborted: [] };
    this.members.set(id, m);
    return m;
  }

  /** Restarts `id` from its storage, losing everything in memory. */
  restart(id: NodeId): Member {
    const old = this.members.get(id)!;
    return this.add(id, null, old.storage);
  }

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

  /** Drains every member's Ready, persisting at once. */
  flush(): void {
    for (const [, m] of this.members) {
      while (m.raft.hasReady()) {
        const rd = m.raft.ready();
        for (const msg of rd.messages) this.queue.push(msg);
        if (rd.snapshot !== null) m.storage.applySnapshot(rd.snapshot);
        m.storage.append(rd.entries);
        if (rd.hardState !== null) m.storage.hardState = rd.hardState;
        m.raft.persisted(rd);
        for (const msg of rd.messagesAfterPersist) this.queue.push(msg);
        for (const e of rd.committedEntries) m.applied.push(e);
        for (const r of rd.readStates) m.reads.push(r);
        for (const r of rd.readsAborted) m.readsAborted.push(r);
      }
    }
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
      this.delivered.push(msg);
      to.raft.step(msg);
      this.flush();
    }
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
