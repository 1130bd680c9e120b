// The simulator's file system: one per simulated machine, in memory, behind the same
// FileSystem interface (src/io/file-system.ts) that node:fs implements in production, so the
// real write-ahead log and snapshot store run on it unchanged.
//
// What it models, as ext4 with data=ordered behaves closely enough for the code's promises:
// - A file's data is in the "page cache" only until an fdatasync (or fsync) called after it was
//   written returns; one still running when a write is made does not cover that write.
//   A process crash loses nothing (the OS still has it). A machine crash (power loss, kernel
//   panic) keeps, per file, none of those writes, all of them, or a prefix of them with the
//   next one torn at any byte — chosen by the seed. Past the torn point, the rest of that
//   write's range holds what the media held before (a recycled file's stale bytes: an older
//   segment's frames) or, as the seed chooses, zeros up to the write's end (blocks allocated
//   but never written read back as zeros, so the file may end after the torn point).
// - A directory's entries (files created, renamed, deleted) are durable only once a sync of the
//   directory called after the change returns; a machine crash keeps a prefix of the changes made since.
// - fdatasync fails with EIO when told (`failSyncP`); writes fail with ENOSPC once the machine's
//   bytes exceed `bytesMax` (the simulator fills and frees the disk).
// Syncs and the snapshot store's promises complete after a simulated latency on the event queue;
// a crash drops completions that had not run (the process that waited for them is gone).
import * as path from 'node:path';
import type { FileHandle, FileSystem, SyncCallback } from '../../src/io/file-system.js';
import type { Prng } from './prng.js';

export interface SimFsProfile {
  /** Latency of one fdatasync / directory sync, ms. */
  syncMsMin: number;
  syncMsMax: number;
  /** Probability that one sync is slow, by up to stallMsMax. */
  stallP: number;
  stallMsMax: number;
  /** Latency of the other asynchronous calls (snapshot store), ms. */
  opMsMax: number;
  /** Probability that an fdatasync fails with EIO. */
  failSyncP: number;
}

export interface SimFsStats {
  writes: number;
  syncs: number;
  syncsFailed: number;
  writesNoSpace: number;
  /** Machine crashes, and what they did to unsynced data. */
  crashesMachine: number;
  filesLostTail: number;
  filesTorn: number;
  /** Of the torn writes, those whose rest reads back as zeros (the others keep what was there). */
  filesTornZeroed: number;
  dirChangesLost: number;
}

type Change = { kind: 'write'; pos: number; bytes: Uint8Array } | { kind: 'truncate'; size: number };

class Inode {
  /** What a read sees now (the page cache). */
  data: Uint8Array = new Uint8Array(0);
  size = 0;
  /** What is on the media: its first durableSize bytes (the buffer grows by doubling). */
  durable: Uint8Array = new Uint8Array(0);
  durableSize = 0;
  /** Changes not yet on the media, in order: what a machine crash may keep part of. */
  changes: Change[] = [];
  /** How many changes were ever made before changes[0]: a sync covers those made before it was called. */
  changesBase = 0;

  get changeCount(): number {
    return this.changesBase + this.changes.length;
  }

  write(pos: number, bytes: Uint8Array): void {
    const end = pos + bytes.length;
    if (end > this.data.length) {
      const grown = new Uint8Array(Math.max(end, this.data.length * 2, 4096));
      grown.set(this.data.subarray(0, this.size));
      this.data = grown;
    }
    if (pos > this.size) this.data.fill(0, this.size, pos);
    this.data.set(bytes, pos);
    if (end > this.size) this.size = end;
    // A copy that owns its bytes (a Buffer's slice() is a view, and writers reuse their buffers).
    this.changes.push({ kind: 'write', pos, bytes: new Uint8Array(bytes) });
  }

  truncate(size: number): void {
    if (size < this.size) this.data.fill(0, size, this.size);
    else if (size > this.data.length) {
      const grown = new Uint8Array(size);
      grown.set(this.data.subarray(0, this.size));
      this.data = grown;
    }
    this.size = size;
    this.changes.push({ kind: 'truncate', size });
  }

