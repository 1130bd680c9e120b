// The bounds-checked reader of the KV layout's fields (kv-command.ts): the state machine reads
// every command, and its snapshot image, through one of these, so it is on the apply hot path
// and kept to plain field reads (bytes read in place, no view and no allocation per command or field).
import { isUtf8 } from 'node:buffer';
import { keyBytesMax, KvError, valueBytesMax, type KvErrorCode } from './kv-types.js';

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
/** Fields up to this many bytes are checked for ASCII in place before isUtf8 is asked. */
const SPAN_ASCII_CHECK_MAX = 64;

/**
 * Reads the fields of the layout above, bounds checked; every problem is a KvError with the
 * reader's code (the state machine's snapshot image reads keys and values the same way).
 */
export class KvReader {
  pos = 0;
  private data: Uint8Array;

  constructor(data: Uint8Array, private readonly code: KvErrorCode) {
    this.data = data;
  }

  /** Reads `data` from its start (the state machine keeps one reader for every command). */
  reset(data: Uint8Array): void {
    this.data = data;
    this.pos = 0;
  }

  private need(n: number): void {
    if (this.pos + n > this.data.length) throw new KvError(this.code, `truncated at byte ${this.pos}`);
  }

  done(): boolean {
    return this.pos === this.data.length;
  }

  peek(): number {
    this.need(1);
    return this.data[this.pos]!;
  }

  u8(): number {
    this.need(1);
    return this.data[this.pos++]!;
  }

  u16(): number {
    this.need(2);
    const d = this.data;
    const v = (d[this.pos]! << 8) | d[this.pos + 1]!;
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const d = this.data;
    const at = this.pos;
    const v = ((d[at]! << 24) | (d[at + 1]! << 16) | (d[at + 2]! << 8) | d[at + 3]!) >>> 0;
    this.pos += 4;
    return v;
  }

  private str(n: number): string {
    this.need(n);
    const b = this.data.subarray(this.pos, this.pos + n);
    this.pos += n;
    try {
      return utf8Decoder.decode(b);
    } catch {
      throw new KvError(this.code, `invalid UTF-8 at byte ${this.pos - n}`);
    }
  }


  /** `n` bytes checked as UTF-8, skipped; they are data[pos - n, pos) after. */
  private span(n: number): number {
    this.need(n);
    const at = this.pos;
    const d = this.data;
    // Short ASCII fields (most keys) are checked here: a view for isUtf8 costs more than they do.
    let ascii = n <= SPAN_ASCII_CHECK_MAX;
    if (ascii) {
      let any = 0;
      for (let i = at, end = at + n; i < end; i++) any |= d[i]!;
      ascii = any < 0x80;
    }
    // A plain view for isUtf8 (d.subarray of a Buffer would make a Buffer: slower to make).
    if (!ascii && !isUtf8(new Uint8Array(d.buffer, d.byteOffset + at, n))) throw new KvError(this.code, `invalid UTF-8 at byte ${at}`);
    this.pos += n;
    return n;
  }

  /** A key's length prefix, within its bound. */
  private keyLength(): number {
    const n = this.u16();
    if (n > keyBytesMax) throw new KvError(this.code, `key of ${n} bytes exceeds ${keyBytesMax}`);
    return n;
  }

  /** A value's length prefix, within its bound. */
  private valueLength(): number {
    const n = this.u32();
    if (n > valueBytesMax) throw new KvError(this.code, `value of ${n} bytes exceeds ${valueBytesMax}`);
    return n;
  }

  /** A key, checked as key() checks it, left in place: its length; it ends at `pos`. */
  keySpan(): number {
    return this.span(this.keyLength());
  }

  /** A value, checked as value() checks it, left in place: its length; it ends at `pos`. */
  valueSpan(): number {
    return this.span(this.valueLength());
  }

  key(): string {
    return this.str(this.keyLength());
  }

  value(): string {
    return this.str(this.valueLength());
  }
}
