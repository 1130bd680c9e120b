// Throughput of the Raft core alone: a 3-member group in one thread, no I/O. Every Ready is
// "persisted" at once into MemoryStorage, and messages are handed straight to their target.
// This is the ceiling the rest of the engine works under.
//
//   npm run bench:raft -- [--seconds S] [--value-bytes N] [--json FILE]
import { writeFileSync } from 'node:fs';
import { parseOrExit, type CommandSpec } from '../src/cli/args.js';
import { RaftNode } from '../src/raft/raft.js';
import { bootstrap, MemoryStorage } from '../src/raft/memory-storage.js';
import { configDefaults, Role, type Message, type RaftConfig } from '../src/raft/types.js';

const { options: values } = parseOrExit({
  name: 'node dist/bench/raft-core.js',
  summary: 'Throughput of the Raft core alone: 3 members in one thread, no I/O, by proposal batch.',
  options: {
    seconds: { type: 'string', value: 'S', help: 'seconds per cell (default 2)' },
    'value-bytes': { type: 'string', value: 'N', help: 'bytes of each entry (default 256)' },
    json: { type: 'string', value: 'FILE', help: 'write the rows as JSON' },
  },
} as const satisfies CommandSpec, process.argv.slice(2));
const secondsPerCell = Number(values.seconds ?? '2');
const valueBytes = Number(values['value-bytes'] ?? '256');
if (!(secondsPerCell > 0) || !(valueBytes >= 0)) throw new Error('--seconds and --value-bytes must be positive numbers');

interface Row { batch: number; entriesPerSec: number; readyPerSec: number; msgsPerEntry: number }

function run(batch: number): Row {
  const ids = [1, 2, 3];
  let seed = 12345;
  const random = (): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed / 0x80000000; };
  const members = ids.map((id) => {
    const storage = new MemoryStorage();
    bootstrap(storage, ids);
    const raft = new RaftNode({ ...configDefaults, id, random, applied: 0 } as RaftConfig, storage, storage.hardState);
    return { raft, storage, applied: 0 };
  });
  const byId = new Map(members.map((m) => [m.raft.id, m]));
  const queue: Message[] = [];
  let readies = 0;
  let messages = 0;
  const drain = (): void => {
    for (;;) {
      let busy = false;
      for (const m of members) {
        if (!m.raft.hasReady()) continue;
        busy = true;
        const rd = m.raft.ready();
        readies++;
        for (const x of rd.messages) queue.push(x);
        m.storage.append(rd.entries);
        if (rd.hardState !== null) m.storage.hardState = rd.hardState;
        m.raft.persisted(rd);
        for (const x of rd.messagesAfterPersist) queue.push(x);
        if (rd.committedEntries.length > 0) m.applied = rd.committedEntries[rd.committedEntries.length - 1]!.index;
      }
      if (queue.length === 0 && !busy) return;
      for (let i = 0; i < queue.length; i++) { messages++; byId.get(queue[i]!.to)!.raft.step(queue[i]!); }
      queue.length = 0;
    }
  };
  drain(); // applies the bootstrap configuration
  members[0]!.raft.campaign();
  drain();
  const leader = members[0]!;
  if (leader.raft.role !== Role.Leader) throw new Error('member 1 did not become leader');
  const payload = new Uint8Array(valueBytes);
  const startApplied = leader.applied;
  const startReadies = readies;
  const startMessages = messages;
  const t0 = performance.now();
  let turns = 0;
  while (performance.now() - t0 < secondsPerCell * 1000) {
    for (let i = 0; i < batch; i++) {
      const r = leader.raft.propose(payload);
      if (!r.ok) throw new Error(`proposal refused: ${r.code}`);
    }
    drain();
    // Keep memory flat: every member snapshots and compacts behind what it applied.
    if (++turns % 64 === 0) {
      for (const m of members) {
        m.storage.createSnapshot(m.applied, m.raft.confState(), new Uint8Array(0));
        m.storage.compact(m.applied);
      }
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  const entries = leader.applied - startApplied;
  return {
    batch,
    entriesPerSec: Math.round(entries / seconds),
    readyPerSec: Math.round((readies - startReadies) / seconds),
    msgsPerEntry: Number(((messages - startMessages) / Math.max(1, entries)).toFixed(3)),
  };
}

const rows: Row[] = [];
console.log(`Raft core alone: 3 members, one thread, no I/O, ${valueBytes}-byte entries, ${secondsPerCell}s a cell (Node ${process.version})`);
console.log('batch  entries/s     readies/s  msgs/entry');
for (const batch of [1, 10, 100, 1000]) {
  const r = run(batch);
  rows.push(r);
  console.log(`${String(batch).padStart(5)}  ${String(r.entriesPerSec).padStart(10)}  ${String(r.readyPerSec).padStart(12)}  ${String(r.msgsPerEntry).padStart(10)}`);
}
if (values.json !== undefined) writeFileSync(values.json, JSON.stringify(rows, null, 2));
