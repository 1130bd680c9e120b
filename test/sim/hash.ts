// 32-bit FNV-1a, over bytes and over numbers: entry fingerprints for the state-machine safety
// check and the running trace hash that proves a seed replays identically.

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

export function hashBytes(data: Uint8Array, h = FNV_OFFSET): number {
  for (let i = 0; i < data.length; i++) h = Math.imul(h ^ data[i]!, FNV_PRIME);
  return h >>> 0;
}

/** Mixes a number (an integer below 2^53, or a time rounded to microseconds) into `h`. */
export function hashNumber(h: number, v: number): number {
  const x = Math.round(v * 1000);
  const lo = x | 0;
  const hi = Math.floor(x / 4294967296) | 0;
  h = Math.imul(h ^ (lo & 0xffff), FNV_PRIME);
  h = Math.imul(h ^ (lo >>> 16), FNV_PRIME);
  h = Math.imul(h ^ (hi & 0xffff), FNV_PRIME);
  h = Math.imul(h ^ (hi >>> 16), FNV_PRIME);
  return h >>> 0;
}

export const hashSeed = FNV_OFFSET;
