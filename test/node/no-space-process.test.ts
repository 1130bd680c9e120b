// A real `flotilla start` with its data dir on a 64 MiB tmpfs that a filler file fills up
// (docs/operations.md, "Failures": a full disk). The node stays up: writes answer NO_SPACE,
// reads are served, /health says degraded with reason NO_SPACE, flotilla_shard_no_space is 1;
// once the filler is deleted, writes resume by themselves, without a restart. Needs root (mount);
// skipped, saying so, where mounting a tmpfs is not permitted. Bounded: under 60 s.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePortBase } from '../../src/cli/cluster.js';
import { FlotillaClient } from '../../src/client/index.js';
import { CLI, waitFor } from '../cluster/cluster-harness.js';

const TMPFS_BYTES = 64 << 20;

/** Mounts a tmpfs of TMPFS_BYTES on a fresh directory; null (and why) when that is not permitted here. */
function mountTmpfs(): { dir: string; unmount: () => void } | { why: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flotilla-nospace-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_BYTES}`, 'tmpfs', dir], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) {
    fs.rmdirSync(dir);
    return { why: `cannot mount a tmpfs here (${(r.stderr || r.error?.message || `exit ${r.status}`).trim()}); needs root` };
  }
  return {
    dir,
    unmount: () => {
      spawnSync('umount', ['-l', dir], { timeout: 10_000 });
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Writes `file` in 1 MiB steps until the disk is full. */
function fill(file: string): number {
  const fd = fs.openSync(file, 'w');
  const chunk = Buffer.alloc(1 << 20, 7);
  let bytes = 0;
  try {
    for (;;) {
      try {
        bytes += fs.writeSync(fd, chunk, 0, chunk.length, bytes);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOSPC') break;
        throw e;
      }
    }
    // The last partial page: a few bytes at a time until nothing fits.
    for (let n = 4096; n >= 1; n >>= 1) {
      for (;;) {
        try { bytes += fs.writeSync(fd, chunk, 0, n, bytes); } catch { break; }
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return bytes;
}

async function health(port: number): Promise<{ code: number; body: { serving: boolean; status?: string; reasons?: string[]; shards: { reason?: string }[] } }> {
  const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2000) });
  return { code: res.status, body: await res.json() as never };
}

async function metric(port: number, name: string): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(2000) });
  const text = await res.text();
  return text.split('\n').filter((l) => l.startsWith(name)).join('\n');
}

test('a full disk under a real node: it stays up, writes answer NO_SPACE, reads work, /health and metrics say why, writes resume once there is room', { timeout: 60_000 }, async (t) => {
  const m = mountTmpfs();
  if ('why' in m) {
    t.skip(m.why);
    return;
  }
  let child: ChildProcess | null = null;
  let client: FlotillaClient | null = null;
  let out = '';
  try {
    const base = await freePortBase(1, '127.0.0.1');
    const dataDir = path.join(m.dir, 'data');
    child = spawn(process.execPath, [
      CLI, 'start', '--node-id', '1', '--data-dir', dataDir, '--host', '127.0.0.1', '--raft-port', String(base),
      '--client-port', String(base + 1), '--admin-port', String(base + 2), '--ws-port', String(base + 3),
      '--websocket', 'off', '--shards', '1', '--groups', '2', '--log-format', 'json',
    ], { env: { PATH: process.env['PATH'] ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d: Buffer) => void (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => void (out += d.toString()));
    const proc = child;
    await waitFor(async () => (await health(base + 2).catch(() => null))?.code === 200, 30_000, 'the node serving');
    client = await FlotillaClient.connect({ servers: [`127.0.0.1:${base + 1}`] });
    for (let i = 0; i < 50; i++) await client.put(`before-${i}`, `v${i}`);

    const filler = path.join(m.dir, 'filler');
    const filled = fill(filler);
    assert.ok(filled > 0);
    // Writes go on into what the log reserved until the node sees the disk full (statfs, with
    // its ticks), then every write is refused with NO_SPACE.
    let code = '';
    const t0 = Date.now();
    for (let i = 0; code !== 'NO_SPACE' && Date.now() - t0 < 10_000; i++) {
      try {
        await client.put(`during-${i}`, 'x');
      } catch (e) {
        code = (e as { code?: string }).code ?? String(e);
      }
    }
    assert.equal(code, 'NO_SPACE', `writes on a full disk answer NO_SPACE\n${out.slice(-2000)}`);
    await assert.rejects(client.put('refused', 'x'), (e: unknown) => (e as { code?: string }).code === 'NO_SPACE');
    assert.equal(proc.exitCode, null, 'the node is still running');
    assert.equal(await client.get('before-7'), 'v7', 'linearizable reads work');
    assert.equal(await client.get('before-8', { stale: true }), 'v8', 'stale reads work');
    const h = await health(base + 2);
    assert.equal(h.code, 200, 'the node still serves (reads)');
    assert.equal(h.body.status, 'degraded');
    assert.deepEqual(h.body.reasons, ['NO_SPACE']);
    assert.equal(h.body.shards[0]?.reason, 'NO_SPACE');
    assert.match(await metric(base + 2, 'flotilla_shard_no_space'), /flotilla_shard_no_space\{shard="0"\} 1/);
    assert.match(await metric(base + 2, 'flotilla_errors_total{shard="0",code="NO_SPACE"}'), /NO_SPACE"\} [1-9]/);

    fs.unlinkSync(filler);
    await waitFor(async () => {
      try {
        await client!.put('after', 'yes');
        return true;
      } catch (e) {
        if ((e as { code?: string }).code !== 'NO_SPACE') throw e;
        return false;
      }
    }, 10_000, 'writes to resume once the filler is gone');
    assert.equal(await client.get('after'), 'yes');
    assert.equal(await client.get('refused'), null, 'the refused write was not applied');
    await waitFor(async () => (await health(base + 2)).body.status === 'ok', 10_000, '/health ok again');
    assert.match(await metric(base + 2, 'flotilla_shard_no_space'), /flotilla_shard_no_space\{shard="0"\} 0/);
    assert.equal(proc.exitCode, null, 'the same process throughout');
  } finally {
    await client?.close().catch(() => undefined);
    if (child !== null && child.exitCode === null && child.signalCode === null) {
      const c = child;
      const exited = new Promise<void>((r) => c.once('exit', () => r()));
      const kill = setTimeout(() => c.kill('SIGKILL'), 10_000);
      c.kill('SIGTERM');
      await exited;
      clearTimeout(kill);
    }
    m.unmount();
  }
});
