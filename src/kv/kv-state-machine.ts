// The built-in key-value state machine: what a Raft group applies, one committed entry at a
// time. It is pure (no I/O, no clocks) and deterministic: the same commands in the same order
// give the same state and the same results on every replica, which is what makes replicated
// state out of a replicated log. Malformed commands are therefore not exceptions at apply
// time — a replica must not crash on what its peers accepted — but a deterministic error result.
//
// The command layout and the result types are kv-codec.ts's, shared with the client.
//
// Snapshot layout: magic u32 | count u32 | count × (keyLen u16 | key | valueLen u32 | value),
// keys in the map's order, which is the order they were first put since last deleted. That
// order is itself replicated state: replicas that applied the same log, or restored an image
// of it, hold their keys in the same order, so they give byte-equal images. (Sorting would
// make images canonical across different histories too, at a cost that dominated imaging.)
import { assert } from '../util/assert.js';
import {
  KvError,
  KvReader,
  KvTag,
  decodeCommand,
  decodeKvResult,
  deleteResult,
  encodeCasResult,
  encodeGetResult,
  encodeKvResult,
  noopResult,
  putResult,
  type KvCommand,
  type KvResult,
  type KvSingleCommand,
  type KvSingleResult,
} from './kv-codec.js';

// Older callers import the codec's names from here; the layout itself lives in kv-codec.ts.
export { encodeCommand, type KvCommand, type KvResult } from './kv-codec.js';

const SNAPSHOT_MAGIC = 0x4b560001; // "KV", version 1

const utf8 = new TextDecoder();
const utf8Encoder = new TextEncoder();

// ---------------------------------------------------------------------------------------------
// The state machine

/**
 * Keys are strings (the map's keys); values are kept as their UTF-8 bytes, as they arrive in
 * commands and leave in results and images: a put costs a copy of its value, not a decode into
 * a string and an encode back, and the map holds byte arrays the GC does not scan.
 */
export class KvStateMachine {
  private readonly map = new Map<string, Uint8Array>();

  /** Number of keys present. */
  get size(): number {
    return this.map.size;
  }

  get(key: string): string | null {
    const v = this.map.get(key);
    return v === undefined ? null : utf8.decode(v);
  }

  /** A value's UTF-8 bytes (do not change them), or null. */
  getBytes(key: string): Uint8Array | null {
    return this.map.get(key) ?? null;
  }

  /** Applies one committed entry's payload; see applyEncoded. */
  apply(data: Uint8Array): KvResult {
    return decodeKvResult(this.applyEncoded(data));
  }

  /**
   * Applies one committed entry's payload and returns its Result body (kv-codec.ts). Never
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
    const r = new KvReader(data, 'BAD_COMMAND');
    const tag = r.u8();
    switch (tag) {
      case KvTag.Put: {
        const key = r.key();
        const value = r.valueBytes();
        checkDone(r, data);
        this.map.set(key, value);
        return putResult();
      }
      case KvTag.Get: {
        const key = r.key();
        checkDone(r, data);
        return encodeGetResult(this.map.get(key) ?? null);
      }
      case KvTag.Delete: {
        const key = r.key();
        checkDone(r, data);
        return deleteResult(this.map.delete(key));
      }
      case KvTag.Cas: {
        const key = r.key();
        const has = r.u8();
        if (has > 1) throw new KvError('BAD_COMMAND', `bad expect flag ${has}`);
        const expect = has === 1 ? r.valueBytes() : null;
        const value = r.valueBytes();
        checkDone(r, data);
        const cur = this.map.get(key) ?? null;
        const ok = cur === null ? expect === null : expect !== null && bytesEqual(cur, expect);
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
        if (v === undefined) this.map.delete(k);
        else this.map.set(k, utf8Encoder.encode(v));
      }
    }
    return { op: 'batch', ok, results };
  }

  /** The map as strings, for the batch path. */
  private stringView(): MapLike {
    return {
      get: (k) => {
        const v = this.map.get(k);
        return v === undefined ? undefined : utf8.decode(v);
      },
      set: (k, v) => void this.map.set(k, utf8Encoder.encode(v)),
      delete: (k) => void this.map.delete(k),
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
    // Sized exactly up front and written in place: the image of a large state is made in one
    // pass, without growing, copying or a buffer per string. An ASCII key (UTF-8 length =
    // string length) is written as Latin-1: the same bytes by a much faster path; values are
    // bytes already.
    const n = this.map.size;
    const keyLengths = new Uint32Array(n);
    let bytes = 8;
    let i = 0;
    for (const [k, v] of this.map) {
      const kn = Buffer.byteLength(k, 'utf8');
      keyLengths[i++] = kn;
      bytes += 6 + kn + v.length;
    }
    const buf = Buffer.allocUnsafeSlow(bytes);
    buf.writeUInt32BE(SNAPSHOT_MAGIC, 0);
    buf.writeUInt32BE(n, 4);
    let at = 8;
    i = 0;
    for (const [k, v] of this.map) {
      // Every key and value got here through a decoded command, so they are within bounds.
      const kn = keyLengths[i++]!;
      buf.writeUInt16BE(kn, at);
      buf.write(k, at + 2, kn, kn === k.length ? 'latin1' : 'utf8');
      at += 2 + kn;
      buf.writeUInt32BE(v.length, at);
      buf.set(v, at + 4);
      at += 4 + v.length;
    }
    assert(at === bytes, `snapshot image of ${at} bytes, sized ${bytes}`);
    return new Uint8Array(buf.buffer, 0, bytes);
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
      const k = r.key();
      kv.map.set(k, r.valueBytes());
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

function checkDone(r: KvReader, data: Uint8Array): void {
  if (!r.done()) throw new KvError('BAD_COMMAND', `${data.length - r.pos} trailing bytes after a command`);
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
