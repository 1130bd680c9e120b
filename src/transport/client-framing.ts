// Client framing: cutting request frames off a byte stream (FrameReader, TCP), checking a
// header as its bytes arrive, checking that a WebSocket message is exactly one frame, and the
// Error frame a listener answers with. The header layout itself is src/protocol/client-frame.ts;
// nothing here decodes a frame body.

import { pack } from 'msgpackr';
import {
  encodeFrame, FRAME_HEADER_BYTES, FrameKind, headerProblem, type ErrorBody, type ProtocolErrorCode,
} from '../protocol/client-frame.js';
import { ASSEMBLY_BYTES_MIN, ASSEMBLY_KEEP_BYTES_MAX } from './listener-limits.js';

/** A whole Error frame for `requestId`, group 0, body msgpack `{ code, message }`. */
export function errorFrame(code: ProtocolErrorCode, message: string, requestId: number): Uint8Array {
  return encodeFrame(FrameKind.Error, 0, requestId >>> 0, 0, pack({ code, message } satisfies ErrorBody) as Uint8Array);
}

/** The requestId of a frame that may be cut short: 0 unless its first 12 bytes are there. */
export function requestIdOf(buf: Uint8Array, at: number, have: number): number {
  if (have < 12) return 0;
  return (buf[at + 8]! | (buf[at + 9]! << 8) | (buf[at + 10]! << 16) | (buf[at + 11]! << 24)) >>> 0;
}

function u32At(buf: Uint8Array, at: number): number {
  return (buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16) | (buf[at + 3]! << 24)) >>> 0;
}

// A scratch header for checking the first bytes of a header before all 16 have arrived.
const scratch = new Uint8Array(FRAME_HEADER_BYTES);

/**
 * Why the first `have` (< 16) bytes of a header already make it malformed, or null. The bytes
 * not there yet are taken as ones that would pass (each field is judged once its bytes are all
 * there, the reserved u16 byte by byte), so a peer that sends a bad length and waits is
 * answered at once instead of holding the connection.
 */
export function partialHeaderProblem(buf: Uint8Array, at: number, have: number, frameBytesMax: number): string | null {
  // Below 4 bytes the length is not known: its upper bytes may still make any value.
  if (have < 4) return null;
  scratch.fill(0);
  scratch[0] = FRAME_HEADER_BYTES; // frameBytes 16 (the upper bytes are 0), kind Command
  scratch[4] = FrameKind.Command;
  for (let i = 0; i < have; i++) scratch[i] = buf[at + i]!;
  return headerProblem(scratch, 0, frameBytesMax, true);
}

/** Why a WebSocket message is not exactly one well-formed request frame, or null. */
export function messageProblem(buf: Uint8Array, at: number, bytes: number, frameBytesMax: number): string | null {
  if (bytes < FRAME_HEADER_BYTES) return `message of ${bytes} bytes is shorter than a frame header`;
  const problem = headerProblem(buf, at, frameBytesMax, true);
  if (problem !== null) return problem;
  const frameBytes = u32At(buf, at);
  if (frameBytes !== bytes) return `message of ${bytes} bytes carries a frame of ${frameBytes} bytes`;
  return null;
}

/** Throws unless `bytes` is a run of whole frames (what a WebSocket send needs). */
export function assertWholeFrames(bytes: Uint8Array): void {
  let at = 0;
  while (at < bytes.length) {
    const frameBytes = at + 4 <= bytes.length ? u32At(bytes, at) : 0;
    if (frameBytes < FRAME_HEADER_BYTES || frameBytes > bytes.length - at) {
      throw new Error(`send(): ${bytes.length} bytes are not whole frames (at ${at}: frameBytes ${frameBytes})`);
    }
    at += frameBytes;
  }
}

/** The length of the frame at `at` (for splitting output checked by assertWholeFrames). */
export function frameBytesAt(buf: Uint8Array, at: number): number {
  return u32At(buf, at);
}

/** Where a frame reader hands what it finds. */
export interface FrameSink {
  /** True: stop before the next frame (the reader reports where it stopped). */
  readonly readerPaused: boolean;
  frame(buf: Uint8Array, at: number, frameBytes: number): void;
  /** A malformed header; the reader stops for good. */
  bad(problem: string, requestId: number): void;
}

/**
 * Cuts a byte stream into frames. A frame inside one chunk is handed over in place; a frame that
 * spans chunks is assembled in a buffer of the length its checked header gives (never more than
 * frameBytesMax). Headers are checked as their bytes arrive, so a bad length is caught early.
 */
