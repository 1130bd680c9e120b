// A single-producer single-consumer ring of length-prefixed records on a SharedArrayBuffer.
// Two threads wrap the same buffer: one only produces (reserve, commit, notify, waitRoom), the
// other only consumes (read, release, notifyRoom, waitData). Records are written and read in
// place through `data`; nothing is copied unless the caller copies.
//
// Buffer layout (byte offsets; control words are Int32, native byte order, which is
// little-endian on every platform Node runs on):
//
//     0  magic 0x52524c46 ("FLRR" as bytes) | version 1 | capacity bytes     (written once)
//   128  tail: producer's position, u32 modulo 2^32                          (producer)
//   256  head: consumer's position, u32 modulo 2^32                          (consumer)
//   384  dataSeq | dataWaiting: the consumer's doorbell                      (see below)
//   512  roomSeq | roomWaiting: the producer's doorbell
//   640  data: `capacity` bytes of records
//
// Each group of words sits on its own 128-byte line so that the two sides do not bounce one
// cache line (or its prefetch pair) between cores. head and tail only grow; a position's
// offset in `data` is `position & (capacity - 1)`, and `tail - head` (mod 2^32) is the space in
// use, which is exact because capacity is a power of two no larger than 2^30. In JS both are
// held as int32 (`| 0`) so that they stay small integers; `| 0` and `>>> 0` are the same
// number modulo 2^32.
//
// A record at offset `at` (a multiple of 8): i32 length | i32 position check | `length` bytes,
// then padding to the next multiple of 8, so a record's first byte is 8-aligned. The position
// check is the record's own position; the consumer asserts it, which catches a corrupted or
// misread ring at once. Records never wrap: when one does not fit before the end of `data`,
// the producer writes a pad marker (length -1) at `at` and puts the record at offset 0; the
// pad and the record are published by the same store of the tail.
//
// Publication: plain writes of a record happen before the producer's `Atomics.store` of the
// tail, and the consumer reads them after its `Atomics.load` of the tail; the same holds for
// the head in the other direction. Atomics are sequentially consistent, so this is enough.
//
// Doorbells (one per direction, shown for data; room is the mirror image). The consumer, to
// sleep: reads dataSeq, stores dataWaiting = 1, checks for data again, and only if there is
// none waits on dataSeq for the value it read first. The producer, in notify(): loads
// dataWaiting after its store of the tail; only when it is set does it clear it, bump dataSeq
// and call Atomics.notify. Either the consumer's re-check sees the new tail, or the producer
// sees dataWaiting = 1 (the two stores and two loads are sequentially consistent), and then
// the bump of dataSeq happens either before the wait (the wait returns 'not-equal' and the
// consumer re-checks) or after it is armed (the notify wakes it). No wake-up is lost, and a
// notify() with nobody waiting costs one atomic load.
//
// A pending Atomics.waitAsync does not keep a thread's event loop alive, so while a wait is
// pending the ring holds a referenced timer; close() lets it go and rejects pending waits.
import { assert } from '../util/assert.js';
import { PendingWait, WaitKeepAlive } from './ring-waits.js';

/** Smallest and largest capacity, in bytes, that allocate() accepts. */
export const RING_CAPACITY_BYTES_MIN = 4096;
export const RING_CAPACITY_BYTES_MAX = 1 << 30;

const LINE_BYTES = 128;
const LINE_WORDS = LINE_BYTES / 4;
/** Bytes of control words before the record area. */
export const RING_HEADER_BYTES = 5 * LINE_BYTES;

/** Int32 indexes of the control words (for tests and tools; the ring owns them). */
export const RingWord = {
  magic: 0,
  version: 1,
  capacity: 2,
  tail: LINE_WORDS,
  head: 2 * LINE_WORDS,
  dataSeq: 3 * LINE_WORDS,
  dataWaiting: 3 * LINE_WORDS + 1,
  roomSeq: 4 * LINE_WORDS,
  roomWaiting: 4 * LINE_WORDS + 1,
} as const;

