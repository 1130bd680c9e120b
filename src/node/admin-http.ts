// The operator's HTTP endpoint (node:http): health for load balancers and supervisors, metrics
// for Prometheus, status, and group administration.
//
//   GET    /health                       200 when serving (status ok, or degraded with reasons, e.g.
//                                        NO_SPACE: a shard's disk is full, writes refused, reads go
//                                        on), 503 otherwise; JSON either way
//   GET    /metrics                      Prometheus text exposition 0.0.4
//   GET    /status[?offset=&limit=|?group=]  { nodeId, total, offset, groups: GroupStatus[] }: a page by id
//   POST   /groups                       body { group, members }        → add a group here
//   DELETE /groups/:id                                                    → remove it here
//   POST   /groups/:id/transfer-leader   body { to }                     → move its leadership
//   POST   /groups/:id/join                                               → an empty replica here
//   GET    /groups/:id/members                                            → voters, learners here
//   POST   /groups/:id/members           body { node, learner }          → add a member (leader)
//   POST   /groups/:id/members/:n/promote                                 → learner to voter (leader)
//   DELETE /groups/:id/members/:n                                         → remove a member (leader)
//   GET    /slots                        the node's copy of the key map, as JSON (docs/key-map.md)
//   GET    /migrations                   the migrations in the map and those this node drove
//                                        (with their hold times)
//   POST   /migrations                   body { slots: "0-1023", to }   → begin moving the slots
//                                        (BAD_SLOTS, NO_SUCH_GROUP, SAME_GROUP, MIXED_OWNERS,
//                                        SLOT_MIGRATING, ...); forwarded to the meta leader
//   POST   /migrations/:id/abort                                         → abort it
//                                        (NO_SUCH_MIGRATION); forwarded to the meta leader
//   POST   /internal/groups/:id/kv       body { body: base64, read }     → a migration's internal
//                                        command or read for a group here (other nodes' drivers;
//                                        bodies up to INTERNAL_BODY_BYTES_MAX)
//
// Admin answers are `{ ok: true, ... }` (200) or `{ ok: false, code, message }` with a status
// that follows the code: BAD_REQUEST 400, NOT_FOUND/NO_GROUP 404, METHOD_NOT_ALLOWED 405,
// TOO_LARGE 413, OVERLOADED 429, INTERNAL 500, UNAVAILABLE/STORAGE_FAILED 503, TIMEOUT 504,
// NO_SPACE 507 (Insufficient Storage), and
// 409 for the rest (the request conflicts with the group's state: NOT_LEADER, exists, ...).
//
// Bounded: request bodies (bodyBytesMax), headers (Node's 16 KiB), time to receive a request,
// and connections. Nothing a client sends, and nothing the backend throws, ends the process.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AdminReply, GroupStatus, MemberChangeRequest } from '../shard/task.js';
import type { Logger } from './log.js';

/** What /health answers. */
export interface NodeHealth {
  serving: boolean;
  /**
   * ok: serving, nothing wrong; degraded: serving, but some shard refuses writes (`reasons`
   * says why: NO_SPACE, its disk is full; reads go on); unavailable: not serving (503).
   */
  status?: 'ok' | 'degraded' | 'unavailable';
  reasons?: string[];
  nodeId: number;
  shards: {
    shard: number;
    state: 'starting' | 'ready' | 'failed' | 'stopped';
    message?: string;
    /** NO_SPACE while the shard's disk is full (it refuses writes; reads go on). */
    reason?: 'NO_SPACE';
  }[];
}

/** Which groups /status shows: a page of them by id, or one group. */
export type StatusQuery = { offset: number; limit: number } | { group: number };

export interface NodeStatus {
  nodeId: number;
  /** The groups this node hosts (for `?group=`: 1 if it hosts that group, else 0). */
  total: number;
  /** Where the page starts among them, by id (0 for `?group=`). */
  offset: number;
  groups: GroupStatus[];
}

/** Groups in one page of /status: the default and the most asked for. */
export const STATUS_LIMIT_DEFAULT = 1000;
export const STATUS_LIMIT_MAX = 10_000;

