// The built-in key-value state machine: what a Raft group applies, one committed entry at a
// time. It is pure (no I/O, no clocks) and deterministic: the same commands in the same order
// give the same state and the same results on every replica, which is what makes replicated
// state out of a replicated log. Malformed commands are therefore not exceptions at apply
// time — a replica must not crash on what its peers accepted — but a deterministic error result.
//
// The command layout (kv-command.ts), the result maps (kv-result.ts) and the types
// (kv-types.ts) are shared with the client.
//
// Snapshot layout: magic u32 | count u32 | count × (keyLen u16 | key | valueLen u32 | value)
// [| the slot marks of migration: format 2 only, slot-marks.ts writeRuns], keys in the map's
// order, which is the order they were first put since last deleted. That order is itself
// replicated state: replicas that applied the same log, or restored an image of it, hold their
// keys in the same order, so they give byte-equal images. (Sorting would make images canonical
// across different histories too, at a cost that dominated imaging.)
import { assert } from '../util/assert.js';
import { decodeCommand } from './kv-command.js';
import { KvReader } from './kv-reader.js';
import {
  decodeKvResult,
  deleteResult,
  encodeCasResultBytes,
  encodeGetResultBytes,
  encodeKvResult,
  noopResult,
  putResult,
} from './kv-result.js';
import { KV_RECORD_HEADER_BYTES, KvStore, recordKeyLength, recordValueLength } from './kv-store.js';
import { INTERNAL_TAG_MIN } from './kv-migration-command.js';
import { applyInternal, markedRefusal, queryInternal } from './kv-migration.js';
import { marksOfRuns, readRuns, SlotMarks, writeRuns } from './slot-marks.js';
import {
  KvError,
  KvTag,
  type KvCommand,
  type KvResult,
  type KvSingleCommand,
  type KvSingleResult,
} from './kv-types.js';

// Older callers import the codec's names from here; the layout itself lives in kv-command.ts.
export { encodeCommand } from './kv-command.js';
export { type KvCommand, type KvResult } from './kv-types.js';

const SNAPSHOT_MAGIC = 0x4b560001; // "KV", version 1
/** An image with slot marks (issue 15, migration) after the keys; a group without marks writes version 1. */
const SNAPSHOT_MAGIC_MARKS = 0x4b560002;


/**
 * Reads every single command of every state machine of this thread (applySingleBytes, which is
 * synchronous and not reentrant): one reader, and one Buffer view of the buffer commands come
 * from, instead of two objects per command. It keeps only the last command's buffer alive.
 */
const commandReader = new KvReader(new Uint8Array(0), 'BAD_COMMAND');

// ---------------------------------------------------------------------------------------------
// The state machine

/**
 * Keys and values are kept as their UTF-8 bytes, as they arrive in commands and leave in results
 * and images, in a byte-keyed map whose records live outside the collected heap (kv-store.ts):
 * a put copies its key and value once and allocates nothing.
 */
export class KvStateMachine {
  private readonly store = new KvStore();
  /** The slot marks of migration (slot-marks.ts); null until the group's first migration. */
  private marks: SlotMarks | null = null;
  /** Some slot is fenced or moved: client commands are checked against the marks. */
  private refusing = false;

  /** Number of keys present. */
  get size(): number {
    return this.store.size;
  }

  /** The value of a key, as text, or null. */
  get(key: string): string | null {
    const k = Buffer.from(key, 'utf8');
    const id = this.store.find(k, 0, k.length);
    if (id === -1) return null;
    const at = this.store.valueAt(id);
    return bytesView(this.store.chunkOf(id)).toString('utf8', at, at + this.store.valueLength(id));
  }

  /** The Result body of a get of `key` (text). */
  getResult(key: string): Uint8Array {
    const k = Buffer.from(key, 'utf8');
    return this.getResultAt(k, 0, k.length);
  }

