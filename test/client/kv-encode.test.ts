import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeKvCommand } from '../../src/client/kv-encode.js';
import { KvError, encodeCommand, keyBytesMax, valueBytesMax, type KvCommand } from '../../src/kv/kv-state-machine.js';

test("the client's KV encoder writes exactly the shared encoder's bytes", () => {
  const strings = ['', 'a', 'user:42', 'ключ', '値 🚣', 'lone \ud800 surrogate', 'x'.repeat(300), 'é'.repeat(512)];
  const cmds: KvCommand[] = [];
  for (const k of strings) {
    cmds.push({ op: 'get', key: k }, { op: 'delete', key: k });
    for (const v of strings) {
      cmds.push({ op: 'put', key: k, value: v });
      cmds.push({ op: 'cas', key: k, expect: null, value: v });
      cmds.push({ op: 'cas', key: k, expect: v, value: k });
    }
  }
  cmds.push({ op: 'batch', ops: [{ op: 'put', key: 'a', value: 'b' }, { op: 'get', key: 'a' }] });
  for (const c of cmds) assert.deepEqual([...encodeKvCommand(c)], [...encodeCommand(c)], JSON.stringify(c));
});

test("the client's KV encoder refuses what the shared encoder refuses", () => {
  const tooLarge: KvCommand[] = [
    { op: 'get', key: 'k'.repeat(keyBytesMax + 1) },
    { op: 'get', key: 'é'.repeat(keyBytesMax / 2 + 1) },
    { op: 'put', key: 'k', value: 'v'.repeat(valueBytesMax + 1) },
    { op: 'cas', key: 'k', expect: 'v'.repeat(valueBytesMax + 1), value: '' },
  ];
  for (const c of tooLarge) {
    assert.throws(() => encodeCommand(c), (e: unknown) => e instanceof KvError && e.code === 'TOO_LARGE');
    assert.throws(() => encodeKvCommand(c), (e: unknown) => e instanceof KvError && e.code === 'TOO_LARGE');
  }
  assert.deepEqual([...encodeKvCommand({ op: 'get', key: 'k'.repeat(keyBytesMax) })], [...encodeCommand({ op: 'get', key: 'k'.repeat(keyBytesMax) })]);
  const notString = { op: 'put', key: 5, value: 'v' } as unknown as KvCommand;
  assert.throws(() => encodeKvCommand(notString), (e: unknown) => e instanceof KvError && e.code === 'BAD_COMMAND');
});
