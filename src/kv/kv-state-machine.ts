// The built-in key-value state machine: what a Raft group applies, one committed entry at a
// time. It is pure (no I/O, no clocks) and deterministic: the same commands in the same order
// give the same state and the same results on every replica, which is what makes replicated
// state out of a replicated log. Malformed commands are therefore not exceptions at apply
// time — a replica must not crash on what its peers accepted — but a deterministic error result.
//
// Command layout (big-endian), first byte a tag:
//   put    1 | keyLen u16 | key | valueLen u32 | value
//   get    2 | keyLen u16 | key
//   delete 3 | keyLen u16 | key
//   cas    4 | keyLen u16 | key | hasExpect u8 | [expectLen u32 | expect] | valueLen u32 | value
//   batch  5 | count u16 | count × (one of the above, not a batch)
// Keys and values are UTF-8 strings. An empty command is the no-op a new leader appends.
//
// Snapshot layout: magic u32 | count u32 | count × (keyLen u16 | key | valueLen u32 | value),
// keys in the map's order, which is the order they were first put since last deleted. That
// order is itself replicated state: replicas that applied the same log, or restored an image
// of it, hold their keys in the same order, so they give byte-equal images. (Sorting would
// make images canonical across different histories too, at a cost that dominated imaging.)
import { assert } from '../raft/assert.js';

/** Longest key, in UTF-8 bytes. */
export const keyBytesMax = 1024;
/** Longest value, in UTF-8 bytes. */
export const valueBytesMax = 256 * 1024;
/** Most operations in one batch. */
export const batchOpsMax = 1024;

const TAG_PUT = 1;
const TAG_GET = 2;
const TAG_DELETE = 3;
const TAG_CAS = 4;
const TAG_BATCH = 5;
const SNAPSHOT_MAGIC = 0x4b560001; // "KV", version 1

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

export class KvError extends Error {
  constructor(readonly code: KvErrorCode, message: string) {
    super(message);
  }
}

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

// ---------------------------------------------------------------------------------------------
// Encoding

/** Encodes a command for a log entry; throws KvError (TOO_LARGE, BAD_COMMAND) on bad input. */
export function encodeCommand(cmd: KvCommand): Uint8Array {
  const w = new Writer();
  if (cmd.op === 'batch') {
    if (cmd.ops.length > batchOpsMax) throw new KvError('TOO_LARGE', `batch of ${cmd.ops.length} ops exceeds ${batchOpsMax}`);
    w.u8(TAG_BATCH);
    w.u16(cmd.ops.length);
    for (const op of cmd.ops) {
      if ((op as KvCommand).op === 'batch') throw new KvError('BAD_COMMAND', 'batches do not nest');
      writeSingle(w, op);
    }
  } else {
    writeSingle(w, cmd);
  }
  return w.finish();
}

function writeSingle(w: Writer, cmd: KvSingleCommand): void {
  switch (cmd.op) {
    case 'put':
      w.u8(TAG_PUT);
      w.key(cmd.key);
      w.value(cmd.value);
      return;
    case 'get':
      w.u8(TAG_GET);
      w.key(cmd.key);
      return;
    case 'delete':
      w.u8(TAG_DELETE);
      w.key(cmd.key);
      return;
    case 'cas':
      w.u8(TAG_CAS);
      w.key(cmd.key);
      if (cmd.expect === null) {
        w.u8(0);
      } else {
        w.u8(1);
        w.value(cmd.expect);
      }
      w.value(cmd.value);
      return;
    default:
      throw new KvError('BAD_COMMAND', `unknown op ${String((cmd as { op: unknown }).op)}`);
  }
}

