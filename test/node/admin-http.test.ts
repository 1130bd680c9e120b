// The admin HTTP server against a fake backend: every route, the answers for bad requests
// (bad JSON, oversized bodies, unknown routes, wrong methods), a backend that throws, and a
// server that keeps serving after all of it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as net from 'node:net';
import { pino } from 'pino';
import { startAdminHttp, type AdminBackend, type AdminServer, type NodeStatus, type StatusQuery } from '../../src/node/admin-http.js';
import { createLogger } from '../../src/node/log.js';
import type { AdminReply, GroupStatus, MemberChangeRequest } from '../../src/shard/task.js';

interface Call {
  op: string;
  args: unknown[];
}

class FakeBackend implements AdminBackend {
  serving = true;
  calls: Call[] = [];
  reply: AdminReply = { ok: true };
  fail: Error | null = null;
  groups: GroupStatus[] = [{
    group: 1, role: 'leader', leader: 1, term: 3, commit: 10, applied: 10, lastIndex: 10, snapshotIndex: 0, voters: [1, 2, 3], learners: [],
  }];

  health(): ReturnType<AdminBackend['health']> {
    if (this.fail !== null) throw this.fail;
    return { serving: this.serving, nodeId: 1, shards: [{ shard: 0, state: this.serving ? 'ready' : 'failed', ...(this.serving ? {} : { message: 'disk full' }) }] };
  }
  queries: StatusQuery[] = [];
  async status(q?: StatusQuery): Promise<NodeStatus> {
    if (this.fail !== null) throw this.fail;
    this.queries.push(q ?? { offset: 0, limit: Infinity });
    if (q !== undefined && 'group' in q) {
      const groups = this.groups.filter((g) => g.group === q.group);
      return { nodeId: 1, total: groups.length, offset: 0, groups };
    }
    const page = q ?? { offset: 0, limit: Infinity };
    return { nodeId: 1, total: this.groups.length, offset: page.offset, groups: this.groups.slice(page.offset, page.offset + page.limit) };
  }
  async metrics(): Promise<string> {
    if (this.fail !== null) throw this.fail;
    return '# HELP flotilla_node_id x\n# TYPE flotilla_node_id gauge\nflotilla_node_id 1\n';
  }
  async addGroup(group: number, members: number[]): Promise<AdminReply> {
    return this.answer('addGroup', [group, members]);
  }
  async removeGroup(group: number): Promise<AdminReply> {
    return this.answer('removeGroup', [group]);
  }
  async transferLeader(group: number, to: number): Promise<AdminReply> {
    return this.answer('transferLeader', [group, to]);
  }
  async joinGroup(group: number): Promise<AdminReply> {
    return this.answer('joinGroup', [group]);
  }
  async memberChange(req: MemberChangeRequest): Promise<AdminReply> {
    return this.answer(req.op, req.op === 'addMember' ? [req.group, req.node, req.learner] : [req.group, req.node]);
  }
  private answer(op: string, args: unknown[]): AdminReply {
    this.calls.push({ op, args });
    if (this.fail !== null) throw this.fail;
    return this.reply;
  }
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: Record<string, unknown> | null;
}

