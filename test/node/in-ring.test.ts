// Writing to a shard's in ring with backpressure (src/node/in-ring.ts): a record that finds the
// ring full is held and written, in arrival order, once the shard has made room; after stop()
// nothing held is written. The shard's side is a second view of the same ring, on this thread.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { SpscRing } from '../../src/ring/spsc-ring.js';
import { InKind, recordArg, recordKind } from '../../src/ring/records.js';
import { InRingWriter } from '../../src/node/in-ring.js';

const PAYLOAD_BYTES = 200;

/** A ring seen by the writer and by the shard; closed when the test ends (a pending wait holds the process). */
function rings(t: TestContext): { writer: InRingWriter; shard: SpscRing } {
  const sab = SpscRing.allocate(4096);
  const writer = new InRingWriter(new SpscRing(sab));
  const shard = new SpscRing(sab);
  t.after(() => {
    writer.ring.close();
    shard.close();
  });
  return { writer, shard };
}

/** Writes records with args 1, 2, ... until the ring is full; returns how many went in. */
function fill(writer: InRingWriter): number {
  let n = 0;
  while (writer.write(InKind.Client, n + 1, new Uint8Array(PAYLOAD_BYTES))) n++;
  return n;
}

/** What the shard reads now: the arg of every record, and releases them. */
function drain(shard: SpscRing): number[] {
  const args: number[] = [];
  for (let at = shard.read(); at >= 0; at = shard.read()) {
    assert.equal(recordKind(shard.data, at), InKind.Client);
    args.push(recordArg(shard.data, at));
    shard.release();
  }
  shard.notifyRoom();
  return args;
}

test('a record that finds the ring full is held, and those after it queue behind it, until the shard makes room', { timeout: 10_000 }, async (t) => {
  const { writer, shard } = rings(t);
  const n = fill(writer);
  assert.ok(n > 2, `the ring took ${n} records`);
  writer.writeOrHold(InKind.Client, 1001, new Uint8Array(PAYLOAD_BYTES));
  assert.equal(writer.blocked.length, 1);
  // A small record would fit now, once room is made, but must wait behind the held one.
  writer.writeOrHold(InKind.Client, 1002, new Uint8Array(1));
  writer.writeOrHold(InKind.Client, 1003, new Uint8Array(PAYLOAD_BYTES));
  assert.equal(writer.blocked.length, 3);

  // The writer's retry runs when the room it waits for is there: wait for the shard's data.
  const seen = drain(shard);
  while (seen.length < n + 3) {
    await shard.waitData();
    seen.push(...drain(shard));
  }
  assert.deepEqual(seen, [...Array.from({ length: n }, (_, i) => i + 1), 1001, 1002, 1003]);
  assert.equal(writer.blocked.length, 0);
  writer.writeOrHold(InKind.Client, 1004, new Uint8Array(1));
  assert.equal(writer.blocked.length, 0, 'with nothing held and room, a record goes in at once');
  assert.deepEqual(drain(shard), [1004]);
});

test('after stop() nothing held is written, even once there is room', { timeout: 10_000 }, async (t) => {
  const { writer, shard } = rings(t);
  const n = fill(writer);
  writer.writeOrHold(InKind.Client, 2001, new Uint8Array(PAYLOAD_BYTES));
  assert.equal(writer.blocked.length, 1);
  writer.stop();
  // The same wait for room as the writer's (a pending wait is shared), registered after its
  // retry: once this resolves, the retry has run.
  const room = writer.ring.waitRoom(writer.blocked[0]!.bytes);
  assert.equal(drain(shard).length, n);
  await room;
  assert.equal(shard.read(), -1, 'the held record was not written');
  assert.equal(writer.blocked.length, 1);
});
