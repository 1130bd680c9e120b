// The byte primitives of the key map's layouts (key-map.ts: the map image; meta-command.ts: the
// meta group's commands and results): a growable writer with a bound and a bounds-checked reader.
// Integers are little-endian, as in every layout of docs/internals.md. A u64 is carried as a
// JavaScript number and so must be a safe integer (below 2^53): the map's version and migration
// ids count changes and will not get near that.

/** Bytes that are not what a layout says; `code` is the caller's (BAD_MAP, BAD_COMMAND, ...). */
export class MapBytesError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

export class ByteWriter {
  private buf: Uint8Array;
  private view: DataView;
  private pos = 0;

  /** `bytesMax`: the writer refuses to grow past this (throws MapBytesError with `code`). */
  constructor(private readonly bytesMax: number, private readonly code: string, bytesInitial = 256) {
    this.buf = new Uint8Array(Math.min(bytesInitial, bytesMax));
    this.view = new DataView(this.buf.buffer);
  }

  private room(n: number): number {
    const at = this.pos;
    if (at + n > this.buf.length) {
      if (at + n > this.bytesMax) throw new MapBytesError(this.code, `more than ${this.bytesMax} bytes`);
      const next = new Uint8Array(Math.min(this.bytesMax, Math.max(at + n, this.buf.length * 2)));
      next.set(this.buf.subarray(0, at));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    this.pos = at + n;
    return at;
  }

  // Each takes its place with room() before it reads this.view or this.buf, which room() may replace.
  u8(v: number): void {
    const at = this.room(1);
    this.view.setUint8(at, v);
  }

  u16(v: number): void {
    const at = this.room(2);
    this.view.setUint16(at, v, true);
  }

  u32(v: number): void {
    const at = this.room(4);
    this.view.setUint32(at, v, true);
  }

  u64(v: number): void {
    const at = this.room(8);
    this.view.setUint32(at, v % 0x1_0000_0000, true);
    this.view.setUint32(at + 4, Math.floor(v / 0x1_0000_0000), true);
  }

  bytes(b: Uint8Array): void {
    const at = this.room(b.length);
    this.buf.set(b, at);
  }

  /** A short text (at most 255 bytes of UTF-8), after its length in one byte. */
  text8(s: string): void {
    const b = textEncoder.encode(s);
    if (b.length > 0xff) throw new MapBytesError(this.code, `text of ${b.length} bytes, more than 255`);
    this.u8(b.length);
    this.bytes(b);
  }

  /** A text of at most 65,535 bytes of UTF-8, after its length in two bytes. */
  text16(s: string): void {
    const b = textEncoder.encode(s);
    if (b.length > 0xffff) throw new MapBytesError(this.code, `text of ${b.length} bytes, more than 65535`);
    this.u16(b.length);
    this.bytes(b);
  }

  /** What was written, as a copy of exactly its length. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

export class ByteReader {
  pos = 0;
  private readonly view: DataView;

  constructor(private readonly data: Uint8Array, private readonly code: string) {
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }

  fail(message: string): never {
    throw new MapBytesError(this.code, message);
  }

  private need(n: number): number {
    const at = this.pos;
    if (at + n > this.data.length) this.fail(`truncated at byte ${at} (needs ${n} more, has ${this.data.length - at})`);
    this.pos = at + n;
    return at;
  }

  /** Bytes left to read. */
  get left(): number {
    return this.data.length - this.pos;
  }

  u8(): number {
    return this.view.getUint8(this.need(1));
  }

  u16(): number {
    return this.view.getUint16(this.need(2), true);
  }

  u32(): number {
    return this.view.getUint32(this.need(4), true);
  }

  u64(): number {
    const at = this.need(8);
    const lo = this.view.getUint32(at, true);
    const hi = this.view.getUint32(at + 4, true);
    if (hi >= 0x20_0000) this.fail(`64-bit integer at byte ${at} is above 2^53`);
    return hi * 0x1_0000_0000 + lo;
  }

  text8(): string {
    return this.textOf(this.u8());
  }

  text16(): string {
    return this.textOf(this.u16());
  }

  private textOf(n: number): string {
    const at = this.need(n);
    try {
      return textDecoder.decode(this.data.subarray(at, at + n));
    } catch {
      return this.fail(`text at byte ${at} is not UTF-8`);
    }
  }

  /** Fails unless every byte was read. */
  end(): void {
    if (this.pos !== this.data.length) this.fail(`${this.data.length - this.pos} bytes after the end at byte ${this.pos}`);
  }
}