export interface AdminBackend {
  health(): NodeHealth;
  /** A page of the node's groups, ascending by id, or the one group asked for (NodeStatus.total counts them all). */
  status(q?: StatusQuery): Promise<NodeStatus>;
  /** Prometheus text exposition. */
  metrics(): Promise<string>;
  addGroup(group: number, members: number[]): Promise<AdminReply>;
  removeGroup(group: number): Promise<AdminReply>;
  transferLeader(group: number, to: number): Promise<AdminReply>;
  /** An empty replica of an existing group here, to be added as a member by its leader. */
  joinGroup(group: number): Promise<AdminReply>;
  /** A membership change, asked of the group's replica here (it must lead: else NOT_LEADER). */
  memberChange(req: MemberChangeRequest): Promise<AdminReply>;
  /** The key map, migrations (migration-admin.ts); absent on a backend without a map. */
  slots?(): unknown;
  migrations?(): unknown;
  migrate?(slots: string, to: number, forwarded: boolean): Promise<MapReply>;
  abortMigration?(id: number, forwarded: boolean): Promise<MapReply>;
  internalKv?(group: number, body: Uint8Array, read: boolean): Promise<MapReply>;
}

/** An answer of the map and migration routes. */
export type MapReply = { ok: true; [k: string]: unknown } | { ok: false; code: string; message: string; leader?: number };

export interface AdminServer {
  readonly port: number;
  close(): Promise<void>;
}

export const ADMIN_BODY_BYTES_MAX = 64 * 1024;
/** Body of an internal command: an import page (EXPORT_PAGE_BYTES and one largest pair) in base64. */
export const INTERNAL_BODY_BYTES_MAX = 2 * 1024 * 1024;
const MIGRATION_ID_MAX = Number.MAX_SAFE_INTEGER;
/** Concurrent connections; an admin port serves operators and scrapers, not clients. */
const CONNECTIONS_MAX = 256;
/** Time to receive a whole request (headers and body). */
const REQUEST_MS_MAX = 10_000;
/** On close, how long requests in progress may finish before their connections are cut. */
const CLOSE_GRACE_MS = 2_000;
const MEMBERS_MAX = 1024;
const GROUP_ID_MAX = 0xffff_fffe;
const NODE_ID_MAX = 0xffff_ffff;

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** An answer that is not 200 before the backend is even asked. */
class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
  }
}

export function startAdminHttp(
  opts: { host: string; port: number; log: Logger; bodyBytesMax?: number },
  backend: AdminBackend,
): Promise<AdminServer> {
  const log = opts.log;
  const bodyBytesMax = opts.bodyBytesMax ?? ADMIN_BODY_BYTES_MAX;
  const server = http.createServer({ requestTimeout: REQUEST_MS_MAX, headersTimeout: REQUEST_MS_MAX }, (req, res) => {
    res.on('error', (err) => log.debug({ err: err.message }, 'admin http: response error'));
    handle(req, res, backend, bodyBytesMax).catch((err: unknown) => {
      // handle() answers its own errors; reaching here means answering failed too.
      log.error({ err: errText(err), method: req.method, url: req.url }, 'admin http: request failed');
      if (!res.headersSent) send(res, 500, { ok: false, code: 'INTERNAL', message: 'internal error' });
      else res.destroy();
    });
  });
  server.maxConnections = CONNECTIONS_MAX;
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large'
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse, b: AdminBackend, max: number): Promise<void> {
    try {
      await route(req, res, b, max);
    } catch (e) {
      if (e instanceof HttpError) {
        for (const [k, v] of Object.entries(e.headers)) res.setHeader(k, v);
        send(res, e.status, { ok: false, code: e.code, message: e.message });
        return;
      }
      log.error({ err: errText(e), method: req.method, url: req.url }, 'admin http: backend failed');
      send(res, 500, { ok: false, code: 'INTERNAL', message: `internal error: ${errText(e)}` });
    }
  }

  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(opts.port, opts.host, () => {
      server.off('error', onError);
      server.on('error', (err) => log.error({ err: err.message }, 'admin http: server error'));
      const port = (server.address() as AddressInfo).port;
      let closing: Promise<void> | null = null;
      resolve({
        port,
        close: () => {
          closing ??= new Promise<void>((done) => {
            const cut = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
            cut.unref();
            server.close(() => {
              clearTimeout(cut);
              done();
            });
            server.closeIdleConnections();
          });
          return closing;
        },
      });
    });
  });
}