// Plain constants for the hot path (a property load on RingWord is not always folded).
const MAGIC = 0;
const VERSION = 1;
const CAPACITY = 2;
const TAIL = LINE_WORDS;
const HEAD = 2 * LINE_WORDS;
const DATA_SEQ = 3 * LINE_WORDS;
const DATA_WAITING = 3 * LINE_WORDS + 1;
const ROOM_SEQ = 4 * LINE_WORDS;
const ROOM_WAITING = 4 * LINE_WORDS + 1;

const MAGIC_VALUE = 0x52524c46;
const VERSION_VALUE = 1;

/** i32 length | i32 position check. */
const RECORD_PREFIX_BYTES = 8;
const RECORD_ALIGN_MASK = 7;
/** The length word of a pad marker: the rest of `data` up to its end is unused. */
const PAD_LENGTH = -1;

/** Times a wait is re-armed at once after 'not-equal' before it yields to the event loop. */
const ARM_ATTEMPTS_MAX = 64;

type WaitAsyncResult =
  | { async: false; value: 'not-equal' | 'timed-out' }
  | { async: true; value: Promise<'ok' | 'timed-out'> };
// Atomics.waitAsync is ES2024; Node 20 has it, the ES2022 lib types do not.
const waitAsync = (Atomics as unknown as {
  waitAsync?: (array: Int32Array, index: number, value: number) => WaitAsyncResult;
}).waitAsync;
assert(typeof waitAsync === 'function', 'Atomics.waitAsync is missing (Node >= 16 has it)');

const RESOLVED: Promise<void> = Promise.resolve();

export class RingError extends Error {
  constructor(
    message: string,
    readonly code: 'RING_CLOSED',
  ) {
    super(message);
  }
}

function rangeError(message: string, code: string): RangeError {
  return Object.assign(new RangeError(message), { code });
}

/** Bytes a record of `bytes` takes on the ring, prefix and alignment included. */
function slotBytes(bytes: number): number {
  return (bytes + RECORD_PREFIX_BYTES + RECORD_ALIGN_MASK) & ~RECORD_ALIGN_MASK;
}

export class SpscRing {
  /** A new shared buffer for a ring with `capacityBytes` of record space (power of two, ≥ 4096): control words + data. */
  static allocate(capacityBytes: number): SharedArrayBuffer {
    if (
      !Number.isInteger(capacityBytes) ||
      capacityBytes < RING_CAPACITY_BYTES_MIN ||
      capacityBytes > RING_CAPACITY_BYTES_MAX ||
      (capacityBytes & (capacityBytes - 1)) !== 0
    ) {
      throw rangeError(
        `ring capacity ${capacityBytes} is not a power of two in [${RING_CAPACITY_BYTES_MIN}, ${RING_CAPACITY_BYTES_MAX}]`,
        'RING_CAPACITY',
      );
    }
    const sab = new SharedArrayBuffer(RING_HEADER_BYTES + capacityBytes);
    const ctl = new Int32Array(sab, 0, RING_HEADER_BYTES >> 2);
    ctl[VERSION] = VERSION_VALUE;
    ctl[CAPACITY] = capacityBytes;
    Atomics.store(ctl, MAGIC, MAGIC_VALUE);
    return sab;
  }

  readonly capacity: number;
  /** Largest record accepted (bytes); capacity / 4. reserve/write of more throws RangeError. */
  readonly recordBytesMax: number;
  /** The record area; records are written and read in place through it. */
  readonly data: Uint8Array;
  /** Length of the record last returned by read(). */
  readBytes = 0;

  private readonly ctl: Int32Array;
  /** `data` as Int32, for record prefixes (offsets there are multiples of 8). */
  private readonly words: Int32Array;
  private readonly mask: number;

  // Producer side. `tail` is this side's own position; `headSeen` the last head it loaded,
  // reloaded only when the space it implies is not enough.
  private tail: number;
  private headSeen: number;
  private reserveOpen = false;
  private reserveTail = 0;

  // Consumer side, the mirror image. While a record is out (readOffset >= 0), `head` is its
  // position (past any pad) and `readNext` the position after it.
  private head: number;
  private tailSeen: number;
  private readOffset = -1;
  private readNext = 0;

