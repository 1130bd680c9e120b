// One process per data directory. Two nodes writing one directory's logs corrupt them for good
// (each reopens the other's segments and overwrites its frames), so a node takes this lock
// before it reads or writes anything else there, and holds it for the life of the process.
//
// Node has no flock. The lock is a file, `<dataDir>/LOCK`, holding the holder's pid and the
// start time of that process (field 22 of /proc/<pid>/stat, in clock ticks since boot; absent
// where there is no /proc). It is created whole and atomically: written to a private file,
// then hard-linked to LOCK, which fails if LOCK exists, so no reader ever sees it half written.
// A LOCK whose holder is gone is stale and is taken over: the holder is gone when its pid is
// not alive, or when the process now under that pid started at another time (the pid was
// reused). So a lock left by a SIGKILLed process never prevents a restart.
//
// Taking over a stale lock renames it away first (only one process can rename a given file),
// then checks that what it renamed is the stale lock it judged; if another process took the
// lock over in between, its lock is put back. The lock is released (LOCK unlinked, if it is
// still ours) when the node stops; a process that dies without stopping leaves a stale lock.
import * as fs from 'node:fs';
import * as path from 'node:path';

export const DATA_DIR_LOCK_FILE = 'LOCK';
/** Rounds of "create, else judge and take over a stale lock" before giving up. */
const ACQUIRE_ROUNDS_MAX = 5;

export class DataDirLockedError extends Error {
  readonly code = 'DATA_DIR_LOCKED';
  constructor(readonly dataDir: string, readonly holderPid: number | null, detail: string) {
    super(`${dataDir} is in use by ${holderPid !== null ? `process ${holderPid}` : 'another process'} (${detail}); one process per data directory`);
    this.name = 'DataDirLockedError';
  }
}

interface LockContent {
  pid: number;
  /** Start time of the process in clock ticks since boot (/proc/<pid>/stat), or null without /proc. */
  start: number | null;
}

export class DataDirLock {
  private released = false;

  private constructor(readonly dataDir: string, readonly file: string, private readonly text: string) {}

  /**
   * Takes the lock of `dataDir` (created if missing) or throws DataDirLockedError naming the
   * holder. Touches nothing in the directory but LOCK and its own temporary file.
   */
  static acquire(dataDir: string): DataDirLock {
    fs.mkdirSync(dataDir, { recursive: true });
    const file = path.join(dataDir, DATA_DIR_LOCK_FILE);
    const own: LockContent = { pid: process.pid, start: processStartTime(process.pid) };
    const text = JSON.stringify(own) + '\n';
    for (let round = 1; round <= ACQUIRE_ROUNDS_MAX; round++) {
      if (createWhole(file, text)) return new DataDirLock(dataDir, file, text);
      let seen: string;
      try {
        seen = fs.readFileSync(file, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // released meanwhile: try again
        throw e;
      }
      const holder = parseLock(seen);
      const live = holder === null ? null : holderAlive(holder);
      if (holder !== null && live !== null) throw new DataDirLockedError(dataDir, holder.pid, `${file}: ${live}`);
      if (holder === null && !looksAbandoned(file)) {
        // Not ours to judge: a LOCK we cannot read may be one being written by a tool we do not
        // know. An operator removes it after checking that nothing uses the directory.
        throw new DataDirLockedError(dataDir, null, `${file} exists and does not name a process; remove it if nothing uses ${dataDir}`);
      }
      takeOver(file, seen);
    }
    throw new DataDirLockedError(dataDir, null, `${file} kept changing while this process tried to take it`);
  }

  /** Whether LOCK still holds this lock (nobody removed or replaced it). */
  held(): boolean {
    if (this.released) return false;
    try {
      return fs.readFileSync(this.file, 'utf8') === this.text;
    } catch {
      return false;
    }
  }

  /** Releases the lock: LOCK is removed if it is still ours. Safe to call more than once. */
  release(): void {
    if (this.released) return;
    const ours = this.held();
    this.released = true;
    if (ours) {
      try { fs.unlinkSync(this.file); } catch { /* gone already: nothing to release */ }
    }
  }
}

/** Numbers this process's private files, so that two locks taken at once never share one. */
let privateSeq = 0;

/** Creates `file` holding `text`, whole, unless it exists (then false). */
function createWhole(file: string, text: string): boolean {
  const tmp = `${file}.${process.pid}.${++privateSeq}.tmp`;
  // 'w', not 'wx': a leftover of a process that died here, under the same pid, is overwritten.
  fs.writeFileSync(tmp, text, { flag: 'w' });
  try {
    fs.linkSync(tmp, file);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/** Moves a stale LOCK (whose text was `stale`) out of the way; puts it back if it was not the one judged. */
function takeOver(file: string, stale: string): void {
  const aside = `${file}.stale.${process.pid}.${++privateSeq}`;
  try {
    fs.renameSync(file, aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return; // someone else moved it: judge again
    throw e;
  }
  const moved = fs.readFileSync(aside, 'utf8');
  if (moved !== stale) {
    // Another process took the stale lock over between our read and our rename: this is its
    // live lock. Put it back (unless LOCK exists again, which only a third process could do).
    try { fs.linkSync(aside, file); } catch { /* the next round judges whatever LOCK is now */ }
  }
  fs.rmSync(aside, { force: true });
}

function parseLock(text: string): LockContent | null {
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null) return null;
    const { pid, start } = v as { pid?: unknown; start?: unknown };
    if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 0) return null;
    if (start !== null && (typeof start !== 'number' || !Number.isSafeInteger(start))) return null;
    return { pid, start };
  } catch {
    return null;
  }
}

/** Why the holder is alive (a sentence), or null when it is gone and its lock is stale. */
function holderAlive(holder: LockContent): string | null {
  try {
    process.kill(holder.pid, 0);
  } catch (e) {
    // EPERM: the process exists but is another user's.
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return null;
  }
  if (holder.start !== null) {
    const now = processStartTime(holder.pid);
    if (now !== null && now !== holder.start) return null; // the pid was reused by a later process
  }
  return holder.pid === process.pid ? 'held by this process' : `held by live process ${holder.pid}`;
}

/**
 * A LOCK that does not parse is taken over only if it is plainly a leftover: empty, and not
 * modified for a minute (a crash between creating and writing cannot happen with createWhole,
 * but an empty file is what a full disk or a hand may leave).
 */
function looksAbandoned(file: string): boolean {
  try {
    const st = fs.statSync(file);
    return st.size === 0 && Date.now() - st.mtimeMs > 60_000;
  } catch {
    return false;
  }
}

/** The start time of process `pid` in clock ticks since boot (Linux /proc), or null. */
export function processStartTime(pid: number): number | null {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name (field 2) is in parentheses and may hold spaces or parentheses: fields
  // are counted after the last ')'. starttime is field 22, the 20th after it.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const start = Number(rest[19]);
  return Number.isSafeInteger(start) ? start : null;
}