  /** The Result body of a get of the key b[at, at + n). */
  private getResultAt(b: Uint8Array, at: number, n: number): Uint8Array {
    const st = this.store;
    const id = st.find(b, at, n);
    if (id === -1) return encodeGetResultBytes(null, 0, 0);
    return encodeGetResultBytes(st.chunkOf(id), st.valueAt(id), st.valueLength(id));
  }

  /**
   * The Result body of a single get command, read straight from its bytes (no decode into a
   * command object, no text key), or null when `data` is not a single get. Throws KvError
   * (BAD_COMMAND) when it is a malformed one.
   */
  queryGetEncoded(data: Uint8Array): Uint8Array | null {
    if (data.length === 0 || data[0] !== KvTag.Get) return null;
    const r = commandReader;
    r.reset(data);
    r.u8();
    const kn = r.keySpan();
    const kAt = r.pos - kn;
    checkDone(r, data);
    return this.getResultAt(data, kAt, kn);
  }

  /** Applies one committed entry's payload; see applyEncoded. */
  apply(data: Uint8Array): KvResult {
    return decodeKvResult(this.applyEncoded(data));
  }

  /**
   * Applies one committed entry's payload and returns its Result body (kv-result.ts). Never
   * throws on bad input: see the file header.
   */
  applyEncoded(data: Uint8Array): Uint8Array {
    if (data.length === 0) return noopResult();
    // The one test a command pays for migration while its group has no slot marked.
    if (this.refusing) {
      const refused = markedRefusal(this.marks!, data);
      if (refused !== null) return refused;
    }
    try {
      if (data[0] === KvTag.Batch) return encodeKvResult(this.applyCommand(decodeCommand(data)));
      return this.applySingleBytes(data);
    } catch (e) {
      if (e instanceof KvError) return encodeKvResult({ op: 'error', code: e.code, message: e.message });
      throw e;
    }
  }

  /** One command straight from its bytes: read and checked whole before anything changes. */
  private applySingleBytes(data: Uint8Array): Uint8Array {
    const r = commandReader;
    const st = this.store;
    r.reset(data);
    const tag = r.u8();
    switch (tag) {
      case KvTag.Put: {
        const kn = r.keySpan();
        const kAt = r.pos - kn;
        const vn = r.valueSpan();
        checkDone(r, data);
        st.put(data, kAt, kn, data, r.pos - vn, vn);
        return putResult();
      }
      case KvTag.Get: {
        const kn = r.keySpan();
        checkDone(r, data);
        return this.getResultAt(data, r.pos - kn, kn);
      }
      case KvTag.Delete: {
        const kn = r.keySpan();
        checkDone(r, data);
        return deleteResult(st.delete(data, r.pos - kn, kn));
      }
      case KvTag.Cas: {
        const kn = r.keySpan();
        const kAt = r.pos - kn;
        const has = r.u8();
        if (has > 1) throw new KvError('BAD_COMMAND', `bad expect flag ${has}`);
        const en = has === 1 ? r.valueSpan() : -1;
        const eAt = r.pos - en;
        const vn = r.valueSpan();
        const vAt = r.pos - vn;
        checkDone(r, data);
        const id = st.find(data, kAt, kn);
        const ok = id === -1 ? en === -1 : en !== -1 && st.valueEquals(id, data, eAt, en);
        // The result carries the value found, so it is written before the put may change it.
        const result = id === -1
          ? encodeCasResultBytes(ok, null, 0, 0)
          : encodeCasResultBytes(ok, st.chunkOf(id), st.valueAt(id), st.valueLength(id));
        if (ok) st.put(data, kAt, kn, data, vAt, vn);
        return result;
      }
      default:
        if (tag >= INTERNAL_TAG_MIN) return this.applyInternal(data);
        throw new KvError('BAD_COMMAND', `unknown command tag ${tag}`);
    }
  }

  /** A migration's internal command (kv-migration.ts); only the node proposes them. */
  private applyInternal(data: Uint8Array): Uint8Array {
    const out = applyInternal(this.store, this.marks, data);
    this.marks = out.marks;
    this.refusing = this.marks !== null && this.marks.count > 0;
    return out.result;
  }