/** One request on its own connection (no keep-alive), bounded in time. */
function request(port: number, method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: Record<string, unknown> | null = null;
        try {
          json = JSON.parse(text) as Record<string, unknown>;
        } catch {
          // Not JSON (metrics).
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

async function withServer(f: (port: number, backend: FakeBackend, logs: string[], server: AdminServer) => Promise<void>, bodyBytesMax?: number): Promise<void> {
  const backend = new FakeBackend();
  const logs: string[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void logs.push(s) });
  const server = await startAdminHttp({ host: '127.0.0.1', port: 0, log, ...(bodyBytesMax !== undefined ? { bodyBytesMax } : {}) }, backend);
  try {
    await f(server.port, backend, logs, server);
  } finally {
    await server.close();
  }
}

test('GET /health is 200 with the backend\'s JSON while serving and 503 otherwise', { timeout: 10_000 }, async () => {
  await withServer(async (port, backend) => {
    const up = await request(port, 'GET', '/health');
    assert.equal(up.status, 200);
    assert.match(String(up.headers['content-type']), /^application\/json/);
    assert.deepEqual(up.json, { serving: true, nodeId: 1, shards: [{ shard: 0, state: 'ready' }] });
    backend.serving = false;
    const down = await request(port, 'GET', '/health?verbose=1');
    assert.equal(down.status, 503);
    assert.deepEqual(down.json, { serving: false, nodeId: 1, shards: [{ shard: 0, state: 'failed', message: 'disk full' }] });
  });
});

test('GET /metrics is the Prometheus text format; GET /status is the backend\'s JSON', { timeout: 10_000 }, async () => {
  await withServer(async (port, backend) => {
    const m = await request(port, 'GET', '/metrics');
    assert.equal(m.status, 200);
    assert.equal(m.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
    assert.match(m.text, /^flotilla_node_id 1$/m);
    const s = await request(port, 'GET', '/status');
    assert.equal(s.status, 200);
    assert.deepEqual(s.json, { nodeId: 1, total: 1, offset: 0, groups: backend.groups });
  });
});

test('GET /status pages by offset and limit (1,000 by default, at most 10,000) or shows one group; bad parameters are 400', { timeout: 10_000 }, async () => {
  await withServer(async (port, backend) => {
    const g = backend.groups[0]!;
    backend.groups = Array.from({ length: 30 }, (_, i) => ({ ...g, group: i + 1 }));
    const page = await request(port, 'GET', '/status?offset=10&limit=5');
    assert.equal(page.status, 200);
    assert.deepEqual(page.json?.['groups'], backend.groups.slice(10, 15));
    assert.equal(page.json?.['total'], 30);
    assert.equal(page.json?.['offset'], 10);
    const one = await request(port, 'GET', '/status?group=7');
    assert.equal(one.status, 200);
    assert.deepEqual(one.json?.['groups'], [backend.groups[6]]);
    const none = await request(port, 'GET', '/status?group=99');
    assert.equal(none.status, 404);
    assert.equal(none.json?.['code'], 'NO_GROUP');
    await request(port, 'GET', '/status');
    assert.deepEqual(backend.queries, [{ offset: 10, limit: 5 }, { group: 7 }, { group: 99 }, { offset: 0, limit: 1000 }]);
    for (const bad of ['offset=-1', 'offset=x', 'limit=0', 'limit=10001', 'limit=1.5', 'group=0', 'group=4294967295', 'group=', 'offset=99999999999999999']) {
      const r = await request(port, 'GET', `/status?${bad}`);
      assert.equal(r.status, 400, bad);
      assert.equal(r.json?.['code'], 'BAD_REQUEST', bad);
    }
  });
});

test('POST /groups, DELETE /groups/:id and POST /groups/:id/transfer-leader reach the backend', { timeout: 10_000 }, async () => {
  await withServer(async (port, backend) => {
    const add = await request(port, 'POST', '/groups', JSON.stringify({ group: 7, members: [1, 2, 3] }), { 'content-type': 'application/json' });
    assert.equal(add.status, 200);
    assert.deepEqual(add.json, { ok: true });
    const del = await request(port, 'DELETE', '/groups/7');
    assert.equal(del.status, 200);
    const move = await request(port, 'POST', '/groups/7/transfer-leader', JSON.stringify({ to: 2 }));
    assert.equal(move.status, 200);
    assert.deepEqual(backend.calls, [
      { op: 'addGroup', args: [7, [1, 2, 3]] },
      { op: 'removeGroup', args: [7] },
      { op: 'transferLeader', args: [7, 2] },
    ]);
  });
});

test('a refusal from the backend keeps its code: BAD_REQUEST 400, conflicts 409, NO_GROUP 404, TIMEOUT 504', { timeout: 10_000 }, async () => {
  await withServer(async (port, backend) => {
    const cases: [string, number][] = [['BAD_REQUEST', 400], ['GROUP_EXISTS', 409], ['NOT_LEADER', 409], ['NO_GROUP', 404], ['TIMEOUT', 504], ['UNAVAILABLE', 503]];
    for (const [code, status] of cases) {
      backend.reply = { ok: false, code, message: `said ${code}` };
      const r = await request(port, 'POST', '/groups', JSON.stringify({ group: 7, members: [1] }));
      assert.equal(r.status, status, code);
      assert.deepEqual(r.json, { ok: false, code, message: `said ${code}` });
    }
  });
});

test('bad requests are 400 BAD_REQUEST and never reach the backend', { timeout: 10_000 }, async () => {
  await withServer(async (port, backend) => {
    const bad: [string, string, string | undefined, RegExp][] = [
      ['POST', '/groups', '{"group": 7, "members": [1,', /not valid JSON/],
      ['POST', '/groups', '[1, 2]', /must be a JSON object/],
      ['POST', '/groups', '', /not valid JSON/],
      ['POST', '/groups', JSON.stringify({ group: 0, members: [1] }), /group must be a group id/],
      ['POST', '/groups', JSON.stringify({ group: 1.5, members: [1] }), /group must be a group id/],
      ['POST', '/groups', JSON.stringify({ group: 7, members: [] }), /members must be a non-empty array/],
      ['POST', '/groups', JSON.stringify({ group: 7, members: [1, 1] }), /member 1 is listed twice/],
      ['POST', '/groups', JSON.stringify({ group: 7, members: ['a'] }), /member "a" is not a node id/],
      ['DELETE', '/groups/abc', undefined, /group id in the path must be a group id/],
      ['DELETE', '/groups/4294967295', undefined, /group id in the path must be a group id/],
      ['POST', '/groups/7/transfer-leader', JSON.stringify({}), /to must be a node id/],
    ];
    for (const [method, path, body, message] of bad) {
      const r = await request(port, method, path, body);
      assert.equal(r.status, 400, `${method} ${path} ${body}`);
      assert.equal(r.json?.['code'], 'BAD_REQUEST');
      assert.equal(r.json?.['ok'], false);
      assert.match(String(r.json?.['message']), message);
    }
    assert.deepEqual(backend.calls, []);
  });
});

test('unknown routes are 404 and wrong methods 405 with Allow', { timeout: 10_000 }, async () => {
  await withServer(async (port) => {
    for (const path of ['/', '/nope', '/health/x', '/groups/7/promote']) {
      const r = await request(port, 'GET', path);
      assert.equal(r.status, 404, path);
      assert.equal(r.json?.['code'], 'NOT_FOUND');
    }
    const post = await request(port, 'POST', '/health', '{}');
    assert.equal(post.status, 405);
    assert.equal(post.headers['allow'], 'GET, HEAD');
    assert.equal(post.json?.['code'], 'METHOD_NOT_ALLOWED');
    const get = await request(port, 'GET', '/groups');
    assert.equal(get.status, 405);
    assert.equal(get.headers['allow'], 'POST');
    const put = await request(port, 'PUT', '/groups/7');
    assert.equal(put.status, 405);
    assert.equal(put.headers['allow'], 'DELETE');
  });
});

test('a body above the bound is 413 TOO_LARGE, declared or streamed, and the server goes on', { timeout: 10_000 }, async () => {
  await withServer(async (port, backend) => {
    const declared = await request(port, 'POST', '/groups', 'x'.repeat(2048), { 'content-length': '2048' });
    assert.equal(declared.status, 413);
    assert.equal(declared.json?.['code'], 'TOO_LARGE');
    assert.equal(declared.headers['connection'], 'close');
    // Chunked: no length up front, so the bound is met while reading.
    const streamed = await request(port, 'POST', '/groups', Buffer.alloc(2048, 0x20), { 'transfer-encoding': 'chunked' });
    assert.equal(streamed.status, 413);
    assert.equal(streamed.json?.['code'], 'TOO_LARGE');
    // Just under the bound is read and judged on its content.
    const under = await request(port, 'POST', '/groups', JSON.stringify({ group: 7, members: [1] }).padEnd(1024, ' '));
    assert.equal(under.status, 200);
    assert.equal(backend.calls.length, 1);
  }, 1024);
  // The default bound is 64 KiB.
  await withServer(async (port) => {
    const big = await request(port, 'POST', '/groups', 'x'.repeat(64 * 1024 + 1));
    assert.equal(big.status, 413);
  });
});

test('a backend that throws is 500 INTERNAL with a log line, and the server keeps serving', { timeout: 10_000 }, async () => {
  await withServer(async (port, backend, logs) => {
    backend.fail = new Error('shard 3 exploded');
    for (const [method, path, body] of [['GET', '/health'], ['GET', '/status'], ['GET', '/metrics'], ['POST', '/groups', '{"group":1,"members":[1]}'], ['DELETE', '/groups/1']] as const) {
      const r = await request(port, method, path, body);
      assert.equal(r.status, 500, `${method} ${path}`);
      assert.equal(r.json?.['code'], 'INTERNAL');
      assert.match(String(r.json?.['message']), /shard 3 exploded/);
    }
    assert.ok(logs.some((l) => l.includes('shard 3 exploded') && l.includes('"level":50')), 'an error line in the log');
    backend.fail = null;
    const r = await request(port, 'GET', '/health');
    assert.equal(r.status, 200);
  });
});

test('garbage on the socket is answered 400 and closed; the server keeps serving', { timeout: 10_000 }, async () => {
  await withServer(async (port) => {
    const answer = await new Promise<string>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => s.write('THIS IS NOT HTTP\r\n\r\n'));
      let got = '';
      s.on('data', (d) => (got += d.toString()));
      s.on('end', () => resolve(got));
      s.on('error', reject);
      s.setTimeout(5000, () => s.destroy(new Error('no answer')));
    });
    assert.match(answer, /^HTTP\/1\.1 400 /);
    assert.equal((await request(port, 'GET', '/health')).status, 200);
  });
});

