// Where a KV group's keys and values live: a hash map keyed by bytes whose records (key and
// value bytes together) sit in an arena of a few large ArrayBuffers, outside the JavaScript heap
// the garbage collector walks. A put copies its key and value once, from the command into the
// arena; it makes no string, no object and no heap pointer, so nothing of it is promoted by the
// young-generation collector or marked by the old one. (Held as strings in a Map, every value
// of a put lived long enough to be copied into the old generation and later swept there, and
// the key of every put was made a string only to be looked up and dropped: 1.2 µs a put of 256
// bytes into 100,000 keys, against the arena's, bench/kv-values.ts.)
//
// The map keeps its keys in insertion order (a key put anew after its delete goes to the end,
// a put over a present key keeps its place), as a JavaScript Map does: the order of a snapshot
// image is the order of the keys here, and images of replicas that applied the same log must be
// byte-equal. The hash table's layout is not part of that state: its seed is drawn per process.
//
// Records are immutable while an image is being made (beginImage … endImage): a put then writes
// a new record and the old one's space is freed only when the last image ends, so an image made
// a step at a time reads the state as it was when it began.
//
// The records' space is the arena (kv-arena.ts); this file is the index over it: the hash table,
// and per entry where its record is and its neighbours in order.
import { classOf, KvArena, locChunk, locOff, RECORD_HEADER_BYTES, recordKeyLength, recordValueLength } from './kv-arena.js';

export { recordKeyLength, recordValueLength } from './kv-arena.js';

/** The table is grown when more than this share of its slots is used. */
const TABLE_LOAD_MAX = 0.5;
const TABLE_SLOTS_MIN = 8;
/** Space lost to freed records of other sizes that makes a compaction worth it, at least. */
const COMPACT_WASTE_BYTES_MIN = 32 << 20;

/** One hash seed per process: the layout of the table must not be predictable from the keys alone. */
const SEED = (globalThis.crypto.getRandomValues(new Uint32Array(1))[0]! | 1) >>> 0;

/** A seeded 32-bit hash of b[at, at + n) (multiply-rotate rounds over 4-byte words). */
function hashBytes(b: Uint8Array, at: number, n: number): number {
  let h = SEED ^ n;
  let i = at;
  const end = at + n;
  for (; i + 4 <= end; i += 4) {
    let w = b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24);
    w = Math.imul(w, 0xcc9e2d51);
    w = (w << 15) | (w >>> 17);
    h ^= Math.imul(w, 0x1b873593);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  let w = 0;
  for (let s = 0; i < end; i++, s += 8) w |= b[i]! << s;
  w = Math.imul(w, 0xcc9e2d51);
  w = (w << 15) | (w >>> 17);
  h ^= Math.imul(w, 0x1b873593);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) | 0;
}

const NO_INTS: Int32Array<ArrayBuffer> = new Int32Array(0);
/** Words of a table slot: id + 1 (0: empty), the key's hash, the record's location. */
const SLOT_WORDS = 3;
/** The table of a map that never held a key: one empty slot, so that a lookup ends at once. */
const NO_SLOTS = new Int32Array(SLOT_WORDS);
/** The free ids of a map that never deleted a key (replaced before the first push). */
const NO_IDS: number[] = [];

export class KvStore {
  /** The records' space; made at the first put (or image): a group that holds no key costs little. */
  private arena: KvArena | null = null;

  // Per entry (an id; ids of deleted entries are reused): where its record is, and its
  // neighbours in insertion order (-1: none). What a put over a present key reads is in the
  // table (the slot holds the location too), so that a put touches the table and the record,
  // and not these: at 100,000 keys each is one more cache miss.
  // The arrays are shared empty ones until the first put, for the same reason.
  private recLoc = NO_INTS;
  private prev = NO_INTS;
  private next = NO_INTS;
  private idsUsed = 0;
  private idsFree: number[] = NO_IDS;
  private head = -1;
  private tail = -1;
  private count = 0;

