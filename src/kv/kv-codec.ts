// The KV service's bytes, written once: the command layout that clients send and the state
// machine decodes, and the msgpack result maps it answers with (docs/protocol.md). The client
// (src/client), the state machine (kv-state-machine.ts, kv-service.ts) and the benchmark driver
// (bench/flotilla-driver.ts) all encode through this file, so it imports nothing of the server:
// loading the client must not load the engine.
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
import { isUtf8 } from 'node:buffer';
import { pack, unpack } from 'msgpackr';

/** Longest key, in UTF-8 bytes. */
export const keyBytesMax = 1024;
/** Longest value, in UTF-8 bytes. */
export const valueBytesMax = 256 * 1024;
/** Most operations in one batch. */
export const batchOpsMax = 1024;

/**
 * Bytes held in a string, one character per byte (code points 0–255): how the state machine
 * keeps values' UTF-8 bytes. `Buffer.from(s, 'latin1')` gives the bytes back; it is not text.
 */
export type ByteString = string;

/** A byte string's bytes as UTF-8 text. */
export function byteStringText(b: ByteString): string {
  return Buffer.from(b, 'latin1').toString('utf8');
}

/** Text as a byte string of its UTF-8 bytes. */
export function textByteString(text: string): ByteString {
  return Buffer.from(text, 'utf8').toString('latin1');
}

/** The first byte of a command. */
export const KvTag = Object.freeze({ Put: 1, Get: 2, Delete: 3, Cas: 4, Batch: 5 } as const);

export type KvSingleCommand =
  | { op: 'put'; key: string; value: string }
  | { op: 'get'; key: string }
  | { op: 'delete'; key: string }
  /** Writes `value` iff the key's current value equals `expect` (null = the key is absent). */
  | { op: 'cas'; key: string; expect: string | null; value: string };

/**
 * A batch is applied atomically: either all of its writes take effect or none do. It fails
 * (and writes nothing) when one of its compare-and-sets does not match; reads and
 * compare-and-sets inside it see the batch's own earlier writes.
 */
export type KvCommand = KvSingleCommand | { op: 'batch'; ops: KvSingleCommand[] };

export type KvSingleResult =
  | { op: 'put' }
  | { op: 'get'; value: string | null }
  | { op: 'delete'; existed: boolean }
  /** `value` is the value the key held when the command ran (what a failed cas can retry with). */
  | { op: 'cas'; ok: boolean; value: string | null };

export type KvResult =
  | KvSingleResult
  | { op: 'batch'; ok: boolean; results: KvSingleResult[] }
  | { op: 'noop' }
  | { op: 'error'; code: KvErrorCode; message: string };

export type KvErrorCode = 'BAD_COMMAND' | 'TOO_LARGE' | 'BAD_SNAPSHOT';

/** Bad command (or snapshot) bytes, or a command too large to encode; `code` says which. */
export class KvError extends Error {
  constructor(readonly code: KvErrorCode, message: string) {
    super(message);
  }
}

/** Thrown by `decodeKvResult` for bytes that are not a KvResult. */
export class KvResultError extends Error {
  readonly code = 'BAD_RESULT';
}

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

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Reads the fields of the layout above, bounds checked; every problem is a KvError with the
 * reader's code (the state machine's snapshot image reads keys and values the same way).
 */
export class KvReader {
  pos = 0;
  private data: Uint8Array;
  /** A Buffer over the whole of data's ArrayBuffer (kept while commands come from the same one), and where data starts in it. */
  private view: Buffer;
  private base = 0;

  constructor(data: Uint8Array, private readonly code: KvErrorCode) {
    this.data = data;
    this.view = Buffer.from(data.buffer);
    this.base = data.byteOffset;
  }

  /** Reads `data` from its start (the state machine keeps one reader for every command). */
  reset(data: Uint8Array): void {
    this.data = data;
    if (data.buffer !== this.view.buffer) this.view = Buffer.from(data.buffer);
    this.base = data.byteOffset;
    this.pos = 0;
  }

  private need(n: number): void {
    if (this.pos + n > this.data.length) throw new KvError(this.code, `truncated at byte ${this.pos}`);
  }

  done(): boolean {
    return this.pos === this.data.length;
  }

