import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeCommand, encodeCommand } from '../../src/kv/kv-command.js';
import { KvError, batchOpsMax, keyBytesMax, valueBytesMax, type KvCommand } from '../../src/kv/kv-types.js';
import { KvStateMachine } from '../../src/kv/kv-state-machine.js';

function run(kv: KvStateMachine, cmd: KvCommand) {
  return kv.apply(encodeCommand(cmd));
}

test('commands round-trip through their binary layout', () => {
  const cmds: KvCommand[] = [
    { op: 'put', key: 'k', value: 'v' },
    { op: 'put', key: '', value: '' },
    { op: 'put', key: 'ключ', value: '値 🚣' },
    { op: 'get', key: 'k' },
    { op: 'delete', key: 'k' },
    { op: 'cas', key: 'k', expect: null, value: 'a' },
    { op: 'cas', key: 'k', expect: '', value: 'a' },
    { op: 'cas', key: 'k', expect: 'x', value: '' },
    { op: 'batch', ops: [] },
    { op: 'batch', ops: [{ op: 'put', key: 'a', value: '1' }, { op: 'cas', key: 'b', expect: null, value: '2' }, { op: 'get', key: 'a' }] },
  ];
  for (const c of cmds) assert.deepEqual(decodeCommand(encodeCommand(c)), c);
});

test('put, get, delete', () => {
  const kv = new KvStateMachine();
  assert.deepEqual(run(kv, { op: 'get', key: 'a' }), { op: 'get', value: null });
  assert.deepEqual(run(kv, { op: 'put', key: 'a', value: '1' }), { op: 'put' });
  assert.deepEqual(run(kv, { op: 'get', key: 'a' }), { op: 'get', value: '1' });
  assert.equal(kv.get('a'), '1');
  assert.deepEqual(run(kv, { op: 'put', key: 'a', value: '2' }), { op: 'put' });
  assert.equal(kv.get('a'), '2');
  assert.deepEqual(run(kv, { op: 'delete', key: 'a' }), { op: 'delete', existed: true });
  assert.deepEqual(run(kv, { op: 'delete', key: 'a' }), { op: 'delete', existed: false });
  assert.equal(kv.get('a'), null);
  assert.equal(kv.size, 0);
});

test('an empty value is present, not absent', () => {
  const kv = new KvStateMachine();
  run(kv, { op: 'put', key: 'a', value: '' });
  assert.equal(kv.get('a'), '');
  assert.deepEqual(run(kv, { op: 'cas', key: 'a', expect: null, value: 'x' }), { op: 'cas', ok: false, value: '' });
  assert.deepEqual(run(kv, { op: 'cas', key: 'a', expect: '', value: 'x' }), { op: 'cas', ok: true, value: '' });
});

test('compare-and-set writes only when the current value matches', () => {
  const kv = new KvStateMachine();
  assert.deepEqual(run(kv, { op: 'cas', key: 'a', expect: '1', value: '2' }), { op: 'cas', ok: false, value: null });
  assert.equal(kv.get('a'), null);
  assert.deepEqual(run(kv, { op: 'cas', key: 'a', expect: null, value: '1' }), { op: 'cas', ok: true, value: null });
  assert.deepEqual(run(kv, { op: 'cas', key: 'a', expect: null, value: '9' }), { op: 'cas', ok: false, value: '1' });
  assert.deepEqual(run(kv, { op: 'cas', key: 'a', expect: '1', value: '2' }), { op: 'cas', ok: true, value: '1' });
  assert.equal(kv.get('a'), '2');
});

