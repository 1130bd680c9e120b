// The KV command layout, written once: clients encode through it, the state machine decodes
// through it, and the benchmark driver writes it in place (docs/protocol.md). It imports
// nothing of the server: loading the client must not load the engine.
//
// Command layout (big-endian), first byte a tag:
//   put    1 | keyLen u16 | key | valueLen u32 | value
//   get    2 | keyLen u16 | key
//   delete 3 | keyLen u16 | key
//   cas    4 | keyLen u16 | key | hasExpect u8 | [expectLen u32 | expect] | valueLen u32 | value
//   batch  5 | count u16 | count × (one of the above, not a batch)
// Keys and values are UTF-8 strings. An empty command is the no-op a new leader appends.
//
// Encoding sizes a command exactly first (which is where bad input is refused), then writes
// it into one buffer: no growing, no copy, no intermediate buffer per string. The write*
// functions are the layout; they take a key or value as a string or as bytes already encoded,
// so a caller that reuses buffers (the benchmark driver) writes the same bytes in place.
import { KvReader } from './kv-reader.js';
import {
  batchOpsMax, KvError, keyBytesMax, KvTag, valueBytesMax, type KvCommand, type KvSingleCommand,
} from './kv-types.js';

/** A key or value as a caller holds it: text, or its UTF-8 bytes already encoded. */
export type KvText = string | Uint8Array;

// ---------------------------------------------------------------------------------------------
// Commands: sizing (and refusing)

const KEY_LEN_BYTES = 2;
const VALUE_LEN_BYTES = 4;
const BATCH_HEAD_BYTES = 1 + 2;

/** The encoded size of a put whose key and value take these many UTF-8 bytes. */
export function putBytes(keyBytes: number, valueBytes: number): number {
  return 1 + KEY_LEN_BYTES + keyBytes + VALUE_LEN_BYTES + valueBytes;
}

/** The encoded size of a get or delete whose key takes this many UTF-8 bytes. */
export function keyOpBytes(keyBytes: number): number {
  return 1 + KEY_LEN_BYTES + keyBytes;
}

/**
 * The exact encoded size of a command; throws KvError TOO_LARGE for a key, value or batch over
 * its bound, BAD_COMMAND for anything that is not a command.
 */
export function commandBytes(cmd: KvCommand): number {
  if (cmd.op !== 'batch') return singleBytes(cmd);
  if (!Array.isArray(cmd.ops)) throw new KvError('BAD_COMMAND', 'a batch holds an array of ops');
  if (cmd.ops.length > batchOpsMax) throw new KvError('TOO_LARGE', `batch of ${cmd.ops.length} ops exceeds ${batchOpsMax}`);
  let n = BATCH_HEAD_BYTES;
  for (const op of cmd.ops) {
    if ((op as KvCommand).op === 'batch') throw new KvError('BAD_COMMAND', 'batches do not nest');
    n += singleBytes(op);
  }
  return n;
}

function singleBytes(cmd: KvSingleCommand): number {
  switch (cmd.op) {
    case 'put':
      return putBytes(keyLength(cmd.key), valueLength(cmd.value));
    case 'get':
    case 'delete':
      return keyOpBytes(keyLength(cmd.key));
    case 'cas':
      return keyOpBytes(keyLength(cmd.key)) + 1 + (cmd.expect === null ? 0 : VALUE_LEN_BYTES + valueLength(cmd.expect)) + VALUE_LEN_BYTES + valueLength(cmd.value);
    default:
      throw new KvError('BAD_COMMAND', `unknown op ${String((cmd as { op: unknown }).op)}`);
  }
}

function keyLength(key: string): number {
  if (typeof key !== 'string') throw new KvError('BAD_COMMAND', 'a key is a string');
  const n = Buffer.byteLength(key, 'utf8');
  if (n > keyBytesMax) throw new KvError('TOO_LARGE', `key of ${n} bytes exceeds ${keyBytesMax}`);
  return n;
}

function valueLength(value: string): number {
  if (typeof value !== 'string') throw new KvError('BAD_COMMAND', 'a value is a string');
  const n = Buffer.byteLength(value, 'utf8');
  if (n > valueBytesMax) throw new KvError('TOO_LARGE', `value of ${n} bytes exceeds ${valueBytesMax}`);
  return n;
}

// ---------------------------------------------------------------------------------------------
// Commands: the layout

/** Encodes a command for a log entry; throws KvError (TOO_LARGE, BAD_COMMAND) on bad input. */
export function encodeCommand(cmd: KvCommand): Uint8Array {
  const n = commandBytes(cmd);
  const buf = Buffer.allocUnsafe(n);
  const end = writeCommand(buf, 0, cmd);
  if (end !== n) throw new Error(`KV command encoded in ${end} bytes, sized ${n}`);
  return buf;
}

