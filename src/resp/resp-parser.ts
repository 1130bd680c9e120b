// Requests of Redis's protocol (RESP, issue 17), read from a byte stream as it arrives: a command
// is an array of bulk strings (`*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n`), or an inline command (a line of
// words, as typed into telnet: `PING\r\n`, `SET k "a b"\r\n`). Both RESP2 and RESP3 clients send
// commands this way; the versions differ only in replies (resp-writer.ts).
//
// Everything is bounded: the arguments of a command (argsMax), the bytes of one argument
// (bulkBytesMax) and of an inline line (inlineBytesMax). Input that breaks the grammar or a bound
// is a RespProtocolError: the stream cannot be resynchronised after it, so the connection answers
// `-ERR Protocol error: ...` and closes (never the process). The messages follow Redis's, so that
// clients and people who know them recognise them.

/** A request stream that broke the grammar or a bound: answer the message, then close. */
export class RespProtocolError extends Error {
  readonly code = 'RESP_PROTOCOL';
}

export interface RespParserLimits {
  /** Most arguments of one command (the name included). */
  argsMax: number;
  /** Most bytes of one bulk argument. */
  bulkBytesMax: number;
  /** Most bytes of an inline command's line, or of a `*`/`$` header line. */
  inlineBytesMax: number;
}

export const RESP_PARSER_DEFAULTS: RespParserLimits = {
  argsMax: 65_536,
  bulkBytesMax: 1 << 20,
  inlineBytesMax: 64 << 10,
};

const CR = 0x0d;
const LF = 0x0a;
const STAR = 0x2a;
const DOLLAR = 0x24;

/** What feed() found: the commands complete so far, each an array of its arguments' bytes. */
export type RespCommand = Buffer[];

export class RespParser {
  /** Bytes received and not yet parsed (the start of an incomplete command). */
  private pending: Buffer = Buffer.alloc(0);
  /** A multibulk command being read: its arguments so far and how many it has. */
  private args: Buffer[] | null = null;
  private argsWanted = 0;
  /** The length of the bulk argument whose bytes are awaited (-1: a `$` line is next). */
  private bulkLen = -1;

  constructor(private readonly limits: RespParserLimits = RESP_PARSER_DEFAULTS) {}

  /** Bytes held for a command not complete yet (what a connection buffers; bounded by the limits). */
  get bufferedBytes(): number {
    return this.pending.length;
  }

  /**
   * Takes the next bytes of the stream; returns the commands they complete, in order. The
   * arguments are slices of `chunk` (or of the parser's own copy of earlier bytes): valid as
   * long as the caller does not write into `chunk` (a socket's chunks are fresh memory each).
   * Throws RespProtocolError on input that breaks the grammar or a bound.
   */
  feed(chunk: Uint8Array): RespCommand[] {
    const buf = this.pending.length === 0 ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength) : Buffer.concat([this.pending, chunk]);
    const out: RespCommand[] = [];
    let at = 0;
    for (;;) {
      const next = this.step(buf, at, out);
      if (next < 0) break;
      at = next;
    }
    // Keep only what is not parsed, as a copy: the chunk's memory may be reused by the caller.
    this.pending = at >= buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(at));
    return out;
  }

  /** Parses one element at `at`; the offset after it, or -1 when more input is needed. */
  private step(buf: Buffer, at: number, out: RespCommand[]): number {
    if (at >= buf.length) return -1;
    const L = this.limits;
    if (this.args === null) {
      if (buf[at] !== STAR) return this.inline(buf, at, out);
      const line = lineEnd(buf, at, L.inlineBytesMax, 'too big mbulk count string');
      if (line < 0) return -1;
      const n = parseLength(buf, at + 1, line, 'invalid multibulk length');
      if (n > L.argsMax) throw new RespProtocolError(`Protocol error: invalid multibulk length (more than ${L.argsMax} arguments)`);
      // `*0` and `*-1` are no command: skipped, as Redis does.
      if (n > 0) {
        this.args = [];
        this.argsWanted = n;
        this.bulkLen = -1;
      }
      return line + 2;
    }
    if (this.bulkLen < 0) {
      if (buf[at] !== DOLLAR) throw new RespProtocolError(`Protocol error: expected '$', got '${printable(buf[at]!)}'`);
      const line = lineEnd(buf, at, L.inlineBytesMax, 'too big bulk count string');
      if (line < 0) return -1;
      const n = parseLength(buf, at + 1, line, 'invalid bulk length');
      if (n < 0 || n > L.bulkBytesMax) throw new RespProtocolError(`Protocol error: invalid bulk length${n > L.bulkBytesMax ? ` (more than ${L.bulkBytesMax} bytes)` : ''}`);
      this.bulkLen = n;
      return line + 2;
    }
    const end = at + this.bulkLen;
    if (end + 2 > buf.length) return -1;
    if (buf[end] !== CR || buf[end + 1] !== LF) throw new RespProtocolError('Protocol error: a bulk argument does not end with CRLF');
    this.args.push(buf.subarray(at, end));
    this.bulkLen = -1;
    if (this.args.length === this.argsWanted) {
      out.push(this.args);
      this.args = null;
    }
    return end + 2;
  }

  /** An inline command: one line of words; an empty line is skipped. */
  private inline(buf: Buffer, at: number, out: RespCommand[]): number {
    let nl = buf.indexOf(LF, at);
    if (nl < 0) {
      if (buf.length - at > this.limits.inlineBytesMax) throw new RespProtocolError('Protocol error: too big inline request');
      return -1;
    }
    if (nl - at > this.limits.inlineBytesMax) throw new RespProtocolError('Protocol error: too big inline request');
    const end = nl > at && buf[nl - 1] === CR ? nl - 1 : nl;
    const words = splitInline(buf, at, end);
    if (words.length > this.limits.argsMax) throw new RespProtocolError(`Protocol error: too many arguments in an inline request (more than ${this.limits.argsMax})`);
    if (words.length > 0) out.push(words);
    return ++nl;
  }
}