  /**
   * An fdatasync called when `changeCount` was `upTo` finished: the changes made before the call
   * are on the media; later ones (written while it ran) are not, as with a real fdatasync. Only
   * the changes are copied (copying the whole file at each sync was a fifth of the run's time).
   */
  sync(upTo: number): void {
    const n = Math.min(upTo - this.changesBase, this.changes.length);
    if (n <= 0) return;
    for (let i = 0; i < n; i++) {
      const c = this.changes[i]!;
      if (c.kind === 'truncate') {
        this.durableSize = this.resizeDurable(c.size);
        continue;
      }
      const end = c.pos + c.bytes.length;
      if (end > this.durableSize) this.durableSize = this.resizeDurable(end);
      this.durable.set(c.bytes, c.pos);
    }
    this.changes.splice(0, n);
    this.changesBase += n;
  }

  /** Makes the media's file `size` bytes: cut, or grown with zeros. */
  private resizeDurable(size: number): number {
    if (size > this.durable.length) {
      const grown = new Uint8Array(Math.max(size, this.durable.length * 2, 4096));
      grown.set(this.durable.subarray(0, this.durableSize));
      this.durable = grown;
    } else if (size > this.durableSize) {
      this.durable.fill(0, this.durableSize, size);
    }
    return size;
  }

  /**
   * A machine crash: the media keeps `keep` of the changes, and `tornBytes` of the next write;
   * with `zeroRest`, the rest of that write's range reads back as zeros, not as before.
   */
  crash(keep: number, tornBytes: number, zeroRest: boolean): void {
    let out = this.durable.slice(0, this.durableSize);
    const apply = (c: Change, bytes: Uint8Array | null): void => {
      if (c.kind === 'truncate') {
        const n = new Uint8Array(c.size);
        n.set(out.subarray(0, Math.min(c.size, out.length)));
        out = n;
        return;
      }
      const b = bytes ?? c.bytes;
      const end = c.pos + b.length;
      if (end > out.length) {
        const n = new Uint8Array(end);
        n.set(out);
        out = n;
      }
      out.set(b, c.pos);
    };
    for (let i = 0; i < keep; i++) apply(this.changes[i]!, null);
    const next = this.changes[keep];
    if (tornBytes > 0 && next !== undefined && next.kind === 'write') {
      let torn = next.bytes.subarray(0, tornBytes);
      if (zeroRest) {
        torn = new Uint8Array(next.bytes.length);
        torn.set(next.bytes.subarray(0, tornBytes));
      }
      apply(next, torn);
    }
    this.durable = out;
    this.durableSize = out.length;
    this.data = out.slice();
    this.size = out.length;
    this.changesBase += this.changes.length;
    this.changes = [];
  }
}

type DirChange = { name: string; node: Inode | Dir | null };

class Dir {
  entries = new Map<string, Inode | Dir>();
  durable = new Map<string, Inode | Dir>();
  changes: DirChange[] = [];
  changesBase = 0;

  get changeCount(): number {
    return this.changesBase + this.changes.length;
  }

  set(name: string, node: Inode | Dir | null): void {
    if (node === null) this.entries.delete(name);
    else this.entries.set(name, node);
    this.changes.push({ name, node });
  }

  /** A directory sync called when `changeCount` was `upTo` finished (see Inode.sync). */
  sync(upTo: number): void {
    const n = Math.min(upTo - this.changesBase, this.changes.length);
    if (n <= 0) return;
    for (let i = 0; i < n; i++) {
      const c = this.changes[i]!;
      if (c.node === null) this.durable.delete(c.name);
      else this.durable.set(c.name, c.node);
    }
    this.changes.splice(0, n);
    this.changesBase += n;
  }

  crash(keep: number): number {
    const out = new Map(this.durable);
    for (let i = 0; i < keep; i++) {
      const c = this.changes[i]!;
      if (c.node === null) out.delete(c.name);
      else out.set(c.name, c.node);
    }
    const lost = this.changes.length - keep;
    this.entries = out;
    this.durable = new Map(out);
    this.changesBase += this.changes.length;
    this.changes = [];
    return lost;
  }
}

