// The KV command layout of kv-state-machine.ts, encoded for the client's hot path: each single
// command is sized exactly up front and written into one buffer, where the shared encoder grows
// a buffer and copies it out. Batches (and anything unusual) go to the shared encoder. A test
// holds the two byte-for-byte equal.
import { KvError, encodeCommand, keyBytesMax, valueBytesMax, type KvCommand } from '../kv/kv-state-machine.js';

const TAG_PUT = 1;
const TAG_GET = 2;
const TAG_DELETE = 3;
const TAG_CAS = 4;

/** Encodes a KV command; throws KvError (TOO_LARGE, BAD_COMMAND) like encodeCommand. */
export function encodeKvCommand(cmd: KvCommand): Uint8Array {
  switch (cmd.op) {
    case 'put': {
      const k = keyBytes(cmd.key);
      const v = valueBytes(cmd.value);
      const buf = Buffer.allocUnsafe(7 + k + v);
      buf[0] = TAG_PUT;
      buf.writeUInt16BE(k, 1);
      buf.write(cmd.key, 3, k, 'utf8');
      buf.writeUInt32BE(v, 3 + k);
      buf.write(cmd.value, 7 + k, v, 'utf8');
      return buf;
    }
    case 'get':
    case 'delete': {
      const k = keyBytes(cmd.key);
      const buf = Buffer.allocUnsafe(3 + k);
      buf[0] = cmd.op === 'get' ? TAG_GET : TAG_DELETE;
      buf.writeUInt16BE(k, 1);
      buf.write(cmd.key, 3, k, 'utf8');
      return buf;
    }
    case 'cas': {
      const k = keyBytes(cmd.key);
      const e = cmd.expect === null ? -1 : valueBytes(cmd.expect);
      const v = valueBytes(cmd.value);
      const buf = Buffer.allocUnsafe(1 + 2 + k + 1 + (e < 0 ? 0 : 4 + e) + 4 + v);
      buf[0] = TAG_CAS;
      buf.writeUInt16BE(k, 1);
      let at = 3 + buf.write(cmd.key, 3, k, 'utf8');
      if (e < 0) {
        buf[at++] = 0;
      } else {
        buf[at++] = 1;
        buf.writeUInt32BE(e, at);
        at += 4 + buf.write(cmd.expect!, at + 4, e, 'utf8');
      }
      buf.writeUInt32BE(v, at);
      buf.write(cmd.value, at + 4, v, 'utf8');
      return buf;
    }
    default:
      return encodeCommand(cmd);
  }
}

function keyBytes(key: string): number {
  if (typeof key !== 'string') throw new KvError('BAD_COMMAND', 'a key is a string');
  const n = Buffer.byteLength(key, 'utf8');
  if (n > keyBytesMax) throw new KvError('TOO_LARGE', `key of ${n} bytes exceeds ${keyBytesMax}`);
  return n;
}

function valueBytes(value: string): number {
  if (typeof value !== 'string') throw new KvError('BAD_COMMAND', 'a value is a string');
  const n = Buffer.byteLength(value, 'utf8');
  if (n > valueBytesMax) throw new KvError('TOO_LARGE', `value of ${n} bytes exceeds ${valueBytesMax}`);
  return n;
}
