// Several client commands of one group in one Raft entry (EntryType.Batch): the writes a shard
// reads for a group in one turn are proposed together, so the log, the messages, the WAL and the
// apply loop pay their per-entry cost once for all of them. Each command is still applied on its
// own, in order, and answered on its own; they commit or are lost together, as one entry.
//
// Layout: count u32 | count × (bytes u32 | command), little-endian; count ≥ 2 (a single write is
// proposed as a Normal entry of just its command, as before batching existed).
import { payloadBytes } from '../protocol/payload-slab.js';
import { assert } from '../util/assert.js';

/** Most commands in one entry: bounds the work of applying one entry, and the waiters kept per index. */
export const COMMANDS_PER_ENTRY_MAX = 256;

const COUNT_BYTES = 4;
const LENGTH_BYTES = 4;

/** Bytes of a batch of `count` commands holding `commandBytes` in all. */
export function batchBytes(count: number, commandBytes: number): number {
  return COUNT_BYTES + count * LENGTH_BYTES + commandBytes;
}

/** The batch entry of `commands` (commandBytes in all), in payload memory (a shared slab when small, as decoded entries are). */
export function encodeBatch(commands: readonly Uint8Array[], commandBytes: number): Uint8Array {
  const out = payloadBytes(batchBytes(commands.length, commandBytes));
  writeU32(out, 0, commands.length);
  let at = COUNT_BYTES;
  for (const c of commands) {
    writeU32(out, at, c.length);
    out.set(c, at + LENGTH_BYTES);
    at += LENGTH_BYTES + c.length;
  }
  return out;
}

function writeU32(b: Uint8Array, at: number, v: number): void {
  b[at] = v & 0xff;
  b[at + 1] = (v >>> 8) & 0xff;
  b[at + 2] = (v >>> 16) & 0xff;
  b[at + 3] = v >>> 24;
}

/**
 * Calls `visit` with each command of a batch entry, in order (views into `data`). The entry was
 * laid out by encodeBatch on a leader and replicated as it is: one that does not parse is a bug
 * or damage that every replica would meet alike, and stops the shard.
 */
export function forEachCommand(data: Uint8Array, visit: (command: Uint8Array, i: number) => void): number {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  assert(data.length >= COUNT_BYTES, 'batch entry shorter than its count');
  const n = dv.getUint32(0, true);
  let at = COUNT_BYTES;
  for (let i = 0; i < n; i++) {
    assert(at + LENGTH_BYTES <= data.length, `batch entry truncated at command ${i} of ${n}`);
    const len = dv.getUint32(at, true);
    at += LENGTH_BYTES;
    assert(at + len <= data.length, `batch entry truncated in command ${i} of ${n}`);
    visit(data.subarray(at, at + len), i);
    at += len;
  }
  assert(at === data.length, `${data.length - at} bytes after the commands of a batch entry`);
  return n;
}
