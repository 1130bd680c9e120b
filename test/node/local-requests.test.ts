// In-process commands (src/node/local-requests.ts) are bounded: an embedder that calls command()
// without awaiting gets OVERLOADED once LOCAL_PENDING_MAX commands (or LOCAL_PENDING_BYTES_MAX
// of their frames) wait, before anything more is queued; an answer makes room again.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { SpscRing } from '../../src/ring/spsc-ring.js';
import { encodeFrame, FrameKind, readHeader, FRAME_HEADER_BYTES } from '../../src/protocol/client-frame.js';
import { RECORD_HEADER_BYTES } from '../../src/ring/records.js';
import { InRingWriter } from '../../src/node/in-ring.js';
import { LOCAL_PENDING_BYTES_MAX, LOCAL_PENDING_MAX, LocalRequests } from '../../src/node/local-requests.js';
import { NodeError } from '../../src/node/node-error.js';
import type { ShardSlot } from '../../src/node/shard-pool.js';

function setup(t: TestContext, limits: { pendingMax: number; pendingBytesMax: number }): { local: LocalRequests; shard: SpscRing } {
  const sab = SpscRing.allocate(1 << 16);
  const input = new InRingWriter(new SpscRing(sab));
  const shard = new SpscRing(sab);
  const outRing = new SpscRing(SpscRing.allocate(1 << 16));
  const slot: ShardSlot = { index: 0, input, outRing, counters: new Float64Array(64), state: 'ready', done: Promise.resolve() };
  const local = new LocalRequests([slot], 1 << 20, limits);
  t.after(() => {
    local.rejectAll(new Error('test over'));
    input.stop();
    input.ring.close();
    shard.close();
    outRing.close();
  });
  return { local, shard };
}

/** The request ids of the Client records in the ring (the shard's view), released. */
function requestIds(shard: SpscRing): number[] {
  const ids: number[] = [];
  for (let at = shard.read(); at >= 0; at = shard.read()) {
    ids.push(readHeader(shard.data, at + RECORD_HEADER_BYTES).requestId);
    shard.release();
  }
  shard.notifyRoom();
  return ids;
}

async function overloaded(p: Promise<unknown>): Promise<void> {
  await assert.rejects(p, (e: unknown) => e instanceof NodeError && e.code === 'OVERLOADED');
}

test('in-process commands past the count bound are refused OVERLOADED until one is answered', async (t) => {
  const { local, shard } = setup(t, { pendingMax: 8, pendingBytesMax: 1 << 20 });
  const waiting: Promise<Uint8Array>[] = [];
  for (let i = 0; i < 8; i++) {
    const p = local.command(1, new Uint8Array([1, 2, 3]), {});
    p.catch(() => undefined);
    waiting.push(p);
  }
  assert.equal(local.waiting.count, 8);
  await overloaded(local.command(1, new Uint8Array([1]), {}));
  assert.equal(local.waiting.count, 8, 'a refused command is not queued');
  const ids = requestIds(shard);
  assert.equal(ids.length, 8, 'a refused command never reached the ring');
  // One is answered: there is room for one more.
  const answer = encodeFrame(FrameKind.Result, 0, ids[0]!, 1, new Uint8Array([9]));
  local.settleFrames(answer, 0, answer.length);
  assert.deepEqual([...await waiting[0]!], [9]);
  const next = local.command(1, new Uint8Array([1]), {});
  next.catch(() => undefined);
  assert.equal(local.waiting.count, 8);
  await overloaded(local.command(1, new Uint8Array([1]), {}));
});

test('in-process commands past the byte bound are refused OVERLOADED', async (t) => {
  const { local } = setup(t, { pendingMax: 1000, pendingBytesMax: 4096 });
  const a = local.command(1, new Uint8Array(3000), {});
  a.catch(() => undefined);
  assert.equal(local.waiting.bytes, FRAME_HEADER_BYTES + 3000);
  await overloaded(local.command(1, new Uint8Array(2000), {}));
  const b = local.command(1, new Uint8Array(500), {});
  b.catch(() => undefined);
  assert.equal(local.waiting.count, 2);
});

test('the production bounds are named and sane', () => {
  assert.ok(LOCAL_PENDING_MAX >= 1024 && LOCAL_PENDING_MAX <= 1 << 20);
  assert.ok(LOCAL_PENDING_BYTES_MAX >= 1 << 20);
});
