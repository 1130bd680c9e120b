// Oversize keys, values and batches inside a well-formed frame are refused TOO_LARGE before they
// are proposed (issue 12, item 10): nothing reaches the log (the shard's Proposals counter does
// not move), where they used to be replicated and logged only to be answered BAD_COMMAND at
// apply. commandSizeProblem reads only lengths; a command that does not parse is left to apply.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameKind } from '../../src/protocol/client-frame.js';
import { ShardCounter } from '../../src/shard/counters.js';
import { commandSizeProblem, encodeCommand } from '../../src/kv/kv-command.js';
import { batchOpsMax, keyBytesMax, KvTag, valueBytesMax } from '../../src/kv/kv-types.js';
import { errorOf, resultOf, ShardCluster } from './harness.js';

function u16(n: number): number[] {
  return [n >>> 8, n & 0xff];
}
function u32(n: number): number[] {
  return [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}

/** A put whose value header claims `valueLen` bytes: only the first `have` are there (a size check must not need them). */
function put(keyLen: number, valueLen: number, have = valueLen): Uint8Array {
  return Uint8Array.from([KvTag.Put, ...u16(keyLen), ...new Array<number>(keyLen).fill(0x61), ...u32(valueLen), ...new Array<number>(have).fill(0x62)]);
}

test('commandSizeProblem: keys, values, cas expects and batches over their bounds; within bounds and unparsable commands are null', () => {
  assert.equal(commandSizeProblem(encodeCommand({ op: 'put', key: 'k', value: 'v' })), null);
  assert.equal(commandSizeProblem(put(keyBytesMax, valueBytesMax)), null);
  assert.match(commandSizeProblem(put(keyBytesMax + 1, 1))!, /key of 1025 bytes exceeds 1024/);
  assert.match(commandSizeProblem(put(3, valueBytesMax + 1, 0))!, /value of 262145 bytes exceeds 262144/);
  const cas = Uint8Array.from([KvTag.Cas, ...u16(1), 0x61, 1, ...u32(valueBytesMax + 1)]);
  assert.match(commandSizeProblem(cas)!, /cas expect/);
  const casValue = Uint8Array.from([KvTag.Cas, ...u16(1), 0x61, 0, ...u32(valueBytesMax + 7)]);
  assert.match(commandSizeProblem(casValue)!, /value of 262151 bytes/);
  const many = Uint8Array.from([KvTag.Batch, ...u16(batchOpsMax + 1)]);
  assert.match(commandSizeProblem(many)!, /batch of 1025 ops/);
  const inBatch = Uint8Array.from([KvTag.Batch, ...u16(2), KvTag.Delete, ...u16(1), 0x61, ...put(1, valueBytesMax + 1, 0)]);
  assert.match(commandSizeProblem(inBatch)!, /value of 262145 bytes/);
  for (const junk of [[], [0xff, 1, 2], [KvTag.Put, 0], [KvTag.Put, 0, 1, 0x61, 0, 0], [KvTag.Batch, 0]]) {
    assert.equal(commandSizeProblem(Uint8Array.from(junk)), null, `junk ${JSON.stringify(junk)}`);
  }
});

test('a write over a KV bound is answered TOO_LARGE and never proposed; the group keeps serving', { timeout: 60_000 }, async () => {
  const c = new ShardCluster([1, 2, 3]);
  try {
    for (const id of c.ids) await c.start(id);
    const group = 2;
    const leader = await c.leaderOf(group);
    assert.deepEqual(resultOf(await c.put(leader, group, 'k', 'v')), { op: 'put' });
    const before = c.counter(leader, ShardCounter.Proposals);
    const bigKey = put(2_000, 1);
    const bigBatch = Uint8Array.from([KvTag.Batch, ...u16(batchOpsMax + 1),
      ...Array.from({ length: batchOpsMax + 1 }, () => [KvTag.Delete, ...u16(1), 0x61]).flat()]);
    for (const body of [bigKey, bigBatch]) {
      const e = errorOf(await c.request(leader, FrameKind.Command, 0, group, body));
      assert.equal(e.code, 'TOO_LARGE');
    }
    assert.equal(c.counter(leader, ShardCounter.Proposals), before, 'nothing proposed');
    assert.deepEqual(resultOf(await c.put(leader, group, 'k2', 'v2')), { op: 'put' });
    await c.stopAll();
  } finally {
    c.cleanup();
  }
});
