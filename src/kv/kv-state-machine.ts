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
import { assert } from '../raft/assert.js';
import {
  KvError,
  KvReader,
  decodeCommand,
  type KvCommand,
  type KvResult,
  type KvSingleCommand,
  type KvSingleResult,
} from './kv-codec.js';

// Older callers import the codec's names from here; the layout itself lives in kv-codec.ts.
export { encodeCommand, type KvCommand, type KvResult } from './kv-codec.js';

const SNAPSHOT_MAGIC = 0x4b560001; // "KV", version 1

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
    const r = new KvReader(data, 'BAD_SNAPSHOT');
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
