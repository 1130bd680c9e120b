import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Inflights } from '../../src/raft/progress.js';

// The window grows on demand: what it holds, and in which order it frees, must not depend on
// when it grew (growing while the ring has wrapped moves its messages to the front).
test('the inflight window grows on demand up to countMax, keeping order across wrap-around', () => {
  const w = new Inflights(20, 1_000_000);
  let next = 1;
  const held: number[] = [];
  const add = (n: number): void => {
    for (let k = 0; k < n; k++, next++) {
      w.add(next, 10);
      held.push(next);
    }
  };
  add(7);
  w.freeLE(5); // start moves to slot 5 of 8
  held.splice(0, 5);
  add(6); // wraps around slot 7 → 0, then grows to 16 with the ring wrapped
  assert.equal(w.count, held.length);
  assert.equal(w.bytes, 10 * held.length);
  add(20 - held.length); // up to countMax: grows to 20, not 32
  assert.ok(w.full());
  assert.throws(() => w.add(next, 10), /inflights overflow/);
  // Freed in order, one at a time.
  while (held.length > 0) {
    const first = held.shift()!;
    w.freeFirstOne();
    assert.equal(w.count, held.length);
    if (held.length > 0) {
      w.freeLE(first); // already freed: nothing more goes
      assert.equal(w.count, held.length);
    }
  }
  assert.equal(w.bytes, 0);
  assert.ok(!w.full());
});

test('an inflight window that never had a message in flight holds no memory for one', () => {
  const w = new Inflights(256, 1 << 20);
  assert.equal(w.count, 0);
  assert.ok(!w.full());
  w.freeLE(100);
  w.freeFirstOne();
  assert.equal(w.count, 0);
  // Its arrays are allocated by the first add only (private state, read for the test).
  assert.equal((w as unknown as { indexes: Float64Array }).indexes.length, 0);
  w.add(1, 5);
  assert.equal((w as unknown as { indexes: Float64Array }).indexes.length, 8);
});
