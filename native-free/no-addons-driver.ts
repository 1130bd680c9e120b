// Run as a child process by no-addons.test.ts, in the environment the test chose: starts a
// Flotilla node in this process (its shard workers are threads of it), sends traffic through
// its TCP and WebSocket listeners, then prints one line `RESULT {json}`: the WebSocket engine,
// the CRC-32 implementation and every native add-on the process loaded. Exits 1 on any failure.
//
// `ws` (the client) is imported only after the node has started, as in a node process where
// only src/transport/ws-listener.ts loads it: that file must switch off `ws`'s add-ons itself.
// checksum.ts is imported only after the add-ons are read, so a CRC-32 add-on in the list was
// loaded by a shard worker, not by this thread.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FlotillaClient } from '../src/client/index.js';
import { encodeCommand } from '../src/kv/kv-command.js';
import { decodeKvResult } from '../src/kv/kv-result.js';
import { loadConfig } from '../src/node/config.js';
import { startNode } from '../src/node/node.js';
import { encodeFrame, FRAME_HEADER_BYTES, FrameFlag, FrameKind, readHeader } from '../src/protocol/client-frame.js';
import { loadedAddons } from './loaded-addons.js';

export interface DriverResult {
  wsEngine: 'uws' | 'ws' | null;
  crc32: 'native' | 'zlib';
  addons: string[];
}

const GROUPS = 4;
const KEYS = 40;
const WS_REPLY_MS_MAX = 10_000;

interface WsLike {
  on(event: 'message', cb: (data: Buffer, isBinary: boolean) => void): void;
  once(event: 'open' | 'error', cb: (arg?: unknown) => void): void;
  send(data: Uint8Array, opts: { binary: boolean }): void;
  close(): void;
}

/** Sends each frame as one binary message, all at once; resolves with the results by request id. */
async function overWebSocket(port: number, frames: Uint8Array[]): Promise<Map<number, unknown>> {
  const { default: WebSocket } = await import('ws');
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false }) as unknown as WsLike;
  const results = new Map<number, unknown>();
  try {
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', (e) => reject(e as Error));
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`WebSocket: ${results.size} of ${frames.length} replies in ${WS_REPLY_MS_MAX} ms`)), WS_REPLY_MS_MAX);
      ws.on('message', (data, isBinary) => {
        const h = readHeader(data, 0);
        if (!isBinary || h.kind !== FrameKind.Result) {
          clearTimeout(timer);
          reject(new Error(`WebSocket: unexpected reply kind 0x${h.kind.toString(16)} to request ${h.requestId}`));
          return;
        }
        results.set(h.requestId, decodeKvResult(data.subarray(FRAME_HEADER_BYTES)));
        if (results.size === frames.length) {
          clearTimeout(timer);
          resolve();
        }
      });
      for (const f of frames) ws.send(f, { binary: true });
    });
  } finally {
    ws.close();
  }
  return results;
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flotilla-no-addons-'));
  // Flags only: the environment may hold FLOTILLA_ variables of the run that started us.
  const config = loadConfig({
    flags: {
      'node-id': '1', 'raft-port': '0', 'client-port': '0', 'admin-port': '0', 'ws-port': '0',
      'data-dir': dir, shards: '2', groups: String(GROUPS), 'tick-ms': '50', 'log-level': 'warn',
    },
  });
  const node = await startNode(config);
  let addons: string[] = [];
  try {
    // TCP, through the client library: it waits for the groups' first leaders.
    const client = await FlotillaClient.connect({ servers: [`127.0.0.1:${node.ports.client}`] });
    try {
      await Promise.all(Array.from({ length: KEYS }, (_, i) => client.put(`k-${i}`, `v-${i}`)));
      for (let i = 0; i < KEYS; i++) {
        const v = await client.get(`k-${i}`);
        if (v !== `v-${i}`) throw new Error(`TCP: k-${i} read ${String(v)}`);
      }
    } finally {
      await client.close();
    }

    // WebSocket: a put, then a linearizable and a stale read, of keys both transports wrote.
    if (node.ports.ws === null) throw new Error('the node serves no WebSocket port');
    const put = await overWebSocket(node.ports.ws, [
      encodeFrame(FrameKind.Command, 0, 1, client.groupOf('ws'), encodeCommand({ op: 'put', key: 'ws', value: 'yes' })),
    ]);
    const reads = await overWebSocket(node.ports.ws, [
      encodeFrame(FrameKind.Command, FrameFlag.Read, 2, client.groupOf('k-1'), encodeCommand({ op: 'get', key: 'k-1' })),
      encodeFrame(FrameKind.Command, FrameFlag.Read | FrameFlag.Stale, 3, client.groupOf('ws'), encodeCommand({ op: 'get', key: 'ws' })),
    ]);
    const got = JSON.stringify([put.get(1), reads.get(2), reads.get(3)]);
    const want = JSON.stringify([{ op: 'put' }, { op: 'get', value: 'v-1' }, { op: 'get', value: 'yes' }]);
    if (got !== want) throw new Error(`WebSocket: answered ${got}, expected ${want}`);
    // Read while the shard workers still run, though an add-on stays loaded once loaded.
    addons = loadedAddons();
  } finally {
    await node.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const { crc32Implementation } = await import('../src/storage/checksum.js');
  const result: DriverResult = { wsEngine: node.wsEngine, crc32: crc32Implementation, addons };
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

main().then(() => process.exit(0), (err: unknown) => {
  process.stderr.write(`no-addons driver: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
