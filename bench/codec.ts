// Throughput of the peer codecs alone, one thread: App messages with 1 and 64 entries of 100 B,
// and heartbeat batches of 1,000 groups, each encoded into a reused buffer and decoded again.
// Encode, decode and the round trip (encode then decode) are timed separately; items/s is the
// round trip's entries (App) or groups (heartbeats) per second, MB/s its encoded bytes.
//
//   npx tsc -p . && node dist/bench/codec.js [--seconds S] [--json FILE]
import { writeFileSync } from 'node:fs';
import { parseOrExit, type CommandSpec } from '../src/cli/args.js';
import { EntryType, MessageType, message, type Message } from '../src/raft/types.js';
import {
  decodeHeartbeats,
  decodeRaftMessage,
  encodeHeartbeats,
  encodeRaftMessage,
  heartbeatsBytes,
  raftMessageBytes,
  type GroupMessage,
} from '../src/protocol/raft-codec.js';
import { PayloadBuilder, SUB_HEADER_BYTES } from '../src/protocol/peer-wire.js';

const { options: values } = parseOrExit({
  name: 'node dist/bench/codec.js',
  summary: 'Encode and decode rates of the wire codecs.',
  options: {
    seconds: { type: 'string', value: 'S', help: 'seconds per cell (default 1)' },
    json: { type: 'string', value: 'FILE', help: 'write the rows as JSON' },
  },
} as const satisfies CommandSpec, process.argv.slice(2));
const secondsPerCell = Number(values.seconds ?? '1');
if (!(secondsPerCell > 0)) throw new Error('--seconds must be a positive number');

interface Case {
  name: string;
  /** Messages per op: entries for App, groups for heartbeats. */
  itemsPerOp: number;
  bytesPerOp: number;
  encode: () => void;
  decode: () => void;
}

/** Keeps decoded results observable so that nothing is optimised away. */
let sink = 0;

function appCase(entries: number): Case {
  const m = message(MessageType.App, 1, 2, 1_000_000_007);
  m.index = 5_000_000_000;
  m.logTerm = 1_000_000_007;
  m.commit = 5_000_000_000;
  for (let i = 0; i < entries; i++) {
    const data = new Uint8Array(100);
    for (let k = 0; k < data.length; k++) data[k] = (i * 31 + k) & 0xff;
    m.entries.push({ term: m.term, index: m.index + 1 + i, type: EntryType.Normal, data });
  }
  const bytes = raftMessageBytes(m);
  const buf = new Uint8Array(bytes);
  encodeRaftMessage(m, buf, 0);
  return {
    name: `App, ${entries} × 100 B`,
    itemsPerOp: entries,
    bytesPerOp: bytes,
    encode: () => {
      sink += encodeRaftMessage(m, buf, 0);
    },
    decode: () => {
      sink += decodeRaftMessage(buf, 0, bytes).entries.length;
    },
  };
}

function heartbeatList(groups: number, type: MessageType): GroupMessage[] {
  const list: GroupMessage[] = [];
  for (let g = 0; g < groups; g++) {
    const m = message(type, 1, 2, 1_000 + g);
    if (type === MessageType.Heartbeat) m.commit = 5_000_000_000 + g;
    m.context = 77_000 + g;
    list.push({ group: g * 8 + 3, m });
  }
  return list;
}

function heartbeatCase(groups: number): Case {
  const list = heartbeatList(groups, MessageType.Heartbeat);
  const bytes = heartbeatsBytes(groups);
  const buf = new Uint8Array(bytes);
  encodeHeartbeats(list, buf, 0);
  const own = (g: number): boolean => (g & 1) === 1;
  const visit = (g: number, m: Message): void => {
    sink += m.commit - g;
  };
  return {
    name: `Heartbeats, ${groups} groups`,
    itemsPerOp: groups,
    bytesPerOp: bytes,
    encode: () => {
      sink += encodeHeartbeats(list, buf, 0);
    },
    decode: () => {
      decodeHeartbeats(buf, 0, bytes, own, visit);
    },
  };
}

