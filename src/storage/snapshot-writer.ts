// Writing one snapshot: data streamed in (gathered into chunks of at most bytesPerChunkMax,
// or written straight from the caller's memory when a write fills a chunk), into a temporary
// file that `finish` makes durable under its final name; any failure leaves nothing behind.
import * as path from 'node:path';
import type { FileSystem } from '../io/file-system.js';
import { assert } from '../util/assert.js';
import type { SnapshotMeta } from '../raft/types.js';
import { crc32 } from './checksum.js';
import { copyMeta, frameBytes, trailerBytes, writeU64 } from './snapshot-format.js';
import { noop, unlinkIfExists, writeAll } from './snapshot-io.js';

/** What the writer needs of an open file (a subset of `fs.promises.FileHandle`). */
export interface SnapshotWriteFile {
  writev(buffers: Uint8Array[], position: number): Promise<{ bytesWritten: number }>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

export interface SnapshotWriter {
  readonly meta: SnapshotMeta;
  /** Appends data. Calls are queued and run in order; the chunk may be reused once the promise resolves. */
  write(chunk: Uint8Array): Promise<void>;
  /** Makes the snapshot durable under its final name, prunes old ones, and returns its meta. */
  finish(): Promise<SnapshotMeta>;
  /** Drops the unfinished snapshot. Safe to call at any time and more than once; a no-op after finish. */
  abort(): Promise<void>;
}

/** What a writer needs of its store: the file system, and pruning old snapshots after a finish. */
export interface SnapshotWriterHome {
  readonly fs: FileSystem;
  prune(group: number): Promise<void>;
}

type WriterState = 'open' | 'failed' | 'finished' | 'aborted';

export class Writer implements SnapshotWriter {
  /** Next file offset to write. */
  position = 0;
  private state: WriterState = 'open';
  private failure: unknown = null;
  private fileClosed = false;
  /** Operations run one after another in call order. Never rejects. */
  private queue: Promise<void> = Promise.resolve();
  /** Gathers small writes into one chunk: a frame header, then up to bytesPerChunkMax data bytes. */
  private buf: Buffer | null = null;
  private bufBytes = 0;
  private dataBytes = 0;
  private dataCrc = 0;

  constructor(
    private readonly store: SnapshotWriterHome,
    private readonly chunkMax: number,
    private readonly group: number,
    readonly meta: SnapshotMeta,
    private readonly file: SnapshotWriteFile,
    private readonly tempFile: string,
    private readonly finalFile: string,
  ) {}

  write(chunk: Uint8Array): Promise<void> {
    return this.enqueue(() => this.append(chunk));
  }

  finish(): Promise<SnapshotMeta> {
    return this.enqueue(async () => {
      await this.flush();
      const trailer = Buffer.alloc(trailerBytes);
      trailer.writeUInt32LE(0, 0);
      writeU64(trailer, 4, this.dataBytes);
      trailer.writeUInt32LE(this.dataCrc, 12);
      trailer.writeUInt32LE(crc32(trailer.subarray(0, 16)), 16);
      await writeAll(this.file, [trailer], this.position);
      this.position += trailerBytes;
      await this.file.sync();
      this.fileClosed = true;
      await this.file.close();
      await this.store.fs.promises.rename(this.tempFile, this.finalFile);
      await this.store.fs.promises.syncDir(path.dirname(this.finalFile));
      this.state = 'finished';
      // The snapshot is durable: failing to delete old ones must not make finish look failed.
      // They are retried by the next finish (or an explicit prune).
      await this.store.prune(this.group).catch(() => undefined);
      return copyMeta(this.meta);
    });
  }

  abort(): Promise<void> {
    const run = this.queue.then(async () => {
      if (this.state !== 'open') return;
      this.state = 'aborted';
      await this.discard();
    });
    this.queue = run;
    return run;
  }

  private enqueue<T>(op: () => Promise<T>): Promise<T> {
    const run = this.queue.then(async () => {
      if (this.state === 'failed') throw this.failure;
      assert(this.state === 'open', `snapshot writer for ${this.finalFile} used after it was ${this.state}`);
      try {
        return await op();
      } catch (err) {
        if (this.state === 'open') {
          // Full disk, I/O error: nothing may stay behind. The final name is written only by
          // the rename, so at most the temporary file exists; `open` removes it if we cannot.
          this.state = 'failed';
          this.failure = err;
          await this.discard();
        }
        throw err;
      }
    });
    this.queue = run.then(noop, noop);
    return run;
  }

  private async discard(): Promise<void> {
    if (!this.fileClosed) {
      this.fileClosed = true;
      await this.file.close().catch(noop);
    }
    await unlinkIfExists(this.store.fs, this.tempFile).catch(noop);
    this.buf = null;
  }

  private async append(chunk: Uint8Array): Promise<void> {
    let off = 0;
    while (off < chunk.length) {
      if (this.bufBytes === 0 && chunk.length - off >= this.chunkMax) {
        // A whole chunk straight from the caller's memory, without a copy.
        await this.writeFrame(chunk.subarray(off, off + this.chunkMax));
        off += this.chunkMax;
        continue;
      }
      const buf = (this.buf ??= Buffer.allocUnsafe(frameBytes + this.chunkMax));
      const n = Math.min(this.chunkMax - this.bufBytes, chunk.length - off);
      buf.set(chunk.subarray(off, off + n), frameBytes + this.bufBytes);
      this.bufBytes += n;
      off += n;
      if (this.bufBytes === this.chunkMax) await this.flush();
    }
  }

  private async flush(): Promise<void> {
    if (this.bufBytes === 0) return;
    const buf = this.buf;
    assert(buf !== null, 'snapshot writer: buffered bytes without a buffer');
    const data = buf.subarray(frameBytes, frameBytes + this.bufBytes);
    this.fillFrame(buf, data);
    await writeAll(this.file, [buf.subarray(0, frameBytes + data.length)], this.position);
    this.position += frameBytes + data.length;
    this.bufBytes = 0;
  }

  private async writeFrame(data: Uint8Array): Promise<void> {
    const frame = Buffer.allocUnsafe(frameBytes);
    this.fillFrame(frame, data);
    await writeAll(this.file, [frame, data], this.position);
    this.position += frameBytes + data.length;
  }

  /** Writes the frame header for `data` into `frame[0..8)` and counts `data` into the totals. */
  private fillFrame(frame: Buffer, data: Uint8Array): void {
    assert(data.length > 0 && data.length <= this.chunkMax, `snapshot chunk of ${data.length} bytes`);
    frame.writeUInt32LE(data.length, 0);
    frame.writeUInt32LE(crc32(data, crc32(frame.subarray(0, 4))), 4);
    this.dataCrc = crc32(data, this.dataCrc);
    this.dataBytes += data.length;
  }
}
