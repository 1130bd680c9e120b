// Durable snapshots of each group's state machine, one file per snapshot.
//
// Files live in `<dir>/group-<id>/snapshot-<index>-<term>`, index and term zero-padded to 20
// digits so that names sort by index. A snapshot is streamed into a temporary file
// (`.tmp-snapshot-…`) in the same directory, fsynced, renamed to its final name and the
// directory fsynced: a crash leaves either the whole snapshot under its final name or nothing
// there, and `SnapshotStore.open` deletes the temporary files a crash left behind. One store
// owns a directory (a shard worker's); two stores on one directory would delete each other's
// unfinished files when they open.
//
// File layout, all integers little-endian:
//
//   header
//     0   8  magic "FLOTSNAP"
//     8   4  u32 format version (1)
//    12   4  u32 bytesPerChunkMax of the writer (chunk lengths are checked against it)
//    16   8  u64 index
//    24   8  u64 term
//    32  16  u32 × 4 counts of voters, votersOutgoing, learners, learnersNext
//    48  4k  u32 node ids of those four lists, in that order (k = sum of the counts)
//    ..   4  u32 CRC-32 of every header byte before it
//   chunks, zero or more, each
//     0   4  u32 data length n, 1 ≤ n ≤ bytesPerChunkMax
//     4   4  u32 CRC-32 of the 4 length bytes followed by the n data bytes
//     8   n  state-machine data
//   trailer (20 bytes)
//     0   4  u32 0: the end marker (no chunk is empty)
//     4   8  u64 total data bytes in all chunks
//    12   4  u32 CRC-32 of all data, as one stream
//    16   4  u32 CRC-32 of the 16 trailer bytes before it
//   and nothing after it.
//
// Every byte is under a CRC or checked against the file's size, so truncation and bit flips are
// reported as a `SnapshotCorruptError` naming the file and the offset of the structure that
// failed (the header, a chunk or the trailer). The whole-data CRC and length in the trailer catch
// chunks that are individually intact but missing, repeated or reordered.
//
// `latest()` picks the newest snapshot by name and reads only its header (it must, for the
// ConfState); it does not read the data, and it does not skip a corrupt snapshot in favour of an
// older one: a group whose log was compacted up to the newest snapshot cannot be rebuilt from an
// older one, so quietly falling back would serve wrong data. A corrupt header makes `latest()`
// throw; corrupt data is reported by the reader (`chunks()`, `readAll`). Either way the caller
// decides (typically: stop, or discard the group's state and fetch a snapshot from the leader).

import * as path from 'node:path';
import { nodeFileSystem, type FileHandle, type FileSystem } from '../io/file-system.js';
import { assert } from '../util/assert.js';
import type { ConfState, NodeId, Snapshot, SnapshotMeta } from '../raft/types.js';
import { crc32 } from './checksum.js';

export const snapshotFormatVersion = 1;
/** The most a writer may put in one chunk, whatever it is configured with; bounds what a reader allocates per chunk. */
export const bytesPerChunkLimit = 64 << 20;
/** The most node ids a ConfState may hold (all four lists together). */
export const confIdsMax = 4096;

const magic = Buffer.from('FLOTSNAP', 'latin1');
const headerFixedBytes = 48;
const frameBytes = 8;
const trailerBytes = 20;
const u32Limit = 2 ** 32;
const namePattern = /^snapshot-(\d{20})-(\d{20})$/;
const groupPattern = /^group-(0|[1-9]\d*)$/;
const tempPrefix = '.tmp-';
/** Attempts to open the newest snapshot when a concurrent prune deletes it under us. */
const openAttemptsMax = 3;

export interface SnapshotStoreOptions {
  /** Data bytes per chunk; larger writes are split, smaller ones gathered. */
  bytesPerChunkMax: number;
  /** Snapshots kept per group after a successful finish (the newest by index). */
  maxKeepSnapshots: number;
  /** The largest snapshot `readAll` loads into memory; larger ones must be streamed. */
  bytesReadAllMax: number;
  /** The file system (node's own unless a simulator passes its). */
  fs: FileSystem;
  /** Opens a new file for writing. A seam for fault injection in tests; defaults to `fs.promises.open(file, 'wx')`. */
  openFileForWrite: ((file: string) => Promise<SnapshotWriteFile>) | null;
}