  // Waits: at most one pending promise per direction; callers that wait together share it.
  private dataWait: PendingWait | null = null;
  private roomWait: PendingWait | null = null;
  /** The largest record the pending waitRoom callers asked room for. */
  private roomBytes = 0;
  private readonly keepAlive = new WaitKeepAlive();
  private closed = false;
  // Bound once so that arming a wait allocates nothing but the wait itself.
  private readonly onDataWake = (): void => this.armData();
  private readonly onRoomWake = (): void => this.armRoom();

  constructor(sab: SharedArrayBuffer) {
    if (!(sab instanceof SharedArrayBuffer) || sab.byteLength < RING_HEADER_BYTES + RING_CAPACITY_BYTES_MIN) {
      throw rangeError('not a ring buffer: expected a SharedArrayBuffer from SpscRing.allocate', 'RING_BUFFER');
    }
    const ctl = new Int32Array(sab, 0, RING_HEADER_BYTES >> 2);
    const magic = Atomics.load(ctl, MAGIC);
    const capacity = ctl[CAPACITY]!;
    if (
      magic !== MAGIC_VALUE ||
      ctl[VERSION] !== VERSION_VALUE ||
      sab.byteLength !== RING_HEADER_BYTES + capacity ||
      (capacity & (capacity - 1)) !== 0
    ) {
      throw rangeError('not a ring buffer: bad magic, version or size', 'RING_BUFFER');
    }
    this.ctl = ctl;
    this.capacity = capacity;
    this.recordBytesMax = capacity >> 2;
    this.mask = capacity - 1;
    this.data = new Uint8Array(sab, RING_HEADER_BYTES, capacity);
    this.words = new Int32Array(sab, RING_HEADER_BYTES, capacity >> 2);
    this.tail = Atomics.load(ctl, TAIL);
    this.headSeen = Atomics.load(ctl, HEAD);
    this.head = this.headSeen;
    this.tailSeen = this.tail;
  }

  // --- producer side (one thread only)

  /** Offset into `data` where a record of `bytes` (1 ≤ bytes ≤ recordBytesMax) may be written, contiguous (records never wrap: pad to the start when needed), or -1 when there is no room now. At most one reservation open at a time. */
  reserve(bytes: number): number {
    this.checkRecordBytes(bytes);
    assert(!this.reserveOpen, 'ring: reserve with a reservation already open');
    const tail = this.tail;
    const slot = slotBytes(bytes);
    const at = tail & this.mask;
    const toEnd = this.capacity - at;
    const need = slot <= toEnd ? slot : toEnd + slot;
    if (this.capacity - ((tail - this.headSeen) | 0) < need && !this.loadHeadForRoom(need)) return -1;
    let start = at;
    if (slot > toEnd) {
      this.words[at >> 2] = PAD_LENGTH;
      this.words[(at >> 2) + 1] = tail;
      start = 0;
    }
    this.words[start >> 2] = bytes;
    this.words[(start >> 2) + 1] = (tail + need - slot) | 0;
    this.reserveOpen = true;
    this.reserveTail = (tail + need) | 0;
    return start + RECORD_PREFIX_BYTES;
  }

  /** Publishes the open reservation so the consumer can read it (Atomics.store of the tail). Does not wake the consumer. */
  commit(): void {
    assert(this.reserveOpen, 'ring: commit without an open reservation');
    this.reserveOpen = false;
    this.tail = this.reserveTail;
    Atomics.store(this.ctl, TAIL, this.tail);
  }

  /** reserve + copy + commit; false when no room. */
  write(bytes: Uint8Array): boolean {
    const at = this.reserve(bytes.length);
    if (at < 0) return false;
    this.data.set(bytes, at);
    this.commit();
    return true;
  }

  /** Wakes the consumer if it is waiting (call once after a batch of commits; cheap when nobody waits). */
  notify(): void {
    if (Atomics.load(this.ctl, DATA_WAITING) !== 0 && Atomics.exchange(this.ctl, DATA_WAITING, 0) !== 0) {
      Atomics.add(this.ctl, DATA_SEQ, 1);
      Atomics.notify(this.ctl, DATA_SEQ);
    }
  }

