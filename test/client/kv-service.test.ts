import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pack, unpack } from 'msgpackr';
import { createKvStateMachine } from '../../src/kv/kv-service.js';
import { encodeCommand } from '../../src/kv/kv-command.js';
import { decodeKvResult } from '../../src/kv/kv-result.js';
import { KvResultError, type KvCommand } from '../../src/kv/kv-types.js';
import type { StateMachine } from '../../src/shard/state-machine.js';

let index = 0;
function apply(sm: StateMachine, cmd: KvCommand): unknown {
  return unpack(sm.apply(encodeCommand(cmd), ++index));
}

function query(sm: StateMachine, cmd: KvCommand): unknown {
  return unpack(sm.query(encodeCommand(cmd)));
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
}

test('apply answers each command with its msgpack KvResult', () => {
  const sm = createKvStateMachine(7);
  assert.deepEqual(apply(sm, { op: 'put', key: 'a', value: '1' }), { op: 'put' });
  assert.deepEqual(apply(sm, { op: 'get', key: 'a' }), { op: 'get', value: '1' });
  assert.deepEqual(apply(sm, { op: 'cas', key: 'a', expect: '1', value: '2' }), { op: 'cas', ok: true, value: '1' });
  assert.deepEqual(apply(sm, { op: 'cas', key: 'a', expect: '1', value: '3' }), { op: 'cas', ok: false, value: '2' });
  assert.deepEqual(apply(sm, { op: 'delete', key: 'a' }), { op: 'delete', existed: true });
  assert.deepEqual(apply(sm, { op: 'get', key: 'a' }), { op: 'get', value: null });
  assert.deepEqual(
    apply(sm, { op: 'batch', ops: [{ op: 'put', key: 'b', value: 'x' }, { op: 'get', key: 'b' }] }),
    { op: 'batch', ok: true, results: [{ op: 'put' }, { op: 'get', value: 'x' }] },
  );
  assert.deepEqual(unpack(sm.apply(new Uint8Array(0), ++index)), { op: 'noop' });
});

test('a put result is standard msgpack, the same read-only bytes for every put', () => {
  const sm = createKvStateMachine(1);
  const first = sm.apply(encodeCommand({ op: 'put', key: 'k', value: 'v' }), 1);
  // { "op": "put" } as a map16 (msgpackr's default map header), readable by any msgpack library.
  assert.equal(Buffer.from(first).toString('hex'), 'de0001a26f70a3707574');
  // Shared, not copied per put: the shard copies a result out and never writes into it
  // (StateMachine.apply).
  const second = sm.apply(encodeCommand({ op: 'put', key: 'k', value: 'w' }), 2);
  assert.equal(second, first);
});

test('apply never throws: malformed commands become error results, and the state is untouched', () => {
  const sm = createKvStateMachine(1);
  apply(sm, { op: 'put', key: 'a', value: '1' });
  const before = sm.snapshot();
  const bad = [
    new Uint8Array([9]),
    new Uint8Array([1, 0, 5, 0x61]),
    new Uint8Array([2, 0, 1, 0xff]),
    Uint8Array.from([...encodeCommand({ op: 'get', key: 'a' }), 0]),
    new Uint8Array([5, 0xff, 0xff]),
  ];
  for (const b of bad) {
    const r = unpack(sm.apply(b, ++index)) as { op: string; code: string; message: string };
    assert.equal(r.op, 'error');
    assert.equal(r.code, 'BAD_COMMAND');
    assert.equal(typeof r.message, 'string');
  }
  assert.deepEqual(sm.snapshot(), before);
});