/**
 * Writes a command at `at`, which must have commandBytes(cmd) bytes of room; returns the
 * offset after it.
 */
export function writeCommand(buf: Buffer, at: number, cmd: KvCommand): number {
  if (cmd.op !== 'batch') return writeSingle(buf, at, cmd);
  buf[at] = KvTag.Batch;
  buf.writeUInt16BE(cmd.ops.length, at + 1);
  at += BATCH_HEAD_BYTES;
  for (const op of cmd.ops) at = writeSingle(buf, at, op);
  return at;
}

function writeSingle(buf: Buffer, at: number, cmd: KvSingleCommand): number {
  switch (cmd.op) {
    case 'put':
      return writePut(buf, at, cmd.key, cmd.value);
    case 'get':
      return writeKeyOp(buf, at, KvTag.Get, cmd.key);
    case 'delete':
      return writeKeyOp(buf, at, KvTag.Delete, cmd.key);
    case 'cas':
      return writeCas(buf, at, cmd.key, cmd.expect, cmd.value);
  }
}

/** Writes a put at `at` (room: putBytes); returns the offset after it. */
export function writePut(buf: Buffer, at: number, key: KvText, value: KvText): number {
  buf[at] = KvTag.Put;
  return writeValueField(buf, writeKeyField(buf, at + 1, key), value);
}

/** Writes a get or delete at `at` (room: keyOpBytes); returns the offset after it. */
export function writeKeyOp(buf: Buffer, at: number, tag: typeof KvTag.Get | typeof KvTag.Delete, key: KvText): number {
  buf[at] = tag;
  return writeKeyField(buf, at + 1, key);
}

/** Writes a compare-and-set at `at`; returns the offset after it. */
export function writeCas(buf: Buffer, at: number, key: KvText, expect: KvText | null, value: KvText): number {
  buf[at] = KvTag.Cas;
  at = writeKeyField(buf, at + 1, key);
  if (expect === null) {
    buf[at++] = 0;
  } else {
    buf[at++] = 1;
    at = writeValueField(buf, at, expect);
  }
  return writeValueField(buf, at, value);
}

// The text goes in first and its length behind it, so a string is measured by writing it.
// The bound is checked again here for callers that size their own buffers.
function writeKeyField(buf: Buffer, at: number, key: KvText): number {
  const n = writeText(buf, at + KEY_LEN_BYTES, key);
  if (n > keyBytesMax) throw new KvError('TOO_LARGE', `key of ${n} bytes exceeds ${keyBytesMax}`);
  buf.writeUInt16BE(n, at);
  return at + KEY_LEN_BYTES + n;
}

function writeValueField(buf: Buffer, at: number, value: KvText): number {
  const n = writeText(buf, at + VALUE_LEN_BYTES, value);
  if (n > valueBytesMax) throw new KvError('TOO_LARGE', `value of ${n} bytes exceeds ${valueBytesMax}`);
  buf.writeUInt32BE(n, at);
  return at + VALUE_LEN_BYTES + n;
}

function writeText(buf: Buffer, at: number, text: KvText): number {
  if (typeof text === 'string') return buf.write(text, at, 'utf8');
  buf.set(text, at);
  return text.length;
}

// ---------------------------------------------------------------------------------------------
// Commands: decoding

/**
 * Why `data` is too large to propose (a key, value, cas expect or batch over its bound), or null.
 * Reads only the tags and length fields, so it costs a few byte reads per op however large the
 * values: the shard calls it on every write before proposing it, so that an oversize value is
 * refused TOO_LARGE at once rather than replicated and logged only to fail at apply. A command
 * that does not parse is not its business (null): it is proposed and answered BAD_COMMAND at
 * apply, as protocol.md says, so that every replica sees the same thing.
 */
