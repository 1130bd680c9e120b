// The KV store (src/kv/kv-store.ts) against a JavaScript Map that does the same operations:
// same keys, same values, same insertion order, through table growth, deletes (backward
// shift), value size changes (slots of other classes), images held open while it changes, and
// compactions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KvStore, recordKeyLength, recordValueLength, KV_RECORD_HEADER_BYTES } from '../../src/kv/kv-store.js';
import { classBytes, classOf } from '../../src/kv/kv-arena.js';
import { KvStateMachine, encodeCommand } from '../../src/kv/kv-state-machine.js';

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x100000000;
  };
}

const enc = (s: string): Buffer => Buffer.from(s, 'latin1');

function entries(st: KvStore): [string, string][] {
  const out: [string, string][] = [];
  for (let id = st.first(); id !== -1; id = st.after(id)) {
    const loc = st.locationOf(id);
    const c = st.chunkOf(loc);
    const k = Buffer.from(c.buffer, c.byteOffset + st.keyAt(loc), st.keyLength(loc)).toString('latin1');
    const v = Buffer.from(c.buffer, c.byteOffset + st.valueAt(loc), st.valueLength(loc)).toString('latin1');
    out.push([k, v]);
  }
  return out;
}

/** What an image noted: the records at (chunk, offset), read now. */
function imageEntries(st: KvStore, refs: Int32Array): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < refs.length; i += 2) {
    const c = st.chunk(refs[i]!);
    const off = refs[i + 1]!;
    const kn = recordKeyLength(c, off);
    const k = Buffer.from(c.buffer, c.byteOffset + off + KV_RECORD_HEADER_BYTES, kn).toString('latin1');
    const v = Buffer.from(c.buffer, c.byteOffset + off + KV_RECORD_HEADER_BYTES + kn, recordValueLength(c, off)).toString('latin1');
    out.push([k, v]);
  }
  return out;
}

for (const seed of [1, 2, 3, 4, 5, 6]) {
  test(`KvStore matches a Map through puts, deletes, size changes, images and compactions (seed ${seed})`, () => {
    const next = rng(seed);
    // A small compaction threshold, so that value size shifts compact the arena within the test.
    const st = new KvStore(64 * 1024);
    const ref = new Map<string, string>();
    const keys = 50 + Math.floor(next() * 2000);
    let image: { refs: Int32Array; expect: [string, string][] } | null = null;
    for (let step = 0; step < 30_000; step++) {
      // The value sizes drift over the run: classes fall out of use and their slots go free.
      const phase = Math.floor(step / 5000);
      const k = `k${Math.floor(next() * keys)}` + (next() < 0.05 ? 'x'.repeat(Math.floor(next() * 300)) : '');
      const r = next();
      if (r < 0.6) {
        const n = Math.floor(next() * (phase % 2 === 0 ? 40 : 900)) + (phase === 4 ? 2000 : 0);
        const v = String.fromCharCode(97 + (step % 26)).repeat(n);
        st.put(enc(k), 0, k.length, enc(v), 0, v.length);
        ref.set(k, v);
      } else if (r < 0.85) {
        const had = ref.delete(k);
        assert.equal(st.delete(enc(k), 0, k.length), had, `delete ${k} at step ${step}`);
      } else {
        const id = st.find(enc(k), 0, k.length);
        assert.equal(id !== -1, ref.has(k), `find ${k} at step ${step}`);
        if (id !== -1) {
          const v = ref.get(k)!;
          assert.ok(st.valueEquals(id, enc(v), 0, v.length), `value of ${k} at step ${step}`);
        }
      }
      assert.equal(st.size, ref.size);
      if (step % 997 === 0) {
        assert.deepEqual(entries(st), [...ref], `order at step ${step}`);
        // Exactly the live records' bytes, also while an image holds replaced ones (images are sized by it).
        let live = 0;
        for (const [k, v] of ref) live += KV_RECORD_HEADER_BYTES + k.length + v.length;
        assert.equal(st.liveBytes, live, `live bytes at step ${step}`);
      }
      if (image === null && step % 3001 === 100) image = { refs: st.beginImage(), expect: [...ref] };
      else if (image !== null && step % 3001 === 1500) {
        // Everything put and deleted since the image began left the records it noted alone.
        assert.deepEqual(imageEntries(st, image.refs), image.expect, `image at step ${step}`);
        st.endImage();
        image = null;
      }
    }
    if (image !== null) st.endImage();
    assert.deepEqual(entries(st), [...ref]);
    assert.ok(st.compactions > 0, 'the drift of value sizes compacted the arena');
    // Everything deleted leaves nothing live.
    for (const k of [...ref.keys()]) assert.ok(st.delete(enc(k), 0, k.length));
    assert.equal(st.size, 0);
    assert.equal(st.liveBytes, 0);
    assert.equal(st.first(), -1);
  });
}

