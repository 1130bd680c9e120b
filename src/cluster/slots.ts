// Slots: where a key lives in the cluster's key space (issue 15). A key's slot is the CRC16
// (XMODEM: polynomial 0x1021, initial value 0, no reflection, no final XOR) of its bytes, mod
// 16,384, as in Redis Cluster, with Redis's hash-tag rule: when the key holds a `{` and, after
// it, a `}` with at least one byte between the first `{` and the first `}` after it, only the
// bytes between them are hashed. That lets keys that must live in one group (a KV batch, a
// later transaction) be put there on purpose, and lets a RESP front end speak Redis Cluster's
// protocol unchanged. The key map (key-map.ts) says which group owns each slot.
//
// Also here: slot ranges as an operator types them (`0-1023`, `5,9,100-200`), parsed into a
// canonical list of ranges with errors that carry the stable code BAD_SLOTS, and formatted
// back into the compact form.
//
// Pure: no I/O, no clocks. slotOf runs per request in clients and nodes, so it allocates
// nothing, even for text keys (their UTF-8 bytes are hashed as they are produced).

/** Number of slots in the key space; slots are 0 … SLOT_COUNT - 1. */
export const SLOT_COUNT = 16384;

/** The longest slot-range text parseSlots reads (every slot listed one by one is ~80,000). */
export const slotsTextCharsMax = 131072;

const CRC16_TABLE: Uint16Array = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 8;
    for (let b = 0; b < 8; b++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
    t[i] = c;
  }
  return t;
})();

/** One step of CRC16-XMODEM: the CRC `crc` extended by byte `b`. */
function crcStep(crc: number, b: number): number {
  return ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >>> 8) ^ b) & 0xff]!;
}

/** CRC16-XMODEM of bytes[start, end). */
export function crc16(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let crc = 0;
  for (let i = start; i < end; i++) crc = crcStep(crc, bytes[i]!);
  return crc;
}

const OPEN = 0x7b; // '{'
const CLOSE = 0x7d; // '}'

/** The slot of a key given as bytes, or as text (hashed as its UTF-8 bytes). */
export function slotOf(key: Uint8Array | string): number {
  return typeof key === 'string' ? slotOfText(key) : slotOfBytes(key);
}

function slotOfBytes(key: Uint8Array): number {
  return slotOfRange(key, 0, key.length);
}

/** The slot of the key held in bytes[start, end), read in place (a node reads keys in commands). */
export function slotOfRange(bytes: Uint8Array, start: number, end: number): number {
  let open = -1;
  for (let i = start; i < end; i++) if (bytes[i] === OPEN) { open = i; break; }
  if (open !== -1) {
    for (let j = open + 1; j < end; j++) {
      if (bytes[j] === CLOSE) {
        if (j > open + 1) return crc16(bytes, open + 1, j) & (SLOT_COUNT - 1);
        break;
      }
    }
  }
  return crc16(bytes, start, end) & (SLOT_COUNT - 1);
}

// `{` and `}` are ASCII, and in UTF-8 an ASCII byte never occurs inside the encoding of another
// character, so the tag found in the UTF-16 text is the tag of its UTF-8 bytes, and it is
// non-empty in one exactly when it is in the other.
function slotOfText(key: string): number {
  const open = key.indexOf('{');
  if (open !== -1) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) return crcOfText(key, open + 1, close) & (SLOT_COUNT - 1);
  }
  return crcOfText(key, 0, key.length) & (SLOT_COUNT - 1);
}

/**
 * CRC16 of the UTF-8 encoding of key[start, end), encoded as it goes. A lone surrogate is
 * encoded as U+FFFD, as TextEncoder and Buffer do, so a text key and its Buffer.from bytes
 * share a slot.
 */
function crcOfText(key: string, start: number, end: number): number {
  let crc = 0;
  for (let i = start; i < end; i++) {
    let c = key.charCodeAt(i);
    if (c < 0x80) {
      crc = crcStep(crc, c);
      continue;
    }
    if (c < 0x800) {
      crc = crcStep(crc, 0xc0 | (c >> 6));
      crc = crcStep(crc, 0x80 | (c & 0x3f));
      continue;
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      const d = i + 1 < end ? key.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
        const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
        crc = crcStep(crc, 0xf0 | (cp >> 18));
        crc = crcStep(crc, 0x80 | ((cp >> 12) & 0x3f));
        crc = crcStep(crc, 0x80 | ((cp >> 6) & 0x3f));
        crc = crcStep(crc, 0x80 | (cp & 0x3f));
        continue;
      }
      c = 0xfffd;
    }
    crc = crcStep(crc, 0xe0 | (c >> 12));
    crc = crcStep(crc, 0x80 | ((c >> 6) & 0x3f));
    crc = crcStep(crc, 0x80 | (c & 0x3f));
  }
  return crc;
}

// ---------------------------------------------------------------------------------------------
// Slot ranges

/** The slots first … last, both included. */
export interface SlotRange {
  readonly first: number;
  readonly last: number;
}

/**
 * A set of slots as ranges in canonical form: ascending, disjoint and not adjacent (0-5,6-9 is
 * 0-9), none empty. Every function here that returns ranges returns them so, which makes two
 * equal sets equal lists and gives them one encoding.
 */
export type SlotRanges = readonly SlotRange[];