class Writer {
  private buf = new Uint8Array(64);
  private view = new DataView(this.buf.buffer);
  private len = 0;

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): void {
    this.room(1);
    this.buf[this.len++] = v;
  }

  u16(v: number): void {
    this.room(2);
    this.view.setUint16(this.len, v);
    this.len += 2;
  }

  u32(v: number): void {
    this.room(4);
    this.view.setUint32(this.len, v);
    this.len += 4;
  }

  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }

  key(s: string): void {
    const b = utf8Encoder.encode(s);
    if (b.length > keyBytesMax) throw new KvError('TOO_LARGE', `key of ${b.length} bytes exceeds ${keyBytesMax}`);
    this.u16(b.length);
    this.bytes(b);
  }

  value(s: string): void {
    const b = utf8Encoder.encode(s);
    if (b.length > valueBytesMax) throw new KvError('TOO_LARGE', `value of ${b.length} bytes exceeds ${valueBytesMax}`);
    this.u32(b.length);
    this.bytes(b);
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

// ---------------------------------------------------------------------------------------------
// Decoding

/** Decodes a command; throws KvError(BAD_COMMAND) when `data` is not exactly one command. */
export function decodeCommand(data: Uint8Array): KvCommand {
  const r = new Reader(data, 'BAD_COMMAND');
  let cmd: KvCommand;
  if (r.peek() === TAG_BATCH) {
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

function readSingle(r: Reader): KvSingleCommand {
  const tag = r.u8();
  switch (tag) {
    case TAG_PUT: {
      const key = r.key();
      return { op: 'put', key, value: r.value() };
    }
    case TAG_GET:
      return { op: 'get', key: r.key() };
    case TAG_DELETE:
      return { op: 'delete', key: r.key() };
    case TAG_CAS: {
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

class Reader {
  pos = 0;
  private readonly view: DataView;

  constructor(private readonly data: Uint8Array, private readonly code: KvErrorCode) {
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
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
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos);
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

  key(): string {
    const n = this.u16();
    if (n > keyBytesMax) throw new KvError(this.code, `key of ${n} bytes exceeds ${keyBytesMax}`);
    return this.str(n);
  }

  value(): string {
    const n = this.u32();
    if (n > valueBytesMax) throw new KvError(this.code, `value of ${n} bytes exceeds ${valueBytesMax}`);
    return this.str(n);
  }
}

// ---------------------------------------------------------------------------------------------
// The state machine

export class KvStateMachine {
  private readonly map = new Map<string, string>();

  /** Number of keys present. */
  get size(): number {
    return this.map.size;
  }

  get(key: string): string | null {
    return this.map.get(key) ?? null;
  }

  /** Applies one committed entry's payload. Never throws on bad input: see the file header. */
  apply(data: Uint8Array): KvResult {
    if (data.length === 0) return { op: 'noop' };
    let cmd: KvCommand;
    try {
      cmd = decodeCommand(data);
    } catch (e) {
      if (e instanceof KvError) return { op: 'error', code: e.code, message: e.message };
      throw e;
    }
    return this.applyCommand(cmd);
  }

  applyCommand(cmd: KvCommand): KvResult {
    if (cmd.op !== 'batch') return this.applySingle(cmd, this.map);
    // Run the batch against an overlay (undefined in the overlay = deleted), then commit it
    // only if every compare-and-set matched.
    const overlay = new Map<string, string | undefined>();
    const view = {
      get: (k: string): string | undefined => (overlay.has(k) ? overlay.get(k) : this.map.get(k)),
      set: (k: string, v: string): void => void overlay.set(k, v),
      delete: (k: string): void => void overlay.set(k, undefined),
    };
    const results: KvSingleResult[] = [];
    let ok = true;
    for (const op of cmd.ops) {
      const res = this.applySingle(op, view);
      if (res.op === 'cas' && !res.ok) ok = false;
      results.push(res);
    }
    if (ok) {
      for (const [k, v] of overlay) {
        if (v === undefined) this.map.delete(k);
        else this.map.set(k, v);
      }
    }
    return { op: 'batch', ok, results };
  }

  private applySingle(cmd: KvSingleCommand, m: MapLike): KvSingleResult {
    switch (cmd.op) {
      case 'put':
        m.set(cmd.key, cmd.value);
        return { op: 'put' };
      case 'get':
        return { op: 'get', value: m.get(cmd.key) ?? null };
      case 'delete': {
        const existed = m.get(cmd.key) !== undefined;
        if (existed) m.delete(cmd.key);
        return { op: 'delete', existed };
      }
      case 'cas': {
        const cur = m.get(cmd.key) ?? null;
        const ok = cur === cmd.expect;
        if (ok) m.set(cmd.key, cmd.value);
        return { op: 'cas', ok, value: cur };
      }
    }
  }

  /** An image of the whole state; replicas with the same history give equal bytes (see the layout above). */
  serialize(): Uint8Array {
    // Sized exactly up front and written in place: the image of a large state is made in one
    // pass, without growing, copying or a buffer per string. An ASCII string (UTF-8 length =
    // string length) is written as Latin-1: the same bytes by a much faster path.
    const n = this.map.size;
    const lengths = new Uint32Array(2 * n);
    let bytes = 8;
    let i = 0;
    for (const [k, v] of this.map) {
      const kn = Buffer.byteLength(k, 'utf8');
      const vn = Buffer.byteLength(v, 'utf8');
      lengths[i++] = kn;
      lengths[i++] = vn;
      bytes += 6 + kn + vn;
    }
    const buf = Buffer.allocUnsafeSlow(bytes);
    buf.writeUInt32BE(SNAPSHOT_MAGIC, 0);
    buf.writeUInt32BE(n, 4);
    let at = 8;
    i = 0;
    for (const [k, v] of this.map) {
      // Every key and value got here through a decoded command, so they are within bounds.
      const kn = lengths[i++]!;
      const vn = lengths[i++]!;
      buf.writeUInt16BE(kn, at);
      buf.write(k, at + 2, kn, kn === k.length ? 'latin1' : 'utf8');
      at += 2 + kn;
      buf.writeUInt32BE(vn, at);
      buf.write(v, at + 4, vn, vn === v.length ? 'latin1' : 'utf8');
      at += 4 + vn;
    }
    assert(at === bytes, `snapshot image of ${at} bytes, sized ${bytes}`);
    return new Uint8Array(buf.buffer, 0, bytes);
  }

  /** Rebuilds a state machine from `serialize()` output; empty bytes give an empty one. */
  static restore(data: Uint8Array): KvStateMachine {
    const kv = new KvStateMachine();
    if (data.length === 0) return kv;
    const r = new Reader(data, 'BAD_SNAPSHOT');
    const magic = r.u32();
    if (magic !== SNAPSHOT_MAGIC) throw new KvError('BAD_SNAPSHOT', `bad snapshot magic 0x${magic.toString(16)}`);
    const n = r.u32();
    for (let i = 0; i < n; i++) {
      const k = r.key();
      kv.map.set(k, r.value());
      if (kv.map.size !== i + 1) throw new KvError('BAD_SNAPSHOT', `snapshot holds key ${JSON.stringify(k)} twice`);
    }
    if (!r.done()) throw new KvError('BAD_SNAPSHOT', 'trailing bytes after a snapshot');
    return kv;
  }
}

interface MapLike {
  get(k: string): string | undefined;
  set(k: string, v: string): void;
  delete(k: string): void;
}
