// The KV state machine's part in migration (issue 15): slot marks set by internal commands, client
// commands and reads refused on marked slots (and nothing applied), export pages, imports only
// into slots cleared for their migration, drop and accept, marks that only a newer migration may
// change, and snapshots that keep the marks (format 2) while a group without marks writes format 1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { slotOf } from '../../src/cluster/slots.js';
import { encodeCommand } from '../../src/kv/kv-command.js';
import {
  decodeCountAnswer, decodeExportAnswer, decodeMarksAnswer, encodeCountQuery, encodeExportQuery, encodeInternalCommand, encodeMarksQuery,
  type InternalCommand,
} from '../../src/kv/kv-migration-command.js';
import { decodeKvResult } from '../../src/kv/kv-result.js';
import { createKvStateMachine } from '../../src/kv/kv-service.js';
import { KvStateMachine } from '../../src/kv/kv-state-machine.js';
import { MarkState } from '../../src/kv/slot-marks.js';
import type { KvCommand } from '../../src/kv/kv-types.js';

function keysIn(first: number, last: number, n: number, prefix: string): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) if (slotOf(`${prefix}${i}`) >= first && slotOf(`${prefix}${i}`) <= last) out.push(`${prefix}${i}`);
  return out;
}

const S = [{ first: 0, last: 99 }];
const inS = keysIn(0, 99, 20, 'in');
const outS = keysIn(200, 16383, 5, 'out');

function sm() {
  const m = createKvStateMachine(1);
  let index = 0;
  const run = (c: KvCommand) => decodeKvResult(m.apply(encodeCommand(c), ++index));
  const internal = (c: InternalCommand) => decodeKvResult(m.apply(encodeInternalCommand(c), ++index));
  const read = (c: KvCommand) => decodeKvResult(m.query(encodeCommand(c)));
  return { m, run, internal, read };
}

test('a fence refuses every command and read of its slots with MIGRATING, applying nothing; other slots are served', () => {
  const { run, internal, read, m } = sm();
  for (const k of [...inS, ...outS]) run({ op: 'put', key: k, value: `v-${k}` });
  assert.deepEqual(internal({ op: 'fence', id: 5, slots: S }), { op: 'noop' });
  const k = inS[0]!;
  for (const c of [
    { op: 'put', key: k, value: 'new' }, { op: 'get', key: k }, { op: 'delete', key: k },
    { op: 'cas', key: k, expect: `v-${k}`, value: 'new' }, { op: 'batch', ops: [{ op: 'put', key: outS[0]!, value: 'b' }, { op: 'put', key: k, value: 'b' }] },
  ] as KvCommand[]) {
    const r = run(c);
    assert.equal(r.op === 'error' && r.code, 'MIGRATING', JSON.stringify(c));
  }
  const g = read({ op: 'get', key: k });
  assert.equal(g.op === 'error' && g.code, 'MIGRATING');
  // Nothing applied: not the put, not the batch's other key.
  assert.deepEqual(read({ op: 'get', key: outS[0]! }), { op: 'get', value: `v-${outS[0]}` });
  assert.deepEqual(run({ op: 'put', key: outS[1]!, value: 'x' }), { op: 'put' });
  // Idempotent, and the marks query says what is marked.
  internal({ op: 'fence', id: 5, slots: S });
  assert.deepEqual(decodeMarksAnswer(m.query(encodeMarksQuery())), [{ first: 0, last: 99, state: MarkState.Fenced, id: 5, to: 0 }]);
  // Unfence of another migration changes nothing; of this one, serves again.
  internal({ op: 'unfence', id: 4, slots: S });
  assert.equal(read({ op: 'get', key: k }).op, 'error');
  internal({ op: 'unfence', id: 5, slots: S });
  assert.deepEqual(read({ op: 'get', key: k }), { op: 'get', value: `v-${k}` });
  // The slots keep the id of the migration that lifted the mark: a late fence of it is refused.
  assert.deepEqual(decodeMarksAnswer(m.query(encodeMarksQuery())), [{ first: 0, last: 99, state: MarkState.None, id: 5, to: 0 }]);
  internal({ op: 'fence', id: 5, slots: S });
  assert.deepEqual(read({ op: 'get', key: k }), { op: 'get', value: `v-${k}` });
});