function fsError(code: string, what: string): NodeJS.ErrnoException {
  const e = new Error(`${code}: ${what}`) as NodeJS.ErrnoException;
  e.code = code;
  return e;
}

/** Runs `fn` after `ms` of simulated time (the simulator's event queue). */
export type Defer = (ms: number, fn: () => void) => void;

export class SimFs implements FileSystem {
  readonly stats: SimFsStats = {
    writes: 0, syncs: 0, syncsFailed: 0, writesNoSpace: 0, crashesMachine: 0, filesLostTail: 0, filesTorn: 0, filesTornZeroed: 0, dirChangesLost: 0,
  };
  /** Writes that would take the machine past this many bytes fail with ENOSPC. */
  bytesMax = Infinity;
  /** Called once, then cleared, after the next write (the simulator aims crashes with it). */
  onWrite: (() => void) | null = null;
  /** fdatasync fails with EIO with this probability (the simulator turns it on and off). */
  failSyncP: number;
  private readonly root = new Dir();
  private readonly fds = new Map<number, Inode>();
  private nextFd = 3;
  /** Bumped by each crash: completions scheduled before it never run. */
  private epoch = 0;
  readonly promises: FileSystem['promises'];

  constructor(private readonly defer: Defer, private readonly rng: Prng, private readonly profile: SimFsProfile) {
    this.failSyncP = profile.failSyncP;
    this.promises = {
      mkdir: (dir) => this.later(() => this.mkdirp(dir)),
      readdir: (dir) => this.later(() => this.readdirSync(dir)),
      open: (file, flags) => this.later(() => this.openHandle(file, flags)),
      rename: (from, to) => this.later(() => this.rename(from, to)),
      unlink: (file) => this.later(() => this.unlinkSync(file)),
      rmTree: (dir) => this.later(() => this.rmTree(dir)),
      syncDir: (dir) => new Promise<void>((resolve, reject) => this.syncDir(dir, (e) => (e === null ? resolve() : reject(e)))),
    };
  }

  // --- Crashes ---

  /** The process died: open files close, nothing written is lost, pending completions never run. */
  crashProcess(): void {
    this.fds.clear();
    this.epoch++;
  }

  /** The machine lost power: also what was not synced is kept, lost or torn, as the seed says. */
  crashMachine(): void {
    this.crashProcess();
    this.stats.crashesMachine++;
    const visit = (d: Dir): void => {
      if (d.changes.length > 0) {
        const keep = this.rng.int(0, d.changes.length);
        this.stats.dirChangesLost += d.changes.length - keep;
        d.crash(keep);
      }
      for (const n of d.entries.values()) {
        if (n instanceof Dir) visit(n);
        else this.crashInode(n);
      }
    };
    visit(this.root);
  }

  private crashInode(n: Inode): void {
    const c = n.changes.length;
    if (c === 0) return;
    const r = this.rng.next();
    let keep: number;
    let torn = 0;
    let zeroRest = false;
    if (r < 0.3) keep = 0;
    else if (r < 0.5) keep = c;
    else {
      keep = this.rng.int(0, c - 1);
      const next = n.changes[keep]!;
      if (next.kind === 'write' && next.bytes.length > 0) {
        torn = this.rng.int(0, next.bytes.length - 1);
        zeroRest = torn > 0 && this.rng.chance(0.5);
      }
    }
    if (keep < c) this.stats.filesLostTail++;
    if (torn > 0) this.stats.filesTorn++;
    if (zeroRest) this.stats.filesTornZeroed++;
    n.crash(keep, torn, zeroRest);
  }

  /** What statfs would say is free: room left under bytesMax. */
  freeBytesSync(_dir: string): number {
    return Math.max(0, this.bytesMax - this.usedBytes());
  }

  /** Bytes held (page cache view), for ENOSPC. */
  usedBytes(): number {
    let n = 0;
    const visit = (d: Dir): void => {
      for (const e of d.entries.values()) {
        if (e instanceof Dir) visit(e);
        else n += e.size;
      }
    };
    visit(this.root);
    return n;
  }

  // --- Paths ---

