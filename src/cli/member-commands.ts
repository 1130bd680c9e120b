// `flotilla admin members|add-member|promote|remove-member`: a group's membership, through the
// client library (src/client/member-admin.ts). Each change is one joint-consensus change asked
// of the group's leader and answered once it has taken effect; add-member makes the node a
// learner first and promotes it only once it has caught up.
import { parsePositiveInt, type CommandSpec, type OptionSpecs, type ParsedCommand } from './args.js';
import { CLIENT_OPTIONS, clientCall, NO_MAP, withClient } from './client-target.js';

/** How long add-member waits for a new member to catch up (within the CLI's own bound on a command). */
const CATCH_UP_MS = 20_000;
export const MEMBER_SPECS = {
  'admin members': {
    name: 'flotilla admin members', operands: 'G', operandsMin: 1, operandsMax: 1,
    summary: 'Prints the voters and learners of group G, as its leader has applied them.',
    options: CLIENT_OPTIONS,
  },
  'admin add-member': {
    name: 'flotilla admin add-member', operands: 'G NODE', operandsMin: 2, operandsMax: 2,
    summary: `Adds node NODE to group G: an empty replica made on NODE, then a learner, then (unless
--learner) a voter once it has caught up with the leader (so the group's quorum never waits on
it). NODE is reached at its client address in the key map, or --server.`,
    options: {
      ...CLIENT_OPTIONS,
      learner: { type: 'boolean', help: 'stay a learner (receives the log, never votes)' },
      server: { type: 'string', value: 'H:P', help: 'the client address of NODE (when the key map does not name it)' },
    },
  },
  'admin promote': {
    name: 'flotilla admin promote', operands: 'G NODE', operandsMin: 2, operandsMax: 2,
    summary: 'Makes the learner NODE a voter of group G.',
    options: CLIENT_OPTIONS,
  },
  'admin remove-member': {
    name: 'flotilla admin remove-member', operands: 'G NODE', operandsMin: 2, operandsMax: 2,
    summary: `Removes the voter or learner NODE from group G (its leader too: leadership is handed
over first). The node keeps its replica's files until the group is removed there.`,
    options: CLIENT_OPTIONS,
  },
} as const satisfies Record<string, CommandSpec>;

export async function memberCommand(name: string, p: ParsedCommand<OptionSpecs>, dry: (extra?: Record<string, unknown>) => number): Promise<number> {
  const { v, target, a, b, print } = clientCall(p);
  const group = parsePositiveInt(a, 'the group id', 0xffff_fffe);
  const node = name === 'admin members' ? 0 : parsePositiveInt(b, 'the node id');
  if (p.dryRun) return dry({ servers: target.servers });
  return withClient(target, async (client) => {
    // The map names every node and its address (the new member's, the leader's): add-member
    // without --server waits for it (a new cluster makes it in its first second); a cluster
    // without one (groups: 0) is reached through --servers and --server alone.
    await client.refreshMap().catch(() => false);
    const show = (m: { voters: number[]; learners: number[] }): number => {
      print(`voters ${m.voters.join(',') || '-'}; learners ${m.learners.join(',') || '-'}`, { ok: true, group, ...m });
      return 0;
    };
    switch (name) {
      case 'admin members':
        return show(await client.admin.members(group));
      case 'admin add-member': {
        const server = v['server'] as string | undefined;
        return show(await client.admin.addMember(group, node, { learner: v['learner'] === true, catchUpMs: CATCH_UP_MS, ...(server !== undefined ? { server } : {}) }));
      }
      case 'admin promote':
        return show(await client.admin.promote(group, node));
      case 'admin remove-member':
        return show(await client.admin.removeMember(group, node));
      default:
        throw new Error(`no runner for ${name}`);
    }
  }, name === 'admin add-member' && v['server'] === undefined ? {} : NO_MAP);
}
