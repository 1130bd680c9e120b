// Replies of Redis's protocol, RESP2 or RESP3 (what a connection's HELLO chose), appended to an
// output buffer that grows as needed and is handed to the socket whole. Where RESP3 has a type
// of its own (null, map, boolean, double, verbatim...), RESP2 gets what Redis gives RESP2
// clients: $-1 for a null string, *-1 for a null array, an array of pairs for a map, 1/0 for a
// boolean, a bulk string for a double.

const CRLF = '\r\n';

export class RespWriter {
  private buf: Buffer;
  private at = 0;

  /** `resp3`: the connection said HELLO 3. */
  constructor(public resp3 = false, initialBytes = 4096) {
    this.buf = Buffer.allocUnsafe(initialBytes);
  }

  /** Bytes written and not yet taken. */
  get length(): number {
    return this.at;
  }

  /** Everything written so far, as one buffer (a copy), and the writer empty again. */
  take(): Buffer {
    const out = Buffer.from(this.buf.subarray(0, this.at));
    this.at = 0;
    return out;
  }

  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n));
    this.buf.copy(grown, 0, 0, this.at);
    this.buf = grown;
  }

  private ascii(s: string): void {
    this.room(s.length);
    this.at += this.buf.write(s, this.at, 'latin1');
  }

  /** +OK: a status without CR or LF in it. */
  simple(s: string): void {
    this.ascii(`+${s.replace(/[\r\n]/g, ' ')}${CRLF}`);
  }

  /** -ERR ...: `message` starts with its code (ERR, WRONGTYPE, MOVED, ...); CR and LF become spaces. */
  error(message: string): void {
    const text = Buffer.from(message.replace(/[\r\n]/g, ' '), 'utf8');
    this.room(text.length + 3);
    this.buf[this.at++] = 0x2d;
    text.copy(this.buf, this.at);
    this.at += text.length;
    this.ascii(CRLF);
  }

  integer(n: number): void {
    this.ascii(`:${Math.trunc(n)}${CRLF}`);
  }

  /** A bulk string of these bytes (or of a string's UTF-8 bytes); null: the null string. */
  bulk(v: Uint8Array | string | null): void {
    if (v === null) {
      this.nil();
      return;
    }
    const bytes = typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
    this.ascii(`$${bytes.length}${CRLF}`);
    this.room(bytes.length + 2);
    this.buf.set(bytes, this.at);
    this.at += bytes.length;
    this.ascii(CRLF);
  }

  /** The null string: RESP3 `_`, RESP2 `$-1`. */
  nil(): void {
    this.ascii(this.resp3 ? `_${CRLF}` : `$-1${CRLF}`);
  }

  /** The null array: RESP3 `_`, RESP2 `*-1`. */
  nilArray(): void {
    this.ascii(this.resp3 ? `_${CRLF}` : `*-1${CRLF}`);
  }

  /** The header of an array of `n` elements (write them next). */
  array(n: number): void {
    this.ascii(`*${n}${CRLF}`);
  }

  /** The header of a map of `n` pairs (write 2n elements next): RESP2 sees an array of 2n. */
  map(n: number): void {
    this.ascii(this.resp3 ? `%${n}${CRLF}` : `*${2 * n}${CRLF}`);
  }

  /** The header of a set of `n` elements: RESP2 sees an array. */
  set(n: number): void {
    this.ascii(this.resp3 ? `~${n}${CRLF}` : `*${n}${CRLF}`);
  }

  bool(b: boolean): void {
    this.ascii(this.resp3 ? `#${b ? 't' : 'f'}${CRLF}` : `:${b ? 1 : 0}${CRLF}`);
  }

  /** A double: RESP3 `,`, RESP2 a bulk string of its decimal form. */
  double(x: number): void {
    const s = Number.isFinite(x) ? String(x) : x > 0 ? 'inf' : x < 0 ? '-inf' : 'nan';
    if (this.resp3) this.ascii(`,${s}${CRLF}`);
    else this.bulk(s);
  }

  /** Text for people (INFO, CLIENT LIST): RESP3 a verbatim string of format txt, RESP2 a bulk string. */
  verbatim(text: string): void {
    if (!this.resp3) {
      this.bulk(text);
      return;
    }
    const bytes = Buffer.from(text, 'utf8');
    this.ascii(`=${bytes.length + 4}${CRLF}txt:`);
    this.room(bytes.length + 2);
    bytes.copy(this.buf, this.at);
    this.at += bytes.length;
    this.ascii(CRLF);
  }
}
