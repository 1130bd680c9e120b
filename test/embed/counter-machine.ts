// A user state machine for the embedding tests, loaded by the shard workers by module URL as
// an embedding program's would be: named counters, one set per group. Commands and results
// are JSON text; docs/embedding.md's example is this machine in JavaScript. Not a test file.
//
//   {"op":"add","key":k,"n":n}  → {"ok":true,"value":v}   v: the counter after adding n
//   {"op":"read","key":k}       → {"ok":true,"value":v}   0 for a counter never added to
//   anything else               → {"ok":false,"code":"BAD_COMMAND","message":...}
//
// Queries (reads sent with the Read flag) take `read`, and, for the tests only, `info`: what
// this replica did in this process (not replicated state, so never part of a result of apply).
import type { StateMachine } from 'flotilla';

/** Longest key, in characters. */
export const keyLengthMax = 256;

export type CounterCommand = { op: 'add'; key: string; n: number } | { op: 'read'; key: string } | { op: 'info' };
export type CounterResult =
  | { ok: true; value: number }
  | { ok: true; restored: boolean; applied: number }
  | { ok: false; code: string; message: string };

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });
const SNAPSHOT_VERSION = 1;

export function encodeCounterCommand(cmd: CounterCommand): Uint8Array {
  return enc.encode(JSON.stringify(cmd));
}

export function decodeCounterResult(bytes: Uint8Array): CounterResult {
  return JSON.parse(dec.decode(bytes)) as CounterResult;
}

class CounterMachine implements StateMachine {
  private counters = new Map<string, number>();
  private restored = false;
  private applied = 0;

  apply(command: Uint8Array, _index: number): Uint8Array {
    this.applied++;
    let cmd: Record<string, unknown>;
    try {
      cmd = parseCommand(command);
    } catch (e) {
      return failure('BAD_COMMAND', (e as Error).message);
    }
    if (cmd.op === 'read') return this.read(cmd);
    if (cmd.op !== 'add') return failure('BAD_COMMAND', `unknown op ${JSON.stringify(cmd.op)}`);
    const key = cmd.key;
    const n = cmd.n;
    if (!isKey(key)) return failure('BAD_COMMAND', `key must be a string of 1..${keyLengthMax} characters`);
    if (typeof n !== 'number' || !Number.isSafeInteger(n)) return failure('BAD_COMMAND', 'n must be a safe integer');
    const value = (this.counters.get(key) ?? 0) + n;
    if (!Number.isSafeInteger(value)) return failure('OVERFLOW', `counter ${key} would leave the safe integers`);
    this.counters.set(key, value);
    return result({ ok: true, value });
  }

  query(command: Uint8Array): Uint8Array {
    const cmd = parseCommand(command); // throws: the caller gets BAD_REQUEST
    if (cmd.op === 'info') return result({ ok: true, restored: this.restored, applied: this.applied });
    if (cmd.op !== 'read') throw new Error(`${JSON.stringify(cmd.op)} is not a read; send it without the Read flag`);
    return this.read(cmd);
  }

  snapshot(): Uint8Array {
    // Keys in order, so that equal states have byte-equal images.
    const entries = [...this.counters].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return enc.encode(JSON.stringify({ v: SNAPSHOT_VERSION, counters: entries }));
  }

  restore(image: Uint8Array): void {
    const o = JSON.parse(dec.decode(image)) as { v?: unknown; counters?: unknown };
    if (o.v !== SNAPSHOT_VERSION || !Array.isArray(o.counters)) throw new Error('not a counter snapshot');
    const counters = new Map<string, number>();
    for (const e of o.counters as unknown[]) {
      if (!Array.isArray(e) || !isKey(e[0]) || !Number.isSafeInteger(e[1])) throw new Error('malformed counter in snapshot');
      counters.set(e[0], e[1] as number);
    }
    // Replace the state only once the whole image has been read.
    this.counters = counters;
    this.restored = true;
  }

  private read(cmd: Record<string, unknown>): Uint8Array {
    if (!isKey(cmd.key)) return failure('BAD_COMMAND', `key must be a string of 1..${keyLengthMax} characters`);
    return result({ ok: true, value: this.counters.get(cmd.key) ?? 0 });
  }
}

function parseCommand(bytes: Uint8Array): Record<string, unknown> {
  const v: unknown = JSON.parse(dec.decode(bytes));
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('a command is a JSON object');
  return v as Record<string, unknown>;
}

function isKey(k: unknown): k is string {
  return typeof k === 'string' && k.length > 0 && k.length <= keyLengthMax;
}

function result(r: CounterResult): Uint8Array {
  return enc.encode(JSON.stringify(r));
}

function failure(code: string, message: string): Uint8Array {
  return result({ ok: false, code, message });
}

/** The factory each shard worker calls for every group it hosts. */
export function createStateMachine(_group: number): StateMachine {
  return new CounterMachine();
}