test('export pages the fenced slots\' keys by a stable cursor while other keys change; unfenced: refused', () => {
  const { run, internal, m } = sm();
  for (const k of [...inS, ...outS]) run({ op: 'put', key: k, value: `v-${k}`.repeat(10) });
  assert.equal(decodeExportAnswer(m.query(encodeExportQuery(5, S, 0, 100))).fenced, false);
  internal({ op: 'fence', id: 5, slots: S });
  assert.equal(decodeExportAnswer(m.query(encodeExportQuery(6, S, 0, 100))).fenced, false, 'fenced for another migration');
  const got: string[] = [];
  for (let skip = 0, pages = 0; ; pages++) {
    assert.ok(pages < 100);
    const a = decodeExportAnswer(m.query(encodeExportQuery(5, S, skip, 100)));
    assert.ok(a.fenced && a.pairs.length >= 1);
    for (const p of a.pairs) {
      got.push(Buffer.from(p.key).toString());
      assert.equal(Buffer.from(p.value).toString(), `v-${Buffer.from(p.key).toString()}`.repeat(10));
    }
    skip += a.pairs.length;
    // Keys of other slots come and go between pages.
    run({ op: 'delete', key: outS[pages % outS.length]! });
    run({ op: 'put', key: `new-${pages}`, value: 'n' });
    if (a.done) break;
  }
  assert.deepEqual(got.sort(), [...inS].sort());
});

test('clear, import, accept in the target; drop in the source; an older migration cannot undo a newer one', () => {
  const target = sm();
  target.run({ op: 'put', key: inS[0]!, value: 'stale leftover' });
  target.internal({ op: 'clear', id: 7, slots: S, owner: 1 });
  // Cleared: the leftover is gone and the slots are refused (owned elsewhere) until accept.
  let r = target.read({ op: 'get', key: inS[1]! });
  assert.equal(r.op === 'error' && r.code, 'WRONG_GROUP');
  const pairs = inS.map((k) => ({ key: Buffer.from(k), value: Buffer.from(`v-${k}`) }));
  target.internal({ op: 'import', id: 7, slots: S, pairs });
  target.internal({ op: 'import', id: 7, slots: S, pairs }); // again: the same puts
  // An import of an older migration lands nowhere.
  target.internal({ op: 'import', id: 6, slots: S, pairs: [{ key: Buffer.from(inS[0]!), value: Buffer.from('old') }] });
  target.internal({ op: 'accept', id: 7, slots: S });
  for (const k of inS) assert.deepEqual(target.read({ op: 'get', key: k }), { op: 'get', value: `v-${k}` });
  assert.equal((target.m as unknown as { kv: KvStateMachine }).kv.size, inS.length);
  // Late steps of the same migration after its accept (a deposed driver's) change nothing: a
  // clear would delete the keys in their new owner.
  target.internal({ op: 'clear', id: 7, slots: S, owner: 1 });
  target.internal({ op: 'import', id: 7, slots: S, pairs: [{ key: Buffer.from(inS[0]!), value: Buffer.from('late') }] });
  for (const k of inS) assert.deepEqual(target.read({ op: 'get', key: k }), { op: 'get', value: `v-${k}` });

  const source = sm();
  for (const k of [...inS, ...outS]) source.run({ op: 'put', key: k, value: 'v' });
  source.internal({ op: 'fence', id: 7, slots: S });
  source.internal({ op: 'drop', id: 7, slots: S, to: 2 });
  r = source.run({ op: 'put', key: inS[0]!, value: 'late' });
  assert.equal(r.op === 'error' && r.code, 'WRONG_GROUP');
  assert.match(r.op === 'error' ? r.message : '', /group 2/);
  assert.equal((source.m as unknown as { kv: KvStateMachine }).kv.size, outS.length);
  // A late fence or unfence of an older migration does not undo the move.
  source.internal({ op: 'fence', id: 6, slots: S });
  source.internal({ op: 'unfence', id: 7, slots: S });
  assert.deepEqual(decodeMarksAnswer(source.m.query(encodeMarksQuery())), [{ first: 0, last: 99, state: MarkState.Moved, id: 7, to: 2 }]);
  // A newer migration bringing them back clears and accepts.
  source.internal({ op: 'clear', id: 9, slots: S, owner: 2 });
  source.internal({ op: 'accept', id: 9, slots: S });
  assert.deepEqual(source.read({ op: 'get', key: inS[0]! }), { op: 'get', value: null });
});

