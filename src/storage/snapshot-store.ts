// Durable snapshots of each group's state machine, one file per snapshot: the store finds them
// by name (listing), keeps the newest few (retention), and hands out writers and readers.
//
// Files live in `<dir>/group-<id>/snapshot-<index>-<term>`, index and term zero-padded to 20
// digits so that names sort by index. A snapshot is streamed into a temporary file
// (`.tmp-snapshot-…`) in the same directory, fsynced, renamed to its final name and the
// directory fsynced: a crash leaves either the whole snapshot under its final name or nothing
// there, and `SnapshotStore.open` deletes the temporary files a crash left behind. One store
// owns a directory (a shard worker's); two stores on one directory would delete each other's
// unfinished files when they open.
//
// `latest()` picks the newest snapshot by name and reads only its header (it must, for the
// ConfState); it does not read the data, and it does not skip a corrupt snapshot in favour of an
// older one: a group whose log was compacted up to the newest snapshot cannot be rebuilt from an
// older one, so quietly falling back would serve wrong data. A corrupt header makes `latest()`
// throw; corrupt data is reported by the reader (`chunks()`, `readAll`). Either way the caller
// decides (typically: stop, or discard the group's state and fetch a snapshot from the leader).
//
// The parts: snapshot-format.ts (the byte layout of a file, and its errors), snapshot-writer.ts
// (streaming one in), snapshot-reader.ts (reading one back, verified), snapshot-io.ts (shared
// file I/O).

import * as path from 'node:path';
import { nodeFileSystem, type FileSystem } from '../io/file-system.js';
import { assert } from '../util/assert.js';
import type { Snapshot, SnapshotMeta } from '../raft/types.js';
import {
  bytesPerChunkLimit, checkIntegerIn, copyMeta, encodeHeader, headerBytes, snapshotFileName, SnapshotTooLargeError, trailerBytes,
} from './snapshot-format.js';
import { errorCode, mkdirDurable, readdirOrEmpty, unlinkIfExists, writeAll } from './snapshot-io.js';
import { openSnapshotFile, type SnapshotReader } from './snapshot-reader.js';
import { Writer, type SnapshotWriteFile, type SnapshotWriter } from './snapshot-writer.js';

export {
  bytesPerChunkLimit, confIdsMax, SnapshotCorruptError, snapshotFileName, snapshotFormatVersion, SnapshotTooLargeError,
} from './snapshot-format.js';
export type { SnapshotReader } from './snapshot-reader.js';
export type { SnapshotWriteFile, SnapshotWriter } from './snapshot-writer.js';

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

/** A snapshot file found by its name; nothing in it has been read. */
export interface SnapshotFileInfo {
  index: number;
  term: number;
  file: string;
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
    const writer = new Writer(this, this.options.bytesPerChunkMax, group, own, file, tempFile, path.join(groupDir, name));
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