export type SlotsProblem = 'empty' | 'syntax' | 'out-of-range' | 'reversed' | 'overlap' | 'too-long';

/** A slot set that cannot be read or is not a set; `problem` says which rule it broke. */
export class SlotsError extends Error {
  readonly code = 'BAD_SLOTS';
  constructor(readonly problem: SlotsProblem, message: string) {
    super(message);
  }
}

/**
 * Reads slots as an operator types them: items separated by commas, each a slot (`5`) or a range
 * of slots with both ends included (`100-200`), spaces allowed around items and dashes. Items
 * may come in any order but must not share a slot: `1-10,5` is refused (overlap) rather than
 * read as 1-10, since it is more likely a typo than a wish. Throws SlotsError (BAD_SLOTS).
 */
export function parseSlots(text: string): SlotRanges {
  if (text.length > slotsTextCharsMax) {
    throw new SlotsError('too-long', `slot list is ${text.length} characters, more than ${slotsTextCharsMax}`);
  }
  if (text.trim() === '') throw new SlotsError('empty', 'no slots given (expected e.g. 0-1023 or 5,9,100-200)');
  const ranges: SlotRange[] = [];
  for (const raw of text.split(',')) {
    const item = raw.trim();
    if (item === '') throw new SlotsError('syntax', `empty item in slot list "${clip(text)}"`);
    const m = /^(\d+)\s*(?:-\s*(\d+))?$/.exec(item);
    if (m === null) throw new SlotsError('syntax', `"${clip(item)}" is not a slot or a range of slots like 100-200`);
    const first = slotNumber(m[1]!);
    const last = m[2] === undefined ? first : slotNumber(m[2]);
    if (last < first) throw new SlotsError('reversed', `range ${first}-${last} ends before it starts`);
    ranges.push({ first, last });
  }
  ranges.sort((a, b) => a.first - b.first);
  for (let i = 1; i < ranges.length; i++) {
    const p = ranges[i - 1]!;
    const r = ranges[i]!;
    if (r.first <= p.last) {
      throw new SlotsError('overlap', `${formatRange(p)} and ${formatRange(r)} share slot ${r.first}`);
    }
  }
  return canonicalRanges(ranges);
}

function slotNumber(digits: string): number {
  const n = digits.length > 6 ? Infinity : Number(digits);
  if (!(n < SLOT_COUNT)) throw new SlotsError('out-of-range', `slot ${clip(digits)} is out of range 0-${SLOT_COUNT - 1}`);
  return n;
}

function clip(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

function formatRange(r: SlotRange): string {
  return r.first === r.last ? `${r.first}` : `${r.first}-${r.last}`;
}

/** The compact form of a set of slots: `0-1023`, `5,9,100-200`; the empty set is ``. */
export function formatSlots(ranges: SlotRanges): string {
  return canonicalRanges(ranges).map(formatRange).join(',');
}

/**
 * Ranges that may be out of order, overlapping or adjacent, as the canonical list of the slots
 * they cover. Asserts nothing about the input beyond slots being in range: throws SlotsError
 * (out-of-range, reversed) for a range that is not one.
 */
export function canonicalRanges(ranges: Iterable<SlotRange>): SlotRanges {
  const sorted: SlotRange[] = [];
  for (const r of ranges) {
    checkRange(r);
    sorted.push(r);
  }
  sorted.sort((a, b) => a.first - b.first);
  const out: SlotRange[] = [];
  for (const r of sorted) {
    const p = out[out.length - 1];
    if (p !== undefined && r.first <= p.last + 1) {
      if (r.last > p.last) out[out.length - 1] = { first: p.first, last: r.last };
    } else {
      out.push({ first: r.first, last: r.last });
    }
  }
  return out;
}

function checkRange(r: SlotRange): void {
  for (const s of [r.first, r.last]) {
    if (!Number.isInteger(s) || s < 0 || s >= SLOT_COUNT) {
      throw new SlotsError('out-of-range', `slot ${s} is out of range 0-${SLOT_COUNT - 1}`);
    }
  }
  if (r.last < r.first) throw new SlotsError('reversed', `range ${r.first}-${r.last} ends before it starts`);
}

/** The canonical ranges of a set of slot numbers. */
export function rangesOfSlots(slots: Iterable<number>): SlotRanges {
  const rs: SlotRange[] = [];
  for (const s of slots) rs.push({ first: s, last: s });
  return canonicalRanges(rs);
}

/** Every slot of a set, ascending. */
export function* slotsOfRanges(ranges: SlotRanges): Generator<number> {
  for (const r of ranges) for (let s = r.first; s <= r.last; s++) yield s;
}

/** How many slots a set holds. */
export function slotCount(ranges: SlotRanges): number {
  let n = 0;
  for (const r of ranges) n += r.last - r.first + 1;
  return n;
}

/** Whether ranges are in canonical form (see SlotRanges). */
export function isCanonical(ranges: SlotRanges): boolean {
  let prevLast = -2;
  for (const r of ranges) {
    if (!Number.isInteger(r.first) || !Number.isInteger(r.last)) return false;
    if (r.first < 0 || r.last >= SLOT_COUNT || r.last < r.first || r.first <= prevLast + 1) return false;
    prevLast = r.last;
  }
  return true;
}
