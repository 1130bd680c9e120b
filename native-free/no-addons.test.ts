// The pure-Node path loads no native add-on: a child process runs a real node (its shard
// workers are threads of that process) with FLOTILLA_NATIVE_FREE=1 and
// MSGPACKR_NATIVE_ACCELERATION_DISABLED=true, sends traffic over TCP and WebSocket, and lists
// the `.node` shared objects the process loaded: none. The contrast: the same driver without
// that environment loads the optional add-ons that work here, so the check can see them,
// including one that only a shard worker loads. Each child gets its environment from this
// test, so the test means the same in `npm test` and in `npm run test:native-free`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DriverResult } from './no-addons-driver.js';

const DRIVER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'no-addons-driver.js');
const DRIVER_MS_MAX = 60_000;

/** The variables that switch add-ons off, and the guard preloaded by the native-free run. */
const SWITCHES = ['FLOTILLA_NATIVE_FREE', 'MSGPACKR_NATIVE_ACCELERATION_DISABLED', 'WS_NO_BUFFER_UTIL', 'WS_NO_UTF_8_VALIDATE', 'NODE_OPTIONS'];

function baseEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of SWITCHES) delete env[k];
  return env;
}

function runDriver(env: NodeJS.ProcessEnv): Promise<DriverResult> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [DRIVER], { env, timeout: DRIVER_MS_MAX, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err !== null) {
        reject(new Error(`driver failed (${err.message}); stdout:\n${stdout}\nstderr:\n${stderr}`));
        return;
      }
      const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
      if (line === undefined) {
        reject(new Error(`driver printed no RESULT line; stdout:\n${stdout}\nstderr:\n${stderr}`));
        return;
      }
      resolve(JSON.parse(line.slice('RESULT '.length)) as DriverResult);
    });
  });
}

test('a node with FLOTILLA_NATIVE_FREE=1 and MSGPACKR_NATIVE_ACCELERATION_DISABLED=true serves TCP and WebSocket traffic with no native add-on loaded', { timeout: 90_000 }, async () => {
  // WS_NO_BUFFER_UTIL and WS_NO_UTF_8_VALIDATE are left out on purpose: ws-listener.ts sets them.
  const r = await runDriver({ ...baseEnv(), FLOTILLA_NATIVE_FREE: '1', MSGPACKR_NATIVE_ACCELERATION_DISABLED: 'true' });
  assert.equal(r.wsEngine, 'ws');
  assert.equal(r.crc32, 'zlib');
  assert.deepEqual(r.addons, [], 'native add-ons loaded');
});

test('without that environment the same node loads the optional add-ons that work here, and the check sees them', { timeout: 90_000 }, async (t) => {
  const r = await runDriver(baseEnv());
  t.diagnostic(`add-ons loaded: ${r.addons.length === 0 ? 'none' : r.addons.join(', ')}`);
  if (r.crc32 !== 'native' && r.wsEngine !== 'uws' && r.addons.length === 0) {
    t.skip('neither @node-rs/crc32 nor uWebSockets.js loads on this machine: no add-on to see');
    return;
  }
  assert.ok(r.addons.length > 0, 'at least one add-on is seen');
  // The driver's own thread never loads the CRC-32 add-on: seeing it proves workers are covered.
  if (r.crc32 === 'native') assert.ok(r.addons.some((f) => /crc32/.test(path.basename(f))), `the shard workers' CRC-32 add-on in ${r.addons.join(', ')}`);
  if (r.wsEngine === 'uws') assert.ok(r.addons.some((f) => /^uws_/.test(path.basename(f))), `the uWebSockets.js add-on in ${r.addons.join(', ')}`);
});