export const snapshotStoreDefaults: Readonly<SnapshotStoreOptions> = {
  bytesPerChunkMax: 1 << 20,
  maxKeepSnapshots: 2,
  bytesReadAllMax: 256 << 20,
  fs: nodeFileSystem,
  openFileForWrite: null,
};

/** What the writer needs of an open file (a subset of `fs.promises.FileHandle`). */
export interface SnapshotWriteFile {
  writev(buffers: Uint8Array[], position: number): Promise<{ bytesWritten: number }>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

/** A snapshot file found by its name; nothing in it has been read. */
export interface SnapshotFileInfo {
  index: number;
  term: number;
  file: string;
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

export interface SnapshotReader {
  readonly meta: SnapshotMeta;
  readonly file: string;
  readonly fileBytes: number;
  /**
   * The data, chunk by chunk, each verified before it is yielded. The stream as a whole is
   * verified only when the iteration ends without throwing: treat what came before as
   * provisional. May be iterated once; closes the file when it ends, throws or is broken off.
   */
  chunks(): AsyncIterable<Uint8Array>;
  /** Closes the file. Safe to call more than once. */
  close(): Promise<void>;
}

/** A snapshot file failed verification. `offset` is where the failing structure starts. */
export class SnapshotCorruptError extends Error {
  readonly code = 'SNAPSHOT_CORRUPT';
  constructor(readonly file: string, readonly offset: number, readonly reason: string) {
    super(`snapshot file ${file} is corrupt at offset ${offset}: ${reason}`);
    this.name = 'SnapshotCorruptError';
  }
}

/** `readAll` was asked for a snapshot larger than `bytesReadAllMax`. */
export class SnapshotTooLargeError extends Error {
  readonly code = 'SNAPSHOT_TOO_LARGE';
  constructor(readonly file: string, readonly bytes: number, readonly bytesMax: number) {
    super(`snapshot file ${file} holds up to ${bytes} data bytes, more than readAll loads (${bytesMax}); stream it`);
    this.name = 'SnapshotTooLargeError';
  }
}

export function snapshotFileName(index: number, term: number): string {
  return `snapshot-${String(index).padStart(20, '0')}-${String(term).padStart(20, '0')}`;
}

export class SnapshotStore {
  private constructor(readonly dir: string, readonly options: Readonly<SnapshotStoreOptions>) {}

  /** Opens (creating if needed) the store in `dir` and deletes temporary files left by a crash. */
  static async open(dir: string, options: Partial<SnapshotStoreOptions> = {}): Promise<SnapshotStore> {
    const opts: SnapshotStoreOptions = { ...snapshotStoreDefaults, ...options };
    checkIntegerIn('bytesPerChunkMax', opts.bytesPerChunkMax, 1, bytesPerChunkLimit);
    checkIntegerIn('maxKeepSnapshots', opts.maxKeepSnapshots, 1, 1 << 20);
    checkIntegerIn('bytesReadAllMax', opts.bytesReadAllMax, 0, Number.MAX_SAFE_INTEGER);
    const store = new SnapshotStore(path.resolve(dir), opts);
    await mkdirDurable(store.fs, store.dir);
    for (const group of await store.groups()) {
      const groupDir = store.groupDir(group);
      let removed = 0;
      for (const name of await readdirOrEmpty(store.fs, groupDir)) {
        if (!name.startsWith(tempPrefix)) continue;
        await unlinkIfExists(store.fs, path.join(groupDir, name));
        removed++;
      }
      if (removed > 0) await store.fs.promises.syncDir(groupDir);
    }
    return store;
  }

  get fs(): FileSystem {
    return this.options.fs;
  }

  /** Ids of the groups that have a snapshot directory, ascending. */
  async groups(): Promise<number[]> {
    const ids: number[] = [];
    for (const name of await readdirOrEmpty(this.fs, this.dir)) {
      const m = groupPattern.exec(name);
      if (m === null) continue;
      const id = Number(m[1]);
      if (Number.isSafeInteger(id)) ids.push(id);
    }
    return ids.sort((a, b) => a - b);
  }

