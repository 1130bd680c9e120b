// `flotilla/client` loads no server code: a program that only talks to a cluster gets the
// client, the frame header and the KV codec, not the engine (shards, storage, Raft, transport,
// the node). Checked on the built tree; pack.test.ts checks the same on the installed package.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadsOf, serverFiles } from './loads.js';

const ROOT = path.resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');
const DIST = path.join(ROOT, 'dist');

test('importing flotilla/client loads only the client, the frame header, the KV codec and the key map codec', { timeout: 60_000 }, (t) => {
  const client = loadsOf('flotilla/client', DIST, ROOT);
  assert.ok(client.files.includes('dist/src/client/index.js'), `the recorder saw the client load: ${client.files.join(', ')}`);
  assert.ok(client.files.includes('dist/src/kv/kv-command.js'));
  assert.ok(client.files.includes('dist/src/kv/kv-result.js'));
  assert.deepEqual(serverFiles(client.files, 'dist'), []);

  // The control: the whole package's entry does load the engine, and the recorder sees it.
  const whole = loadsOf('flotilla', DIST, ROOT);
  assert.ok(whole.files.includes('dist/src/node/node.js'));
  assert.ok(serverFiles(whole.files, 'dist').some((f) => f.startsWith('dist/src/raft/')));
  t.diagnostic(`import flotilla/client: ${client.importMs.toFixed(1)} ms, ${client.files.length} files; import flotilla: ${whole.importMs.toFixed(1)} ms, ${whole.files.length} files`);
});
