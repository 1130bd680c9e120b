// The TCP client listener closes a connection whose frame stays incomplete past
// frameReadTimeoutMs (issue 12, item 8: 1,000 half-sent headers used to stay open forever),
// with BAD_FRAME; an idle connection with nothing half sent, and a frame that arrives slowly but
// in time, are left alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { listenTcp } from '../../src/transport/tcp-listener.js';
import type { ClientHandler } from '../../src/transport/client-listener.js';
import { encodeFrame, FrameKind } from '../../src/protocol/client-frame.js';

let idSeq = 0;

async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function dial(port: number): Promise<{ socket: net.Socket; data: () => Buffer; closed: () => boolean; closedAt: () => number }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let closed = false;
    let closedAt = 0;
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('close', () => {
      closed = true;
      closedAt = Date.now();
    });
    socket.once('error', reject);
    socket.once('connect', () => resolve({ socket, data: () => Buffer.concat(chunks), closed: () => closed, closedAt: () => closedAt }));
  });
}

test('tcp: a frame left half sent closes its connection with BAD_FRAME after frameReadTimeoutMs; idle and slow-but-complete ones stay', { timeout: 20_000 }, async () => {
  let frames = 0;
  const handler: ClientHandler = {
    onOpen: () => undefined, onClose: () => undefined, onDrain: () => undefined,
    onFrame: () => void frames++,
  };
  const listener = await listenTcp({
    host: '127.0.0.1', port: 0, frameBytesMax: 64 * 1024, connectionsMax: 2000,
    pendingBytesHigh: 256 * 1024, pendingBytesLow: 64 * 1024, pendingBytesMax: 4 * 1024 * 1024,
    nextId: () => ++idSeq, frameReadTimeoutMs: 400,
  }, handler);
  try {
    const frame = Buffer.from(encodeFrame(FrameKind.Command, 0, 9, 1, new Uint8Array(100)));
    const idle = await dial(listener.port);
    const slow = await dial(listener.port);
    const halves = await Promise.all(Array.from({ length: 50 }, () => dial(listener.port)));
    const t0 = Date.now();
    for (const h of halves) h.socket.write(frame.subarray(0, 10)); // half a header
    // The slow one completes its frame in two parts 200 ms apart, then a second one at once.
    slow.socket.write(frame.subarray(0, 60));
    await new Promise((r) => setTimeout(r, 200));
    slow.socket.write(Buffer.concat([frame.subarray(60), frame]));
    await waitFor('every half-sent connection closed', () => halves.every((h) => h.closed()), 4000);
    for (const h of halves) {
      const ms = h.closedAt() - t0;
      assert.ok(ms >= 380 && ms < 1500, `closed after ${ms} ms`);
      assert.ok(h.data().includes('BAD_FRAME'), 'a BAD_FRAME error frame before the close');
    }
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(idle.closed(), false);
    assert.equal(slow.closed(), false);
    assert.equal(frames, 2);
    idle.socket.destroy();
    slow.socket.destroy();
  } finally {
    await listener.close();
  }
});