  /** The group's finished snapshot files, oldest first (by index, then term). Reads names only. */
  async list(group: number): Promise<SnapshotFileInfo[]> {
    const groupDir = this.groupDir(group);
    const found: SnapshotFileInfo[] = [];
    for (const name of await readdirOrEmpty(this.fs, groupDir)) {
      const m = namePattern.exec(name);
      if (m === null) continue;
      const index = Number(m[1]);
      const term = Number(m[2]);
      if (!Number.isSafeInteger(index) || !Number.isSafeInteger(term)) continue;
      found.push({ index, term, file: path.join(groupDir, name) });
    }
    return found.sort((a, b) => a.index - b.index || a.term - b.term);
  }

  /**
   * The meta of the newest snapshot by index, or null if the group has none. Reads and verifies
   * the header only; a corrupt header throws `SnapshotCorruptError` (see the top of this file).
   */
  async latest(group: number): Promise<SnapshotMeta | null> {
    const reader = await this.openReader(group);
    if (reader === null) return null;
    await reader.close();
    return reader.meta;
  }

  /** Starts a snapshot. Nothing is visible under a final name until `finish` resolves. */
  async createWriter(group: number, meta: SnapshotMeta): Promise<SnapshotWriter> {
    const groupDir = this.groupDir(group);
    const header = encodeHeader(meta, this.options.bytesPerChunkMax);
    const own = copyMeta(meta);
    await mkdirDurable(this.fs, groupDir);
    const name = snapshotFileName(own.index, own.term);
    const tempFile = path.join(groupDir, `${tempPrefix}${name}-${process.pid}-${++tempSeq}`);
    const open = this.options.openFileForWrite;
    const file = open !== null ? await open(tempFile) : await this.fs.promises.open(tempFile, 'wx');
    const writer = new Writer(this, group, own, file, tempFile, path.join(groupDir, name));
    try {
      await writeAll(file, [header], 0);
    } catch (err) {
      await writer.abort();
      throw err;
    }
    writer.position = header.length;
    return writer;
  }

  /**
   * Opens a snapshot for streaming: the newest when `index` is omitted, else the one at `index`
   * (and `term`, if given; else the highest term at that index). Null if there is none. Reads and
   * verifies the header; the data is verified as it streams.
   */
  async openReader(group: number, index?: number, term?: number): Promise<SnapshotReader | null> {
    assert(term === undefined || index !== undefined, 'openReader: a term needs an index');
    if (index !== undefined && term !== undefined) {
      try {
        return await openSnapshotFile(this.fs, path.join(this.groupDir(group), snapshotFileName(index, term)), index, term);
      } catch (err) {
        if (errorCode(err) === 'ENOENT') return null;
        throw err;
      }
    }
    for (let attempt = 1; ; attempt++) {
      const all = await this.list(group);
      const candidates = index === undefined ? all : all.filter((s) => s.index === index);
      const pick = candidates.at(-1);
      if (pick === undefined) return null;
      try {
        return await openSnapshotFile(this.fs, pick.file, pick.index, pick.term);
      } catch (err) {
        // A finish on another writer may have pruned it between the listing and the open.
        if (errorCode(err) !== 'ENOENT' || attempt >= openAttemptsMax) throw err;
      }
    }
  }

  /** Writes a whole snapshot held in memory. */
  async write(group: number, meta: SnapshotMeta, data: Uint8Array): Promise<SnapshotMeta> {
    const writer = await this.createWriter(group, meta);
    try {
      await writer.write(data);
      return await writer.finish();
    } catch (err) {
      await writer.abort();
      throw err;
    }
  }

  /** Reads and verifies a whole snapshot (chosen as by `openReader`) into memory; null if there is none. */
  async readAll(group: number, index?: number, term?: number): Promise<Snapshot | null> {
    const reader = await this.openReader(group, index, term);
    if (reader === null) return null;
    try {
      const bytesDataMax = reader.fileBytes - headerBytes(reader.meta.conf) - trailerBytes;
      if (bytesDataMax > this.options.bytesReadAllMax) {
        throw new SnapshotTooLargeError(reader.file, bytesDataMax, this.options.bytesReadAllMax);
      }
      const parts: Uint8Array[] = [];
      let bytes = 0;
      for await (const chunk of reader.chunks()) {
        parts.push(chunk);
        bytes += chunk.length;
      }
      if (parts.length === 1) return { meta: reader.meta, data: parts[0]! };
      const data = new Uint8Array(bytes);
      let at = 0;
      for (const part of parts) {
        data.set(part, at);
        at += part.length;
      }
      return { meta: reader.meta, data };
    } finally {
      await reader.close();
    }
  }