test('KvStore: many keys that share a table run are all found after deletes in the middle of it', () => {
  const st = new KvStore();
  const ref = new Set<string>();
  for (let i = 0; i < 20_000; i++) {
    const k = `key:${i}`;
    st.put(enc(k), 0, k.length, enc('v'), 0, 1);
    ref.add(k);
  }
  for (let i = 0; i < 20_000; i += 3) {
    const k = `key:${i}`;
    assert.ok(st.delete(enc(k), 0, k.length));
    ref.delete(k);
  }
  for (let i = 0; i < 20_000; i++) {
    const k = `key:${i}`;
    assert.equal(st.find(enc(k), 0, k.length) !== -1, ref.has(k), k);
  }
});

test('KvStateMachine: an image made in steps is the state when it began, and equals a replica restored from it', () => {
  const kv = new KvStateMachine();
  for (let i = 0; i < 3000; i++) kv.applyEncoded(encodeCommand({ op: 'put', key: `k${i}`, value: `value ${i} `.repeat(1 + (i % 7)) }));
  const whole = kv.serialize();
  const steps = kv.serializeInSteps();
  let image: Uint8Array | null = null;
  let i = 0;
  while ((image = steps.step(4096)) === null) {
    // Puts over present keys (in place but for the image), deletes and new keys meanwhile.
    kv.applyEncoded(encodeCommand({ op: 'put', key: `k${i % 3000}`, value: 'changed' }));
    kv.applyEncoded(encodeCommand({ op: 'delete', key: `k${(i * 7) % 3000}` }));
    kv.applyEncoded(encodeCommand({ op: 'put', key: `new${i}`, value: 'x'.repeat(i % 500) }));
    i++;
  }
  assert.ok(i > 10, 'the image took several steps');
  // Two images at once, the second begun while the first holds replaced records: each is the
  // state when it began (each is sized by the live bytes then).
  const firstExpected = kv.serialize();
  const first = kv.serializeInSteps();
  kv.applyEncoded(encodeCommand({ op: 'put', key: 'k2', value: 'longer than before '.repeat(9) }));
  kv.applyEncoded(encodeCommand({ op: 'delete', key: 'k4' }));
  const secondExpected = kv.serialize();
  const second = kv.serializeInSteps();
  kv.applyEncoded(encodeCommand({ op: 'put', key: 'k3', value: 'y' }));
  assert.deepEqual(Buffer.from(second.step(Infinity)!), Buffer.from(secondExpected));
  assert.deepEqual(Buffer.from(first.step(Infinity)!), Buffer.from(firstExpected));
  assert.notDeepEqual(Buffer.from(firstExpected), Buffer.from(secondExpected));
  assert.deepEqual(Buffer.from(image), Buffer.from(whole));
  const copy = KvStateMachine.restore(kv.serialize());
  assert.deepEqual(Buffer.from(copy.serialize()), Buffer.from(kv.serialize()));
  assert.equal(copy.get('k1'), kv.get('k1'));
});

test('KvStore size classes: every record size up to the largest gets the smallest class that holds it; above 256 bytes at most a ninth is lost', () => {
  const largest = KV_RECORD_HEADER_BYTES + 1024 + 256 * 1024;
  let prev = 0;
  for (let n = 1; n <= largest; n++) {
    const c = classOf(n);
    assert.ok(classBytes(c) >= n, `class ${c} of ${classBytes(c)} bytes for ${n}`);
    assert.ok(c === 0 || classBytes(c - 1) < n, `class ${c - 1} would hold ${n}`);
    assert.ok(c >= prev && c < 256, `class ${c} for ${n}`);
    if (n > 256) assert.ok((classBytes(c) - n) * 9 <= classBytes(c), `${n} in ${classBytes(c)}`);
    prev = c;
  }
});
