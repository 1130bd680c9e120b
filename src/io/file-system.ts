// The file system, as the write-ahead log and the snapshot store use it: a small interface with
// the real node:fs behind it in production, and the simulator's (test/sim/sim-fs.ts) behind it
// in deterministic runs, where unsynced writes may be lost or torn by a crash, a rename counts
// only once its directory is synced, fdatasync may fail with EIO and writes with ENOSPC.
//
// The log writes and reads synchronously (a copy into the page cache costs less than a trip
// through libuv's thread pool); only its syncs complete through callbacks. The snapshot store
// is all promises. Errors carry node's `code` (ENOENT, EEXIST, ENOSPC, EIO, ...).
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';

export type SyncCallback = (e: NodeJS.ErrnoException | null) => void;

/** What the snapshot store needs of an open file (a subset of `fs.promises.FileHandle`). */
export interface FileHandle {
  writev(buffers: Uint8Array[], position: number): Promise<{ bytesWritten: number }>;
  read(into: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  stat(): Promise<{ size: number }>;
  /** fsync: data and metadata. */
  sync(): Promise<void>;
  close(): Promise<void>;
}

export interface FileSystem {
  /** Creates `dir` and its missing parents; returns the first directory created, if any. */
  mkdirSync(dir: string): string | undefined;
  readdirSync(dir: string): string[];
  /** 'wx+': create, failing with EEXIST; 'r+': read and write an existing file. */
  openSync(file: string, flags: 'wx+' | 'r+'): number;
  closeSync(fd: number): void;
  writeSync(fd: number, buf: Uint8Array, offset: number, length: number, position: number): number;
  readSync(fd: number, buf: Uint8Array, offset: number, length: number, position: number): number;
  readFileSync(file: string): Buffer;
  ftruncateSync(fd: number, bytes: number): void;
  truncateSync(file: string, bytes: number): void;
  unlinkSync(file: string): void;
  renameSync(from: string, to: string): void;
  /** Makes the file's data (and the size needed to read it) durable. */
  fdatasync(fd: number, done: SyncCallback): void;
  /** Makes the directory's entries (files created, renamed or deleted in it) durable. */
  syncDir(dir: string, done: SyncCallback): void;
  /** Bytes free for an unprivileged writer on the file system holding `dir` (statfs). */
  freeBytesSync(dir: string): number;

  readonly promises: {
    /** Creates `dir` and its missing parents; resolves to the first directory created, if any. */
    mkdir(dir: string): Promise<string | undefined>;
    readdir(dir: string): Promise<string[]>;
    /** 'wx': create for writing, failing with EEXIST; 'r': read. */
    open(file: string, flags: 'wx' | 'r'): Promise<FileHandle>;
    rename(from: string, to: string): Promise<void>;
    unlink(file: string): Promise<void>;
    /** Removes a directory and everything in it; nothing if it does not exist. */
    rmTree(dir: string): Promise<void>;
    syncDir(dir: string): Promise<void>;
  };
}

/** node:fs. */
export const nodeFileSystem: FileSystem = {
  mkdirSync: (dir) => fs.mkdirSync(dir, { recursive: true }),
  readdirSync: (dir) => fs.readdirSync(dir),
  openSync: (file, flags) => fs.openSync(file, flags),
  closeSync: (fd) => fs.closeSync(fd),
  writeSync: (fd, buf, offset, length, position) => fs.writeSync(fd, buf, offset, length, position),
  readSync: (fd, buf, offset, length, position) => fs.readSync(fd, buf, offset, length, position),
  readFileSync: (file) => fs.readFileSync(file),
  ftruncateSync: (fd, bytes) => fs.ftruncateSync(fd, bytes),
  truncateSync: (file, bytes) => fs.truncateSync(file, bytes),
  unlinkSync: (file) => fs.unlinkSync(file),
  renameSync: (from, to) => fs.renameSync(from, to),
  fdatasync: (fd, done) => fs.fdatasync(fd, done),
  freeBytesSync: (dir) => {
    const st = fs.statfsSync(dir);
    return st.bavail * st.bsize;
  },
  syncDir: (dir, done) => {
    fs.open(dir, 'r', (e, fd) => {
      if (e !== null) return done(e);
      fs.fsync(fd, (e2) => fs.close(fd, () => done(e2)));
    });
  },
  promises: {
    mkdir: (dir) => fsp.mkdir(dir, { recursive: true }),
    readdir: (dir) => fsp.readdir(dir),
    open: (file, flags) => fsp.open(file, flags),
    rename: (from, to) => fsp.rename(from, to),
    unlink: (file) => fsp.unlink(file),
    rmTree: (dir) => fsp.rm(dir, { recursive: true, force: true }),
    syncDir: async (dir) => {
      const fh = await fsp.open(dir, 'r');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
    },
  },
};
