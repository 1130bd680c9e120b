// Where a KV store's records live (kv-store.ts): a few large ArrayBuffers ("chunks"), each
// record (value length u32 | key length u16 | key | value) in a slot of its size class, freed
// slots reused by class. While images are being made, freed slots are held back (a record an
// image still has to read must not be overwritten) until the last image ends.
//
// The arena knows records by (chunk, offset) only; which entry a record belongs to, and the
// entries' order, are the store's index. Compaction, which rewrites every live record in the
// index's order, is therefore the store's: the arena only says when it is due and hands over
// its old chunks.

/** Arena chunks: the first of a store is small (idle groups are many), later ones double to this. */
const CHUNK_BYTES_MAX = 1 << 20;
const CHUNK_BYTES_MIN = 4 << 10;
/** Record header: value length u32 | key length u16 (little-endian, this process's own layout). */
export const RECORD_HEADER_BYTES = 6;

/**
 * A record's location in one int32: chunk × 65,536 + offset / 16 (slots start at multiples of
 * 16, chunks hold at most 1 MiB). The store keeps it in its hash table beside the key's hash, so
 * that finding a key reads the table and the record, and nothing else.
 */
export function locChunk(loc: number): number {
  return loc >>> 16;
}

export function locOff(loc: number): number {
  return (loc & 0xffff) << 4;
}

/** Chunks an arena may hold: what a location can name (32 GiB of records). */
export const ARENA_CHUNKS_MAX = 1 << 15;

/**
 * The size class of a record of n bytes: multiples of 16 up to 256, then eight classes per power
 * of two (a record wastes at most a ninth of its slot: 274 bytes, a 256-byte value under a
 * short key, take 288).
 */
export function classOf(n: number): number {
  if (n <= 256) return n <= 16 ? 0 : ((n + 15) >>> 4) - 1;
  const k = 31 - Math.clz32(n - 1);
  return 16 + (k - 8) * 8 + (((n - 1) >>> (k - 3)) - 8);
}

/** The bytes of a slot of class c. */
export function classBytes(c: number): number {
  if (c < 16) return (c + 1) << 4;
  const k = 8 + ((c - 16) >>> 3);
  return (((c - 16) & 7) + 9) << (k - 3);
}

export class KvArena {
  /** The chunks; a record never spans two. */
  chunks: Uint8Array[] = [];
  /** Where the last `write` put its record (a location: locChunk, locOff). */
  placedLoc = 0;
  /** Bytes of live records (their own size, not their slots'), exactly: header, key and value of each. */
  recordBytes = 0;
  /** Times the store compacted the arena (tests and the docs' bounds). */
  compactions = 0;
  /** Images being made; while any is, records are not changed or reused. */
  images = 0;
  private bump = 0;
  /** Free record offsets by size class: chunk and offset in turn. */
  private free: number[][] = [];
  private freeBytes = 0;
  private readonly deferred: number[] = [];

  /** compactWasteBytesMin: see compactionDue. */
  constructor(private readonly compactWasteBytesMin: number) {}

  /** Bytes of chunks held. */
  get bytes(): number {
    let n = 0;
    for (const c of this.chunks) n += c.length;
    return n;
  }