test('close() ends idle keep-alive connections and resolves; a busy port is an error at start', { timeout: 10_000 }, async () => {
  const backend = new FakeBackend();
  const log = createLogger({ level: 'silent', format: 'json', color: false }, 1);
  const server = await startAdminHttp({ host: '127.0.0.1', port: 0, log }, backend);
  const agent = new http.Agent({ keepAlive: true });
  await new Promise<void>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: server.port, path: '/health', agent }, (res) => {
      res.resume();
      res.on('end', resolve);
    }).on('error', reject);
  });
  await assert.rejects(startAdminHttp({ host: '127.0.0.1', port: server.port, log }, backend), /EADDRINUSE/);
  const t0 = Date.now();
  await server.close();
  await server.close();
  assert.ok(Date.now() - t0 < 1500, `close took ${Date.now() - t0} ms`);
  agent.destroy();
});

test('membership routes: join, members, add (learner or voter), promote, remove; bad node ids are 400', { timeout: 10_000 }, async () => {
  await withServer(async (port, backend) => {
    assert.equal((await request(port, 'POST', '/groups/7/join', '{}')).status, 200);
    backend.groups = [{ ...backend.groups[0]!, group: 7, voters: [1, 2], learners: [3] }];
    const got = await request(port, 'GET', '/groups/7/members');
    assert.deepEqual(got.json, { ok: true, group: 7, voters: [1, 2], learners: [3], role: 'leader', leader: 1 });
    assert.equal((await request(port, 'GET', '/groups/8/members')).status, 404);
    assert.equal((await request(port, 'POST', '/groups/7/members', JSON.stringify({ node: 3, learner: true }))).status, 200);
    assert.equal((await request(port, 'POST', '/groups/7/members/3/promote', '{}')).status, 200);
    assert.equal((await request(port, 'DELETE', '/groups/7/members/2')).status, 200);
    assert.deepEqual(backend.calls, [
      { op: 'joinGroup', args: [7] }, { op: 'addMember', args: [7, 3, true] }, { op: 'promote', args: [7, 3] }, { op: 'removeMember', args: [7, 2] },
    ]);
    for (const [method, path, body] of [['POST', '/groups/7/members', '{"node": 0}'], ['POST', '/groups/7/members', '{"node": 2, "learner": "yes"}'], ['DELETE', '/groups/7/members/x', undefined], ['POST', '/groups/7/members/0/promote', '{}']] as const) {
      const r = await request(port, method, path, body);
      assert.equal(r.status, 400, `${method} ${path}`);
      assert.equal(r.json?.['code'], 'BAD_REQUEST');
    }
    assert.equal((await request(port, 'PUT', '/groups/7/members')).status, 405);
    // The backend's NOT_LEADER is 409 with its code, as for transfer-leader.
    backend.reply = { ok: false, code: 'NOT_LEADER', message: 'node 2 leads' };
    const follower = await request(port, 'DELETE', '/groups/7/members/2');
    assert.equal(follower.status, 409);
    assert.equal(follower.json?.['code'], 'NOT_LEADER');
  });
});