test('a snapshot keeps the marks (format 2); a group without marks writes format 1, and both restore', () => {
  const a = new KvStateMachine();
  a.applyEncoded(encodeCommand({ op: 'put', key: 'x', value: '1' }));
  const v1 = a.serialize();
  assert.equal(Buffer.from(v1).readUInt32BE(0), 0x4b560001);
  a.applyEncoded(encodeInternalCommand({ op: 'fence', id: 3, slots: S }));
  a.applyEncoded(encodeInternalCommand({ op: 'drop', id: 2, slots: [{ first: 500, last: 600 }], to: 4 }));
  const v2 = a.serialize();
  assert.equal(Buffer.from(v2).readUInt32BE(0), 0x4b560002);
  const b = KvStateMachine.restore(v2);
  assert.deepEqual(Buffer.from(b.serialize()), Buffer.from(v2));
  assert.deepEqual(decodeMarksAnswer(b.queryInternal(encodeMarksQuery())), decodeMarksAnswer(a.queryInternal(encodeMarksQuery())));
  const refused = decodeKvResult(b.applyEncoded(encodeCommand({ op: 'put', key: inS[0]!, value: 'v' })));
  assert.equal(refused.op === 'error' && refused.code, 'MIGRATING');
  assert.equal(KvStateMachine.restore(v1).get('x'), '1');
  // A truncated marks trailer is a bad snapshot.
  assert.throws(() => KvStateMachine.restore(v2.subarray(0, v2.length - 3)), (e: { code?: string }) => e.code === 'BAD_SNAPSHOT');
});

test('malformed internal commands are BAD_COMMAND results; the state is unchanged', () => {
  const { m, run } = sm();
  run({ op: 'put', key: inS[0]!, value: 'v' });
  for (const bad of [
    Uint8Array.of(0x41), Uint8Array.of(0x41, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1), // id 0
    Uint8Array.of(0x41, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0), // no ranges
    Uint8Array.of(0x41, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 0, 5, 0, 1, 0, 2, 0, 3), // not canonical
    Uint8Array.of(0x4f, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1), // unknown tag
  ]) {
    const r = decodeKvResult(m.apply(bad, 1));
    assert.equal(r.op === 'error' && r.code, 'BAD_COMMAND', Buffer.from(bad).toString('hex'));
  }
  assert.deepEqual(decodeMarksAnswer(m.query(encodeMarksQuery())), []);
  assert.throws(() => m.query(Uint8Array.of(0x48, 1)), (e: { code?: string }) => e.code === 'BAD_REQUEST');
});

test('seal: the target\'s copy counts up to the source\'s keys or is refused COPY_INCOMPLETE; once sealed a late clear or import of the migration changes nothing, discard does', () => {
  const t = sm();
  const pairs = inS.map((k) => ({ key: Buffer.from(k), value: Buffer.from(`v-${k}`) }));
  const count = (): number => (t.m as unknown as { kv: KvStateMachine }).kv.size;
  t.internal({ op: 'clear', id: 8, slots: S, owner: 1 });
  t.internal({ op: 'import', id: 8, slots: S, pairs: pairs.slice(0, 10) });
  // A deposed driver's clear cuts the copy short: the count shows it.
  t.internal({ op: 'clear', id: 8, slots: S, owner: 1 });
  t.internal({ op: 'import', id: 8, slots: S, pairs: pairs.slice(10) });
  let r = t.internal({ op: 'seal', id: 8, slots: S, count: inS.length });
  assert.equal(r.op === 'error' && r.code, 'COPY_INCOMPLETE');
  // Copied again whole: sealed.
  t.internal({ op: 'clear', id: 8, slots: S, owner: 1 });
  t.internal({ op: 'import', id: 8, slots: S, pairs });
  assert.deepEqual(t.internal({ op: 'seal', id: 8, slots: S, count: inS.length }), { op: 'noop' });
  assert.deepEqual(t.internal({ op: 'seal', id: 8, slots: S, count: inS.length }), { op: 'noop' }, 'again: still sealed');
  r = t.read({ op: 'get', key: inS[0]! });
  assert.equal(r.op === 'error' && r.code, 'WRONG_GROUP', 'sealed: still not served');
  t.internal({ op: 'clear', id: 8, slots: S, owner: 1 });
  t.internal({ op: 'import', id: 8, slots: S, pairs: [{ key: Buffer.from(inS[0]!), value: Buffer.from('late') }] });
  assert.equal(count(), inS.length);
  assert.deepEqual(decodeMarksAnswer(t.m.query(encodeMarksQuery())), [{ first: 0, last: 99, state: MarkState.Sealed, id: 8, to: 1 }]);
  // Seal of slots not cleared for the migration: refused.
  r = t.internal({ op: 'seal', id: 9, slots: S, count: inS.length });
  assert.equal(r.op === 'error' && r.code, 'COPY_INCOMPLETE');
  // Aborted: discard deletes the copy.
  t.internal({ op: 'discard', id: 8, slots: S, owner: 1 });
  assert.equal(count(), 0);
  // The count query needs the source's fence.
  const src = sm();
  for (const k of inS) src.run({ op: 'put', key: k, value: 'v' });
  assert.equal(decodeCountAnswer(src.m.query(encodeCountQuery(3, S))), null);
  src.internal({ op: 'fence', id: 3, slots: S });
  assert.equal(decodeCountAnswer(src.m.query(encodeCountQuery(3, S))), inS.length);
});
