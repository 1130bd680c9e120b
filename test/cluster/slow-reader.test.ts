// A client that pipelines many gets of a large value and never reads (issue 12, item 5), against
// a real node process: the node stops reading that connection once about
// inflightBytesPerConnMax of answers are under way, so its RSS stays near its baseline plus the
// budget (before: inflightPerConnMax answers of 250 KB, about 1 GB), the connection is paused
// rather than dropped, and another client's puts and gets keep being answered promptly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { unpack } from 'msgpackr';
import { encodeFrame, FRAME_HEADER_BYTES, FrameFlag, FrameKind, readHeader } from '../../src/protocol/client-frame.js';
import { encodeCommand } from '../../src/kv/kv-command.js';
import { initialGroupOf as groupOfKey } from '../cluster-map/initial-group.js';
import { startCluster } from './cluster-harness.js';

const MiB = 1024 * 1024;
const GROUPS = 4;
const BUDGET_BYTES = 32 * MiB;
const VALUE_BYTES = 250 * 1024;
const GETS = 20_000;
/** How long the slow reader is watched. */
const WATCH_MS = 8000;
/** Beyond baseline + budget: the shard's ring and outbox, garbage not yet collected, allocator slack. */
const RSS_SLACK_BYTES = 64 * MiB;
const LATENCY_MS_MAX = 1000;

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(m !== null, 'VmRSS in /proc/PID/status');
  return Number(m[1]) * 1024;
}

/** A raw connection that answers one request at a time (the well-behaved second client). */
class Caller {
  private buf: Buffer = Buffer.alloc(0);
  private readonly waiting = new Map<number, (r: { kind: number; body: Buffer }) => void>();
  private seq = 0;
  readonly closed: Promise<void>;

  constructor(readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
      while (this.buf.length >= FRAME_HEADER_BYTES) {
        const h = readHeader(this.buf, 0);
        if (this.buf.length < h.frameBytes) break;
        const body = Buffer.from(this.buf.subarray(FRAME_HEADER_BYTES, h.frameBytes));
        this.buf = this.buf.subarray(h.frameBytes);
        const w = this.waiting.get(h.requestId);
        this.waiting.delete(h.requestId);
        w?.({ kind: h.kind, body });
      }
    });
    sock.on('error', () => undefined);
    this.closed = new Promise((r) => sock.on('close', () => r()));
  }

  call(key: string, cmd: Parameters<typeof encodeCommand>[0], read: boolean): Promise<{ kind: number; body: Buffer }> {
    const id = ++this.seq;
    const frame = encodeFrame(FrameKind.Command, read ? FrameFlag.Read : 0, id, groupOfKey(key, GROUPS), encodeCommand(cmd));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`request ${id} unanswered in 10 s`)), 10_000);
      this.waiting.set(id, (r) => {
        clearTimeout(timer);
        resolve(r);
      });
      this.sock.write(frame);
    });
  }
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

test('a client that pipelines gets of a 250 KB value and never reads: RSS stays bounded, it is paused not dropped, others are served', { timeout: 120_000 }, async (t) => {
  const cluster = await startCluster({ nodes: 1, groups: GROUPS, extra: { inflightBytesPerConnMax: BUDGET_BYTES } });
  const node = cluster.node(1);
  let slow: net.Socket | null = null;
  let good: Caller | null = null;
  try {
    good = new Caller(await connect(node.clientPort));
    const value = 'v'.repeat(VALUE_BYTES);
    // Until the group has elected its leader, a put may be refused (NOT_LEADER): retry a while.
    let put = await good.call('big', { op: 'put', key: 'big', value }, false);
    for (let i = 0; i < 100 && put.kind !== FrameKind.Result; i++) {
      await new Promise((res) => setTimeout(res, 100));
      put = await good.call('big', { op: 'put', key: 'big', value }, false);
    }
    assert.equal(put.kind, FrameKind.Result, `the large value is stored: ${put.kind === FrameKind.Error ? JSON.stringify(unpack(put.body)) : ''}`);
    // Warm up the read path with a few gets of it, so the baseline includes what serving costs.
    for (let i = 0; i < 20; i++) assert.equal((await good.call('big', { op: 'get', key: 'big' }, true)).kind, FrameKind.Result);
    const baseline = rssBytes(node.pid);

    // The slow reader: every get at once, then never a read.
    slow = await connect(node.clientPort);
    slow.pause();
    let slowClosed = false;
    slow.on('close', () => { slowClosed = true; });
    slow.on('error', () => undefined);
    const group = groupOfKey('big', GROUPS);
    const getBody = encodeCommand({ op: 'get', key: 'big' });
    const frameBytes = FRAME_HEADER_BYTES + getBody.length;
    const all = Buffer.alloc(GETS * frameBytes);
    for (let i = 0; i < GETS; i++) all.set(encodeFrame(FrameKind.Command, FrameFlag.Read, i + 1, group, getBody), i * frameBytes);
    slow.write(all);

    // Meanwhile: the node's RSS, and the latency of another client's puts and gets.
    let rssMax = baseline;
    let latencyMax = 0;
    let calls = 0;
    const deadline = Date.now() + WATCH_MS;
    while (Date.now() < deadline) {
      rssMax = Math.max(rssMax, rssBytes(node.pid));
      const t0 = performance.now();
      const key = `k${calls % 50}`;
      const w: { kind: number; body: Buffer } = await good.call(key, { op: 'put', key, value: String(calls) }, false);
      const r: { kind: number; body: Buffer } = await good.call(key, { op: 'get', key }, true);
      latencyMax = Math.max(latencyMax, performance.now() - t0);
      assert.equal(w.kind, FrameKind.Result, `put answered: ${w.kind === FrameKind.Error ? JSON.stringify(unpack(w.body)) : ''}`);
      assert.equal(r.kind, FrameKind.Result);
      calls++;
      rssMax = Math.max(rssMax, rssBytes(node.pid));
      await new Promise((res) => setTimeout(res, 20));
    }
    const grown = rssMax - baseline;
    t.diagnostic(`baseline ${(baseline / MiB).toFixed(0)} MiB, grown ${(grown / MiB).toFixed(0)} MiB, ${calls} put+get pairs, slowest ${latencyMax.toFixed(0)} ms`);
    assert.ok(grown <= BUDGET_BYTES + RSS_SLACK_BYTES,
      `node RSS grew by ${(grown / MiB).toFixed(0)} MiB (baseline ${(baseline / MiB).toFixed(0)} MiB), bound ${((BUDGET_BYTES + RSS_SLACK_BYTES) / MiB).toFixed(0)} MiB`);
    assert.ok(calls >= 20, `the other client was served (${calls} put+get pairs)`);
    assert.ok(latencyMax < LATENCY_MS_MAX, `the other client's slowest put+get took ${latencyMax.toFixed(0)} ms`);
    assert.equal(slowClosed, false, 'the slow reader is paused, not dropped');
  } finally {
    slow?.destroy();
    good?.sock.destroy();
    await cluster.stop();
  }
});
