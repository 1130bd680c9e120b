// `flotilla admin add-group|remove-group|transfer-leader`: groups at runtime, through the
// client library. Adding and removing ask every server listed, each on its own connection, so
// that each server's answer is known.
import { parseMembers, parsePositiveInt, type CommandSpec, type OptionSpecs, type ParsedCommand } from './args.js';
import { CLIENT_OPTIONS, clientCall, withClient, type ClientTarget } from './client-target.js';
import { errCode } from './exit-report.js';

/** Admin calls name their group: they need no key map (a cluster of `groups: 0` has none until one is made). */
const NO_MAP = { waitForMap: false };

export const ADMIN_SPECS = {
  'admin add-group': {
    name: 'flotilla admin add-group', operands: 'G', operandsMin: 1, operandsMax: 1,
    summary: `Creates group G with these voters on every server listed (each node changes only
itself: list the client address of every member). Adding it again with the same members is OK.`,
    options: { ...CLIENT_OPTIONS, members: { type: 'string', value: '1,2,3', help: 'the voters (required)' } },
  },
  'admin remove-group': {
    name: 'flotilla admin remove-group', operands: 'G', operandsMin: 1, operandsMax: 1,
    summary: `Removes group G from every server listed. OK when at least one server removed it and the
others did not host it (a retry after a partial failure); NO_GROUP (exit 1) when no server hosts
it, a retry after a full success included: a node cannot tell "removed" from "never here".`,
    options: CLIENT_OPTIONS,
  },
  'admin transfer-leader': {
    name: 'flotilla admin transfer-leader', operands: 'G', operandsMin: 1, operandsMax: 1,
    summary: `Asks group G's leader to hand leadership to node --to. Only the leader can: a follower
answers NOT_LEADER, and this command then tries the leader it names or the next server.`,
    options: { ...CLIENT_OPTIONS, to: { type: 'string', value: 'N', help: 'the node id to lead (required)' } },
  },
} as const satisfies Record<string, CommandSpec>;

export async function adminCommand(name: string, p: ParsedCommand<OptionSpecs>, dry: (extra?: Record<string, unknown>) => number): Promise<number> {
  const { v, json, target, a, print } = clientCall(p);
  switch (name) {
    case 'admin add-group': {
      const group = parsePositiveInt(a, 'the group id', 0xffff_fffe);
      const members = parseMembers(v['members'] as string | undefined);
      if (p.dryRun) return dry({ servers: target.servers });
      return withClient(target, async (client) => {
        await client.admin.addGroup(group, members);
        print('OK', { ok: true, group, members, servers: target.servers });
        return 0;
      }, NO_MAP);
    }
    case 'admin remove-group': {
      const group = parsePositiveInt(a, 'the group id', 0xffff_fffe);
      if (p.dryRun) return dry({ servers: target.servers });
      return removeGroup(target, group, json);
    }
    case 'admin transfer-leader': {
      const group = parsePositiveInt(a, 'the group id', 0xffff_fffe);
      const to = parsePositiveInt(v['to'] as string | undefined, '--to');
      if (p.dryRun) return dry({ servers: target.servers });
      return withClient(target, async (client) => {
        await client.admin.transferLeader(group, to);
        print('OK', { ok: true, group, to });
        return 0;
      }, NO_MAP);
    }
    default:
      throw new Error(`no runner for ${name}`);
  }
}

/**
 * Removes the group from each server on its own connection, so that each server's answer is
 * known: NO_GROUP from some is fine when another removed it (a retry after a partial failure).
 */
async function removeGroup(target: ClientTarget, group: number, json: boolean): Promise<number> {
  const removed: string[] = [];
  const absent: string[] = [];
  const failed: { server: string; code: string; message: string }[] = [];
  await Promise.all(target.servers.map(async (server) => {
    try {
      await withClient({ servers: [server] }, async (client) => {
        await client.admin.removeGroup(group);
        return 0;
      }, NO_MAP);
      removed.push(server);
    } catch (e) {
      const code = errCode(e);
      if (code === 'NO_GROUP') absent.push(server);
      else failed.push({ server, code, message: e instanceof Error ? e.message : String(e) });
    }
  }));
  const ok = failed.length === 0 && removed.length > 0;
  const code = failed.length > 0 ? failed[0]!.code : removed.length === 0 ? 'NO_GROUP' : null;
  if (json) {
    process.stdout.write(JSON.stringify({ ok, group, removed, absent, failed, ...(code !== null ? { code } : {}) }) + '\n');
    return ok ? 0 : 1;
  }
  for (const f of failed) process.stderr.write(`flotilla: ${f.code}: ${f.server}: ${f.message}\n`);
  if (removed.length === 0 && failed.length === 0) {
    process.stderr.write(`flotilla: NO_GROUP: no server listed hosts group ${group} (${absent.join(', ')})\n`);
    return 1;
  }
  if (ok) {
    if (absent.length > 0) process.stderr.write(`flotilla: group ${group} was not on ${absent.join(', ')}\n`);
    process.stdout.write('OK\n');
  }
  return ok ? 0 : 1;
}
