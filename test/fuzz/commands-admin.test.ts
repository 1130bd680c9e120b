// Fuzz: the decoders of request bodies. KV commands (decodeCommand throws only KvError;
// commandSizeProblem never throws; the state machine answers any bytes with a result, never an
// exception, as replicas must), group-level admin bodies (parseAdminRequest: a request or a
// reason), and the admin HTTP server's JSON bodies against a real server on 127.0.0.1 (every
// answer a JSON object with a known status; the server still healthy after all of them).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import fc from 'fast-check';
import { pack } from 'msgpackr';
import { commandSizeProblem, decodeCommand, encodeCommand } from '../../src/kv/kv-command.js';
import { KvError, type KvCommand } from '../../src/kv/kv-types.js';
import { KvStateMachine } from '../../src/kv/kv-state-machine.js';
import { parseAdminRequest } from '../../src/shard/admin.js';
import { startAdminHttp, type AdminBackend } from '../../src/node/admin-http.js';
import pino from 'pino';
import { params } from './fuzz-config.js';

const text = fc.string({ maxLength: 12 });
const single = fc.oneof(
  fc.record({ op: fc.constant('put' as const), key: text, value: text }),
  fc.record({ op: fc.constant('get' as const), key: text }),
  fc.record({ op: fc.constant('delete' as const), key: text }),
  fc.record({ op: fc.constant('cas' as const), key: text, expect: fc.option(text, { nil: null }), value: text }),
);
const command: fc.Arbitrary<KvCommand> = fc.oneof(single, fc.record({ op: fc.constant('batch' as const), ops: fc.array(single, { maxLength: 4 }) }));

const bodies = fc.oneof(
  fc.uint8Array({ maxLength: 200 }),
  fc.tuple(command, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), fc.nat())
    .map(([c, edits, cut]) => {
      const b = Uint8Array.from(encodeCommand(c));
      for (const [at, v] of edits) if (b.length > 0) b[at % b.length] = v;
      return cut % 3 === 0 && b.length > 0 ? b.subarray(0, cut % b.length) : b;
    }),
);

test('fuzz: KV commands decode or throw KvError; sizes never throw; the state machine answers everything', () => {
  fc.assert(fc.property(bodies, (b) => {
    try {
      decodeCommand(b);
    } catch (e) {
      if (!(e instanceof KvError)) throw e;
    }
    const p = commandSizeProblem(b);
    assert.ok(p === null || typeof p === 'string');
    const sm = new KvStateMachine();
    const r = sm.applyEncoded(b);
    assert.ok(r instanceof Uint8Array && r.length > 0);
  }), params(3000));
});

test('fuzz: a group-level admin body is a request or a reason', () => {
  const value = fc.oneof(fc.integer(), fc.double(), fc.string({ maxLength: 8 }), fc.boolean(), fc.constant(null),
    fc.array(fc.integer({ min: -1, max: 5 }), { maxLength: 5 }));
  const adminBodies = fc.oneof(
    fc.uint8Array({ maxLength: 100 }),
    fc.record({
      op: fc.constantFrom('status', 'metrics', 'addGroup', 'removeGroup', 'transferLeader', 'nope', 7),
      group: value, members: value, to: value,
    }, { requiredKeys: ['op'] }).map((o) => Uint8Array.from(pack(o))),
  );
  fc.assert(fc.property(adminBodies, fc.option(fc.integer({ min: 0, max: 0xffffffff }), { nil: null }), (b, g) => {
    const r = parseAdminRequest(b, g);
    assert.ok(typeof r === 'string' || typeof r.op === 'string');
  }), params(3000));
});

function request(port: number, method: string, path: string, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers: { 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('admin request timed out')));
    req.end(body);
  });
}

test('fuzz: admin HTTP bodies get a JSON answer with a known status; the server keeps serving', { timeout: 60_000 }, async () => {
  const backend: AdminBackend = {
    health: () => ({ serving: true, nodeId: 1, shards: [] }),
    status: () => Promise.resolve({ nodeId: 1, total: 0, offset: 0, groups: [] }),
    metrics: () => Promise.resolve(''),
    addGroup: () => Promise.resolve({ ok: true }),
    removeGroup: () => Promise.resolve({ ok: true }),
    transferLeader: () => Promise.resolve({ ok: true }),
    joinGroup: () => Promise.resolve({ ok: true }),
    memberChange: () => Promise.resolve({ ok: true, members: { voters: [1], learners: [] } }),
  };
  const server = await startAdminHttp({ host: '127.0.0.1', port: 0, log: pino({ level: 'silent' }), bodyBytesMax: 4096 }, backend);
  try {
    const json = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.json({ maxDepth: 3 }),
      fc.record({ group: fc.oneof(fc.integer(), fc.string(), fc.double()), members: fc.oneof(fc.array(fc.integer({ min: -2, max: 9 })), fc.string()), to: fc.integer() }, { requiredKeys: [] })
        .map((o) => JSON.stringify(o)),
      fc.string({ minLength: 4097, maxLength: 5000 }),
    );
    const route = fc.constantFrom(['POST', '/groups'], ['POST', '/groups/5/transfer-leader'], ['DELETE', '/groups/x'], ['POST', '/groups/99999999999/transfer-leader'], ['PUT', '/groups']);
    await fc.assert(fc.asyncProperty(route, json, async ([method, path], body) => {
      const r = await request(server.port, method!, path!, body);
      assert.ok([200, 400, 404, 405, 409, 413].includes(r.status), `status ${r.status} for ${body.slice(0, 80)}`);
      // An empty body only from Node's HTTP layer refusing the request itself (400, 413).
      if (r.text.length === 0) assert.ok(r.status === 400 || r.status === 413, `empty ${r.status}`);
      else {
        const v = JSON.parse(r.text) as { ok: boolean; code?: string };
        assert.equal(typeof v.ok, 'boolean');
        if (!v.ok) assert.match(v.code ?? '', /^[A-Z_]+$/);
      }
    }), params(300));
    assert.equal((await request(server.port, 'GET', '/health', '')).status, 200);
  } finally {
    await server.close();
  }
});
