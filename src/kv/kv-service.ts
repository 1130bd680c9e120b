// The built-in key-value service: the KV state machine (kv-state-machine.ts) behind the
// StateMachine interface a shard drives. Commands arrive in the binary layout of kv-command.ts;
// results leave as the msgpack KvResult maps of kv-result.ts (docs/protocol.md).
import type { ImageSteps, StateMachine } from '../shard/state-machine.js';
import { commandSizeProblem, decodeCommand } from './kv-command.js';
import { encodeKvResult } from './kv-result.js';
import { KvError, type KvCommand, type KvSingleResult } from './kv-types.js';
import { KvStateMachine } from './kv-state-machine.js';
import { INTERNAL_TAG_MIN } from './kv-migration-command.js';

// Older callers import the result decoder from here; it lives in kv-result.ts with the encoder.
export { decodeKvResult } from './kv-result.js';
export { KvResultError } from './kv-types.js';

/** Thrown by `query` for a command that is not a read, with the protocol's code. */
export class KvRequestError extends Error {
  readonly code = 'BAD_REQUEST';
}

class KvService implements StateMachine {
  private kv = new KvStateMachine();

  constructor(readonly group: number) {}

  apply(command: Uint8Array, _index: number): Uint8Array {
    try {
      return this.kv.applyEncoded(command);
    } catch (e) {
      // applyEncoded turns bad input into results; what is left is the runtime giving out (a
      // Map at its size limit). Every replica in the same state fails the same way, so
      // answering with an error result keeps replicas alike and alive.
      const message = e instanceof Error ? e.message : String(e);
      return encodeKvResult({ op: 'error', code: 'BAD_COMMAND', message: `command failed: ${message}` });
    }
  }

  admit(command: Uint8Array): string | null {
    return commandSizeProblem(command);
  }

  query(command: Uint8Array): Uint8Array {
    // Slots a migration froze or moved away are refused for reads too (kv-migration.ts).
    const refused = this.kv.refusal(command);
    if (refused !== null) return refused;
    let cmd: KvCommand;
    try {
      // The common read, a single get, straight from its bytes.
      const got = this.kv.queryGetEncoded(command);
      if (got !== null) return got;
      if (command.length > 0 && command[0]! >= INTERNAL_TAG_MIN) return this.internalQuery(command);
      cmd = decodeCommand(command);
    } catch (e) {
      if (e instanceof KvError) throw new KvRequestError(`not a KV command: ${e.message}`);
      throw e;
    }
    if (cmd.op === 'get') return this.kv.getResult(cmd.key);
    if (cmd.op === 'batch') {
      const results: KvSingleResult[] = [];
      for (const op of cmd.ops) {
        if (op.op !== 'get') throw new KvRequestError(`a read batch may hold only gets, not ${op.op}`);
        results.push({ op: 'get', value: this.kv.get(op.key) });
      }
      return encodeKvResult({ op: 'batch', ok: true, results });
    }
    throw new KvRequestError(`${cmd.op} is not a read; send it without the Read flag`);
  }

  /** A migration's export or marks query (only the node sends them: client-requests.ts). */
  private internalQuery(command: Uint8Array): Uint8Array {
    try {
      return this.kv.queryInternal(command);
    } catch (e) {
      throw new KvRequestError(`not an internal query: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  snapshot(): Uint8Array {
    return this.kv.serialize();
  }

  snapshotInSteps(): ImageSteps {
    return this.kv.serializeInSteps();
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
