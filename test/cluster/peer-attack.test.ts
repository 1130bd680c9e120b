// A process that speaks the replication protocol as a configured member (issue 12, item 2),
// against real node processes: node 1 of three is SIGKILLed, and a raw socket says hello to
// node 2 as node 1, then sends an append whose entry index skips ahead with a commit beyond it,
// and a second hello for the same node while the first is live. Node 2 drops and counts the
// append, refuses the second hello with LINK_IN_USE, and keeps serving; a hello with another
// cluster's id is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { FlotillaClient } from '../../src/client/index.js';
import { clusterIdOf, loadConfig } from '../../src/node/config.js';
import { encodeHello, HELLO_BYTES, PayloadBuilder } from '../../src/protocol/peer-wire.js';
import { EntryType, MessageType, message } from '../../src/raft/types.js';
import { startCluster, waitFor } from './cluster-harness.js';

interface Raw { sock: net.Socket; read: () => Buffer; closed: () => boolean }

function dial(port: number): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let closed = false;
    sock.on('data', (d: Buffer) => chunks.push(d));
    sock.on('close', () => void (closed = true));
    sock.once('error', reject);
    sock.once('connect', () => {
      sock.on('error', () => undefined);
      resolve({ sock, read: () => Buffer.concat(chunks), closed: () => closed });
    });
  });
}

async function metric(port: number, re: RegExp): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  const m = re.exec(text);
  return m === null ? 0 : Number(m[1]);
}

test('a raw peer speaking as a member cannot stop a node with a bad append, nor take over a live link', { timeout: 120_000 }, async () => {
  const cluster = await startCluster({ nodes: 3, groups: 4 });
  const sockets: net.Socket[] = [];
  try {
    const n2 = cluster.node(2);
    const clusterId = clusterIdOf(loadConfig({ file: n2.configFile }));
    cluster.kill(1);
    await waitFor(async () => (await metric(n2.adminPort, /^flotilla_link_up\{peer="1"\} (\d+)/m)) === 0, 20_000, 'node 2 to see node 1 gone');

    // Another cluster's node: refused.
    const stranger = await dial(n2.raftPort);
    sockets.push(stranger.sock);
    stranger.sock.write(encodeHello((clusterId ^ 1) >>> 0, 1, 2));
    await waitFor(() => stranger.closed(), 10_000, 'the other cluster refused');

    const fake = await dial(n2.raftPort);
    sockets.push(fake.sock);
    fake.sock.write(encodeHello(clusterId, 1, 2));
    await waitFor(() => fake.read().length >= HELLO_BYTES, 10_000, 'node 2 to answer the hello');
    const bad = message(MessageType.App, 1, 2, 1_000);
    bad.index = 1;
    bad.logTerm = 1;
    bad.commit = 5_000;
    bad.entries = [
      { term: 1_000, index: 100, type: EntryType.Normal, data: new Uint8Array([1]) },
      { term: 1_000, index: 101, type: EntryType.Normal, data: new Uint8Array([2]) },
    ];
    const pb = new PayloadBuilder();
    for (const g of [1, 2, 3, 4]) pb.appendRaft(g, { ...bad });
    const payload = pb.finish()!;
    const frame = Buffer.alloc(4 + payload.length);
    frame.writeUInt32LE(payload.length, 0);
    frame.set(payload, 4);
    fake.sock.write(frame);
    await waitFor(async () => (await metric(n2.adminPort, /^flotilla_peer_dropped_total\{shard="0",reason="badEntries"\} (\d+)/m)) >= 4, 20_000,
      'the bad appends counted');

    // A second hello as node 1 while the fake link is live: refused, the live one kept.
    const second = await dial(n2.raftPort);
    sockets.push(second.sock);
    second.sock.write(encodeHello(clusterId, 1, 2));
    await waitFor(() => second.closed(), 10_000, 'the second hello refused');
    assert.equal(fake.closed(), false);

    // Node 2 keeps serving: healthy, and the group takes writes through nodes 2 and 3.
    assert.equal(await cluster.healthy(2), true);
    const client = await FlotillaClient.connect({ servers: [`127.0.0.1:${n2.clientPort}`, `127.0.0.1:${cluster.node(3).clientPort}`] });
    try {
      for (let i = 0; i < 8; i++) await client.put(`after-${i}`, String(i));
      assert.equal(await client.get('after-3'), '3');
    } finally {
      await client.close();
    }
    assert.ok(!/ASSERTION|commit \d+ beyond/.test(cluster.output), 'no assertion in the nodes\' output');
  } finally {
    for (const s of sockets) s.destroy();
    await cluster.stop();
  }
});