  /**
   * Resolves when reserve(bytes) would succeed (at once if it would now). Uses Atomics.waitAsync;
   * no busy loop. Call notify() first if commits are unannounced, or the consumer may sleep
   * too. A wait made while another is pending (and there is no room now) shares its promise,
   * which then waits for the largest `bytes` asked. Rejects with code RING_CLOSED after close().
   */
  waitRoom(bytes: number): Promise<void> {
    this.checkRecordBytes(bytes);
    assert(!this.reserveOpen, 'ring: waitRoom with a reservation open (commit it first)');
    if (this.closed) return Promise.reject(closedError());
    if (this.hasRoom(bytes)) return RESOLVED;
    if (this.roomWait !== null) {
      if (bytes > this.roomBytes) this.roomBytes = bytes;
      return this.roomWait.promise;
    }
    this.roomBytes = bytes;
    const wait = new PendingWait();
    this.roomWait = wait;
    this.keepAlive.hold();
    this.armRoom();
    return wait.promise;
  }

  // --- consumer side (one thread only)

  /** Offset into `data` of the next record, or -1 when empty; its length is then in `readBytes`. Calling read() again without release() returns the same record. */
  read(): number {
    if (this.readOffset >= 0) return this.readOffset;
    let head = this.head;
    if (head === this.tailSeen) {
      const tail = Atomics.load(this.ctl, TAIL);
      if (tail === head) return -1;
      const used = (tail - head) | 0;
      assert(used > 0 && used <= this.capacity, 'ring: tail is not within capacity of head');
      this.tailSeen = tail;
    }
    let at = head & this.mask;
    let length = this.words[at >> 2]!;
    if (length === PAD_LENGTH) {
      assert(this.words[(at >> 2) + 1] === head, 'ring: pad marker has the wrong position');
      head = (head + this.capacity - at) | 0;
      assert(head !== this.tailSeen, 'ring: pad marker with no record after it');
      at = 0;
      length = this.words[0]!;
    }
    assert(this.words[(at >> 2) + 1] === head, 'ring: record has the wrong position (corrupt ring?)');
    assert(length >= 1 && length <= this.recordBytesMax, 'ring: record length out of range');
    const next = (head + slotBytes(length)) | 0;
    assert(((this.tailSeen - next) | 0) >= 0, 'ring: record runs past the tail');
    this.head = head;
    this.readNext = next;
    this.readBytes = length;
    this.readOffset = at + RECORD_PREFIX_BYTES;
    return this.readOffset;
  }

  /** Frees the record last returned by read() (Atomics.store of the head). */
  release(): void {
    assert(this.readOffset >= 0, 'ring: release without a record from read()');
    this.readOffset = -1;
    this.head = this.readNext;
    Atomics.store(this.ctl, HEAD, this.head);
  }

  /** Wakes a producer waiting in waitRoom (call once after a batch of releases). */
  notifyRoom(): void {
    if (Atomics.load(this.ctl, ROOM_WAITING) !== 0 && Atomics.exchange(this.ctl, ROOM_WAITING, 0) !== 0) {
      Atomics.add(this.ctl, ROOM_SEQ, 1);
      Atomics.notify(this.ctl, ROOM_SEQ);
    }
  }

  /**
   * Resolves when read() would return a record (at once if it would now). Atomics.waitAsync;
   * lost-wake-up safe (wait on the value last seen, re-check after arming). Call notifyRoom()
   * first if releases are unannounced. A wait made while another is pending (and the ring is
   * empty) shares its promise. Rejects with code RING_CLOSED after close().
   */
  waitData(): Promise<void> {
    if (this.closed) return Promise.reject(closedError());
    if (this.hasData()) return RESOLVED;
    if (this.dataWait !== null) return this.dataWait.promise;
    const wait = new PendingWait();
    this.dataWait = wait;
    this.keepAlive.hold();
    this.armData();
    return wait.promise;
  }

  // --- either side