export function commandSizeProblem(data: Uint8Array): string | null {
  const n = data.length;
  if (n === 0) return null;
  let p = 0;
  let count = 1;
  if (data[0] === KvTag.Batch) {
    if (n < BATCH_HEAD_BYTES) return null;
    count = (data[1]! << 8) | data[2]!;
    if (count > batchOpsMax) return `batch of ${count} ops exceeds ${batchOpsMax}`;
    p = BATCH_HEAD_BYTES;
  }
  // At most batchOpsMax passes, each moving p forward or returning.
  for (let i = 0; i < count; i++) {
    if (p + 1 + KEY_LEN_BYTES > n) return null;
    const tag = data[p]!;
    const keyLen = (data[p + 1]! << 8) | data[p + 2]!;
    if (keyLen > keyBytesMax) return `key of ${keyLen} bytes exceeds ${keyBytesMax}`;
    p += 1 + KEY_LEN_BYTES + keyLen;
    if (tag === KvTag.Get || tag === KvTag.Delete) continue;
    if (tag === KvTag.Cas) {
      if (p + 1 > n) return null;
      const has = data[p++]!;
      if (has === 1) {
        if (p + VALUE_LEN_BYTES > n) return null;
        const len = u32be(data, p);
        if (len > valueBytesMax) return `cas expect of ${len} bytes exceeds ${valueBytesMax}`;
        p += VALUE_LEN_BYTES + len;
      }
    } else if (tag !== KvTag.Put) {
      return null;
    }
    if (p + VALUE_LEN_BYTES > n) return null;
    const len = u32be(data, p);
    if (len > valueBytesMax) return `value of ${len} bytes exceeds ${valueBytesMax}`;
    p += VALUE_LEN_BYTES + len;
  }
  return null;
}

/**
 * The keys of a command, in place: writes each key's [start, end) into `spans` (two entries a
 * key; room for 2 × batchOpsMax) and returns how many keys, or -1 when `data` does not parse as
 * far as its keys (the state machine answers it BAD_COMMAND at apply). Reads tags and lengths
 * only, like commandSizeProblem: the node checks each key's slot with it (WRONG_GROUP).
 */
export function commandKeySpans(data: Uint8Array, spans: Int32Array): number {
  const n = data.length;
  if (n === 0) return -1;
  let p = 0;
  let count = 1;
  if (data[0] === KvTag.Batch) {
    if (n < BATCH_HEAD_BYTES) return -1;
    count = (data[1]! << 8) | data[2]!;
    if (count > batchOpsMax) return -1;
    p = BATCH_HEAD_BYTES;
  }
  for (let i = 0; i < count; i++) {
    if (p + 1 + KEY_LEN_BYTES > n) return -1;
    const tag = data[p]!;
    const keyLen = (data[p + 1]! << 8) | data[p + 2]!;
    const start = p + 1 + KEY_LEN_BYTES;
    p = start + keyLen;
    if (p > n) return -1;
    spans[2 * i] = start;
    spans[2 * i + 1] = p;
    if (tag === KvTag.Get || tag === KvTag.Delete) continue;
    if (tag === KvTag.Cas) {
      if (p + 1 > n) return -1;
      if (data[p++] === 1) {
        if (p + VALUE_LEN_BYTES > n) return -1;
        p += VALUE_LEN_BYTES + u32be(data, p);
      }
    } else if (tag !== KvTag.Put) {
      return -1;
    }
    if (p + VALUE_LEN_BYTES > n) return -1;
    p += VALUE_LEN_BYTES + u32be(data, p);
  }
  return count;
}

function u32be(b: Uint8Array, p: number): number {
  return ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
}

/** Decodes a command; throws KvError(BAD_COMMAND) when `data` is not exactly one command. */
export function decodeCommand(data: Uint8Array): KvCommand {
  const r = new KvReader(data, 'BAD_COMMAND');
  let cmd: KvCommand;
  if (r.peek() === KvTag.Batch) {
    r.u8();
    const n = r.u16();
    if (n > batchOpsMax) throw new KvError('BAD_COMMAND', `batch of ${n} ops exceeds ${batchOpsMax}`);
    const ops: KvSingleCommand[] = [];
    for (let i = 0; i < n; i++) ops.push(readSingle(r));
    cmd = { op: 'batch', ops };
  } else {
    cmd = readSingle(r);
  }
  if (!r.done()) throw new KvError('BAD_COMMAND', `${data.length - r.pos} trailing bytes after a command`);
  return cmd;
}

function readSingle(r: KvReader): KvSingleCommand {
  const tag = r.u8();
  switch (tag) {
    case KvTag.Put: {
      const key = r.key();
      return { op: 'put', key, value: r.value() };
    }
    case KvTag.Get:
      return { op: 'get', key: r.key() };
    case KvTag.Delete:
      return { op: 'delete', key: r.key() };
    case KvTag.Cas: {
      const key = r.key();
      const has = r.u8();
      if (has > 1) throw new KvError('BAD_COMMAND', `bad expect flag ${has}`);
      const expect = has === 1 ? r.value() : null;
      return { op: 'cas', key, expect, value: r.value() };
    }
    default:
      throw new KvError('BAD_COMMAND', `unknown command tag ${tag}`);
  }
}