test('a batch applies all of its writes or none', () => {
  const kv = new KvStateMachine();
  run(kv, { op: 'put', key: 'x', value: '0' });
  const ok = run(kv, {
    op: 'batch',
    ops: [
      { op: 'put', key: 'a', value: '1' },
      { op: 'get', key: 'a' },
      { op: 'cas', key: 'a', expect: '1', value: '2' },
      { op: 'delete', key: 'x' },
      { op: 'get', key: 'x' },
    ],
  });
  assert.deepEqual(ok, {
    op: 'batch',
    ok: true,
    results: [
      { op: 'put' },
      { op: 'get', value: '1' },
      { op: 'cas', ok: true, value: '1' },
      { op: 'delete', existed: true },
      { op: 'get', value: null },
    ],
  });
  assert.equal(kv.get('a'), '2');
  assert.equal(kv.get('x'), null);

  const failed = run(kv, {
    op: 'batch',
    ops: [
      { op: 'put', key: 'b', value: '1' },
      { op: 'delete', key: 'a' },
      { op: 'cas', key: 'a', expect: 'nope', value: '3' },
    ],
  });
  assert.equal(failed.op, 'batch');
  assert.equal(failed.op === 'batch' && failed.ok, false);
  assert.equal(kv.get('b'), null, 'a failed batch writes nothing');
  assert.equal(kv.get('a'), '2', 'a failed batch deletes nothing');
});

test('malformed commands give a deterministic error result, not an exception', () => {
  const kv = new KvStateMachine();
  run(kv, { op: 'put', key: 'a', value: '1' });
  const before = kv.serialize();
  const good = encodeCommand({ op: 'put', key: 'a', value: 'zz' });
  const bad: Uint8Array[] = [
    new Uint8Array([99]),
    good.subarray(0, good.length - 1),
    new Uint8Array([...good, 0]),
    new Uint8Array([2, 0, 2, 0xff, 0xfe]), // invalid UTF-8
    new Uint8Array([5, 0, 1, 5, 0, 0]), // nested batch
    new Uint8Array([4, 0, 1, 0x61, 7]), // bad expect flag
  ];
  for (const b of bad) {
    const r = kv.apply(b);
    assert.equal(r.op, 'error', `bytes ${[...b].join(',')}`);
    assert.equal(r.op === 'error' && r.code, 'BAD_COMMAND');
  }
  assert.deepEqual(kv.serialize(), before);
  assert.deepEqual(kv.apply(new Uint8Array(0)), { op: 'noop' });
});

test('sizes are bounded at encode time', () => {
  assert.doesNotThrow(() => encodeCommand({ op: 'put', key: 'k'.repeat(keyBytesMax), value: '' }));
  assert.throws(() => encodeCommand({ op: 'put', key: 'k'.repeat(keyBytesMax + 1), value: '' }), (e: unknown) => e instanceof KvError && e.code === 'TOO_LARGE');
  // The bound is in bytes, not characters: 'é' is two bytes.
  assert.throws(() => encodeCommand({ op: 'get', key: 'é'.repeat(keyBytesMax / 2 + 1) }), KvError);
  assert.throws(() => encodeCommand({ op: 'put', key: 'k', value: 'v'.repeat(valueBytesMax + 1) }), KvError);
  assert.throws(() => encodeCommand({ op: 'cas', key: 'k', expect: 'v'.repeat(valueBytesMax + 1), value: '' }), KvError);
  const ops = Array.from({ length: batchOpsMax + 1 }, () => ({ op: 'get' as const, key: 'k' }));
  assert.throws(() => encodeCommand({ op: 'batch', ops }), KvError);
});

