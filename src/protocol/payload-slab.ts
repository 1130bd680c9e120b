// Where decoded entry payloads live. A decoder reads ring memory that will be reused, so each
// payload must be copied out; copying small ones into shared slabs, not one ArrayBuffer each,
// is what keeps decoding a one-entry append cheap. The slab is module state, in this module
// only: every decoder of the shard thread (raft-codec.ts, the shard's client requests) cuts
// from the same one.

/** A copy of b[from, to) in a plain Uint8Array of its own (Buffer#slice would share memory). */
export function copyOut(b: Uint8Array, from: number, to: number): Uint8Array {
  const out = new Uint8Array(to - from);
  out.set(b.subarray(from, to));
  return out;
}

// Small payload blocks are carved from shared slabs, as Node's Buffer pool does: a fresh
// ArrayBuffer per decoded message costs more than the rest of decoding a one-entry append.
// A slab lives while any entry cut from it does; the log drops entries roughly in the order it
// got them, and state machines must not keep `command` past apply (state-machine.ts), so a
// slab's life is about that of the log tail it holds.
const SLAB_BYTES = 64 * 1024;
const SLAB_PIECE_BYTES_MAX = 4 * 1024;
let slab = new Uint8Array(0);
let slabUsed = 0;

/** A copy of b[from, to) for entry payloads: from a slab when small, its own memory otherwise. */
export function copyPayloads(b: Uint8Array, from: number, to: number): Uint8Array {
  const out = payloadBytes(to - from);
  out.set(b.subarray(from, to));
  return out;
}

/** n bytes for an entry payload to be written into (not zeroed): from a slab when small, its own memory otherwise. */
export function payloadBytes(n: number): Uint8Array {
  if (n > SLAB_PIECE_BYTES_MAX) return new Uint8Array(n);
  if (slabUsed + n > slab.length) {
    slab = new Uint8Array(SLAB_BYTES);
    slabUsed = 0;
  }
  const out = slab.subarray(slabUsed, slabUsed + n);
  slabUsed += n;
  return out;
}
