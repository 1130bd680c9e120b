// Which shard hosts a group, and what a data directory remembers about the node that owns it.
//
// The rule is `group % shards`: stable across restarts as long as `shards` is unchanged, which
// the data directory enforces (node.json below), since a group's log lives under its shard.
import * as fs from 'node:fs';
import * as path from 'node:path';

export function shardOf(group: number, shards: number): number {
  return group % shards;
}

export class DataDirError extends Error {
  readonly code = 'CONFIG_MISMATCH';
}

interface NodeFile {
  version: 1;
  nodeId: number;
  shards: number;
}

/**
 * Reads `<dataDir>/node.json`. Returns null for a fresh directory; throws DataDirError when the
 * directory belongs to another node id or was made with another shard count.
 */
export function readNodeFile(dataDir: string, nodeId: number, shards: number): NodeFile | null {
  const file = path.join(dataDir, 'node.json');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  let f: NodeFile;
  try {
    f = JSON.parse(text) as NodeFile;
  } catch {
    throw new DataDirError(`${file} is not valid JSON`);
  }
  if (f.nodeId !== nodeId) {
    throw new DataDirError(`${dataDir} belongs to node ${f.nodeId}, not node ${nodeId}`);
  }
  if (f.shards !== shards) {
    throw new DataDirError(`${dataDir} was created with shards=${f.shards}; groups are placed by group % shards, so it must stay ${f.shards} (asked: ${shards})`);
  }
  return f;
}

/** Writes node.json durably (temp file, fsync, rename, fsync of the directory). */
export function writeNodeFile(dataDir: string, nodeId: number, shards: number): void {
  fs.mkdirSync(dataDir, { recursive: true });
  const file = path.join(dataDir, 'node.json');
  const tmp = `${file}.tmp`;
  const body: NodeFile = { version: 1, nodeId, shards };
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, JSON.stringify(body) + '\n');
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  const dfd = fs.openSync(dataDir, 'r');
  try {
    fs.fsyncSync(dfd);
  } finally {
    fs.closeSync(dfd);
  }
}
