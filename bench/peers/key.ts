// The keys the peer drivers write, alike for Redis and etcd: load key n (0..keys-1) is the ASCII
// string "k" followed by n in decimal, unpadded ("k0", "k42", "k9999"), so 2 to 11 bytes. They are
// written straight into the request buffers, without making a string per request.

/** load.ts draws keys as uint32, so at most 10 digits. */
export const KEY_BYTES_MAX = 11;
const K = 0x6b;
const ZERO = 0x30;

/** How many decimal digits `n` (a non-negative integer below 2^53) takes. */
export function decimalLength(n: number): number {
  let len = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    len++;
  }
  return len;
}

/** Writes `n` in decimal at buf[at..]; returns the offset after it. */
export function writeDecimal(buf: Uint8Array, at: number, n: number): number {
  const end = at + decimalLength(n);
  for (let i = end - 1; i >= at; i--) {
    buf[i] = ZERO + (n % 10);
    n = Math.floor(n / 10);
  }
  return end;
}

export function keyLength(key: number): number {
  return 1 + decimalLength(key);
}

/** Writes load key `key` ("k" and its decimal) at buf[at..]; returns the offset after it. */
export function writeKey(buf: Uint8Array, at: number, key: number): number {
  buf[at] = K;
  return writeDecimal(buf, at + 1, key);
}