  /** Bytes currently occupied (records + padding), readable from either side, for metrics. */
  usedBytes(): number {
    // Head first: the tail loaded after it is never behind it.
    const head = Atomics.load(this.ctl, HEAD);
    const used = (Atomics.load(this.ctl, TAIL) - head) | 0;
    return used < 0 ? 0 : used > this.capacity ? this.capacity : used;
  }

  /**
   * Ends this thread's waits on this ring: pending waitData/waitRoom promises reject with code
   * RING_CLOSED, later ones too, and the ring no longer holds the event loop open. Records can
   * still be written and read. Affects only this thread's SpscRing object.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const err = closedError();
    const dataWait = this.dataWait;
    if (dataWait !== null) {
      this.endDataWait();
      dataWait.reject(err);
    }
    const roomWait = this.roomWait;
    if (roomWait !== null) {
      this.endRoomWait();
      roomWait.reject(err);
    }
    this.keepAlive.close();
  }

  // --- internals

  private checkRecordBytes(bytes: number): void {
    if (!(bytes >= 1 && bytes <= this.recordBytesMax) || (bytes | 0) !== bytes) {
      throw rangeError(`ring record of ${bytes} bytes is not in [1, ${this.recordBytesMax}]`, 'RING_RECORD_BYTES');
    }
  }

  /** Reloads the head; true when `need` bytes are free after the tail. */
  private loadHeadForRoom(need: number): boolean {
    const head = Atomics.load(this.ctl, HEAD);
    const used = (this.tail - head) | 0;
    assert(used >= 0 && used <= this.capacity, 'ring: head is not within capacity behind the tail');
    this.headSeen = head;
    return this.capacity - used >= need;
  }

  private hasRoom(bytes: number): boolean {
    const slot = slotBytes(bytes);
    const toEnd = this.capacity - (this.tail & this.mask);
    return this.loadHeadForRoom(slot <= toEnd ? slot : toEnd + slot);
  }

  private hasData(): boolean {
    if (this.readOffset >= 0 || this.head !== this.tailSeen) return true;
    this.tailSeen = Atomics.load(this.ctl, TAIL);
    return this.head !== this.tailSeen;
  }

  private armData(): void {
    for (let attempt = 0; attempt < ARM_ATTEMPTS_MAX; attempt++) {
      const wait = this.dataWait;
      if (wait === null) return; // closed while asleep
      const seen = Atomics.load(this.ctl, DATA_SEQ);
      Atomics.store(this.ctl, DATA_WAITING, 1);
      if (this.hasData()) {
        Atomics.store(this.ctl, DATA_WAITING, 0);
        this.endDataWait();
        wait.resolve();
        return;
      }
      const result = waitAsync!(this.ctl, DATA_SEQ, seen);
      if (result.async) {
        void result.value.then(this.onDataWake);
        return;
      }
      // 'not-equal': the producer rang after we read dataSeq; look again.
    }
    // The producer keeps ringing without data: give the event loop a turn, then look again.
    setImmediate(this.onDataWake);
  }

  private armRoom(): void {
    for (let attempt = 0; attempt < ARM_ATTEMPTS_MAX; attempt++) {
      const wait = this.roomWait;
      if (wait === null) return;
      const seen = Atomics.load(this.ctl, ROOM_SEQ);
      Atomics.store(this.ctl, ROOM_WAITING, 1);
      if (this.hasRoom(this.roomBytes)) {
        Atomics.store(this.ctl, ROOM_WAITING, 0);
        this.endRoomWait();
        wait.resolve();
        return;
      }
      const result = waitAsync!(this.ctl, ROOM_SEQ, seen);
      if (result.async) {
        void result.value.then(this.onRoomWake);
        return;
      }
    }
    setImmediate(this.onRoomWake);
  }

  private endDataWait(): void {
    this.dataWait = null;
    this.keepAlive.letGo();
  }

  private endRoomWait(): void {
    this.roomWait = null;
    this.keepAlive.letGo();
  }
}

function closedError(): RingError {
  return new RingError('ring closed on this thread', 'RING_CLOSED');
}
