// The built-in key-value service: the KV state machine (kv-state-machine.ts) behind the
// StateMachine interface a shard drives. Commands arrive in the binary layout of
// kv-state-machine.ts; results leave as msgpack KvResult maps (docs/protocol.md), which any
// msgpack library can read, so clients in other languages need no custom result decoder.
import { pack, unpack } from 'msgpackr';
import type { StateMachine } from '../shard/state-machine.js';
import {
  KvError,
  KvStateMachine,
  decodeCommand,
  type KvCommand,
  type KvResult,
  type KvSingleResult,
} from './kv-state-machine.js';

/** Thrown by `query` for a command that is not a read, with the protocol's code. */
export class KvRequestError extends Error {
  readonly code = 'BAD_REQUEST';
}

/** Thrown by `decodeKvResult` for bytes that are not a KvResult. */
export class KvResultError extends Error {
  readonly code = 'BAD_RESULT';
}

// Results that carry no data are the same bytes every time; packing them once saves the
// encoder on the most common write. Each caller gets its own copy, so nobody can change
// what every later put returns.
// (Plain Uint8Arrays: Buffer's slice() is a view, Uint8Array's a copy.)
const PUT_RESULT = Uint8Array.from(pack({ op: 'put' } satisfies KvResult));
const NOOP_RESULT = Uint8Array.from(pack({ op: 'noop' } satisfies KvResult));

class KvService implements StateMachine {
  private kv = new KvStateMachine();

  constructor(readonly group: number) {}

  apply(command: Uint8Array, _index: number): Uint8Array {
    let result: KvResult;
    try {
      result = this.kv.apply(command);
    } catch (e) {
      // KvStateMachine.apply turns bad input into results; what is left is the runtime giving
      // out (a Map at its size limit). Every replica in the same state fails the same way, so
      // answering with an error result keeps replicas alike and alive.
      const message = e instanceof Error ? e.message : String(e);
      result = { op: 'error', code: 'BAD_COMMAND', message: `command failed: ${message}` };
    }
    if (result.op === 'put') return PUT_RESULT.slice();
    if (result.op === 'noop') return NOOP_RESULT.slice();
    return pack(result) as Uint8Array;
  }

  query(command: Uint8Array): Uint8Array {
    let cmd: KvCommand;
    try {
      cmd = decodeCommand(command);
    } catch (e) {
      if (e instanceof KvError) throw new KvRequestError(`not a KV command: ${e.message}`);
      throw e;
    }
    if (cmd.op === 'get') return pack({ op: 'get', value: this.kv.get(cmd.key) } satisfies KvResult) as Uint8Array;
    if (cmd.op === 'batch') {
      const results: KvSingleResult[] = [];
      for (const op of cmd.ops) {
        if (op.op !== 'get') throw new KvRequestError(`a read batch may hold only gets, not ${op.op}`);
        results.push({ op: 'get', value: this.kv.get(op.key) });
      }
      return pack({ op: 'batch', ok: true, results } satisfies KvResult) as Uint8Array;
    }
    throw new KvRequestError(`${cmd.op} is not a read; send it without the Read flag`);
  }

  snapshot(): Uint8Array {
    return this.kv.serialize();
  }

  restore(image: Uint8Array): void {
    // Replace the state only once the whole image has been read: a bad image leaves it as it was.
    this.kv = KvStateMachine.restore(image);
  }
}

/** The state machine of one KV group. */
export function createKvStateMachine(group: number): StateMachine {
  return new KvService(group);
}

const SINGLE_OPS = new Set(['put', 'get', 'delete', 'cas']);

/** Reads a Result body of the KV service; throws KvResultError when it is not a KvResult. */
export function decodeKvResult(bytes: Uint8Array): KvResult {
  let v: unknown;
  try {
    v = unpack(bytes);
  } catch (e) {
    throw new KvResultError(`result is not msgpack: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!isRecord(v)) throw new KvResultError('result is not a map');
  switch (v.op) {
    case 'batch': {
      if (typeof v.ok !== 'boolean' || !Array.isArray(v.results)) throw new KvResultError('malformed batch result');
      for (const r of v.results) checkSingle(r);
      return v as KvResult;
    }
    case 'noop':
      return { op: 'noop' };
    case 'error':
      if (typeof v.code !== 'string' || typeof v.message !== 'string') throw new KvResultError('malformed error result');
      return v as KvResult;
    default:
      checkSingle(v);
      return v as KvResult;
  }
}

function checkSingle(v: unknown): void {
  if (!isRecord(v) || typeof v.op !== 'string' || !SINGLE_OPS.has(v.op)) {
    throw new KvResultError(`unknown result op ${isRecord(v) ? String(v.op) : typeof v}`);
  }
  const ok =
    v.op === 'put' ||
    (v.op === 'get' && isNullableString(v.value)) ||
    (v.op === 'delete' && typeof v.existed === 'boolean') ||
    (v.op === 'cas' && typeof v.ok === 'boolean' && isNullableString(v.value));
  if (!ok) throw new KvResultError(`malformed ${v.op} result`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function isNullableString(v: unknown): boolean {
  return v === null || typeof v === 'string';
}