async function route(req: http.IncomingMessage, res: http.ServerResponse, b: AdminBackend, bodyBytesMax: number): Promise<void> {
  const method = req.method ?? 'GET';
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const parts = (q < 0 ? url : url.slice(0, q)).split('/').filter((s) => s.length > 0);
  const [a, id, action] = parts;

  if (parts.length === 1 && a === 'health') {
    allow(method, ['GET', 'HEAD']);
    const h = b.health();
    send(res, h.serving ? 200 : 503, h);
    return;
  }
  if (parts.length === 1 && a === 'metrics') {
    allow(method, ['GET', 'HEAD']);
    const text = await b.metrics();
    res.writeHead(200, { 'Content-Type': METRICS_CONTENT_TYPE, 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
    res.end(text);
    return;
  }
  if (parts.length === 1 && a === 'status') {
    allow(method, ['GET', 'HEAD']);
    const params = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
    const group = params.get('group');
    if (group !== null) {
      const st = await b.status({ group: intParam(group, 'group', 1, GROUP_ID_MAX) });
      if (st.groups.length === 0) throw new HttpError(404, 'NO_GROUP', `node ${st.nodeId} does not host group ${group}`);
      send(res, 200, st);
      return;
    }
    const offset = intParam(params.get('offset') ?? '0', 'offset', 0, Number.MAX_SAFE_INTEGER);
    const limit = intParam(params.get('limit') ?? String(STATUS_LIMIT_DEFAULT), 'limit', 1, STATUS_LIMIT_MAX);
    send(res, 200, await b.status({ offset, limit }));
    return;
  }
  if (a === 'groups' && parts.length === 1) {
    allow(method, ['POST']);
    const body = await readJson(req, res, bodyBytesMax);
    const group = groupId(body['group'], 'group');
    const members = body['members'];
    if (!Array.isArray(members) || members.length === 0 || members.length > MEMBERS_MAX) {
      throw new HttpError(400, 'BAD_REQUEST', `members must be a non-empty array of node ids (at most ${MEMBERS_MAX})`);
    }
    const seen = new Set<number>();
    for (const m of members) {
      if (!isIntIn(m, 1, NODE_ID_MAX)) throw new HttpError(400, 'BAD_REQUEST', `member ${JSON.stringify(m)} is not a node id`);
      if (seen.has(m)) throw new HttpError(400, 'BAD_REQUEST', `member ${m} is listed twice`);
      seen.add(m);
    }
    reply(res, await b.addGroup(group, members as number[]));
    return;
  }
  if (a === 'groups' && parts.length === 2) {
    allow(method, ['DELETE']);
    reply(res, await b.removeGroup(groupId(id, 'group id in the path')));
    return;
  }
  if (a === 'groups' && parts.length >= 3 && (action === 'join' || action === 'members')) {
    await membersRoute(req, res, b, bodyBytesMax, method, parts);
    return;
  }
  if (a === 'groups' && parts.length === 3 && action === 'transfer-leader') {
    allow(method, ['POST']);
    const group = groupId(id, 'group id in the path');
    const body = await readJson(req, res, bodyBytesMax);
    const to = body['to'];
    if (!isIntIn(to, 1, NODE_ID_MAX)) throw new HttpError(400, 'BAD_REQUEST', `to must be a node id, got ${JSON.stringify(to) ?? 'nothing'}`);
    reply(res, await b.transferLeader(group, to));
    return;
  }
  if (a === 'slots' && parts.length === 1 && b.slots !== undefined) {
    allow(method, ['GET', 'HEAD']);
    send(res, 200, b.slots());
    return;
  }
  if (a === 'migrations' && parts.length === 1 && b.migrate !== undefined && b.migrations !== undefined) {
    allow(method, ['GET', 'HEAD', 'POST']);
    if (method !== 'POST') {
      send(res, 200, b.migrations());
      return;
    }
    const body = await readJson(req, res, bodyBytesMax);
    const slots = body['slots'];
    if (typeof slots !== 'string') throw new HttpError(400, 'BAD_SLOTS', `slots must be a text like "0-1023" or "5,9,100-200", got ${JSON.stringify(slots) ?? 'nothing'}`);
    const to = groupId(body['to'], 'to');
    reply(res, await b.migrate(slots, to, body['forwarded'] === true));
    return;
  }
  if (a === 'migrations' && parts.length === 3 && action === 'abort' && b.abortMigration !== undefined) {
    allow(method, ['POST']);
    const n = /^\d{1,16}$/.test(id!) ? Number(id) : NaN;
    if (!isIntIn(n, 1, MIGRATION_ID_MAX)) throw new HttpError(400, 'BAD_REQUEST', `migration id must be a positive integer, got ${JSON.stringify(id)}`);
    const body = await readJson(req, res, bodyBytesMax);
    reply(res, await b.abortMigration(n, body['forwarded'] === true));
    return;
  }
  if (a === 'internal' && parts.length === 4 && id === 'groups' && parts[3] === 'kv' && b.internalKv !== undefined) {
    allow(method, ['POST']);
    const group = groupId(action, 'group id in the path');
    const body = await readJson(req, res, INTERNAL_BODY_BYTES_MAX);
    const data = body['body'];
    if (typeof data !== 'string') throw new HttpError(400, 'BAD_REQUEST', 'body must be base64 text');
    reply(res, await b.internalKv(group, Buffer.from(data, 'base64'), body['read'] === true));
    return;
  }
  throw new HttpError(404, 'NOT_FOUND', `no route ${method} ${url.slice(0, 200)}`);
}

/**
 * POST /groups/G/join: an empty replica of G here. GET /groups/G/members: G's voters and
 * learners as this replica has applied them (with its role). POST /groups/G/members {node,
 * learner}: add (at the leader); POST /groups/G/members/N/promote; DELETE /groups/G/members/N.
 */
async function membersRoute(req: http.IncomingMessage, res: http.ServerResponse, b: AdminBackend, bodyBytesMax: number, method: string, parts: string[]): Promise<void> {
  const group = groupId(parts[1], 'group id in the path');
  const [, , action, node, verb] = parts;
  if (action === 'join' && parts.length === 3) {
    allow(method, ['POST']);
    reply(res, await b.joinGroup(group));
    return;
  }
  if (parts.length === 3) {
    allow(method, ['GET', 'POST']);
    if (method === 'GET') {
      const st = await b.status({ group });
      const g = st.groups[0];
      if (g === undefined) throw new HttpError(404, 'NO_GROUP', `node ${st.nodeId} does not host group ${group}`);
      send(res, 200, { ok: true, group, voters: g.voters, learners: g.learners, role: g.role, leader: g.leader });
      return;
    }
    const body = await readJson(req, res, bodyBytesMax);
    const n = body['node'];
    if (!isIntIn(n, 1, NODE_ID_MAX)) throw new HttpError(400, 'BAD_REQUEST', `node must be a node id, got ${JSON.stringify(n) ?? 'nothing'}`);
    const learner = body['learner'] ?? false;
    if (typeof learner !== 'boolean') throw new HttpError(400, 'BAD_REQUEST', 'learner must be true or false');
    reply(res, await b.memberChange({ op: 'addMember', group, node: n, learner }));
    return;
  }
  const n = Number(node);
  if (!/^[0-9]{1,10}$/.test(node ?? '') || !isIntIn(n, 1, NODE_ID_MAX)) throw new HttpError(400, 'BAD_REQUEST', `node id in the path must be a node id, got ${JSON.stringify(node)}`);
  if (parts.length === 4) {
    allow(method, ['DELETE']);
    reply(res, await b.memberChange({ op: 'removeMember', group, node: n }));
    return;
  }
  if (parts.length === 5 && verb === 'promote') {
    allow(method, ['POST']);
    reply(res, await b.memberChange({ op: 'promote', group, node: n }));
    return;
  }
  throw new HttpError(404, 'NOT_FOUND', `no route ${method} /${parts.join('/')}`);
}

function allow(method: string, methods: string[]): void {
  if (!methods.includes(method)) {
    throw new HttpError(405, 'METHOD_NOT_ALLOWED', `use ${methods.join(' or ')}`, { Allow: methods.join(', ') });
  }
}

/** A query parameter that must be a decimal integer in [min, max]: else 400 BAD_REQUEST. */
function intParam(v: string, what: string, min: number, max: number): number {
  const n = /^[0-9]{1,16}$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new HttpError(400, 'BAD_REQUEST', `${what} must be an integer from ${min} to ${max}, not ${JSON.stringify(v.slice(0, 40))}`);
  return n;
}

/** A group id from a body field (number) or a path segment (decimal text). */

function groupId(v: unknown, what: string): number {
  const n = typeof v === 'string' && /^\d{1,10}$/.test(v) ? Number(v) : v;
  if (!isIntIn(n, 1, GROUP_ID_MAX)) throw new HttpError(400, 'BAD_REQUEST', `${what} must be a group id 1..${GROUP_ID_MAX}, got ${JSON.stringify(v) ?? 'nothing'}`);
  return n;
}

function isIntIn(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max;
}

/** Reads a JSON object body of at most `max` bytes. */
function readJson(req: http.IncomingMessage, res: http.ServerResponse, max: number): Promise<Record<string, unknown>> {
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > max) {
    tooLarge(req, res);
    return Promise.reject(new HttpError(413, 'TOO_LARGE', `the body may have at most ${max} bytes`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    let done = false;
    const finish = (err: Error | null, value?: Record<string, unknown>): void => {
      if (done) return;
      done = true;
      req.off('data', onData);
      if (err !== null) reject(err);
      else resolve(value!);
    };
    const onData = (chunk: Buffer): void => {
      bytes += chunk.length;
      if (bytes > max) {
        tooLarge(req, res);
        finish(new HttpError(413, 'TOO_LARGE', `the body may have at most ${max} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.on('error', (err) => finish(new HttpError(400, 'BAD_REQUEST', `reading the body failed: ${err.message}`)));
    req.on('close', () => finish(new HttpError(400, 'BAD_REQUEST', 'the connection closed before the body ended')));
    req.on('end', () => {
      let v: unknown;
      try {
        v = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch (e) {
        finish(new HttpError(400, 'BAD_REQUEST', `the body is not valid JSON: ${(e as Error).message}`));
        return;
      }
      if (v === null || typeof v !== 'object' || Array.isArray(v)) {
        finish(new HttpError(400, 'BAD_REQUEST', 'the body must be a JSON object'));
        return;
      }
      finish(null, v as Record<string, unknown>);
    });
  });
}

/** The rest of an oversized body is not worth reading: answer, then close the connection. */
function tooLarge(req: http.IncomingMessage, res: http.ServerResponse): void {
  req.pause();
  res.shouldKeepAlive = false;
  res.setHeader('Connection', 'close');
}

const STATUS_BY_CODE: Record<string, number> = {
  BAD_REQUEST: 400,
  BAD_SLOTS: 400,
  NOT_FOUND: 404,
  NO_SUCH_MIGRATION: 404,
  NO_SUCH_GROUP: 404,
  NO_GROUP: 404,
  TOO_LARGE: 413,
  OVERLOADED: 429,
  INTERNAL: 500,
  UNAVAILABLE: 503,
  STORAGE_FAILED: 503,
  TIMEOUT: 504,
  NO_SPACE: 507,
};

function reply(res: http.ServerResponse, r: AdminReply | MapReply): void {
  if (r.ok) send(res, 200, r);
  else send(res, STATUS_BY_CODE[r.code] ?? 409, { ok: false, code: r.code, message: r.message, ...('leader' in r && r.leader !== undefined ? { leader: r.leader } : {}) });
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body) + '\n';
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
  res.end(text);
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
