// `flotilla admin add-group|remove-group|transfer-leader`: groups at runtime, through the
// client library. Adding and removing ask every server listed, each on its own connection, so
// that each server's answer is known.
// `flotilla admin slots|migrate`: the key map (fetched by the client from a seed) and online
// migration, through the admin HTTP port of the nodes the map names (migration-admin.ts).
import { parseMembers, parsePositiveInt, UsageError, type CommandSpec, type OptionSpecs, type ParsedCommand } from './args.js';
import { keyMapJson, type KeyMap } from '../cluster/key-map.js';
import { formatSlots, parseSlots, slotsOfRanges } from '../cluster/slots.js';
import { CLIENT_OPTIONS, clientCall, NO_MAP, withClient, type ClientTarget } from './client-target.js';
import { errCode } from './exit-report.js';

/** How long admin migrate waits for its migration to end. */
const MIGRATE_WAIT_MS = 25_000;
/** Time one admin HTTP request of these commands may take. */
const ADMIN_HTTP_MS_MAX = 20_000;

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
  'admin slots': {
    name: 'flotilla admin slots', operandsMax: 0,
    summary: `Prints the cluster's key map: which group owns each run of slots, each group's members
and slot count, the nodes' addresses, and the migrations in progress. --json prints the map's JSON
form (docs/key-map.md).`,
    options: CLIENT_OPTIONS,
  },
  'admin migrate': {
    name: 'flotilla admin migrate', operands: 'SLOTS', operandsMin: 0, operandsMax: 1,
    summary: `Moves SLOTS (like 0-1023 or 5,9,100-200; all owned by one group) to group --to while
clients keep reading and writing, and waits for it to end (at most ${MIGRATE_WAIT_MS / 1000} s; it goes on after
that: see admin slots). --abort ID aborts migration ID instead (the slots stay their owner's).
Refusals: BAD_SLOTS, NO_SUCH_GROUP, SAME_GROUP, MIXED_OWNERS, SLOT_UNASSIGNED, SLOT_MIGRATING
(a slot already in a migration), NO_SUCH_MIGRATION.`,
    options: {
      ...CLIENT_OPTIONS,
      to: { type: 'string', value: 'G', help: 'the group to move the slots to' },
      abort: { type: 'string', value: 'ID', help: 'abort migration ID' },
      'no-wait': { type: 'boolean', help: 'return once the migration has begun' },
    },
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
    case 'admin slots': {
      if (p.dryRun) return dry({ servers: target.servers });
      return withClient(target, async (client) => {
        const map = client.keyMap;
        process.stdout.write(json ? JSON.stringify(keyMapJson(map)) + '\n' : slotsTable(map));
        return 0;
      });
    }
    case 'admin migrate': {
      const abortText = v['abort'] as string | undefined;
      const toText = v['to'] as string | undefined;
      let req: { path: string; body: Record<string, unknown> };
      if (abortText !== undefined) {
        if (a !== undefined || toText !== undefined) throw new UsageError('--abort ID takes no SLOTS and no --to');
        const id = parsePositiveInt(abortText, '--abort', Number.MAX_SAFE_INTEGER);
        req = { path: `/migrations/${id}/abort`, body: {} };
      } else {
        if (a === undefined) throw new UsageError('give SLOTS and --to G, or --abort ID');
        const slots = parseSlots(a); // BAD_SLOTS before anything is sent
        const to = parsePositiveInt(toText, '--to', 0xffff_fffe);
        req = { path: '/migrations', body: { slots: formatSlots(slots), to } };
      }
      if (p.dryRun) return dry({ servers: target.servers, request: req });
      return withClient(target, async (client) => {
        const reply = await adminPost(client.keyMap, req.path, req.body);
        const m = reply['migration'] as { id: number; slots: string; from: number; to: number } | undefined;
        if (abortText !== undefined || v['no-wait'] === true || m === undefined) {
          print(abortText !== undefined ? `migration ${abortText} aborted` : `migration ${m?.id} begun: slots ${m?.slots} from group ${m?.from} to group ${m?.to}`, reply);
          return 0;
        }
        const ended = await waitEnded(client, m.id);
        const owners = new Set<number>();
        for (const s of slotsOfRanges(parseSlots(m.slots))) owners.add(client.keyMap.ownerOf(s));
        const done = ended && owners.size === 1 && owners.has(m.to);
        const outcome = !ended ? 'in progress' : done ? 'finished' : 'aborted';
        print(`migration ${m.id} ${outcome}: slots ${m.slots} from group ${m.from} to group ${m.to}`, { ok: true, migration: { ...m, outcome } });
        return ended && !done ? 1 : 0;
      });
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

/** The map as a table: owners by slot run, groups, nodes, migrations. */
function slotsTable(map: KeyMap): string {
  const j = keyMapJson(map);
  const lines = [`key map version ${j.version}${j.initialized ? '' : ' (not initialized)'}`, '', 'SLOTS        GROUP'];
  for (const r of j.slots) lines.push(`${r.slots.padEnd(12)} ${r.group}`);
  lines.push('', 'GROUP  SLOTS  MEMBERS');
  for (const g of j.groups) lines.push(`${String(g.group).padEnd(6)} ${String(g.slotCount).padEnd(6)} ${g.members.join(',')}`);
  lines.push('', 'NODE  RAFT / CLIENT / ADMIN');
  for (const n of j.nodes) lines.push(`${String(n.node).padEnd(5)} ${n.raft} / ${n.client} / ${n.admin}`);
  lines.push('');
  if (j.migrations.length === 0) lines.push('no migrations in progress');
  else {
    lines.push('MIGRATION  SLOTS        FROM  TO    STATE');
    for (const m of j.migrations) lines.push(`${String(m.id).padEnd(10)} ${m.slots.padEnd(12)} ${String(m.from).padEnd(5)} ${String(m.to).padEnd(5)} ${m.state}`);
  }
  return lines.join('\n') + '\n';
}

/**
 * POSTs to the admin port of each node of the map in turn (the meta members, the lowest ids,
 * first: the leader is one of them; any node forwards), until one answers; its answer is the
 * outcome. A refusal throws with its code.
 */
async function adminPost(map: KeyMap, path: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
  const nodes = map.nodes().sort((x, y) => x - y);
  let last: Error = Object.assign(new Error('the key map names no node with an admin address'), { code: 'UNAVAILABLE' });
  for (const n of nodes) {
    const a = map.addressesOf(n);
    if (a === undefined) continue;
    let got: Record<string, unknown>;
    try {
      const res = await fetch(`http://${a.admin}${path}`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(ADMIN_HTTP_MS_MAX),
      });
      got = (await res.json()) as Record<string, unknown>;
    } catch (e) {
      last = Object.assign(new Error(`node ${n} (${a.admin}): ${e instanceof Error ? e.message : String(e)}`), { code: 'UNAVAILABLE' });
      continue;
    }
    if (got['ok'] === true) return got;
    const code = String(got['code'] ?? 'ERROR');
    last = Object.assign(new Error(String(got['message'] ?? code)), { code });
    if (code !== 'UNAVAILABLE' && code !== 'NOT_LEADER') throw last;
  }
  throw last;
}

type Client = Parameters<Parameters<typeof withClient>[1]>[0];

/** Waits (up to MIGRATE_WAIT_MS) until the map no longer holds migration `id`; whether it ended. */
async function waitEnded(client: Client, id: number): Promise<boolean> {
  const deadline = Date.now() + MIGRATE_WAIT_MS;
  for (;;) {
    await client.refreshMap().catch(() => false);
    if (!client.keyMap.migrations().some((m) => m.id === id) && client.keyMap.version > id) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}