  /** Open addressing, linear probing: SLOT_WORDS words a slot. */
  private slots = NO_SLOTS;
  private mask = 0;

  /** compactWasteBytesMin: see KvArena.compactionDue (smaller in tests). */
  constructor(private readonly compactWasteBytesMin = COMPACT_WASTE_BYTES_MIN) {}

  get size(): number {
    return this.count;
  }

  /** Bytes of arena held (chunks), and of it in live records' slots: for the bounds in docs. */
  get arenaBytes(): number {
    return this.arena === null ? 0 : this.arena.bytes;
  }

  get liveBytes(): number {
    return this.arena === null ? 0 : this.arena.recordBytes;
  }

  /** Times the arena was compacted (tests and the docs' bounds). */
  get compactions(): number {
    return this.arena === null ? 0 : this.arena.compactions;
  }

  /**
   * Where the record of key b[at, at + n) is now (a location for chunkOf, valueAt, ...; valid
   * until the store next changes), or -1.
   */
  find(b: Uint8Array, at: number, n: number): number {
    const h = hashBytes(b, at, n);
    const slots = this.slots;
    for (let s = h & this.mask; ; s = (s + 1) & this.mask) {
      const i = s * SLOT_WORDS;
      if (slots[i] === 0) return -1;
      if (slots[i + 1] === h && this.keyEquals(slots[i + 2]!, b, at, n)) return slots[i + 2]!;
    }
  }

  /** Puts key b[at, at + n) = value v[vAt, vAt + vn). */
  put(b: Uint8Array, at: number, n: number, v: Uint8Array, vAt: number, vn: number): void {
    const h = hashBytes(b, at, n);
    const slots = this.slots;
    let s = h & this.mask;
    for (; ; s = (s + 1) & this.mask) {
      const i = s * SLOT_WORDS;
      if (slots[i] === 0) break;
      if (slots[i + 1] === h && this.keyEquals(slots[i + 2]!, b, at, n)) {
        this.overwrite(s, n, v, vAt, vn);
        return;
      }
    }
    if (this.count + 1 > (this.mask + 1) * TABLE_LOAD_MAX) s = this.growTable(h);
    const id = this.newId();
    const loc = this.place(b, at, n, v, vAt, vn);
    this.recLoc[id] = loc;
    const i = s * SLOT_WORDS;
    this.slots[i] = id + 1;
    this.slots[i + 1] = h;
    this.slots[i + 2] = loc;
    this.link(id);
    this.count++;
  }