test('serialize and restore give an equal state; the same history gives the same bytes', () => {
  const history: KvCommand[] = [
    { op: 'put', key: 'z', value: '1' },
    { op: 'put', key: 'gone', value: '1' },
    { op: 'put', key: 'a', value: 'x' },
    { op: 'delete', key: 'gone' },
    { op: 'put', key: 'ü', value: '' },
    { op: 'put', key: 'a', value: '2' },
    { op: 'put', key: 'gone', value: 'back' },
  ];
  const a = new KvStateMachine();
  const b = new KvStateMachine();
  for (const cmd of history.slice(0, 3)) run(a, cmd);
  for (const cmd of history.slice(0, 3)) run(b, cmd);
  // b goes on from an image of itself (a replica that installed a snapshot), a from its log.
  const bRestored = KvStateMachine.restore(b.serialize());
  for (const cmd of history.slice(3)) run(a, cmd);
  for (const cmd of history.slice(3)) run(bRestored, cmd);
  assert.deepEqual(a.serialize(), bRestored.serialize(), 'same history, one through an image: equal images');
  const c = KvStateMachine.restore(a.serialize());
  assert.equal(c.size, 4);
  assert.equal(c.get('a'), '2');
  assert.equal(c.get('ü'), '');
  assert.equal(c.get('gone'), 'back');
  assert.deepEqual(c.serialize(), a.serialize());
  assert.equal(KvStateMachine.restore(new Uint8Array(0)).size, 0);
});

test('an image made in steps while commands go on is the image of the state when it began', () => {
  const kv = new KvStateMachine();
  for (let i = 0; i < 500; i++) run(kv, { op: 'put', key: `k${i}`, value: `v${i}`.repeat(1 + (i % 7)) + (i % 3 === 0 ? 'é' : '') });
  const expected = kv.serialize();
  const image = kv.serializeInSteps();
  let steps = 0;
  let out: Uint8Array | null = null;
  for (let i = 0; out === null; i++) {
    out = image.step(200);
    steps++;
    // Between steps the state keeps changing: overwrites, deletes, new keys.
    run(kv, { op: 'put', key: `k${i % 500}`, value: 'changed' });
    run(kv, { op: 'delete', key: `k${(i * 7) % 500}` });
    run(kv, { op: 'put', key: `new${i}`, value: 'n' });
    assert.ok(steps < 10_000, 'the image never completes');
  }
  assert.ok(steps > 10, `only ${steps} steps: the budget was not honoured`);
  assert.deepEqual(Buffer.from(out), Buffer.from(expected));
  assert.deepEqual(Buffer.from(new KvStateMachine().serializeInSteps().step(1)!), Buffer.from(new KvStateMachine().serialize()), 'an empty state in one step');
});

test('an image holds every key and value as UTF-8, ASCII or not', () => {
  const kv = new KvStateMachine();
  const pairs: [string, string][] = [['ascii', 'plain'], ['ké', 'vä'], ['k', 'emoji 😀 and ü'], ['', '']];
  for (const [key, value] of pairs) run(kv, { op: 'put', key, value });
  const img = kv.serialize();
  const utf8 = (x: string): number => new TextEncoder().encode(x).length;
  assert.equal(img.length, 8 + pairs.reduce((n, [k, v]) => n + 6 + utf8(k) + utf8(v), 0));
  const back = KvStateMachine.restore(img);
  for (const [key, value] of pairs) assert.equal(back.get(key), value);
});

test('restore rejects a damaged image', () => {
  const kv = new KvStateMachine();
  run(kv, { op: 'put', key: 'a', value: '1' });
  const img = kv.serialize();
  assert.throws(() => KvStateMachine.restore(img.subarray(0, img.length - 1)), (e: unknown) => e instanceof KvError && e.code === 'BAD_SNAPSHOT');
  const bad = img.slice();
  bad[0] = 0;
  assert.throws(() => KvStateMachine.restore(bad), KvError);
  // The same key twice: count 2, then "a"="1" twice.
  const one = img.subarray(8);
  const twice = new Uint8Array(8 + 2 * one.length);
  twice.set(img.subarray(0, 8));
  new DataView(twice.buffer).setUint32(4, 2);
  twice.set(one, 8);
  twice.set(one, 8 + one.length);
  assert.throws(() => KvStateMachine.restore(twice), (e: unknown) => e instanceof KvError && e.code === 'BAD_SNAPSHOT' && /twice/.test(e.message));
});
