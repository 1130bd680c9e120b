// The built-in key-value state machine: what a Raft group applies, one committed entry at a
// time. It is pure (no I/O, no clocks) and deterministic: the same commands in the same order
// give the same state and the same results on every replica, which is what makes replicated
// state out of a replicated log. Malformed commands are therefore not exceptions at apply
// time — a replica must not crash on what its peers accepted — but a deterministic error result.
//
// The command layout (kv-command.ts), the result maps (kv-result.ts) and the types
// (kv-types.ts) are shared with the client.
//
// Snapshot layout: magic u32 | count u32 | count × (keyLen u16 | key | valueLen u32 | value),
// keys in the map's order, which is the order they were first put since last deleted. That
// order is itself replicated state: replicas that applied the same log, or restored an image
// of it, hold their keys in the same order, so they give byte-equal images. (Sorting would
// make images canonical across different histories too, at a cost that dominated imaging.)
import { assert } from '../util/assert.js';
import { decodeCommand } from './kv-command.js';
import { KvReader } from './kv-reader.js';
import {
  decodeKvResult,
  deleteResult,
  encodeCasResult,
  encodeGetResult,
  encodeKvResult,
  noopResult,
  putResult,
} from './kv-result.js';
import {
  KvError,
  KvTag,
  byteStringText,
  textByteString,
  type ByteString,
  type KvCommand,
  type KvResult,
  type KvSingleCommand,
  type KvSingleResult,
} from './kv-types.js';

// Older callers import the codec's names from here; the layout itself lives in kv-command.ts.
export { encodeCommand } from './kv-command.js';
export { type KvCommand, type KvResult } from './kv-types.js';

const SNAPSHOT_MAGIC = 0x4b560001; // "KV", version 1


/**
 * Reads every single command of every state machine of this thread (applySingleBytes, which is
 * synchronous and not reentrant): one reader, and one Buffer view of the buffer commands come
 * from, instead of two objects per command. It keeps only the last command's buffer alive.
 */
const commandReader = new KvReader(new Uint8Array(0), 'BAD_COMMAND');

// ---------------------------------------------------------------------------------------------
// The state machine

/**
 * Keys are strings (the map's keys); values are kept as their UTF-8 bytes, as they arrive in
 * commands and leave in results and images, held in byte strings (kv-types.ts ByteString): a
 * put costs one copy of its value, not a decode into text and an encode back; and a string,
 * not a Uint8Array, because V8 allocates and frees a small string in its young generation for
 * a fraction of what a typed array with a backing store of its own costs (1.6 µs → 0.14 µs per
 * put of 256 bytes into 100,000 keys, bench/kv-values.ts).
 */
export class KvStateMachine {
  /** Key bytes → value bytes, both as byte strings. */
  private readonly map = new Map<ByteString, ByteString>();

  /** Number of keys present. */
  get size(): number {
    return this.map.size;
  }

  get(key: string): string | null {
    const v = this.map.get(textByteString(key));
    return v === undefined ? null : byteStringText(v);
  }

