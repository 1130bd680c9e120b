// `flotilla bench` end to end, as a user runs it: the CLI starts its own node processes on
// 127.0.0.1, drives them, stops them, and writes its record. Short and small, so that it tests
// the wiring (raft and echo modes, puts and linearizable gets, the JSON record), not speed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CLI } from '../../bench/bench-cluster.js';
import { parseBenchFlags } from '../../bench/flotilla-bench.js';
import type { BenchResult } from '../../bench/result.js';

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, 'bench', ...args], { timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

test('flotilla bench runs a raft cluster, then the echo ceiling, and writes its record', { timeout: 150_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flotilla-bench-test-'));
  try {
    const json = path.join(dir, 'r.json');
    const r = await run(['--nodes', '1', '--groups', '2', '--clients', '2', '--pipeline', '4', '--keys', '50', '--value-bytes', '32',
      '--op', 'mixed', '--duration', '1', '--warmup', '0', '--echo-baseline', '1', '--json', json]);
    assert.equal(r.code, 0, `exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /^summary$/m);
    assert.match(r.stdout, /coordinated omission/);
    const rec = JSON.parse(fs.readFileSync(json, 'utf8')) as BenchResult & { echoOpsPerSec: number; echoFraction: number };
    assert.equal(rec.system, 'flotilla');
    assert.equal(rec.mode, 'raft');
    assert.equal(rec.op, 'mixed');
    assert.equal(rec.nodes, 1);
    assert.equal(rec.errors, 0, JSON.stringify(rec));
    assert.ok(rec.ops > 0 && rec.opsPerSec > 0, `ops ${rec.ops}`);
    assert.ok(rec.latencyMs.p50 > 0 && rec.latencyMs.p50 <= rec.latencyMs.p99 && rec.latencyMs.p99 <= rec.latencyMs.max);
    assert.ok(rec.echoOpsPerSec > 0, 'the echo run answered');
    assert.ok(rec.cpu['node 1'] !== undefined && rec.cpu['client'] !== undefined, Object.keys(rec.cpu).join(', '));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('flotilla bench drives a cluster over WebSocket, in echo mode too', { timeout: 150_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flotilla-bench-test-'));
  try {
    for (const mode of ['raft', 'echo']) {
      const json = path.join(dir, `${mode}.json`);
      const r = await run(['--mode', mode, '--nodes', '1', '--transport', 'ws', '--clients', '2', '--pipeline', '4', '--keys', '50',
        '--value-bytes', '32', '--duration', '1', '--warmup', '0', '--echo-baseline', '0', '--json', json]);
      assert.equal(r.code, 0, `exit ${r.code}\n${r.stdout}\n${r.stderr}`);
      const rec = JSON.parse(fs.readFileSync(json, 'utf8')) as BenchResult;
      assert.equal(rec.mode, mode);
      assert.equal(rec.transport, 'ws');
      assert.equal(rec.errors, 0, JSON.stringify(rec));
      assert.ok(rec.ops > 0, `${mode}: ops ${rec.ops}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('flotilla bench refuses bad flags with a usage error', async () => {
  const r = await run(['--op', 'scan']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /USAGE: --op must be one of put, get, mixed/);
  assert.throws(() => parseBenchFlags({ 'node-config': '[1]' }), /JSON object/);
  assert.throws(() => parseBenchFlags({ servers: '127.0.0.1:1', nodes: '3' }), /does not match/);
  const d = parseBenchFlags({});
  assert.deepEqual([d.mode, d.nodes, d.groups, d.clients, d.pipeline, d.valueBytes, d.op, d.durationS, d.syncForce, d.echoS],
    ['raft', 3, 1, 8, 128, 256, 'put', 30, true, 10]);
});