export class FrameReader {
  private asm: Buffer | null = null;
  /** Bytes of the frame being assembled so far (0: none). */
  private asmHave = 0;
  /** Its length once its header is complete, else 0. */
  private asmNeed = 0;
  private broken = false;
  private readonly header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);

  constructor(private readonly frameBytesMax: number, private readonly sink: FrameSink) {}

  /**
   * Frames that began in one chunk and had to wait for the next: with partialBytes, it tells a
   * read-timeout sweep whether the frame held now is the one it saw held before.
   */
  partials = 0;

  /** Bytes held for a frame not yet complete. */
  get partialBytes(): number {
    return this.asmHave;
  }

  /**
   * Reads chunk[at..]. Returns where it stopped: chunk.length when all was taken, less when the
   * sink paused (the caller feeds the rest later) or a bad frame stopped the reader.
   */
  consume(chunk: Uint8Array, at: number): number {
    const end = chunk.length;
    const max = this.frameBytesMax;
    while (at < end) {
      if (this.broken || this.sink.readerPaused) return at;
      if (this.asmHave > 0) {
        at = this.assemble(chunk, at);
        continue;
      }
      const have = end - at;
      if (have < FRAME_HEADER_BYTES) {
        const problem = partialHeaderProblem(chunk, at, have, max);
        if (problem !== null) return this.fail(problem, requestIdOf(chunk, at, have), at);
        this.header.set(chunk.subarray(at, end), 0);
        this.asmHave = have;
        this.partials++;
        return end;
      }
      const problem = headerProblem(chunk, at, max, true);
      if (problem !== null) return this.fail(problem, requestIdOf(chunk, at, have), at);
      const frameBytes = u32At(chunk, at);
      if (frameBytes <= have) {
        this.sink.frame(chunk, at, frameBytes);
        at += frameBytes;
        continue;
      }
      this.startAssembly(frameBytes);
      this.asm!.set(chunk.subarray(at, end), 0);
      this.asmHave = have;
      this.partials++;
      return end;
    }
    return at;
  }

  /** Continues a frame that started in an earlier chunk; returns the new offset. */
  private assemble(chunk: Uint8Array, at: number): number {
    const end = chunk.length;
    if (this.asmNeed === 0) {
      // The header is still incomplete: it sits in `this.header`.
      const take = Math.min(FRAME_HEADER_BYTES - this.asmHave, end - at);
      this.header.set(chunk.subarray(at, at + take), this.asmHave);
      this.asmHave += take;
      at += take;
      if (this.asmHave < FRAME_HEADER_BYTES) {
        const problem = partialHeaderProblem(this.header, 0, this.asmHave, this.frameBytesMax);
        if (problem !== null) return this.fail(problem, requestIdOf(this.header, 0, this.asmHave), end);
        return at;
      }
      const problem = headerProblem(this.header, 0, this.frameBytesMax, true);
      if (problem !== null) return this.fail(problem, requestIdOf(this.header, 0, FRAME_HEADER_BYTES), end);
      const frameBytes = u32At(this.header, 0);
      if (frameBytes === FRAME_HEADER_BYTES) {
        this.asmHave = 0;
        this.sink.frame(this.header, 0, frameBytes);
        return at;
      }
      this.startAssembly(frameBytes);
      this.asm!.set(this.header, 0);
    }
    const take = Math.min(this.asmNeed - this.asmHave, end - at);
    this.asm!.set(chunk.subarray(at, at + take), this.asmHave);
    this.asmHave += take;
    at += take;
    if (this.asmHave === this.asmNeed) {
      const frame = this.asm!;
      const frameBytes = this.asmNeed;
      this.asmHave = 0;
      this.asmNeed = 0;
      // Keep a small assembly buffer for the next spanning frame; let a large one go.
      if (frame.length > ASSEMBLY_KEEP_BYTES_MAX) this.asm = null;
      this.sink.frame(frame, 0, frameBytes);
    }
    return at;
  }

  /** `frameBytes` has been checked against frameBytesMax by headerProblem. */
  private startAssembly(frameBytes: number): void {
    if (this.asm === null || this.asm.length < frameBytes) this.asm = Buffer.allocUnsafe(Math.max(frameBytes, ASSEMBLY_BYTES_MIN));
    this.asmNeed = frameBytes;
  }

  private fail(problem: string, requestId: number, at: number): number {
    this.broken = true;
    this.asm = null;
    this.asmHave = 0;
    this.sink.bad(problem, requestId);
    return at;
  }
}
