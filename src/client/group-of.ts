// Which KV group holds a key: 1 + (FNV-1a 32-bit of the key's UTF-8 bytes) mod groups.
// Every client and every tool must agree on this rule (docs/protocol.md, "Keys and groups").

const FNV_OFFSET_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

const utf8 = new TextEncoder();

/** FNV-1a, 32-bit, of a byte string. */
export function fnv1a32(bytes: Uint8Array): number {
  let h = FNV_OFFSET_BASIS;
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i]!;
    h = Math.imul(h, FNV_PRIME);
  }
  return h >>> 0;
}

/** FNV-1a, 32-bit, of a string's UTF-8 bytes. */
export function fnv1a32Utf8(s: string): number {
  // Most keys are ASCII, whose UTF-8 bytes are the char codes: hash them without encoding.
  let h = FNV_OFFSET_BASIS;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) return fnv1a32(utf8.encode(s));
    h ^= c;
    h = Math.imul(h, FNV_PRIME);
  }
  return h >>> 0;
}

/** The group (1..groups) of a key. */
export function groupOfKey(key: string, groups: number): number {
  return 1 + (fnv1a32Utf8(key) % groups);
}