test('query answers a get, or a batch of only gets, from the current state without changing it', () => {
  const sm = createKvStateMachine(1);
  apply(sm, { op: 'put', key: 'a', value: '1' });
  const before = sm.snapshot();
  assert.deepEqual(query(sm, { op: 'get', key: 'a' }), { op: 'get', value: '1' });
  assert.deepEqual(query(sm, { op: 'get', key: 'zz' }), { op: 'get', value: null });
  assert.deepEqual(query(sm, { op: 'batch', ops: [{ op: 'get', key: 'a' }, { op: 'get', key: 'b' }] }), {
    op: 'batch',
    ok: true,
    results: [{ op: 'get', value: '1' }, { op: 'get', value: null }],
  });
  assert.deepEqual(query(sm, { op: 'batch', ops: [] }), { op: 'batch', ok: true, results: [] });
  assert.deepEqual(sm.snapshot(), before);
});

test('query refuses writes and malformed commands with BAD_REQUEST', () => {
  const sm = createKvStateMachine(1);
  const refused: Uint8Array[] = [
    encodeCommand({ op: 'put', key: 'a', value: '1' }),
    encodeCommand({ op: 'delete', key: 'a' }),
    encodeCommand({ op: 'cas', key: 'a', expect: null, value: '1' }),
    encodeCommand({ op: 'batch', ops: [{ op: 'get', key: 'a' }, { op: 'put', key: 'a', value: '1' }] }),
    new Uint8Array(0),
    new Uint8Array([42, 1, 2]),
  ];
  for (const c of refused) {
    assert.equal(codeOf(() => sm.query(c)), 'BAD_REQUEST');
  }
  assert.deepEqual(query(sm, { op: 'get', key: 'a' }), { op: 'get', value: null });
});

test('snapshot and restore carry the whole state; a bad image leaves the state as it was', () => {
  const a = createKvStateMachine(3);
  for (let i = 0; i < 100; i++) apply(a, { op: 'put', key: `k${i}`, value: `v${i}` });
  apply(a, { op: 'delete', key: 'k5' });
  const image = a.snapshot();
  const b = createKvStateMachine(3);
  apply(b, { op: 'put', key: 'other', value: 'x' });
  b.restore(image);
  assert.deepEqual(b.snapshot(), image);
  assert.deepEqual(query(b, { op: 'get', key: 'k7' }), { op: 'get', value: 'v7' });
  assert.deepEqual(query(b, { op: 'get', key: 'k5' }), { op: 'get', value: null });
  assert.deepEqual(query(b, { op: 'get', key: 'other' }), { op: 'get', value: null });

  assert.equal(codeOf(() => b.restore(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]))), 'BAD_SNAPSHOT');
  assert.deepEqual(b.snapshot(), image);
  b.restore(new Uint8Array(0));
  assert.deepEqual(query(b, { op: 'get', key: 'k7' }), { op: 'get', value: null });
});

test('decodeKvResult reads every result shape and refuses what is not one', () => {
  const shapes = [
    { op: 'put' },
    { op: 'get', value: 'x' },
    { op: 'get', value: null },
    { op: 'delete', existed: false },
    { op: 'cas', ok: false, value: null },
    { op: 'batch', ok: true, results: [{ op: 'put' }, { op: 'get', value: '' }] },
    { op: 'noop' },
    { op: 'error', code: 'TOO_LARGE', message: 'big' },
  ];
  for (const s of shapes) assert.deepEqual(decodeKvResult(pack(s)), s);
  const bad: unknown[] = [
    'put',
    null,
    [1, 2],
    { op: 'frob' },
    { op: 'get' },
    { op: 'get', value: 3 },
    { op: 'delete' },
    { op: 'cas', ok: 'yes', value: null },
    { op: 'batch', ok: true, results: [{ op: 'batch', ok: true, results: [] }] },
    { op: 'batch', ok: true },
    { op: 'error', code: 1, message: 'm' },
  ];
  for (const b of bad) assert.throws(() => decodeKvResult(pack(b)), KvResultError, JSON.stringify(b));
  assert.throws(() => decodeKvResult(new Uint8Array([0xc1])), (e: unknown) => (e as KvResultError).code === 'BAD_RESULT');
});