  peek(): number {
    this.need(1);
    return this.data[this.pos]!;
  }

  u8(): number {
    this.need(1);
    return this.data[this.pos++]!;
  }

  u16(): number {
    this.need(2);
    const v = this.view.readUInt16BE(this.base + this.pos);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.view.readUInt32BE(this.base + this.pos);
    this.pos += 4;
    return v;
  }

  private str(n: number): string {
    this.need(n);
    const b = this.data.subarray(this.pos, this.pos + n);
    this.pos += n;
    try {
      return utf8Decoder.decode(b);
    } catch {
      throw new KvError(this.code, `invalid UTF-8 at byte ${this.pos - n}`);
    }
  }

  /** `n` bytes checked as UTF-8, in a byte string. */
  private byteString(n: number): ByteString {
    this.need(n);
    const at = this.pos;
    if (!isUtf8(this.data.subarray(at, at + n))) throw new KvError(this.code, `invalid UTF-8 at byte ${at}`);
    this.pos += n;
    return this.view.toString('latin1', this.base + at, this.base + at + n);
  }

  key(): string {
    const n = this.u16();
    if (n > keyBytesMax) throw new KvError(this.code, `key of ${n} bytes exceeds ${keyBytesMax}`);
    return this.str(n);
  }

  /** A key's UTF-8 bytes (checked as key() checks them) in a byte string: see valueByteString. */
  keyByteString(): ByteString {
    const n = this.u16();
    if (n > keyBytesMax) throw new KvError(this.code, `key of ${n} bytes exceeds ${keyBytesMax}`);
    return this.byteString(n);
  }

  value(): string {
    const n = this.u32();
    if (n > valueBytesMax) throw new KvError(this.code, `value of ${n} bytes exceeds ${valueBytesMax}`);
    return this.str(n);
  }

  /**
   * A value as its UTF-8 bytes (checked as value() checks them) in a byte string: the state
   * machine keeps values so, which costs one copy of the bytes into a string V8 allocates and
   * collects cheaply (no decode, no encode, no backing store of its own as a Uint8Array has),
   * and pins no larger buffer.
   */
  valueByteString(): ByteString {
    const n = this.u32();
    if (n > valueBytesMax) throw new KvError(this.code, `value of ${n} bytes exceeds ${valueBytesMax}`);
    return this.byteString(n);
  }
}

// ---------------------------------------------------------------------------------------------
// Results: msgpack maps, which any msgpack library can read, so clients in other languages
// need no custom result decoder.

// Results that carry no data are the same bytes every time; packing them once saves the
// encoder on the most common write. Each caller gets its own copy, so nobody can change
// what every later put returns. (Plain Uint8Arrays: Buffer's slice() is a view, Uint8Array's a copy.)
const PUT_RESULT = Uint8Array.from(pack({ op: 'put' } satisfies KvResult));
const NOOP_RESULT = Uint8Array.from(pack({ op: 'noop' } satisfies KvResult));

const DELETE_RESULTS = [false, true].map((existed) => Uint8Array.from(pack({ op: 'delete', existed } satisfies KvResult)));

/** The Result body of a put (a copy of the same bytes every time, as encodeKvResult gives). */
export function putResult(): Uint8Array {
  return PUT_RESULT.slice();
}

export function noopResult(): Uint8Array {
  return NOOP_RESULT.slice();
}

/** The Result body of a delete. */
export function deleteResult(existed: boolean): Uint8Array {
  return DELETE_RESULTS[existed ? 1 : 0]!.slice();
}

// The msgpack maps {op: 'get', value} and {op: 'cas', ok, value} written from a value's UTF-8
// bytes, without decoding them into a string for msgpackr to encode again.
// The map headers are map16, as msgpackr writes them, so the bytes are the ones it would write.
const GET_HEAD = Uint8Array.of(0xde, 0x00, 0x02, 0xa2, 0x6f, 0x70, 0xa3, 0x67, 0x65, 0x74, 0xa5, 0x76, 0x61, 0x6c, 0x75, 0x65); // {op:"get", value:
const CAS_HEAD = Uint8Array.of(0xde, 0x00, 0x03, 0xa2, 0x6f, 0x70, 0xa3, 0x63, 0x61, 0x73, 0xa2, 0x6f, 0x6b); // {op:"cas", ok:
const VALUE_KEY = Uint8Array.of(0xa5, 0x76, 0x61, 0x6c, 0x75, 0x65); // "value"

