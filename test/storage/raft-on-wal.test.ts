// The Raft core on the real write-ahead log: three members of many groups, each member's
// groups sharing one Wal, Readys persisted with pipelined group commit; then every log is
// closed and reopened and the members are rebuilt from disk alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { RaftNode } from '../../src/raft/raft.js';
import { configDefaults, EntryType, Role, type Message, type RaftConfig, type Ready } from '../../src/raft/types.js';
import { ChangeType, encodeConfChange } from '../../src/raft/conf-change.js';
import { Wal } from '../../src/storage/wal.js';

const GROUPS = 20;
const MEMBERS = [1, 2, 3];

interface Node { id: number; wal: Wal; rafts: Map<number, RaftNode>; applied: Map<number, number> }

function seeded(seed: number): () => number {
  let s = seed;
  return () => { s = (s * 1103515245 + 12345) & 0x7fffffff; return s / 0x80000000; };
}

function boot(id: number, dir: string, fresh: boolean): Node {
  const wal = Wal.open({ dir, segmentBytes: 64 << 10 });
  const rafts = new Map<number, RaftNode>();
  const applied = new Map<number, number>();
  for (let g = 1; g <= GROUPS; g++) {
    const s = wal.group(g);
    if (fresh) {
      // Bootstrap: the founding configuration as committed entry 1 (see memory-storage.ts).
      const data = encodeConfChange({ leave: false, changes: MEMBERS.map((node) => ({ type: ChangeType.AddVoter, node })) });
      void wal.append([{ group: g, entries: [{ index: 1, term: 1, type: EntryType.ConfChange, data }], hardState: { term: 1, vote: 0, commit: 1 } }]);
    }
    const cfg = { ...configDefaults, id, random: seeded(id * 1000 + g), applied: s.snapshot().meta.index } as RaftConfig;
    rafts.set(g, new RaftNode(cfg, s, s.hardState));
    applied.set(g, 0);
  }
  return { id, wal, rafts, applied };
}

/** Runs turns until `done` (checked every 10 turns) or `turns` have passed: fsyncs take real time. */
async function run(nodes: Node[], turns: number, propose: (turn: number) => void, done: () => boolean = () => false): Promise<void> {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  let inbox: { group: number; m: Message }[] = [];
  const inflight: Promise<void>[] = [];
  for (let turn = 0; turn < turns; turn++) {
    if (turn % 10 === 0 && done()) break;
    propose(turn);
    const deliver = inbox;
    inbox = [];
    for (const { group, m } of deliver) byId.get(m.to)!.rafts.get(group)!.step(m);
    for (const n of nodes) {
      const writes = [];
      const readies: [number, Ready][] = [];
      for (const [g, r] of n.rafts) {
        if (turn % 3 === 0) r.tick();
        if (!r.hasReady()) continue;
        const rd = r.ready();
        for (const m of rd.messages) inbox.push({ group: g, m });
        writes.push({ group: g, snapshot: rd.snapshot?.meta ?? null, entries: rd.entries, hardState: rd.hardState });
        readies.push([g, rd]);
        if (rd.committedEntries.length > 0) n.applied.set(g, rd.committedEntries[rd.committedEntries.length - 1]!.index);
      }
      if (writes.length === 0) continue;
      // One append per member per turn, not awaited: the next turn gathers while this syncs.
      inflight.push(n.wal.append(writes).then(() => {
        for (const [g, rd] of readies) {
          n.rafts.get(g)!.persisted(rd);
          for (const m of rd.messagesAfterPersist) inbox.push({ group: g, m });
        }
      }));
    }
    // Let finished fsyncs report (their messagesAfterPersist join the inbox).
    await new Promise((r) => setImmediate(r));
  }
  await Promise.all(inflight);
}

test('many groups of the Raft core replicate over the shared log and recover from it', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'flotilla-raft-wal-'));
  let nodes = MEMBERS.map((id) => boot(id, path.join(root, `n${id}`), true));
  const enc = new TextEncoder();
  let proposed = 0;
  const leaderCount = (): number => nodes.reduce((k, n) => k + [...n.rafts.values()].filter((r) => r.role === Role.Leader).length, 0);
  await run(nodes, 5000, (turn) => {
    if (turn < 60) return;
    for (const n of nodes) {
      for (const r of n.rafts.values()) {
        if (r.role === Role.Leader && r.propose(enc.encode(`v${turn}`)).ok) proposed++;
      }
    }
  }, () => proposed > GROUPS * 60 && leaderCount() === GROUPS);
  assert.ok(proposed > GROUPS * 50, `only ${proposed} proposals accepted`);
  const leaders = nodes.flatMap((n) => [...n.rafts.values()].filter((r) => r.role === Role.Leader));
  assert.equal(leaders.length, GROUPS, 'every group has a leader');
  const lastOf = (n: Node, g: number): [number, number] => [n.wal.group(g).lastIndex(), n.wal.group(g).hardState.commit];
  const before = nodes.map((n) => Array.from({ length: GROUPS }, (_, i) => lastOf(n, i + 1)));
  for (const n of nodes) await n.wal.close();

  nodes = MEMBERS.map((id) => boot(id, path.join(root, `n${id}`), false));
  const after = nodes.map((n) => Array.from({ length: GROUPS }, (_, i) => lastOf(n, i + 1)));
  assert.deepEqual(after, before, 'every group recovers its last index and commit');
  for (let g = 1; g <= GROUPS; g++) {
    const logs = nodes.map((n) => {
      const s = n.wal.group(g);
      return s.entries(s.firstIndex(), s.hardState.commit + 1, Infinity).map((e) => `${e.index}/${e.term}/${e.data.length}`);
    });
    const shortest = Math.min(...logs.map((l) => l.length));
    for (const l of logs) assert.deepEqual(l.slice(0, shortest), logs[0]!.slice(0, shortest), `group ${g}: committed prefixes match`);
  }
  // The rebuilt members elect again and keep committing.
  const committedAgain = (): boolean => Array.from({ length: GROUPS }, (_, i) => i + 1)
    .every((g) => Math.max(...nodes.map((n) => n.rafts.get(g)!.commit)) > before[0]![g - 1]![1]);
  await run(nodes, 5000, (turn) => {
    if (turn < 80) return;
    for (const n of nodes) for (const r of n.rafts.values()) if (r.role === Role.Leader) r.propose(enc.encode(`w${turn}`));
  }, committedAgain);
  for (let g = 1; g <= GROUPS; g++) {
    const commit = Math.max(...nodes.map((n) => n.rafts.get(g)!.commit));
    assert.ok(commit > before[0]![g - 1]![1], `group ${g} committed after the restart`);
  }
  for (const n of nodes) await n.wal.close();
  fs.rmSync(root, { recursive: true, force: true });
});
