// Admin requests as a shard receives them: node-level ones (InKind.Admin, a msgpack
// AdminRequest) and group-level ones (a client frame of kind Admin whose msgpack body names the
// op, for the group in the frame header). Both are checked here before anything runs.
import { unpack } from 'msgpackr';
import type { AdminReply, AdminRequest } from './task.js';

/** Largest group id; 0xffffffff is the wire's "every shard" marker. */
export const GROUP_ID_MAX = 0xfffffffe;
/** Most founding members of a group accepted by addGroup. */
export const MEMBERS_MAX = 64;

export function isGroupId(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= GROUP_ID_MAX;
}

export function isNodeId(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 0xffffffff;
}

/**
 * Decodes and checks an admin request. `headerGroup` is the group of a client frame: the op is
 * for that group, and a `group` in the body, if any, must agree. Returns the request or why it
 * is refused.
 */
export function parseAdminRequest(bytes: Uint8Array, headerGroup: number | null): AdminRequest | string {
  let v: unknown;
  try {
    v = unpack(bytes);
  } catch (e) {
    return `admin body is not msgpack: ${e instanceof Error ? e.message : String(e)}`;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'admin body is not a map';
  const r = v as Record<string, unknown>;
  let group: unknown = r.group;
  if (headerGroup !== null) {
    if (group !== undefined && group !== headerGroup) return `body names group ${String(group)}, the frame group ${headerGroup}`;
    group = headerGroup;
  }
  switch (r.op) {
    case 'status':
      return { op: 'status' };
    case 'metrics':
      return { op: 'metrics' };
    case 'addGroup': {
      if (!isGroupId(group)) return `bad group id ${String(group)}`;
      const members = r.members;
      if (!Array.isArray(members) || members.length === 0 || members.length > MEMBERS_MAX) {
        return `members must be a list of 1 to ${MEMBERS_MAX} node ids`;
      }
      if (!members.every(isNodeId)) return 'members must be node ids (integers 1 to 2^32 - 1)';
      if (new Set(members).size !== members.length) return 'members are not distinct';
      return { op: 'addGroup', group, members: [...(members as number[])].sort((a, b) => a - b) };
    }
    case 'removeGroup':
      if (!isGroupId(group)) return `bad group id ${String(group)}`;
      return { op: 'removeGroup', group };
    case 'transferLeader':
      if (!isGroupId(group)) return `bad group id ${String(group)}`;
      if (!isNodeId(r.to)) return `bad node id ${String(r.to)}`;
      return { op: 'transferLeader', group, to: r.to };
    default:
      return `unknown admin op ${String(r.op)}`;
  }
}

export function adminError(code: string, message: string): AdminReply {
  return { ok: false, code, message };
}