  /** A value's UTF-8 bytes as a byte string, or null. */
  getByteString(key: string): ByteString | null {
    return this.map.get(textByteString(key)) ?? null;
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
    const key = r.keyByteString();
    checkDone(r, data);
    return encodeGetResult(this.map.get(key) ?? null);
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
    r.reset(data);
    const tag = r.u8();
    switch (tag) {
      case KvTag.Put: {
        const key = r.keyByteString();
        const value = r.valueByteString();
        checkDone(r, data);
        this.map.set(key, value);
        return putResult();
      }
      case KvTag.Get: {
        const key = r.keyByteString();
        checkDone(r, data);
        return encodeGetResult(this.map.get(key) ?? null);
      }
      case KvTag.Delete: {
        const key = r.keyByteString();
        checkDone(r, data);
        return deleteResult(this.map.delete(key));
      }
      case KvTag.Cas: {
        const key = r.keyByteString();
        const has = r.u8();
        if (has > 1) throw new KvError('BAD_COMMAND', `bad expect flag ${has}`);
        const expect = has === 1 ? r.valueByteString() : null;
        const value = r.valueByteString();
        checkDone(r, data);
        const cur = this.map.get(key) ?? null;
        const ok = cur === expect;
        if (ok) this.map.set(key, value);
        return encodeCasResult(ok, cur);
      }
      default:
        throw new KvError('BAD_COMMAND', `unknown command tag ${tag}`);
    }
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
        if (v === undefined) this.map.delete(textByteString(k));
        else this.map.set(textByteString(k), textByteString(v));
      }
    }
    return { op: 'batch', ok, results };
  }

  /** The map as strings, for the batch path. */
  private stringView(): MapLike {
    return {
      get: (k) => {
        const v = this.map.get(textByteString(k));
        return v === undefined ? undefined : byteStringText(v);
      },
      set: (k, v) => void this.map.set(textByteString(k), textByteString(v)),
      delete: (k) => void this.map.delete(textByteString(k)),
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
   * The image of the state as it is now, made in steps: the keys and values present are
   * noted at once (references only; a value is an immutable string, so later puts cannot
   * change what was noted), then sized and written a step at a time, while commands go on
   * being applied to the map.
   */
  serializeInSteps(): KvImage {
    return new KvImage(this.map);
  }
  /** Rebuilds a state machine from `serialize()` output; empty bytes give an empty one. */
  static restore(data: Uint8Array): KvStateMachine {
    const kv = new KvStateMachine();
    if (data.length === 0) return kv;
    const r = new KvReader(data, 'BAD_SNAPSHOT');
    const magic = r.u32();
    if (magic !== SNAPSHOT_MAGIC) throw new KvError('BAD_SNAPSHOT', `bad snapshot magic 0x${magic.toString(16)}`);
    const n = r.u32();
    for (let i = 0; i < n; i++) {
      const k = r.keyByteString();
      kv.map.set(k, r.valueByteString());
      if (kv.map.size !== i + 1) throw new KvError('BAD_SNAPSHOT', `snapshot holds key ${JSON.stringify(byteStringText(k))} twice`);
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

/**
 * An image being written (KvStateMachine.serializeInSteps): sized exactly first and then
 * written in place, so that the image of a large state is made without growing, copying or a
 * buffer per string. Keys and values are bytes already (byte strings).
 */
export class KvImage {
  private readonly keys: ByteString[];
  private readonly values: ByteString[];
  /** Entries sized, then entries written. */
  private next = 0;
  private sized = false;
  private bytes = 8;
  private buf: Buffer | null = null;
  private at = 8;

  constructor(map: Map<ByteString, ByteString>) {
    const n = map.size;
    this.keys = new Array<ByteString>(n);
    this.values = new Array<ByteString>(n);
    let i = 0;
    for (const [k, v] of map) {
      this.keys[i] = k;
      this.values[i++] = v;
    }
  }

  /** About `budget` bytes of image sized or written; the image once it is complete. */
  step(budget: number): Uint8Array | null {
    const n = this.keys.length;
    let done = 0;
    if (!this.sized) {
      for (; this.next < n && done < budget; this.next++) {
        const entry = 6 + this.keys[this.next]!.length + this.values[this.next]!.length;
        this.bytes += entry;
        // Sizing reads no value bytes: it counts for an eighth of what it covers.
        done += entry >>> 3;
      }
      if (this.next < n) return null;
      this.sized = true;
      this.next = 0;
      this.buf = Buffer.allocUnsafeSlow(this.bytes);
      this.buf.writeUInt32BE(SNAPSHOT_MAGIC, 0);
      this.buf.writeUInt32BE(n, 4);
      if (done >= budget && n > 0) return null;
    }
    const buf = this.buf!;
    let at = this.at;
    for (; this.next < n && done < budget; this.next++) {
      // Every key and value got here through a decoded command, so they are within bounds.
      const k = this.keys[this.next]!;
      const v = this.values[this.next]!;
      const kn = k.length;
      buf.writeUInt16BE(kn, at);
      buf.write(k, at + 2, kn, 'latin1');
      at += 2 + kn;
      buf.writeUInt32BE(v.length, at);
      buf.write(v, at + 4, v.length, 'latin1');
      at += 4 + v.length;
      done += 6 + kn + v.length;
    }
    this.at = at;
    if (this.next < n) return null;
    assert(at === this.bytes, `snapshot image of ${at} bytes, sized ${this.bytes}`);
    return new Uint8Array(buf.buffer, 0, this.bytes);
  }
}