  /** The result refusing a client command on a key of a marked slot (MIGRATING, WRONG_GROUP), or null. */
  refusal(data: Uint8Array): Uint8Array | null {
    return this.refusing ? markedRefusal(this.marks!, data) : null;
  }

  /** Answers a migration's internal query (export, marks); throws on a malformed one. */
  queryInternal(data: Uint8Array): Uint8Array {
    return queryInternal(this.store, this.marks, data);
  }

/** A batch (the rare path): decoded into strings, run against an overlay, committed whole or not at all. */
  applyCommand(cmd: KvCommand): KvResult {
    if (cmd.op !== 'batch') return this.applySingle(cmd, this.stringView());
    // Run the batch against an overlay (undefined in the overlay = deleted), then commit it
    // only if every compare-and-set matched.
    const overlay = new Map<string, string | undefined>();
    const base = this.stringView();
    const view: MapLike = {
      get: (k) => (overlay.has(k) ? overlay.get(k) : base.get(k)),
      set: (k, v) => void overlay.set(k, v),
      delete: (k) => void overlay.set(k, undefined),
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
        const kb = Buffer.from(k, 'utf8');
        if (v === undefined) this.store.delete(kb, 0, kb.length);
        else {
          const vb = Buffer.from(v, 'utf8');
          this.store.put(kb, 0, kb.length, vb, 0, vb.length);
        }
      }
    }
    return { op: 'batch', ok, results };
  }

  /** The map as strings, for the batch path. */
  private stringView(): MapLike {
    return {
      get: (k) => this.get(k) ?? undefined,
      set: (k, v) => {
        const kb = Buffer.from(k, 'utf8');
        const vb = Buffer.from(v, 'utf8');
        this.store.put(kb, 0, kb.length, vb, 0, vb.length);
      },
      delete: (k) => {
        const kb = Buffer.from(k, 'utf8');
        this.store.delete(kb, 0, kb.length);
      },
    };
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
    const image = this.serializeInSteps();
    return image.step(Infinity)!;
  }

  /**
   * The image of the state as it is now, made in steps: the records present are noted at once
   * (where they are; the store changes no record while an image is being made, see
   * kv-store.ts), then sized and written a step at a time, while commands go on being applied.
   */
  serializeInSteps(): KvImage {
    let trailer: Uint8Array | null = null;
    if (this.marks !== null) {
      const runs = this.marks.runs();
      trailer = Buffer.alloc(SlotMarks.runsBytes(runs));
      writeRuns(trailer as Buffer, 0, runs);
    }
    return new KvImage(this.store, trailer);
  }
  /** Rebuilds a state machine from `serialize()` output; empty bytes give an empty one. */
  static restore(data: Uint8Array): KvStateMachine {
    const kv = new KvStateMachine();
    if (data.length === 0) return kv;
    const r = new KvReader(data, 'BAD_SNAPSHOT');
    const magic = r.u32();
    if (magic !== SNAPSHOT_MAGIC && magic !== SNAPSHOT_MAGIC_MARKS) throw new KvError('BAD_SNAPSHOT', `bad snapshot magic 0x${magic.toString(16)}`);
    const n = r.u32();
    for (let i = 0; i < n; i++) {
      const kn = r.keySpan();
      const kAt = r.pos - kn;
      const vn = r.valueSpan();
      kv.store.put(data, kAt, kn, data, r.pos - vn, vn);
      if (kv.store.size !== i + 1) {
        throw new KvError('BAD_SNAPSHOT', `snapshot holds key ${JSON.stringify(Buffer.from(data.buffer, data.byteOffset + kAt, kn).toString('utf8'))} twice`);
      }
    }
    if (magic === SNAPSHOT_MAGIC_MARKS) {
      let end: number;
      try {
        const got = readRuns(data, r.pos, 'snapshot');
        kv.marks = marksOfRuns(got.runs);
        kv.refusing = kv.marks !== null && kv.marks.count > 0;
        end = got.end;
      } catch (e) {
        throw new KvError('BAD_SNAPSHOT', e instanceof Error ? e.message : String(e));
      }
      if (end !== data.length) throw new KvError('BAD_SNAPSHOT', 'trailing bytes after a snapshot');
      return kv;
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

function checkDone(r: KvReader, data: Uint8Array): void {
  if (!r.done()) throw new KvError('BAD_COMMAND', `${data.length - r.pos} trailing bytes after a command`);
}

/** A Buffer over a whole chunk (cached: a store has a few chunks, images and gets use them often). */
const chunkViews = new WeakMap<Uint8Array, Buffer>();
function bytesView(c: Uint8Array): Buffer {
  let b = chunkViews.get(c);
  if (b === undefined) {
    b = Buffer.from(c.buffer, c.byteOffset, c.length);
    chunkViews.set(c, b);
  }
  return b;
}

/**
 * An image being written (KvStateMachine.serializeInSteps), a step at a time, into a buffer
 * sized at once: an image entry (u16 key length | key | u32 value length | value) has the size
 * of the store's record (kv-arena.ts), so the image is 8 bytes and the live records' bytes. The
 * records it reads stay unchanged until it ends (KvStore.beginImage).
 */
export class KvImage {
  private readonly refs: Int32Array;
  /** Entries written. */
  private next = 0;
  private ended = false;
  private readonly bytes: number;
  private readonly buf: Buffer;
  private at = 8;

  /** trailer: the slot marks' bytes (format 2), or null (format 1: no marks). */
  constructor(private readonly store: KvStore, private readonly trailer: Uint8Array | null = null) {
    this.bytes = 8 + store.liveBytes + (trailer === null ? 0 : trailer.length);
    this.refs = store.beginImage();
    this.buf = Buffer.allocUnsafeSlow(this.bytes);
    this.buf.writeUInt32BE(trailer === null ? SNAPSHOT_MAGIC : SNAPSHOT_MAGIC_MARKS, 0);
    this.buf.writeUInt32BE(this.refs.length >>> 1, 4);
  }

  /** About `budget` bytes of image written; the image once it is complete. */
  step(budget: number): Uint8Array | null {
    if (this.ended) throw new Error('KvImage.step after the image was complete');
    const refs = this.refs;
    const n = refs.length >>> 1;
    const st = this.store;
    const buf = this.buf;
    let done = 0;
    let at = this.at;
    // Buffer#copy from a view of the record's chunk (records come chunk by chunk, mostly): no
    // view made per record.
    let chunk = -1;
    let c: Uint8Array = buf;
    let src: Buffer = buf;
    for (; this.next < n && done < budget; this.next++) {
      if (refs[this.next * 2] !== chunk) {
        chunk = refs[this.next * 2]!;
        c = st.chunk(chunk);
        src = bytesView(c);
      }
      const off = refs[this.next * 2 + 1]!;
      const kn = recordKeyLength(c, off);
      const vn = recordValueLength(c, off);
      const kAt = off + KV_RECORD_HEADER_BYTES;
      buf.writeUInt16BE(kn, at);
      src.copy(buf, at + 2, kAt, kAt + kn);
      at += 2 + kn;
      buf.writeUInt32BE(vn, at);
      src.copy(buf, at + 4, kAt + kn, kAt + kn + vn);
      at += 4 + vn;
      done += 6 + kn + vn;
    }
    this.at = at;
    if (this.next < n) return null;
    if (this.trailer !== null) {
      buf.set(this.trailer, at);
      at += this.trailer.length;
    }
    assert(at === this.bytes, `snapshot image of ${at} bytes, sized ${this.bytes}`);
    this.ended = true;
    st.endImage();
    return new Uint8Array(buf.buffer, 0, this.bytes);
  }
}