  /** Deletes key b[at, at + n); whether it was present. */
  delete(b: Uint8Array, at: number, n: number): boolean {
    const h = hashBytes(b, at, n);
    const slots = this.slots;
    const mask = this.mask;
    let s = h & mask;
    for (; ; s = (s + 1) & mask) {
      const i = s * SLOT_WORDS;
      if (slots[i] === 0) return false;
      if (slots[i + 1] === h && this.keyEquals(slots[i + 2]!, b, at, n)) break;
    }
    const id = slots[s * SLOT_WORDS]! - 1;
    const loc = slots[s * SLOT_WORDS + 2]!;
    // Backward-shift deletion: pull later members of the probe run into the hole, so that no
    // lookup ever stops early at it (no tombstones to clean up later).
    let hole = s;
    for (let j = (s + 1) & mask; slots[j * SLOT_WORDS] !== 0; j = (j + 1) & mask) {
      const home = slots[j * SLOT_WORDS + 1]! & mask;
      // Entry at j may move to the hole iff its home is not in (hole, j] cyclically.
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        slots.copyWithin(hole * SLOT_WORDS, j * SLOT_WORDS, (j + 1) * SLOT_WORDS);
        hole = j;
      }
    }
    slots.fill(0, hole * SLOT_WORDS, (hole + 1) * SLOT_WORDS);
    this.unlink(id);
    this.release(loc);
    if (this.idsFree === NO_IDS) this.idsFree = [];
    this.idsFree.push(id);
    this.count--;
    return true;
  }

  // ---- Reading a record (by its location, from find or locationOf) ----

  /** The chunk holding the record at loc (its key at keyAt, its value at valueAt). */
  chunkOf(loc: number): Uint8Array {
    return this.arena!.chunks[locChunk(loc)]!;
  }

  keyAt(loc: number): number {
    return locOff(loc) + RECORD_HEADER_BYTES;
  }

  keyLength(loc: number): number {
    return recordKeyLength(this.chunkOf(loc), locOff(loc));
  }

  valueAt(loc: number): number {
    return this.keyAt(loc) + this.keyLength(loc);
  }

  valueLength(loc: number): number {
    return recordValueLength(this.chunkOf(loc), locOff(loc));
  }

  /** Whether the record at loc holds the value b[at, at + n). */
  valueEquals(loc: number, b: Uint8Array, at: number, n: number): boolean {
    const c = this.chunkOf(loc);
    const off = locOff(loc);
    if (recordValueLength(c, off) !== n) return false;
    return bytesEqual(c, off + RECORD_HEADER_BYTES + recordKeyLength(c, off), b, at, n);
  }

  /** The first entry in insertion order, and the one after id (-1: none); locationOf(id) is its record. */
  first(): number {
    return this.head;
  }

  after(id: number): number {
    return this.next[id]!;
  }

  locationOf(id: number): number {
    return this.recLoc[id]!;
  }

  // ---- Images ----

  /**
   * The records of every entry, in order, as they are now (chunk and offset in turn); they stay
   * as they are until endImage. Every beginImage must be matched by one endImage.
   */
  beginImage(): Int32Array {
    this.arena ??= new KvArena(this.compactWasteBytesMin);
    this.arena.images++;
    const out = new Int32Array(this.count * 2);
    let i = 0;
    for (let id = this.head; id !== -1; id = this.next[id]!) {
      const loc = this.recLoc[id]!;
      out[i++] = locChunk(loc);
      out[i++] = locOff(loc);
    }
    return out;
  }

  endImage(): void {
    if (this.arena !== null && this.arena.endImage()) this.maybeCompact();
  }

  /** The record at (chunk, off), for an image: its chunk (key at off + 6). */
  chunk(chunk: number): Uint8Array {
    return this.arena!.chunks[chunk]!;
  }

  // ---- Internals ----

  private keyEquals(loc: number, b: Uint8Array, at: number, n: number): boolean {
    const c = this.arena!.chunks[locChunk(loc)]!;
    const off = locOff(loc);
    return recordKeyLength(c, off) === n && bytesEqual(c, off + RECORD_HEADER_BYTES, b, at, n);
  }

  /** A put over the present key of table slot s (its record just compared). */
  private overwrite(s: number, n: number, v: Uint8Array, vAt: number, vn: number): void {
    const arena = this.arena!;
    const i = s * SLOT_WORDS;
    const loc = this.slots[i + 2]!;
    const c = arena.chunks[locChunk(loc)]!;
    const off = locOff(loc);
    // A record's slot class is the class of its size (kv-arena.ts): no need to keep it.
    if (arena.images === 0 && classOf(RECORD_HEADER_BYTES + n + vn) === classOf(RECORD_HEADER_BYTES + n + recordValueLength(c, off))) {
      // In place: the key is there already.
      arena.overwriteValue(loc, n, v, vAt, vn);
      return;
    }
    // The new record copies the key from the old one before the old one may be reused.
    const moved = this.place(c, off + RECORD_HEADER_BYTES, n, v, vAt, vn);
    this.slots[i + 2] = moved;
    this.recLoc[this.slots[i]! - 1] = moved;
    this.release(loc);
  }

  /** Writes a record (key from k[kAt, kAt + n), value from v) into a fresh slot; its location. */
  private place(k: Uint8Array, kAt: number, n: number, v: Uint8Array, vAt: number, vn: number): number {
    const arena = (this.arena ??= new KvArena(this.compactWasteBytesMin));
    arena.write(classOf(RECORD_HEADER_BYTES + n + vn), k, kAt, n, v, vAt, vn);
    return arena.placedLoc;
  }

  /** Gives a record's slot back to the arena, and compacts it if that is due. */
  private release(loc: number): void {
    if (this.arena!.release(loc)) this.maybeCompact();
  }

  /**
   * When the arena's free slots (of sizes no longer put) outweigh its live records, every
   * record is copied, in order, into fresh chunks. O(live bytes), and rare: it takes a
   * workload's change of value sizes.
   */
  private maybeCompact(): void {
    const arena = this.arena!;
    if (!arena.compactionDue()) return;
    const old = arena.takeChunks();
    for (let id = this.head; id !== -1; id = this.next[id]!) {
      const loc = this.recLoc[id]!;
      const c = old[locChunk(loc)]!;
      const off = locOff(loc);
      const n = recordKeyLength(c, off);
      const kAt = off + RECORD_HEADER_BYTES;
      this.recLoc[id] = this.place(c, kAt, n, c, kAt + n, recordValueLength(c, off));
    }
    // The table's copies of the locations.
    const slots = this.slots;
    for (let i = 0; i < slots.length; i += SLOT_WORDS) if (slots[i] !== 0) slots[i + 2] = this.recLoc[slots[i]! - 1]!;
  }

  private newId(): number {
    if (this.idsFree.length > 0) return this.idsFree.pop()!;
    if (this.idsUsed === this.recLoc.length) {
      const cap = Math.max(TABLE_SLOTS_MIN, this.idsUsed * 2);
      this.recLoc = grownInt32(this.recLoc, cap);
      this.prev = grownInt32(this.prev, cap);
      this.next = grownInt32(this.next, cap);
    }
    return this.idsUsed++;
  }

  private link(id: number): void {
    this.prev[id] = this.tail;
    this.next[id] = -1;
    if (this.tail === -1) this.head = id;
    else this.next[this.tail] = id;
    this.tail = id;
  }

  private unlink(id: number): void {
    const p = this.prev[id]!;
    const n = this.next[id]!;
    if (p === -1) this.head = n;
    else this.next[p] = n;
    if (n === -1) this.tail = p;
    else this.prev[n] = p;
  }

  /** Doubles the table; returns the empty slot where a new key of hash h goes. */
  private growTable(h: number): number {
    const old = this.slots;
    const cap = old === NO_SLOTS ? TABLE_SLOTS_MIN : (this.mask + 1) * 2;
    const slots = new Int32Array(cap * SLOT_WORDS);
    const mask = cap - 1;
    for (let i = 0; i < old.length; i += SLOT_WORDS) {
      if (old[i] === 0) continue;
      let t = old[i + 1]! & mask;
      while (slots[t * SLOT_WORDS] !== 0) t = (t + 1) & mask;
      slots[t * SLOT_WORDS] = old[i]!;
      slots[t * SLOT_WORDS + 1] = old[i + 1]!;
      slots[t * SLOT_WORDS + 2] = old[i + 2]!;
    }
    this.slots = slots;
    this.mask = mask;
    let t = h & mask;
    while (slots[t * SLOT_WORDS] !== 0) t = (t + 1) & mask;
    return t;
  }
}

export const KV_RECORD_HEADER_BYTES = RECORD_HEADER_BYTES;

function bytesEqual(a: Uint8Array, aAt: number, b: Uint8Array, bAt: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (a[aAt + i] !== b[bAt + i]) return false;
  return true;
}

function grownInt32(a: Int32Array<ArrayBuffer>, cap: number): Int32Array<ArrayBuffer> {
  const out = new Int32Array(cap);
  out.set(a);
  return out;
}