/** Where the CR of the line starting at `at` is; -1 if the line is not complete yet. */
function lineEnd(buf: Buffer, at: number, max: number, tooBig: string): number {
  const cr = buf.indexOf(CR, at);
  if (cr < 0 || cr + 1 >= buf.length) {
    if (buf.length - at > max) throw new RespProtocolError(`Protocol error: ${tooBig}`);
    return -1;
  }
  if (cr - at > max) throw new RespProtocolError(`Protocol error: ${tooBig}`);
  if (buf[cr + 1] !== LF) throw new RespProtocolError('Protocol error: a header line does not end with CRLF');
  return cr;
}

/** The decimal integer in buf[from, to) (an optional leading '-'), else a protocol error. */
function parseLength(buf: Buffer, from: number, to: number, what: string): number {
  let i = from;
  let neg = false;
  if (buf[i] === 0x2d) {
    neg = true;
    i++;
  }
  if (i >= to || to - i > 15) throw new RespProtocolError(`Protocol error: ${what}`);
  let n = 0;
  for (; i < to; i++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9) throw new RespProtocolError(`Protocol error: ${what}`);
    n = n * 10 + d;
  }
  return neg ? -n : n;
}

/**
 * The words of an inline line, as redis-cli and telnet users write them: separated by spaces or
 * tabs; "double quotes" with \n \r \t \b \a \\ \" and \xHH escapes; 'single quotes' with \' only.
 * A closing quote must be followed by a space or the end ("unbalanced quotes" otherwise).
 */
function splitInline(buf: Buffer, from: number, to: number): Buffer[] {
  const words: Buffer[] = [];
  let i = from;
  for (;;) {
    while (i < to && (buf[i] === 0x20 || buf[i] === 0x09)) i++;
    if (i >= to) return words;
    const q = buf[i];
    if (q !== 0x22 && q !== 0x27) {
      const start = i;
      while (i < to && buf[i] !== 0x20 && buf[i] !== 0x09) i++;
      words.push(Buffer.from(buf.subarray(start, i)));
      continue;
    }
    const bytes: number[] = [];
    i++;
    let closed = false;
    while (i < to) {
      const c = buf[i]!;
      if (q === 0x22 && c === 0x5c && i + 1 < to) {
        const e = buf[i + 1]!;
        if (e === 0x78 && i + 3 < to && isHex(buf[i + 2]!) && isHex(buf[i + 3]!)) {
          bytes.push(parseInt(String.fromCharCode(buf[i + 2]!, buf[i + 3]!), 16));
          i += 4;
          continue;
        }
        bytes.push(e === 0x6e ? 0x0a : e === 0x72 ? 0x0d : e === 0x74 ? 0x09 : e === 0x62 ? 0x08 : e === 0x61 ? 0x07 : e);
        i += 2;
        continue;
      }
      if (q === 0x27 && c === 0x5c && i + 1 < to && buf[i + 1] === 0x27) {
        bytes.push(0x27);
        i += 2;
        continue;
      }
      if (c === q) {
        closed = true;
        i++;
        break;
      }
      bytes.push(c);
      i++;
    }
    if (!closed || (i < to && buf[i] !== 0x20 && buf[i] !== 0x09)) throw new RespProtocolError('Protocol error: unbalanced quotes in request');
    words.push(Buffer.from(bytes));
  }
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

function printable(c: number): string {
  return c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`;
}
