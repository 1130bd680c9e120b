// Cuts response frames out of a byte stream. Bounded: a frame longer than `frameBytesMax` is a
// malformed response, found from its header before its body is buffered. Whole frames inside
// one chunk are handed out in place; a frame split across chunks is joined once, when its last
// byte arrives, so a large frame costs one copy however many chunks it came in.
import { FRAME_HEADER_BYTES, FrameFlag, FrameKind, headerProblem } from '../protocol/client-frame.js';

const FLAGS_KNOWN = FrameFlag.Read | FrameFlag.Stale;

/** Receives one frame: `buf[at .. at + frameBytes)`. The bytes stay valid after the call. */
export type FrameHandler = (buf: Buffer, at: number, frameBytes: number) => void;

export class FrameReader {
  private parts: Buffer[] = [];
  private partsBytes = 0;
  private stopped = false;

  constructor(
    private readonly frameBytesMax: number,
    private readonly onFrame: FrameHandler,
    /** Called once with why the stream is malformed; the reader then stops. */
    private readonly onProblem: (why: string) => void,
  ) {}

  /** Drops buffered bytes and ignores what comes later (the connection is closing). */
  stop(): void {
    this.stopped = true;
    this.parts = [];
    this.partsBytes = 0;
  }

  /** Bytes held back: the start of a frame whose end has not arrived. */
  get bufferedBytes(): number {
    return this.partsBytes;
  }

  push(chunk: Buffer): void {
    if (this.stopped || chunk.length === 0) return;
    let buf: Buffer;
    if (this.partsBytes === 0) {
      buf = chunk;
    } else {
      this.parts.push(chunk);
      this.partsBytes += chunk.length;
      if (this.partsBytes < FRAME_HEADER_BYTES) return;
      if (this.parts[0]!.length < FRAME_HEADER_BYTES) this.parts = [Buffer.concat(this.parts, this.partsBytes)];
      const head = this.parts[0]!;
      if (!this.headerOk(head, 0)) return;
      if (this.partsBytes < head.readUInt32LE(0)) return;
      buf = this.parts.length === 1 ? head : Buffer.concat(this.parts, this.partsBytes);
      this.parts = [];
      this.partsBytes = 0;
    }
    let at = 0;
    while (buf.length - at >= FRAME_HEADER_BYTES) {
      if (!this.headerOk(buf, at)) return;
      const n = buf.readUInt32LE(at);
      if (buf.length - at < n) break;
      this.onFrame(buf, at, n);
      if (this.stopped) return;
      at += n;
    }
    if (at < buf.length) {
      this.parts = [buf.subarray(at)];
      this.partsBytes = buf.length - at;
    }
  }

  private headerOk(buf: Buffer, at: number): boolean {
    // The common case checked inline; headerProblem (the shared rule) says what is wrong.
    const n = buf.readUInt32LE(at);
    const kind = buf[at + 4]!;
    const fine =
      n >= FRAME_HEADER_BYTES &&
      n <= this.frameBytesMax &&
      (kind === FrameKind.Result || kind === FrameKind.Error || kind === FrameKind.Pong || kind === FrameKind.AdminResult || kind === FrameKind.Map) &&
      (buf[at + 5]! & ~FLAGS_KNOWN) === 0 &&
      buf[at + 6] === 0 &&
      buf[at + 7] === 0;
    if (fine) return true;
    const why = headerProblem(buf, at, this.frameBytesMax, false) ?? 'malformed header';
    this.stop();
    this.onProblem(why);
    return false;
  }
}
