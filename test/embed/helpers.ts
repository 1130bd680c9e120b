// Helpers of the embedding tests: temp directories, free ports, bounded waits, and a command
// that follows NOT_LEADER between nodes of one process. Not a test file.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { NodeError, type FlotillaNode } from 'flotilla';

/** The counter state machine's module, as the shard workers import it. */
export const COUNTER_MODULE = new URL('./counter-machine.js', import.meta.url).href;

export function tmpDir(prefix: string, dirs: string[]): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

/** `n` distinct ports free now: all are held at once while the system picks them. */
export async function freePorts(n: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = net.createServer();
      servers.push(s);
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => resolve());
      });
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `cond` until it holds; `what` (or what it returns, at the timeout) names it in the error. */
export async function waitFor(cond: () => boolean | Promise<boolean>, ms: number, what: string | (() => Promise<string>)): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${typeof what === 'string' ? what : await what()}`);
    await sleep(25);
  }
}

/**
 * Sends a command through `nodes` (by node id), starting at `first`, and follows NOT_LEADER to
 * the leader it names; while no leader is known it waits and tries the next node. Only errors
 * that say the command was not applied are retried, so a write is applied at most once.
 */
export async function commandFollowing(
  nodes: ReadonlyMap<number, FlotillaNode>,
  first: number,
  group: number,
  body: Uint8Array,
  opts: { read?: boolean; stale?: boolean } = {},
  deadlineMs = 15_000,
): Promise<{ result: Uint8Array; by: number }> {
  const ids = [...nodes.keys()];
  const deadline = Date.now() + deadlineMs;
  let at = first;
  for (;;) {
    try {
      return { result: await nodes.get(at)!.command(group, body, opts), by: at };
    } catch (e) {
      if (!(e instanceof NodeError) || (e.code !== 'NOT_LEADER' && e.code !== 'LEADER_TRANSFERRING')) throw e;
      if (Date.now() > deadline) throw new Error(`group ${group}: no leader within ${deadlineMs} ms (last: ${e.code} ${e.message})`);
      const hint = e.leader?.id;
      if (hint !== undefined && hint !== at && nodes.has(hint)) {
        at = hint;
      } else {
        at = ids[(ids.indexOf(at) + 1) % ids.length]!;
        await sleep(25);
      }
    }
  }
}
