// Bad input against a real node process: random and truncated frames, oversized frames,
// unknown kinds, malformed commands, a client that sends and never reads. Each gets its error
// (or its connection closed) and the node keeps serving everyone else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { unpack } from 'msgpackr';
import { FlotillaClient } from '../../src/client/index.js';
import { encodeFrame, FRAME_HEADER_BYTES, FrameFlag, FrameKind, readHeader } from '../../src/protocol/client-frame.js';
import { encodeCommand } from '../../src/kv/kv-command.js';
import { startCluster, waitFor } from './cluster-harness.js';

interface Reply { kind: number; requestId: number; body: Uint8Array }

/** A raw TCP connection that collects response frames until the server closes it or time runs out. */
function raw(port: number): { sock: net.Socket; replies: Reply[]; closed: Promise<void> } {
  const sock = net.connect(port, '127.0.0.1');
  const replies: Reply[] = [];
  let buf = Buffer.alloc(0);
  sock.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= FRAME_HEADER_BYTES) {
      const h = readHeader(buf, 0);
      if (buf.length < h.frameBytes) break;
      replies.push({ kind: h.kind, requestId: h.requestId, body: buf.subarray(FRAME_HEADER_BYTES, h.frameBytes) });
      buf = buf.subarray(h.frameBytes);
    }
  });
  sock.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => sock.on('close', () => resolve()));
  return { sock, replies, closed };
}

function errorCode(r: Reply): string {
  assert.equal(r.kind, FrameKind.Error, 'an Error frame');
  return (unpack(r.body) as { code: string }).code;
}

async function closedWithin(closed: Promise<void>, ms: number): Promise<boolean> {
  return Promise.race([closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
}

test('bad frames get BAD_FRAME and a closed connection; the node keeps serving others', { timeout: 90_000 }, async () => {
  const cluster = await startCluster({ nodes: 1, groups: 4, extra: { frameBytesMax: 64 << 10 } });
  const port = cluster.node(1).clientPort;
  const good = await FlotillaClient.connect({ servers: cluster.servers() });
  try {
    await good.put('before', '1');

    // Oversized frame: refused from its length alone.
    {
      const c = raw(port);
      const h = Buffer.alloc(FRAME_HEADER_BYTES);
      h.writeUInt32LE(1 << 20, 0);
      h[4] = FrameKind.Command;
      h.writeUInt32LE(7, 8);
      h.writeUInt32LE(1, 12);
      c.sock.write(h);
      assert.ok(await closedWithin(c.closed, 5000), 'oversized frame closes the connection');
      assert.equal(errorCode(c.replies[0]!), 'BAD_FRAME');
      assert.equal(c.replies[0]!.requestId, 7);
    }
    // Unknown kind.
    {
      const c = raw(port);
      c.sock.write(encodeFrame(0x7e as FrameKind, 0, 9, 1, new Uint8Array(4)));
      assert.ok(await closedWithin(c.closed, 5000));
      assert.equal(errorCode(c.replies[0]!), 'BAD_FRAME');
    }
    // Random garbage, from several seeds.
    for (let seed = 1; seed <= 10; seed++) {
      const c = raw(port);
      let s = seed;
      const junk = Buffer.alloc(200, 0).map(() => (s = (s * 1103515245 + 12345) & 0x7fffffff) & 0xff);
      c.sock.write(junk);
      assert.ok(await closedWithin(c.closed, 5000), `garbage seed ${seed} closes the connection`);
    }
    // A truncated frame then silence: the node waits for the rest without harm; closing is fine.
    {
      const c = raw(port);
      const f = encodeFrame(FrameKind.Command, 0, 3, 1, encodeCommand({ op: 'put', key: 'k', value: 'v' }));
      c.sock.write(f.subarray(0, f.length - 3));
      assert.equal(await closedWithin(c.closed, 500), false, 'a partial frame is waited for');
      c.sock.destroy();
    }
    // Well-formed frames with bad contents: errors, and the connection stays open.
    {
      const c = raw(port);
      c.sock.write(encodeFrame(FrameKind.Command, 0, 11, 1, new Uint8Array([99, 1, 2])));
      // 'hello' (slot 866) is group 1's in the map: the node checks the key's slot first.
      c.sock.write(encodeFrame(FrameKind.Command, FrameFlag.Read, 12, 1, encodeCommand({ op: 'put', key: 'hello', value: 'v' })));
      c.sock.write(encodeFrame(FrameKind.Command, 0, 13, 999_999, encodeCommand({ op: 'put', key: 'k', value: 'v' })));
      c.sock.write(encodeFrame(FrameKind.Admin, 0, 14, 1, new Uint8Array([0xc1])));
      c.sock.write(encodeFrame(FrameKind.Ping, 0, 15, 0, new Uint8Array(0)));
      await waitFor(() => c.replies.length >= 5, 10_000, 'five replies');
      const byId = new Map(c.replies.map((r) => [r.requestId, r]));
      // A malformed KV command is proposed as bytes and applied as a deterministic error result.
      const r11 = byId.get(11)!;
      assert.ok(r11.kind === FrameKind.Result || errorCode(r11) === 'BAD_REQUEST', 'malformed command answered');
      assert.equal(errorCode(byId.get(12)!), 'BAD_REQUEST', 'a write sent as a read');
      assert.equal(errorCode(byId.get(13)!), 'NO_GROUP');
      assert.equal(errorCode(byId.get(14)!), 'BAD_REQUEST', 'admin body that is not msgpack');
      assert.equal(byId.get(15)!.kind, FrameKind.Pong);
      assert.equal(await closedWithin(c.closed, 200), false, 'errors in content do not close the connection');
      c.sock.destroy();
    }
    // A client that sends many requests and never reads: the node stops reading it; others go on.
    {
      const c = raw(port);
      c.sock.pause();
      const value = 'x'.repeat(30_000);
      const big = encodeFrame(FrameKind.Command, FrameFlag.Read | FrameFlag.Stale, 0, 1, encodeCommand({ op: 'get', key: 'fat' }));
      await good.put('fat', value);
      for (let i = 0; i < 3000; i++) {
        big.set([i & 0xff, (i >> 8) & 0xff, 0, 0], 8);
        c.sock.write(big);
      }
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(await good.get('before'), '1', 'another client is served while one never reads');
      c.sock.destroy();
    }
    await good.put('after', '2');
    assert.equal(await good.get('after'), '2');
    assert.equal(await cluster.healthy(1), true);
  } finally {
    await good.close().catch(() => undefined);
    await cluster.stop();
  }
});
