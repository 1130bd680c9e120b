// One process per data directory (src/node/data-dir-lock.ts): a second holder is refused with
// DATA_DIR_LOCKED naming the first's pid, before it touches any other file; a lock whose holder
// is gone (SIGKILLed, or its pid reused) never prevents a restart. Unit cases, then real
// `flotilla start` processes on 127.0.0.1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePortBase } from '../../src/cli/cluster.js';
import { DATA_DIR_LOCK_FILE, DataDirLock, DataDirLockedError, processStartTime } from '../../src/node/data-dir-lock.js';
import { CLI, waitFor } from '../cluster/cluster-harness.js';

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'flotilla-lock-'));
}

test('a second lock on one directory is refused, naming the holder; after release it is taken', () => {
  const dir = tmp();
  try {
    const a = DataDirLock.acquire(dir);
    assert.ok(a.held());
    assert.throws(() => DataDirLock.acquire(dir), (e: unknown) => {
      assert.ok(e instanceof DataDirLockedError);
      assert.equal(e.code, 'DATA_DIR_LOCKED');
      assert.equal(e.holderPid, process.pid);
      assert.match(e.message, new RegExp(`process ${process.pid}`));
      return true;
    });
    a.release();
    assert.equal(fs.existsSync(path.join(dir, DATA_DIR_LOCK_FILE)), false);
    const b = DataDirLock.acquire(dir);
    assert.ok(b.held());
    a.release(); // a second release of an old lock must not remove the new holder's
    assert.ok(b.held());
    b.release();
    assert.deepEqual(fs.readdirSync(dir), [], 'nothing left behind');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a lock whose process is gone, or whose pid now belongs to a later process, is stale and taken over', () => {
  const dir = tmp();
  try {
    // A process that has exited: its pid is not alive (or, reused, started at another time).
    const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
    const deadPid = Number(child.stdout.toString());
    fs.writeFileSync(path.join(dir, DATA_DIR_LOCK_FILE), JSON.stringify({ pid: deadPid, start: 1 }) + '\n');
    const a = DataDirLock.acquire(dir);
    assert.ok(a.held());
    a.release();
    const start = processStartTime(process.pid);
    if (start !== null) {
      // This very pid, alive, but recorded with another start time: a reused pid.
      fs.writeFileSync(path.join(dir, DATA_DIR_LOCK_FILE), JSON.stringify({ pid: process.pid, start: start - 1 }) + '\n');
      const b = DataDirLock.acquire(dir);
      assert.ok(b.held());
      b.release();
    }
    // A LOCK that names no process is not taken over while it may be fresh.
    fs.writeFileSync(path.join(dir, DATA_DIR_LOCK_FILE), 'garbage');
    assert.throws(() => DataDirLock.acquire(dir), (e: unknown) => e instanceof DataDirLockedError && e.holderPid === null);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

interface Started {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exited: Promise<number | null>;
}

function flotillaStart(dataDir: string, base: number): Started {
  const args = [
    CLI, 'start', '--node-id', '1', '--data-dir', dataDir, '--host', '127.0.0.1', '--raft-port', String(base),
    '--client-port', String(base + 1), '--admin-port', String(base + 2), '--ws-port', String(base + 3),
    '--websocket', 'off', '--shards', '1', '--groups', '2', '--log-format', 'json',
  ];
  const child = spawn(process.execPath, args, { env: { PATH: process.env['PATH'] ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, out: () => out, err: () => err, exited };
}

/** Every file under `dir` with its size and modification time. */
function snapshotTree(dir: string): string[] {
  const rows: string[] = [];
  const walk = (d: string): void => {
    for (const name of fs.readdirSync(d).sort()) {
      const p = path.join(d, name);
      const st = fs.statSync(p);
      if (st.isDirectory()) walk(p);
      else rows.push(`${path.relative(dir, p)} ${st.size} ${st.mtimeMs}`);
    }
  };
  walk(dir);
  return rows;
}

test('two `flotilla start` on one data dir: the second exits with DATA_DIR_LOCKED naming the first\'s pid and touches nothing; after a SIGKILL the node restarts', { timeout: 90_000 }, async () => {
  const dataDir = tmp();
  const started: Started[] = [];
  try {
    const base = await freePortBase(2, '127.0.0.1');
    const first = flotillaStart(dataDir, base);
    started.push(first);
    await waitFor(() => first.out().includes('node serving') || first.child.exitCode !== null, 40_000, 'the first node serving');
    assert.ok(first.out().includes('node serving'), first.err());
    // The first node is held still (SIGSTOP: it keeps its lock) while the second runs, so that
    // any change to the directory is the second's; it may still be electing or writing itself.
    first.child.kill('SIGSTOP');
    const before = snapshotTree(dataDir);

    const second = flotillaStart(dataDir, base + 10);
    started.push(second);
    await waitFor(() => second.child.exitCode !== null || second.out().includes('shards ready'), 40_000, 'the second process to exit');
    assert.equal(await Promise.race([second.exited, Promise.resolve('running')]), 1, `the second exits 1: ${second.err()}`);
    assert.match(second.err(), new RegExp(`DATA_DIR_LOCKED: .*process ${first.child.pid}\\b`));
    assert.equal(second.out().includes('shards ready'), false, 'the second never opened a shard');
    assert.deepEqual(snapshotTree(dataDir), before, 'the second process changed no file');
    first.child.kill('SIGCONT');
    assert.equal(first.child.exitCode, null, 'the first node is still running');

    first.child.kill('SIGKILL');
    await first.exited;
    const lock = JSON.parse(fs.readFileSync(path.join(dataDir, DATA_DIR_LOCK_FILE), 'utf8')) as { pid: number };
    assert.equal(lock.pid, first.child.pid, 'the SIGKILLed node left its lock behind');

    const again = flotillaStart(dataDir, base);
    started.push(again);
    await waitFor(() => again.out().includes('node serving') || again.child.exitCode !== null, 40_000, 'the restarted node serving');
    assert.ok(again.out().includes('node serving'), again.err());
    again.child.kill('SIGTERM');
    assert.equal(await again.exited, 0);
    assert.equal(fs.existsSync(path.join(dataDir, DATA_DIR_LOCK_FILE)), false, 'a node that stops releases its lock');
  } finally {
    for (const s of started) if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGKILL');
    await Promise.all(started.map((s) => s.exited));
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});

test('the embedding API takes the same lock: a second createNode on one data dir is refused before it opens anything, and works after the first stops', { timeout: 60_000 }, async () => {
  const { createNode } = await import('../../src/index.js');
  const dataDir = tmp();
  try {
    const base = await freePortBase(2, '127.0.0.1');
    const opts = (b: number): Parameters<typeof createNode>[0] => ({
      dataDir, nodeId: 1, groups: 1, shards: 1, websocket: 'off', host: '127.0.0.1',
      raftPort: b, clientPort: b + 1, adminPort: b + 2, wsPort: b + 3,
      peers: [{ id: 1, host: '127.0.0.1', raftPort: b, clientPort: b + 1, adminPort: b + 2, wsPort: b + 3 }],
      logLevel: 'silent',
    });
    const first = await createNode(opts(base));
    try {
      await assert.rejects(createNode(opts(base + 10)), (e: unknown) => {
        assert.equal((e as { code?: unknown }).code, 'DATA_DIR_LOCKED');
        assert.match(String(e), new RegExp(`process ${process.pid}\\b`));
        return true;
      });
    } finally {
      await first.stop();
    }
    const again = await createNode(opts(base));
    await again.stop();
  } finally {
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});
