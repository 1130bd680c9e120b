// A user-supplied state machine, imported by the shard from a module URL and a named export;
// a module without that export stops the shard at start with a 'failed' event.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameFlag, FrameKind } from '../../src/protocol/client-frame.js';
import { ShardCluster } from './harness.js';

const MODULE = new URL('./counter-state-machine.js', import.meta.url).href;
const dec = new TextDecoder();

test('a state machine from a module serves the groups, across a snapshot and a restart', async () => {
  const c = new ShardCluster([1], { bootstrapGroups: [1, 2], snapshotEntries: 5, snapshotKeepEntries: 1, stateMachine: { module: MODULE, export: 'createCounter' } });
  try {
    await c.start(1);
    await c.leaderOf(1);
    let last = '';
    for (let i = 0; i < 12; i++) {
      const r = await c.request(1, FrameKind.Command, 0, 1, new Uint8Array([2]));
      assert.equal(r.kind, FrameKind.Result);
      last = dec.decode(r.body);
    }
    assert.equal(last, '00001024');
    await c.stop(1);
    await c.start(1);
    await c.leaderOf(1);
    const r = await c.request(1, FrameKind.Command, FrameFlag.Read, 1, new Uint8Array([0]));
    assert.equal(dec.decode(r.body), '00001024', 'the count survives the restart (snapshot + log)');
    assert.ok((await c.status(1)).find((s) => s.group === 1)!.snapshotIndex > 0);
    await c.checkOneResponseEach();
    await c.stopAll();
  } finally {
    await c.stopAll().catch(() => undefined);
    c.cleanup();
  }
});

test('a state machine module without the named export fails the shard at start', async () => {
  const c = new ShardCluster([1], { bootstrapGroups: [1], logLevel: 'silent', stateMachine: { module: MODULE } });
  try {
    await assert.rejects(c.start(1), /did not start: failed: .*createStateMachine/);
    const n = c.nodes.get(1)!;
    await n.pumped;
    assert.ok(n.events.some((e) => e.type === 'failed' && /createStateMachine/.test(e.message ?? '')));
    c.nodes.delete(1);
  } finally {
    c.cleanup();
  }
});
