// Membership changes and their encoding inside an entry of type ConfChange.
// Every change goes through joint consensus: the first entry (`enter`) moves the group from
// C_old to C_old,new, and the leader appends the second (`leave`) once the first is applied.
import { assert } from '../util/assert.js';
import type { ConfState, NodeId } from './types.js';

export enum ChangeType {
  AddVoter = 1,
  RemoveVoter = 2,
  AddLearner = 3,
}

export interface Change {
  type: ChangeType;
  node: NodeId;
}

export interface ConfChange {
  /** `leave` carries no changes: it ends the joint configuration. */
  leave: boolean;
  changes: Change[];
}

export function encodeConfChange(cc: ConfChange): Uint8Array {
  const out = new Uint8Array(3 + 5 * cc.changes.length);
  const view = new DataView(out.buffer);
  out[0] = cc.leave ? 2 : 1;
  view.setUint16(1, cc.changes.length);
  cc.changes.forEach((c, i) => {
    out[3 + 5 * i] = c.type;
    view.setUint32(4 + 5 * i, c.node);
  });
  return out;
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  assert(data.length >= 3, 'conf change entry too short');
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const n = view.getUint16(1);
  assert(data.length === 3 + 5 * n, 'conf change entry has a bad length');
  const changes: Change[] = [];
  for (let i = 0; i < n; i++) changes.push({ type: data[3 + 5 * i] as ChangeType, node: view.getUint32(4 + 5 * i) });
  return { leave: data[0] === 2, changes };
}

/**
 * No members (a replica that has not heard its first configuration yet). One frozen object for
 * all: configurations are values, replaced and never changed in place (applyConfChange makes a
 * new one), and at thousands of groups an empty one each, several times over, added up.
 */
const NO_MEMBERS: ConfState = Object.freeze({
  voters: Object.freeze([]) as unknown as number[],
  votersOutgoing: Object.freeze([]) as unknown as number[],
  learners: Object.freeze([]) as unknown as number[],
  learnersNext: Object.freeze([]) as unknown as number[],
});

export function emptyConf(): ConfState {
  return NO_MEMBERS;
}

export function isJoint(c: ConfState): boolean {
  return c.votersOutgoing.length > 0;
}

/**
 * The configuration that results from applying `cc` to `c`, or an error string when the change
 * is not allowed (the caller turns it into BAD_CONF_CHANGE). Pure: `c` is not modified.
 */
export function applyConfChange(c: ConfState, cc: ConfChange): ConfState | string {
  if (cc.leave) {
    if (!isJoint(c)) return 'not in a joint configuration';
    const voters = [...c.voters];
    const learners = new Set(c.learners);
    for (const id of c.learnersNext) learners.add(id);
    return { voters, votersOutgoing: [], learners: sorted(learners), learnersNext: [] };
  }
  if (isJoint(c)) return 'already in a joint configuration';
  if (cc.changes.length === 0) return 'no changes';
  const voters = new Set(c.voters);
  const learners = new Set(c.learners);
  const learnersNext = new Set<NodeId>();
  const seen = new Set<NodeId>();
  for (const ch of cc.changes) {
    if (!Number.isInteger(ch.node) || ch.node <= 0 || ch.node > 0xffffffff) return `bad node id ${ch.node}`;
    if (seen.has(ch.node)) return `node ${ch.node} changed twice`;
    seen.add(ch.node);
    switch (ch.type) {
      case ChangeType.AddVoter:
        if (voters.has(ch.node)) return `node ${ch.node} is already a voter`;
        learners.delete(ch.node);
        voters.add(ch.node);
        break;
      case ChangeType.RemoveVoter:
        if (!voters.has(ch.node) && !learners.has(ch.node)) return `node ${ch.node} is not a member`;
        voters.delete(ch.node);
        learners.delete(ch.node);
        break;
      case ChangeType.AddLearner:
        if (learners.has(ch.node)) return `node ${ch.node} is already a learner`;
        if (voters.has(ch.node)) {
          // Demotion: the node keeps voting in C_old until the joint configuration is left.
          voters.delete(ch.node);
          learnersNext.add(ch.node);
        } else {
          learners.add(ch.node);
        }
        break;
      default:
        return `unknown change type ${String(ch.type)}`;
    }
  }
  if (voters.size === 0) return 'a configuration needs at least one voter';
  return {
    voters: sorted(voters),
    votersOutgoing: [...c.voters],
    learners: sorted(learners),
    learnersNext: sorted(learnersNext),
  };
}

function sorted(s: Set<NodeId>): NodeId[] {
  return [...s].sort((a, b) => a - b);
}