  /** Deletes every snapshot of the group, finished or not. */
  async removeGroup(group: number): Promise<void> {
    await this.fs.promises.rmTree(this.groupDir(group));
    await this.fs.promises.syncDir(this.dir);
  }

  /**
   * Keeps the newest `maxKeepSnapshots` of the group and deletes the rest. Deleting need not be
   * durable: a file that comes back after a crash is a complete older snapshot, pruned next time.
   */
  async prune(group: number): Promise<void> {
    const all = await this.list(group);
    for (const old of all.slice(0, Math.max(0, all.length - this.options.maxKeepSnapshots))) {
      await unlinkIfExists(this.fs, old.file);
    }
  }

  private groupDir(group: number): string {
    assert(Number.isSafeInteger(group) && group >= 0, `group id must be a non-negative integer, got ${group}`);
    return path.join(this.dir, `group-${group}`);
  }
}

let tempSeq = 0;

type WriterState = 'open' | 'failed' | 'finished' | 'aborted';

class Writer implements SnapshotWriter {
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
  private readonly chunkMax: number;

  constructor(
    private readonly store: SnapshotStore,
    private readonly group: number,
    readonly meta: SnapshotMeta,
    private readonly file: SnapshotWriteFile,
    private readonly tempFile: string,
    private readonly finalFile: string,
  ) {
    this.chunkMax = store.options.bytesPerChunkMax;
  }

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

class Reader implements SnapshotReader {
  private streamed = false;
  private closed = false;

  constructor(
    readonly meta: SnapshotMeta,
    readonly file: string,
    readonly fileBytes: number,
    private readonly fh: FileHandle,
    private readonly dataStart: number,
    private readonly chunkMax: number,
  ) {}

  chunks(): AsyncIterable<Uint8Array> {
    assert(!this.streamed, `snapshot reader for ${this.file}: chunks() may be iterated once`);
    this.streamed = true;
    return this.stream();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close();
  }

