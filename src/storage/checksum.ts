// CRC-32 (IEEE 802.3, the polynomial of zlib, gzip and PNG) for everything storage writes.
//
// Two implementations give the same values: `@node-rs/crc32` (a native add-on, several times
// faster) when it is installed and loads, else `zlib.crc32` built into Node (20.15 and later).
// The add-on is optional: a missing package or a binary that does not load on this platform
// falls back to zlib silently, and `crc32Implementation` says which one runs so that a
// benchmark can report it. The add-on is only used after it reproduces zlib's values on a
// known vector, including the chaining of `initial`, because a checksum that disagrees with the
// one that wrote a file would make every file look corrupt.

import { createRequire } from 'node:module';
import * as zlib from 'node:zlib';

/** `initial` is the CRC of the bytes that came before `data` (0 for none), as in zlib. */
export type Crc32Function = (data: Uint8Array, initial: number) => number;

const vectorInput = '123456789';
const vectorCrc = 0xcbf43926;

function loadZlib(): Crc32Function | null {
  const fn = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;
  if (typeof fn !== 'function') return null;
  return (data, initial) => fn(data, initial);
}

function loadNative(): Crc32Function | null {
  // The native-free run (native-free/README.md) proves everything works without add-ons.
  if (process.env['FLOTILLA_NATIVE_FREE'] === '1') return null;
  let fn: unknown;
  try {
    const mod: unknown = createRequire(import.meta.url)('@node-rs/crc32');
    fn = (mod as { crc32?: unknown } | null)?.crc32;
  } catch {
    return null; // not installed, or its binary does not load here: zlib does the work.
  }
  if (typeof fn !== 'function') return null;
  const native = fn as (data: Buffer, initial?: number) => number;
  // The add-on takes Buffers; a Buffer view over the same memory costs no copy.
  // It answers 0 for empty input whatever the initial value; the CRC of nothing is the initial value.
  const crc: Crc32Function = (data, initial) => data.length === 0 ? initial >>> 0 :
    native(Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength), initial) >>> 0;
  try {
    const bytes = Buffer.from(vectorInput, 'latin1');
    if (crc(bytes, 0) !== vectorCrc) return null;
    if (crc(bytes.subarray(4), crc(bytes.subarray(0, 4), 0)) !== vectorCrc) return null;
  } catch {
    return null;
  }
  return crc;
}

/** The zlib implementation, or null on a Node without `zlib.crc32`. */
export const crc32Zlib: Crc32Function | null = loadZlib();
/** The `@node-rs/crc32` implementation, or null when it is not installed or does not load. */
export const crc32Native: Crc32Function | null = loadNative();

export const crc32Implementation: 'native' | 'zlib' = crc32Native !== null ? 'native' : 'zlib';

const impl: Crc32Function = (() => {
  const chosen = crc32Native ?? crc32Zlib;
  if (chosen === null) {
    throw new Error('CRC-32 unavailable: needs Node 20.15 or later (zlib.crc32) or the @node-rs/crc32 package');
  }
  return chosen;
})();

/**
 * IEEE CRC-32 of `data`, continuing from `initial` (the CRC of the preceding bytes; default 0),
 * so `crc32(b, crc32(a)) === crc32(a ++ b)`. Returns an unsigned 32-bit integer.
 */
export function crc32(data: Uint8Array, initial = 0): number {
  // zlib answers 0 for an empty buffer with no backing memory; nothing leaves the CRC as it was.
  if (data.length === 0) return initial >>> 0;
  return impl(data, initial);
}

// --- Locating a single flipped bit ---

/** The byte-wise table of the reflected IEEE polynomial (what zlib's crc32 computes with). */
const crcTable: Uint32Array = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/**
 * Where one flipped bit would explain a CRC mismatch: given `syndrome` = stored CRC ^ computed
 * CRC of a `bytes`-long message, the position (byte, bit) in the message of the single bit
 * whose flip turns one CRC into the other, or null if no single bit does. CRC-32 is linear:
 * for messages of equal length, crc(m) ^ crc(m ^ e) depends on the error pattern e alone, and
 * for e a single bit it is that bit's effect carried through the bytes after it. Costs 8 steps
 * per byte; used only on the one damaged frame recovery may meet.
 */
export function crc32SingleBitError(syndrome: number, bytes: number): { byte: number; bit: number } | null {
  const s = syndrome >>> 0;
  if (s === 0 || bytes <= 0) return null;
  // regs[b]: the syndrome of bit b of byte i, starting from the last byte and walking back.
  const regs = new Uint32Array(8);
  for (let b = 0; b < 8; b++) regs[b] = crcTable[1 << b]!;
  for (let i = bytes - 1; i >= 0; i--) {
    for (let b = 0; b < 8; b++) {
      const r = regs[b]!;
      if (r === s) return { byte: i, bit: b };
      // One more zero byte after the flipped one.
      regs[b] = crcTable[r & 0xff]! ^ (r >>> 8);
    }
  }
  return null;
}