  /**
   * Writes a record (key k[kAt, kAt + n), value v[vAt, vAt + vn)) into a free slot of class
   * `cls` (classOf its bytes), at placedChunk / placedOff.
   */
  write(cls: number, k: Uint8Array, kAt: number, n: number, v: Uint8Array, vAt: number, vn: number): void {
    const list = this.free[cls];
    let chunk: number;
    let off: number;
    if (list !== undefined && list.length > 0) {
      off = list.pop()!;
      chunk = list.pop()!;
      this.freeBytes -= classBytes(cls);
    } else {
      const size = classBytes(cls);
      let last = this.chunks.length - 1;
      if (last < 0 || this.bump + size > this.chunks[last]!.length) {
        if (this.chunks.length >= ARENA_CHUNKS_MAX) throw new RangeError(`a KV group's records exceed ${ARENA_CHUNKS_MAX} chunks of 1 MiB`);
        const grow = last < 0 ? CHUNK_BYTES_MIN : Math.min(CHUNK_BYTES_MAX, this.chunks[last]!.length * 2);
        this.chunks.push(new Uint8Array(Math.max(grow, size)));
        this.bump = 0;
        last++;
      }
      chunk = last;
      off = this.bump;
      this.bump += size;
    }
    const c = this.chunks[chunk]!;
    writeU32(c, off, vn);
    c[off + 4] = n & 0xff;
    c[off + 5] = n >>> 8;
    c.set(k.subarray(kAt, kAt + n), off + RECORD_HEADER_BYTES);
    c.set(v.subarray(vAt, vAt + vn), off + RECORD_HEADER_BYTES + n);
    this.placedLoc = chunk * 65536 + (off >>> 4);
    this.recordBytes += RECORD_HEADER_BYTES + n + vn;
  }

  /** Overwrites the value of the record at `loc` in place (same class, no image being made). */
  overwriteValue(loc: number, n: number, v: Uint8Array, vAt: number, vn: number): void {
    const c = this.chunks[locChunk(loc)]!;
    const off = locOff(loc);
    this.recordBytes += vn - recordValueLength(c, off);
    writeU32(c, off, vn);
    c.set(v.subarray(vAt, vAt + vn), off + RECORD_HEADER_BYTES + n);
  }

  /**
   * Gives a record's slot back (or, while an image is being made, holds it until the images
   * end). Returns whether a compaction may be due.
   */
  release(loc: number): boolean {
    const chunk = locChunk(loc);
    const off = locOff(loc);
    const c = this.chunks[chunk]!;
    const bytes = RECORD_HEADER_BYTES + recordKeyLength(c, off) + recordValueLength(c, off);
    const cls = classOf(bytes);
    // No longer live at once, even while an image holds its slot: recordBytes is what an image
    // begun now would hold (kv-state-machine.ts sizes images by it).
    this.recordBytes -= bytes;
    if (this.images > 0) {
      this.deferred.push(chunk, off, cls);
      return false;
    }
    this.freeSlot(chunk, off, cls);
    return this.freeBytes > this.compactWasteBytesMin;
  }

  /** An image ended; returns true when it was the last (the held slots are free now). */
  endImage(): boolean {
    if (this.images === 0) return false;
    if (--this.images > 0) return false;
    const d = this.deferred;
    for (let i = 0; i < d.length; i += 3) this.freeSlot(d[i]!, d[i + 1]!, d[i + 2]!);
    d.length = 0;
    return true;
  }

  /**
   * Free slots of the sizes no longer put are lost to the others: a compaction is due when they
   * hold more than the live records (and compactWasteBytesMin).
   */
  compactionDue(): boolean {
    return this.images === 0 && this.freeBytes > Math.max(this.compactWasteBytesMin, this.recordBytes);
  }

  /** Starts a compaction: returns the old chunks, for the store to copy every live record from. */
  takeChunks(): Uint8Array[] {
    this.compactions++;
    const old = this.chunks;
    this.chunks = [];
    this.free = [];
    this.freeBytes = 0;
    this.recordBytes = 0;
    this.bump = 0;
    return old;
  }

  private freeSlot(chunk: number, off: number, cls: number): void {
    (this.free[cls] ??= []).push(chunk, off);
    this.freeBytes += classBytes(cls);
  }
}

export function recordValueLength(c: Uint8Array, off: number): number {
  return (c[off]! | (c[off + 1]! << 8) | (c[off + 2]! << 16) | (c[off + 3]! << 24)) >>> 0;
}

export function recordKeyLength(c: Uint8Array, off: number): number {
  return c[off + 4]! | (c[off + 5]! << 8);
}

function writeU32(c: Uint8Array, off: number, v: number): void {
  c[off] = v & 0xff;
  c[off + 1] = (v >>> 8) & 0xff;
  c[off + 2] = (v >>> 16) & 0xff;
  c[off + 3] = v >>> 24;
}