  private async *stream(): AsyncGenerator<Uint8Array> {
    try {
      const { file, fileBytes } = this;
      const frame = Buffer.alloc(trailerBytes);
      let pos = this.dataStart;
      let dataBytes = 0;
      let dataCrc = 0;
      for (;;) {
        assert(!this.closed, `snapshot reader for ${file} closed while streaming`);
        await readAt(this.fh, file, fileBytes, frame, frameBytes, pos, 'a chunk header');
        const length = frame.readUInt32LE(0);
        if (length === 0) break;
        if (length > this.chunkMax) {
          throw new SnapshotCorruptError(file, pos, `chunk length ${length} exceeds the writer's bound of ${this.chunkMax}`);
        }
        const data = new Uint8Array(length);
        await readAt(this.fh, file, fileBytes, data, length, pos + frameBytes, 'chunk data', pos);
        const crcStored = frame.readUInt32LE(4);
        const crcActual = crc32(data, crc32(frame.subarray(0, 4)));
        if (crcStored !== crcActual) {
          throw new SnapshotCorruptError(file, pos, `chunk CRC mismatch (stored ${hex(crcStored)}, computed ${hex(crcActual)})`);
        }
        dataCrc = crc32(data, dataCrc);
        dataBytes += length;
        pos += frameBytes + length;
        yield data;
      }
      await readAt(this.fh, file, fileBytes, frame, trailerBytes, pos, 'the trailer');
      const trailerCrcStored = frame.readUInt32LE(16);
      const trailerCrcActual = crc32(frame.subarray(0, 16));
      if (trailerCrcStored !== trailerCrcActual) {
        throw new SnapshotCorruptError(file, pos, `trailer CRC mismatch (stored ${hex(trailerCrcStored)}, computed ${hex(trailerCrcActual)})`);
      }
      const dataBytesStored = readU64(frame, 4);
      if (dataBytesStored !== dataBytes) {
        throw new SnapshotCorruptError(file, pos, `the trailer counts ${dataBytesStored} data bytes, the chunks hold ${dataBytes}`);
      }
      const dataCrcStored = frame.readUInt32LE(12);
      if (dataCrcStored !== dataCrc) {
        throw new SnapshotCorruptError(file, pos, `data CRC mismatch (stored ${hex(dataCrcStored)}, computed ${hex(dataCrc)})`);
      }
      const end = pos + trailerBytes;
      if (end !== fileBytes) {
        throw new SnapshotCorruptError(file, end, `${fileBytes - end} unexpected bytes after the trailer`);
      }
    } finally {
      await this.close();
    }
  }
}

async function openSnapshotFile(fs: FileSystem, file: string, index: number, term: number): Promise<Reader> {
  const fh = await fs.promises.open(file, 'r');
  try {
    const fileBytes = (await fh.stat()).size;
    const fixed = Buffer.alloc(headerFixedBytes);
    await readAt(fh, file, fileBytes, fixed, headerFixedBytes, 0, 'the header');
    if (!fixed.subarray(0, magic.length).equals(magic)) {
      throw new SnapshotCorruptError(file, 0, 'bad magic: not a Flotilla snapshot file');
    }
    const counts = [32, 36, 40, 44].map((at) => fixed.readUInt32LE(at));
    const ids = counts.reduce((a, b) => a + b, 0);
    if (ids > confIdsMax) {
      throw new SnapshotCorruptError(file, 32, `the header lists ${ids} node ids, more than ${confIdsMax}`);
    }
    const header = Buffer.alloc(headerFixedBytes + 4 * ids + 4);
    fixed.copy(header);
    await readAt(fh, file, fileBytes, header.subarray(headerFixedBytes), header.length - headerFixedBytes, headerFixedBytes, 'the header', 0);
    const crcAt = header.length - 4;
    const crcStored = header.readUInt32LE(crcAt);
    const crcActual = crc32(header.subarray(0, crcAt));
    if (crcStored !== crcActual) {
      throw new SnapshotCorruptError(file, 0, `header CRC mismatch (stored ${hex(crcStored)}, computed ${hex(crcActual)})`);
    }
    const version = header.readUInt32LE(8);
    if (version !== snapshotFormatVersion) {
      throw new SnapshotCorruptError(file, 8, `unsupported format version ${version} (this build reads ${snapshotFormatVersion})`);
    }
    const chunkMax = header.readUInt32LE(12);
    if (chunkMax < 1 || chunkMax > bytesPerChunkLimit) {
      throw new SnapshotCorruptError(file, 12, `bytesPerChunkMax ${chunkMax} is outside 1..${bytesPerChunkLimit}`);
    }
    const metaIndex = readU64(header, 16);
    const metaTerm = readU64(header, 24);
    if (metaIndex !== index || metaTerm !== term) {
      throw new SnapshotCorruptError(file, 16, `the header says index ${metaIndex} term ${metaTerm}, the name says index ${index} term ${term}`);
    }
    let at = headerFixedBytes;
    const lists: NodeId[][] = counts.map((count) => {
      const list: NodeId[] = [];
      for (let i = 0; i < count; i++, at += 4) list.push(header.readUInt32LE(at));
      return list;
    });
    const conf: ConfState = { voters: lists[0]!, votersOutgoing: lists[1]!, learners: lists[2]!, learnersNext: lists[3]! };
    return new Reader({ index, term, conf }, file, fileBytes, fh, header.length, chunkMax);
  } catch (err) {
    await fh.close().catch(noop);
    throw err;
  }
}

function headerBytes(conf: ConfState): number {
  return headerFixedBytes + 4 * confLists(conf).reduce((n, list) => n + list.length, 0) + 4;
}

function confLists(conf: ConfState): NodeId[][] {
  return [conf.voters, conf.votersOutgoing, conf.learners, conf.learnersNext];
}

function encodeHeader(meta: SnapshotMeta, chunkMax: number): Buffer {
  checkIntegerIn('snapshot index', meta.index, 0, Number.MAX_SAFE_INTEGER);
  checkIntegerIn('snapshot term', meta.term, 0, Number.MAX_SAFE_INTEGER);
  const lists = confLists(meta.conf);
  const header = Buffer.alloc(headerBytes(meta.conf));
  if ((header.length - headerFixedBytes - 4) / 4 > confIdsMax) {
    throw new RangeError(`snapshot conf lists ${(header.length - headerFixedBytes - 4) / 4} node ids, more than ${confIdsMax}`);
  }
  magic.copy(header, 0);
  header.writeUInt32LE(snapshotFormatVersion, 8);
  header.writeUInt32LE(chunkMax, 12);
  writeU64(header, 16, meta.index);
  writeU64(header, 24, meta.term);
  let at = headerFixedBytes;
  lists.forEach((list, i) => {
    header.writeUInt32LE(list.length, 32 + 4 * i);
    for (const id of list) {
      checkIntegerIn('node id', id, 1, u32Limit - 1);
      header.writeUInt32LE(id, at);
      at += 4;
    }
  });
  header.writeUInt32LE(crc32(header.subarray(0, at)), at);
  return header;
}

function copyMeta(meta: SnapshotMeta): SnapshotMeta {
  const c = meta.conf;
  return {
    index: meta.index,
    term: meta.term,
    conf: { voters: [...c.voters], votersOutgoing: [...c.votersOutgoing], learners: [...c.learners], learnersNext: [...c.learnersNext] },
  };
}

function writeU64(buf: Buffer, at: number, value: number): void {
  buf.writeUInt32LE(value % u32Limit, at);
  buf.writeUInt32LE(Math.floor(value / u32Limit), at + 4);
}

/** A u64 as a number; values above 2^53 (never written) come back unsafe and fail the checks they meet. */
function readU64(buf: Buffer, at: number): number {
  return buf.readUInt32LE(at + 4) * u32Limit + buf.readUInt32LE(at);
}

/**
 * Reads exactly `length` bytes at `position` into `into`. Running out of file is corruption,
 * reported at `structureAt` (where the structure being read starts).
 */
async function readAt(
  fh: FileHandle, file: string, fileBytes: number, into: Uint8Array, length: number,
  position: number, what: string, structureAt = position,
): Promise<void> {
  if (position + length > fileBytes) {
    throw new SnapshotCorruptError(file, structureAt, `truncated: ${what} needs bytes up to offset ${position + length}, the file ends at ${fileBytes}`);
  }
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(into, done, length - done, position + done);
    if (bytesRead === 0) {
      throw new SnapshotCorruptError(file, structureAt, `truncated: ${what} ends early at offset ${position + done}`);
    }
    done += bytesRead;
  }
}

/** Writes all of `parts` at `position`, continuing after short writes. */
async function writeAll(file: SnapshotWriteFile, parts: Uint8Array[], position: number): Promise<void> {
  let pending = parts.filter((p) => p.length > 0);
  let pos = position;
  while (pending.length > 0) {
    const { bytesWritten } = await file.writev(pending, pos);
    assert(bytesWritten > 0, 'writev wrote nothing and reported no error');
    pos += bytesWritten;
    let n = bytesWritten;
    while (n > 0) {
      const head = pending[0]!;
      if (n >= head.length) {
        n -= head.length;
        pending = pending.slice(1);
      } else {
        pending[0] = head.subarray(n);
        n = 0;
      }
    }
  }
}

/** Creates `dir` and its missing parents, and makes their directory entries durable. */
async function mkdirDurable(fs: FileSystem, dir: string): Promise<void> {
  const first = await fs.promises.mkdir(dir);
  if (first === undefined) return;
  for (let d = dir; ; d = path.dirname(d)) {
    const parent = path.dirname(d);
    await fs.promises.syncDir(parent);
    if (d === first || parent === d) break;
  }
}

async function readdirOrEmpty(fs: FileSystem, dir: string): Promise<string[]> {
  try {
    return await fs.promises.readdir(dir);
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return [];
    throw err;
  }
}

async function unlinkIfExists(fs: FileSystem, file: string): Promise<void> {
  try {
    await fs.promises.unlink(file);
  } catch (err) {
    if (errorCode(err) !== 'ENOENT') throw err;
  }
}

function checkIntegerIn(name: string, value: number, min: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer in ${min}..${max}, got ${value}`);
  }
}

function errorCode(err: unknown): unknown {
  return typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

function noop(): void {}
