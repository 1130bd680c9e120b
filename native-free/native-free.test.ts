// Run by `npm run test:native-free`: checks that the run is wired as native-free/README.md says
// (every switch set, the add-on guard preloaded into this process and so into every Node
// process the suite starts) and that this process loaded no native add-on. Skipped elsewhere.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32, crc32Implementation } from '../src/storage/checksum.js';
import { uwsProblem } from '../src/transport/uws-listener.js';
import { loadedAddons } from './loaded-addons.js';

const skip = process.env['FLOTILLA_NATIVE_FREE'] !== '1' ? 'only in the native-free run' : false;

test('the native-free run sets every switch and preloads the add-on guard', { skip }, () => {
  assert.equal(process.env['MSGPACKR_NATIVE_ACCELERATION_DISABLED'], 'true');
  assert.ok(process.env['WS_NO_BUFFER_UTIL'], 'WS_NO_BUFFER_UTIL is set');
  assert.ok(process.env['WS_NO_UTF_8_VALIDATE'], 'WS_NO_UTF_8_VALIDATE is set');
  // NODE_OPTIONS reaches every Node process the suite spawns; the guard marks the ones it runs in.
  assert.match(process.env['NODE_OPTIONS'] ?? '', /--import[= ]\S*addon-guard\.js/);
  // Not imported here (importing it would install it): the mark can only come from the preload.
  assert.equal((globalThis as Record<symbol, unknown>)[Symbol.for('flotilla.native-free.addon-guard')], true, 'the guard ran in this process');
});

test('with FLOTILLA_NATIVE_FREE=1 the loaders choose their pure-Node paths and no native add-on is loaded', { skip }, () => {
  assert.equal(crc32Implementation, 'zlib');
  assert.equal(crc32(new TextEncoder().encode('123456789')), 0xcbf43926);
  assert.equal(uwsProblem(), 'FLOTILLA_NATIVE_FREE=1');
  assert.deepEqual(loadedAddons(), [], 'native add-ons loaded in this process');
});
