// The guard that `npm run test:native-free` preloads into every Node process
// (addon-guard.ts) fails a process that loads a native add-on: on the main thread at once, in
// a worker thread at exit. Uses @node-rs/crc32, skipped when that add-on does not load here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const GUARD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'addon-guard.js');
const CHILD_MS_MAX = 20_000;

function resolveCrc32(): string | null {
  try {
    return createRequire(import.meta.url).resolve('@node-rs/crc32');
  } catch {
    return null;
  }
}
const CRC32 = resolveCrc32();
/** Loads the CRC-32 add-on, then exits normally. */
const LOAD = `require(${JSON.stringify(CRC32)});`;

function child(script: string, guarded: boolean): Promise<{ code: number; stderr: string }> {
  const env = { ...process.env };
  delete env['NODE_OPTIONS'];
  delete env['FLOTILLA_NATIVE_FREE'];
  const args = guarded ? ['--import', pathToFileURL(GUARD).href, '-e', script] : ['-e', script];
  return new Promise((resolve) => {
    execFile(process.execPath, args, { env, timeout: CHILD_MS_MAX }, (err, _stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stderr });
    });
  });
}

const inWorker = (main: string): string =>
  `const { Worker } = require('node:worker_threads'); new Worker(${JSON.stringify(main)}, { eval: true }).on('exit', (c) => { if (c !== 0) process.exitCode = 9; });`;

test('the native-free guard fails a process that loads an add-on, on the main thread or in a worker', { timeout: 60_000 }, async (t) => {
  if (CRC32 === null) {
    t.skip('@node-rs/crc32 is not installed');
    return;
  }
  const plain = await child(LOAD, false);
  if (plain.code !== 0) {
    t.skip(`@node-rs/crc32 does not load here: ${plain.stderr.split('\n')[0] ?? ''}`);
    return;
  }
  assert.equal((await child(inWorker(LOAD), false)).code, 0, 'the worker script runs unguarded');

  const main = await child(LOAD, true);
  assert.equal(main.code, 1, `exit code; stderr:\n${main.stderr}`);
  assert.match(main.stderr, /native-free: native add-on .*crc32.*\.node loaded in a native-free run/);

  const worker = await child(inWorker(LOAD), true);
  assert.equal(worker.code, 1, `exit code; stderr:\n${worker.stderr}`);
  assert.match(worker.stderr, /native-free: native add-ons loaded in a native-free run: .*crc32.*\.node/);

  assert.equal((await child('void 0', true)).code, 0, 'a process that loads no add-on exits 0');
});