  private walk(p: string): { parent: Dir | null; name: string; node: Inode | Dir | undefined } {
    const parts = path.resolve(p).split('/').filter((s) => s.length > 0);
    if (parts.length === 0) return { parent: null, name: '', node: this.root };
    let d = this.root;
    for (let i = 0; i < parts.length - 1; i++) {
      const next = d.entries.get(parts[i]!);
      if (!(next instanceof Dir)) return { parent: null, name: parts[i]!, node: undefined };
      d = next;
    }
    const name = parts[parts.length - 1]!;
    return { parent: d, name, node: d.entries.get(name) };
  }

  private dir(p: string): Dir {
    const w = this.walk(p);
    if (w.node === undefined) throw fsError('ENOENT', `no directory ${p}`);
    if (!(w.node instanceof Dir)) throw fsError('ENOTDIR', `${p} is not a directory`);
    return w.node;
  }

  private file(p: string): Inode {
    const w = this.walk(p);
    if (w.node === undefined) throw fsError('ENOENT', `no file ${p}`);
    if (w.node instanceof Dir) throw fsError('EISDIR', `${p} is a directory`);
    return w.node;
  }

  private fd(fd: number): Inode {
    const n = this.fds.get(fd);
    if (n === undefined) throw fsError('EBADF', `fd ${fd} is not open`);
    return n;
  }

  private mkdirp(dir: string): string | undefined {
    const parts = path.resolve(dir).split('/').filter((s) => s.length > 0);
    let d = this.root;
    let first: string | undefined;
    let at = '';
    for (const part of parts) {
      at += `/${part}`;
      const next = d.entries.get(part);
      if (next instanceof Dir) {
        d = next;
        continue;
      }
      if (next !== undefined) throw fsError('ENOTDIR', `${at} is a file`);
      const made = new Dir();
      d.set(part, made);
      first ??= at;
      d = made;
    }
    return first;
  }

  // --- The log's calls (synchronous, but for the syncs) ---

  mkdirSync(dir: string): string | undefined {
    return this.mkdirp(dir);
  }

  readdirSync(dir: string): string[] {
    return [...this.dir(dir).entries.keys()].sort();
  }

  openSync(file: string, flags: 'wx+' | 'r+'): number {
    return this.openFd(file, flags === 'wx+');
  }

  private openFd(file: string, create: boolean): number {
    const w = this.walk(file);
    if (w.parent === null) throw fsError('ENOENT', `no directory for ${file}`);
    let n: Inode;
    if (create) {
      if (w.node !== undefined) throw fsError('EEXIST', `${file} exists`);
      n = new Inode();
      w.parent.set(w.name, n);
    } else {
      if (w.node === undefined) throw fsError('ENOENT', `no file ${file}`);
      if (w.node instanceof Dir) throw fsError('EISDIR', `${file} is a directory`);
      n = w.node;
    }
    const fd = this.nextFd++;
    this.fds.set(fd, n);
    return fd;
  }

  closeSync(fd: number): void {
    this.fd(fd);
    this.fds.delete(fd);
  }

  writeSync(fd: number, buf: Uint8Array, offset: number, length: number, position: number): number {
    const n = this.fd(fd);
    const grow = Math.max(0, position + length - n.size);
    if (grow > 0 && this.usedBytes() + grow > this.bytesMax) {
      this.stats.writesNoSpace++;
      throw fsError('ENOSPC', 'no space left on device');
    }
    this.stats.writes++;
    n.write(position, buf.subarray(offset, offset + length));
    const f = this.onWrite;
    if (f !== null) {
      this.onWrite = null;
      f();
    }
    return length;
  }

  readSync(fd: number, buf: Uint8Array, offset: number, length: number, position: number): number {
    const n = this.fd(fd);
    const end = Math.min(n.size, position + length);
    if (end <= position) return 0;
    buf.set(n.data.subarray(position, end), offset);
    return end - position;
  }

  readFileSync(file: string): Buffer {
    const n = this.file(file);
    return Buffer.from(n.data.slice(0, n.size));
  }

  ftruncateSync(fd: number, bytes: number): void {
    this.fd(fd).truncate(bytes);
  }

