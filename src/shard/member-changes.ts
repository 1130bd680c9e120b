// Membership changes asked for by admin (addMember, promote, removeMember) and the empty
// replica a new member starts from (joinGroup). A change is checked against the leader's
// configuration, proposed through the Raft core as one joint-consensus change, and answered
// once it has taken effect here: its entry applied with the term it was proposed at, and the
// joint configuration left (the leader appends that entry itself). Until then it waits on its
// group (`GroupHost.change`, one at a time); the request sweep times it out, and a removal of
// the group or a stopping shard answers it (client-requests.ts).
//
// Codes: NO_GROUP (not hosted here), NOT_LEADER (with the leader when known), CHANGE_IN_PROGRESS
// (a change waits here, the core has one pending, or the group is in a joint configuration),
// NOT_MEMBER (promote or remove a node that is not a learner / member), ALREADY_MEMBER (add as a
// learner a node that votes), BAD_CONF_CHANGE (the core refuses it, e.g. the last voter),
// OVERLOADED / LEADER_TRANSFERRING (from the core), TIMEOUT (no outcome within
// requestTimeoutMs; the change may still take effect), OUTCOME_UNKNOWN (this member skipped the
// entry through a snapshot, so it cannot tell), and NOT_LEADER when the entry was replaced
// by another leader's (the change was not made).
import { ChangeType, isJoint, type Change } from '../raft/conf-change.js';
import { Role } from '../raft/types.js';
import type { ClientRequests } from './client-requests.js';
import type { LoopControl } from './loop-control.js';
import type { GroupHost } from './group-host.js';
import type { GroupTable } from './group-table.js';
import type { AdminReply, MemberChangeRequest } from './task.js';

export function memberError(code: string, message: string): AdminReply {
  return { ok: false, code, message };
}

function members(h: GroupHost): AdminReply {
  return { ok: true, members: { voters: [...h.conf.voters], learners: [...h.conf.learners] } };
}

export class MemberChanges {
  constructor(
    private readonly nodeId: number,
    private readonly table: GroupTable,
    private readonly requests: ClientRequests,
    private readonly control: LoopControl,
    private readonly nowMs: () => number,
  ) {}

  /** Checks and proposes `req`; `reply` is called exactly once, now or when the change has taken effect. */
  change(req: MemberChangeRequest, reply: (r: AdminReply) => void): void {
    const g = req.group;
    const h = this.table.groups.get(g);
    if (h === undefined) return reply(memberError('NO_GROUP', `node ${this.nodeId} does not host group ${g}`));
    if (h.change !== null) return reply(memberError('CHANGE_IN_PROGRESS', `a membership change of group ${g} is waiting on node ${this.nodeId}`));
    if (h.core.role !== Role.Leader) return reply(memberError('NOT_LEADER', this.requests.notLeaderMessage(g, h.core.leader)));
    // The leader's configuration is the one its applied entries made: what has taken effect.
    const c = h.core.confState();
    if (isJoint(c)) return reply(memberError('CHANGE_IN_PROGRESS', `group ${g} is in a joint configuration`));
    const n = req.node;
    const voter = c.voters.includes(n);
    const learner = c.learners.includes(n);
    let ch: Change;
    switch (req.op) {
      case 'addMember':
        if (req.learner) {
          if (learner) return reply(members(h));
          if (voter) return reply(memberError('ALREADY_MEMBER', `node ${n} is a voter of group ${g}, not to be added as a learner`));
          ch = { type: ChangeType.AddLearner, node: n };
        } else {
          if (voter) return reply(members(h));
          ch = { type: ChangeType.AddVoter, node: n };
        }
        break;
      case 'promote':
        if (voter) return reply(members(h));
        if (!learner) return reply(memberError('NOT_MEMBER', `node ${n} is not a learner of group ${g}`));
        ch = { type: ChangeType.AddVoter, node: n };
        break;
      case 'removeMember':
        if (!voter && !learner) return reply(memberError('NOT_MEMBER', `node ${n} is not a member of group ${g}`));
        ch = { type: ChangeType.RemoveVoter, node: n };
        break;
    }
    const r = h.core.proposeConfChange({ leave: false, changes: [ch] });
    this.table.touched.add(h);
    this.control.wake();
    if (!r.ok) {
      switch (r.code) {
        case 'CONF_CHANGE_PENDING':
          return reply(memberError('CHANGE_IN_PROGRESS', `group ${g} has a membership change pending`));
        case 'NOT_LEADER':
          return reply(memberError('NOT_LEADER', this.requests.notLeaderMessage(g, r.leader)));
        case 'BAD_CONF_CHANGE':
          return reply(memberError('BAD_CONF_CHANGE', `group ${g}: ${r.reason ?? 'change refused'}`));
        default:
          return reply(memberError(r.code, `group ${g}: the change was refused (${r.code})`));
      }
    }
    h.change = { index: r.index, term: r.term, entered: false, t0: this.nowMs(), reply };
  }

  /** After a Ready of `h` was applied: answers its waiting change if it took effect, or cannot. */
  static check(h: GroupHost): void {
    const w = h.change;
    if (w === null || h.applied < w.index) return;
    if (!w.entered) {
      const term = h.core.entryTerm(w.index);
      if (term === 0) {
        h.change = null;
        w.reply(memberError('OUTCOME_UNKNOWN', `group ${h.id}: a snapshot was installed past the change's entry ${w.index}; check the members`));
        return;
      }
      if (term !== w.term) {
        h.change = null;
        w.reply(memberError('NOT_LEADER', `the entry of this change was replaced (group ${h.id}); the change was not made`));
        return;
      }
      w.entered = true;
    }
    // Entered: the joint configuration ends when the leave entry after it is applied.
    if (isJoint(h.conf)) return;
    h.change = null;
    w.reply(members(h));
  }
}
