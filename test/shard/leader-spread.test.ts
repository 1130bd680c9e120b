// LeaderSpread (src/shard/leader-spread.ts) alone: which member campaigns for which group, and when.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LeaderSpread } from '../../src/shard/leader-spread.js';
import type { GroupHost } from '../../src/shard/group-host.js';
import { NONE, Role } from '../../src/raft/types.js';

function host(id: number, voters: number[], leader = NONE): GroupHost & { campaigns: number } {
  const h = {
    id,
    removed: false,
    campaigns: 0,
    core: {
      leader,
      role: Role.Follower,
      confState: () => ({ voters, votersOutgoing: [], learners: [], learnersNext: [] }),
      campaign: () => void h.campaigns++,
    },
  };
  return h as unknown as GroupHost & { campaigns: number };
}

test('a member campaigns for the groups it is preferred for, once a quorum of their voters is reachable', () => {
  const spread = new LeaderSpread(2);
  const hosts = [1, 2, 3, 4, 5, 6].map((g) => host(g, [3, 1, 2]));
  for (const h of hosts) spread.added(h);
  const touched = new Set<GroupHost>();
  spread.campaign(touched);
  assert.deepEqual(hosts.map((h) => h.campaigns), [0, 0, 0, 0, 0, 0], 'no link up: no campaign');
  spread.peerState(3, true);
  spread.campaign(touched);
  // Voters in id order are 1, 2, 3: node 2 is preferred for groups 2 and 5.
  assert.deepEqual(hosts.map((h) => h.campaigns), [0, 1, 0, 0, 1, 0]);
  assert.deepEqual([...touched].map((h) => h.id).sort(), [2, 5]);
  spread.campaign(touched);
  assert.deepEqual(hosts.map((h) => h.campaigns), [0, 1, 0, 0, 1, 0], 'once only');
  assert.equal(spread.waiting, false, 'every group was decided');
});

test('no campaign where a leader is known, and a group whose configuration is not applied yet waits', () => {
  const spread = new LeaderSpread(1);
  const led = host(1, [1, 2, 3], 3);
  const unconfigured = host(4, []);
  for (const h of [led, unconfigured]) spread.added(h);
  spread.peerState(2, true);
  spread.campaign(new Set());
  assert.equal(led.campaigns, 0);
  assert.equal(spread.waiting, true, 'group 4 still waits for its configuration');
  (unconfigured.core as unknown as { confState: () => unknown }).confState = () => ({ voters: [1, 2, 3], votersOutgoing: [], learners: [], learnersNext: [] });
  spread.campaign(new Set());
  assert.equal(unconfigured.campaigns, 1, 'group 4: (4 - 1) mod 3 = 0, node 1');
  // A single-member group needs no link at all.
  const alone = new LeaderSpread(7);
  const solo = host(9, [7]);
  alone.added(solo);
  alone.campaign(new Set());
  assert.equal(solo.campaigns, 1);
});

test('a member in its first election timeout after a restart with leases waits it out before it campaigns', () => {
  const spread = new LeaderSpread(1);
  const h = host(1, [1, 2, 3]);
  (h.core as unknown as { inStartQuiet: boolean }).inStartQuiet = true;
  spread.added(h);
  spread.peerState(2, true);
  spread.campaign(new Set());
  assert.equal(h.campaigns, 0, 'the members restarted with it would refuse');
  assert.equal(spread.waiting, true);
  (h.core as unknown as { inStartQuiet: boolean }).inStartQuiet = false;
  spread.campaign(new Set());
  assert.equal(h.campaigns, 1);
});
