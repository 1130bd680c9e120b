// Run by `npm run test:native-free` (FLOTILLA_NATIVE_FREE=1): proves the process loaded no
// native add-on, so the suite that ran beside it ran on the pure-Node paths.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { crc32, crc32Implementation } from '../src/storage/checksum.js';

test('with FLOTILLA_NATIVE_FREE=1 no native add-on is loaded', { skip: process.env['FLOTILLA_NATIVE_FREE'] !== '1' ? 'only in the native-free run' : false }, () => {
  assert.equal(crc32Implementation, 'zlib');
  assert.equal(crc32(new TextEncoder().encode('123456789')), 0xcbf43926);
  const require = createRequire(import.meta.url);
  const natives = Object.keys(require.cache).filter((k) => k.endsWith('.node'));
  assert.deepEqual(natives, [], 'native modules in the require cache');
});
