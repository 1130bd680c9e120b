import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster } from './harness.js';
import { Role } from '../../src/raft/types.js';

test('three members elect a leader and commit', () => {
  const c = new Cluster([1, 2, 3]);
  c.settle();
  assert.ok(c.elect(1));
  assert.equal(c.get(2).leader, 1);
  const r = c.propose(1, 'a');
  assert.ok(r.ok);
  for (const id of [1, 2, 3]) assert.deepEqual(c.appliedData(id), ['a']);
  assert.equal(c.get(1).role, Role.Leader);
});