/** What a shard does per destination per turn: append each heartbeat, take the payload as a view. */
function builderCase(groups: number): Case {
  const list = heartbeatList(groups, MessageType.Heartbeat);
  const pb = new PayloadBuilder();
  const bytes = SUB_HEADER_BYTES + heartbeatsBytes(groups);
  let payload: Uint8Array = new Uint8Array(0);
  const build = (): void => {
    for (let i = 0; i < list.length; i++) pb.appendHeartbeat(list[i]!.group, list[i]!.m);
    payload = pb.finishView()!;
  };
  build();
  const copy = payload.slice();
  const visit = (g: number, m: Message): void => {
    sink += m.commit - g;
  };
  return {
    name: `PayloadBuilder, ${groups} heartbeats`,
    itemsPerOp: groups,
    bytesPerOp: bytes,
    encode: build,
    decode: () => {
      decodeHeartbeats(copy, SUB_HEADER_BYTES, copy.length, () => true, visit);
    },
  };
}

/** Ops per second of f over about `seconds`, after a short warm-up. */
function opsPerSec(f: () => void, seconds: number): number {
  const warmUntil = performance.now() + Math.min(200, seconds * 200);
  while (performance.now() < warmUntil) for (let i = 0; i < 16; i++) f();
  let ops = 0;
  let batch = 1;
  const t0 = performance.now();
  const until = t0 + seconds * 1000;
  let now = t0;
  // Batches grow until one takes ~1 ms, so the clock is read rarely.
  while (now < until) {
    for (let i = 0; i < batch; i++) f();
    ops += batch;
    const t = performance.now();
    if (t - now < 1 && batch < 1 << 20) batch *= 2;
    now = t;
  }
  return ops / ((now - t0) / 1000);
}

interface Row {
  case: string;
  bytesPerOp: number;
  encodeOpsPerSec: number;
  decodeOpsPerSec: number;
  roundTripOpsPerSec: number;
  roundTripMsgsPerSec: number;
  roundTripMBPerSec: number;
}

const cases = [appCase(1), appCase(64), heartbeatCase(1000), builderCase(1000)];
const rows: Row[] = [];
console.log(`Peer codecs, one thread, ${secondsPerCell}s a cell (Node ${process.version})`);
const head = ['case', 'bytes/op', 'encode ops/s', 'decode ops/s', 'round trip ops/s', 'items/s', 'MB/s'];
const widths = [32, 9, 13, 13, 17, 12, 8];
const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' ');
console.log(line(head));
for (const c of cases) {
  const enc = opsPerSec(c.encode, secondsPerCell);
  const dec = opsPerSec(c.decode, secondsPerCell);
  const rt = opsPerSec(() => {
    c.encode();
    c.decode();
  }, secondsPerCell);
  const row: Row = {
    case: c.name,
    bytesPerOp: c.bytesPerOp,
    encodeOpsPerSec: Math.round(enc),
    decodeOpsPerSec: Math.round(dec),
    roundTripOpsPerSec: Math.round(rt),
    roundTripMsgsPerSec: Math.round(rt * c.itemsPerOp),
    roundTripMBPerSec: Number(((rt * c.bytesPerOp) / 1e6).toFixed(1)),
  };
  rows.push(row);
  console.log(line([
    row.case, String(row.bytesPerOp), row.encodeOpsPerSec.toLocaleString('en-US'), row.decodeOpsPerSec.toLocaleString('en-US'),
    row.roundTripOpsPerSec.toLocaleString('en-US'), row.roundTripMsgsPerSec.toLocaleString('en-US'), String(row.roundTripMBPerSec),
  ]));
}
if (sink === 0.5) console.log('(unreachable: keeps results alive)');
if (values.json !== undefined) writeFileSync(values.json, JSON.stringify(rows, null, 2));