  truncateSync(file: string, bytes: number): void {
    this.file(file).truncate(bytes);
  }

  unlinkSync(file: string): void {
    const w = this.walk(file);
    if (w.node === undefined || w.parent === null) throw fsError('ENOENT', `no file ${file}`);
    if (w.node instanceof Dir) throw fsError('EISDIR', `${file} is a directory`);
    w.parent.set(w.name, null);
  }

  renameSync(from: string, to: string): void {
    this.rename(from, to);
  }

  fdatasync(fd: number, done: SyncCallback): void {
    let n: Inode;
    try {
      n = this.fd(fd);
    } catch (e) {
      this.complete(0, () => done(e as NodeJS.ErrnoException));
      return;
    }
    const fail = this.failSyncP > 0 && this.rng.chance(this.failSyncP);
    const upTo = n.changeCount;
    this.complete(this.syncLatency(), () => {
      if (fail) {
        // As Linux after a failed writeback: the error is reported once and what was not
        // written stays unknown; the caller must not trust the page cache any more.
        this.stats.syncsFailed++;
        done(fsError('EIO', 'i/o error'));
        return;
      }
      this.stats.syncs++;
      n.sync(upTo);
      done(null);
    });
  }

  syncDir(dir: string, done: SyncCallback): void {
    let d: Dir;
    try {
      d = this.dir(dir);
    } catch (e) {
      this.complete(0, () => done(e as NodeJS.ErrnoException));
      return;
    }
    const upTo = d.changeCount;
    this.complete(this.syncLatency(), () => {
      this.stats.syncs++;
      d.sync(upTo);
      done(null);
    });
  }

  // --- The snapshot store's calls ---

  private openHandle(file: string, flags: 'wx' | 'r'): FileHandle {
    const fd = this.openFd(file, flags === 'wx');
    const n = this.fds.get(fd)!;
    let closed = false;
    const check = (): void => {
      if (closed || !this.fds.has(fd)) throw fsError('EBADF', `${file} is closed`);
    };
    return {
      writev: (buffers, position) => this.later(() => {
        check();
        let at = position;
        for (const b of buffers) at += this.writeSync(fd, b, 0, b.length, at);
        return { bytesWritten: at - position };
      }),
      read: (into, offset, length, position) => this.later(() => {
        check();
        return { bytesRead: this.readSync(fd, into, offset, length, position) };
      }),
      stat: () => this.later(() => {
        check();
        return { size: n.size };
      }),
      sync: () => new Promise<void>((resolve, reject) => {
        try {
          check();
        } catch (e) {
          reject(e);
          return;
        }
        this.fdatasync(fd, (e) => (e === null ? resolve() : reject(e)));
      }),
      close: () => this.later(() => {
        if (closed) return;
        closed = true;
        this.fds.delete(fd);
      }),
    };
  }

  private rename(from: string, to: string): void {
    const a = this.walk(from);
    if (a.node === undefined || a.parent === null) throw fsError('ENOENT', `no file ${from}`);
    const b = this.walk(to);
    if (b.parent === null) throw fsError('ENOENT', `no directory for ${to}`);
    b.parent.set(b.name, a.node);
    a.parent.set(a.name, null);
  }

  private rmTree(dir: string): void {
    const w = this.walk(dir);
    if (w.node === undefined || w.parent === null) return;
    w.parent.set(w.name, null);
  }

  // --- Completions ---

  private syncLatency(): number {
    const p = this.profile;
    let ms = this.rng.real(p.syncMsMin, p.syncMsMax);
    if (this.rng.chance(p.stallP)) ms += this.rng.real(0, p.stallMsMax);
    return ms;
  }

  /** Runs `fn` after `ms`, unless the process crashed meanwhile. */
  private complete(ms: number, fn: () => void): void {
    const epoch = this.epoch;
    this.defer(ms, () => {
      if (epoch === this.epoch) fn();
    });
  }

  /** A promise of `fn()`'s result, settled after a short simulated latency. */
  private later<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.complete(this.rng.real(0, this.profile.opMsMax), () => {
        try {
          resolve(fn());
        } catch (e) {
          reject(e);
        }
      });
    });
  }
}