function strHeaderBytes(n: number): number {
  return n < 32 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
}

/** Writes a msgpack str of `value`'s bytes (or nil) at `at`; returns the end. */
function writeStr(out: Buffer, at: number, value: ByteString | null): number {
  if (value === null) {
    out[at] = 0xc0;
    return at + 1;
  }
  const n = value.length;
  if (n < 32) out[at++] = 0xa0 | n;
  else if (n < 0x100) {
    out[at++] = 0xd9;
    out[at++] = n;
  } else if (n < 0x10000) {
    out[at++] = 0xda;
    out[at++] = n >>> 8;
    out[at++] = n & 0xff;
  } else {
    out[at++] = 0xdb;
    out[at++] = n >>> 24;
    out[at++] = (n >>> 16) & 0xff;
    out[at++] = (n >>> 8) & 0xff;
    out[at++] = n & 0xff;
  }
  out.write(value, at, n, 'latin1');
  return at + n;
}

/** The Result body of a get, from the value's UTF-8 bytes as a byte string (null: absent). */
export function encodeGetResult(value: ByteString | null): Uint8Array {
  const n = value === null ? 1 : strHeaderBytes(value.length) + value.length;
  const out = Buffer.allocUnsafe(GET_HEAD.length + n);
  out.set(GET_HEAD, 0);
  writeStr(out, GET_HEAD.length, value);
  return out;
}

/** The Result body of a compare-and-set, from the value it found as a byte string (null: absent). */
export function encodeCasResult(ok: boolean, value: ByteString | null): Uint8Array {
  const n = value === null ? 1 : strHeaderBytes(value.length) + value.length;
  const out = Buffer.allocUnsafe(CAS_HEAD.length + 1 + VALUE_KEY.length + n);
  out.set(CAS_HEAD, 0);
  let at = CAS_HEAD.length;
  out[at++] = ok ? 0xc3 : 0xc2;
  out.set(VALUE_KEY, at);
  writeStr(out, at + VALUE_KEY.length, value);
  return out;
}

/** The Result body of a KV command. */
export function encodeKvResult(result: KvResult): Uint8Array {
  if (result.op === 'put') return PUT_RESULT.slice();
  if (result.op === 'noop') return NOOP_RESULT.slice();
  return pack(result) as Uint8Array;
}

const SINGLE_OPS = new Set(['put', 'get', 'delete', 'cas']);

/** Reads a Result body of the KV service; throws KvResultError when it is not a KvResult. */
export function decodeKvResult(bytes: Uint8Array): KvResult {
  let v: unknown;
  try {
    v = unpack(bytes);
  } catch (e) {
    throw new KvResultError(`result is not msgpack: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!isRecord(v)) throw new KvResultError('result is not a map');
  switch (v.op) {
    case 'batch': {
      if (typeof v.ok !== 'boolean' || !Array.isArray(v.results)) throw new KvResultError('malformed batch result');
      for (const r of v.results) checkSingle(r);
      return v as KvResult;
    }
    case 'noop':
      return { op: 'noop' };
    case 'error':
      if (typeof v.code !== 'string' || typeof v.message !== 'string') throw new KvResultError('malformed error result');
      return v as KvResult;
    default:
      checkSingle(v);
      return v as KvResult;
  }
}

function checkSingle(v: unknown): void {
  if (!isRecord(v) || typeof v.op !== 'string' || !SINGLE_OPS.has(v.op)) {
    throw new KvResultError(`unknown result op ${isRecord(v) ? String(v.op) : typeof v}`);
  }
  const ok =
    v.op === 'put' ||
    (v.op === 'get' && isNullableString(v.value)) ||
    (v.op === 'delete' && typeof v.existed === 'boolean') ||
    (v.op === 'cas' && typeof v.ok === 'boolean' && isNullableString(v.value));
  if (!ok) throw new KvResultError(`malformed ${v.op} result`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function isNullableString(v: unknown): boolean {
  return v === null || typeof v === 'string';
}
