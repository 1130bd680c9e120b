// The KV service's vocabulary, shared by the client, the state machine and the benchmark
// driver: the commands and results as values, their bounds, the tag byte of each command, the
// errors, and the byte strings values are kept in. Kept apart from the encodings
// (kv-command.ts, kv-result.ts) so that a reader of the types sees no layout code; like them it
// imports nothing of the server: loading the client must not load the engine.
/** Longest key, in UTF-8 bytes. */
export const keyBytesMax = 1024;
/** Longest value, in UTF-8 bytes. */
export const valueBytesMax = 256 * 1024;
/** Most operations in one batch. */
export const batchOpsMax = 1024;

/**
 * Bytes held in a string, one character per byte (code points 0–255): how the state machine
 * keeps values' UTF-8 bytes. `Buffer.from(s, 'latin1')` gives the bytes back; it is not text.
 */
export type ByteString = string;

/** A byte string's bytes as UTF-8 text. */
export function byteStringText(b: ByteString): string {
  return Buffer.from(b, 'latin1').toString('utf8');
}

/** Text as a byte string of its UTF-8 bytes. */
export function textByteString(text: string): ByteString {
  return Buffer.from(text, 'utf8').toString('latin1');
}

/** The first byte of a command. */
export const KvTag = Object.freeze({ Put: 1, Get: 2, Delete: 3, Cas: 4, Batch: 5 } as const);

export type KvSingleCommand =
  | { op: 'put'; key: string; value: string }
  | { op: 'get'; key: string }
  | { op: 'delete'; key: string }
  /** Writes `value` iff the key's current value equals `expect` (null = the key is absent). */
  | { op: 'cas'; key: string; expect: string | null; value: string };

/**
 * A batch is applied atomically: either all of its writes take effect or none do. It fails
 * (and writes nothing) when one of its compare-and-sets does not match; reads and
 * compare-and-sets inside it see the batch's own earlier writes.
 */
export type KvCommand = KvSingleCommand | { op: 'batch'; ops: KvSingleCommand[] };

export type KvSingleResult =
  | { op: 'put' }
  | { op: 'get'; value: string | null }
  | { op: 'delete'; existed: boolean }
  /** `value` is the value the key held when the command ran (what a failed cas can retry with). */
  | { op: 'cas'; ok: boolean; value: string | null };

export type KvResult =
  | KvSingleResult
  | { op: 'batch'; ok: boolean; results: KvSingleResult[] }
  | { op: 'noop' }
  | { op: 'error'; code: KvErrorCode; message: string };

/**
 * MIGRATING and WRONG_GROUP come only in results, from a group whose slot a migration froze or
 * moved away (docs/protocol.md): retry after a short backoff, refreshing the key map.
 */
export type KvErrorCode = 'BAD_COMMAND' | 'TOO_LARGE' | 'BAD_SNAPSHOT' | 'MIGRATING' | 'WRONG_GROUP' | 'COPY_INCOMPLETE';

/** Bad command (or snapshot) bytes, or a command too large to encode; `code` says which. */
export class KvError extends Error {
  constructor(readonly code: KvErrorCode, message: string) {
    super(message);
  }
}

/** Thrown by `decodeKvResult` for bytes that are not a KvResult. */
export class KvResultError extends Error {
  readonly code = 'BAD_RESULT';
}
