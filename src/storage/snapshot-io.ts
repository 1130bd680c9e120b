// The file I/O the snapshot store's parts share: exact reads (running out of file is
// corruption), whole writes, durable directory creation, and tolerant listing and deletion.
import * as path from 'node:path';
import type { FileHandle, FileSystem } from '../io/file-system.js';
import { assert } from '../util/assert.js';
import { SnapshotCorruptError } from './snapshot-format.js';
import type { SnapshotWriteFile } from './snapshot-writer.js';

/**
 * Reads exactly `length` bytes at `position` into `into`. Running out of file is corruption,
 * reported at `structureAt` (where the structure being read starts).
 */
export async function readAt(
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
export async function writeAll(file: SnapshotWriteFile, parts: Uint8Array[], position: number): Promise<void> {
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
export async function mkdirDurable(fs: FileSystem, dir: string): Promise<void> {
  const first = await fs.promises.mkdir(dir);
  if (first === undefined) return;
  for (let d = dir; ; d = path.dirname(d)) {
    const parent = path.dirname(d);
    await fs.promises.syncDir(parent);
    if (d === first || parent === d) break;
  }
}

export async function readdirOrEmpty(fs: FileSystem, dir: string): Promise<string[]> {
  try {
    return await fs.promises.readdir(dir);
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return [];
    throw err;
  }
}

export async function unlinkIfExists(fs: FileSystem, file: string): Promise<void> {
  try {
    await fs.promises.unlink(file);
  } catch (err) {
    if (errorCode(err) !== 'ENOENT') throw err;
  }
}

export function errorCode(err: unknown): unknown {
  return typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
}

export function noop(): void {}
