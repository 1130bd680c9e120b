// The KV service's results, written once: the state machine encodes them (from values held as
// byte strings, without decoding them), the client and the benchmark driver decode them. It
// imports nothing of the server: loading the client must not load the engine.
import { pack, unpack } from 'msgpackr';
import { KvResultError, type ByteString, type KvResult } from './kv-types.js';

// ---------------------------------------------------------------------------------------------
// Results: msgpack maps, which any msgpack library can read, so clients in other languages
// need no custom result decoder.

// Results that carry no data are the same bytes every time; packing them once saves the
// encoder on the most common write, and handing out the same bytes saves a copy a put: the
// shard copies a result into its out ring as it gets it (StateMachine.apply), and nothing
// may write into a result. (Plain Uint8Arrays: Buffer's slice() is a view, Uint8Array's a copy.)
const PUT_RESULT = Uint8Array.from(pack({ op: 'put' } satisfies KvResult));
const NOOP_RESULT = Uint8Array.from(pack({ op: 'noop' } satisfies KvResult));

const DELETE_RESULTS = [false, true].map((existed) => Uint8Array.from(pack({ op: 'delete', existed } satisfies KvResult)));

/** The Result body of a put: the same bytes every time, as encodeKvResult gives; read-only. */
export function putResult(): Uint8Array {
  return PUT_RESULT;
}

/** The Result body of a no-op: the same bytes every time; read-only. */
export function noopResult(): Uint8Array {
  return NOOP_RESULT;
}

/** The Result body of a delete: shared bytes, read-only. */
export function deleteResult(existed: boolean): Uint8Array {
  return DELETE_RESULTS[existed ? 1 : 0]!;
}

// The msgpack maps {op: 'get', value} and {op: 'cas', ok, value} written from a value's UTF-8
// bytes, without decoding them into a string for msgpackr to encode again.
// The map headers are map16, as msgpackr writes them, so the bytes are the ones it would write.
const GET_HEAD = Uint8Array.of(0xde, 0x00, 0x02, 0xa2, 0x6f, 0x70, 0xa3, 0x67, 0x65, 0x74, 0xa5, 0x76, 0x61, 0x6c, 0x75, 0x65); // {op:"get", value:
const CAS_HEAD = Uint8Array.of(0xde, 0x00, 0x03, 0xa2, 0x6f, 0x70, 0xa3, 0x63, 0x61, 0x73, 0xa2, 0x6f, 0x6b); // {op:"cas", ok:
const VALUE_KEY = Uint8Array.of(0xa5, 0x76, 0x61, 0x6c, 0x75, 0x65); // "value"

function strHeaderBytes(n: number): number {
  return n < 32 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
}

/** Writes the header of a msgpack str of n bytes at `at`; returns where its bytes go. */
function writeStrHeader(out: Buffer, at: number, n: number): number {
  if (n < 32) out[at++] = 0xa0 | n;
  else if (n < 0x100) {
    out[at++] = 0xd9;
    out[at++] = n;
  } else if (n < 0x10000) {
    out[at++] = 0xda;
    out[at++] = n >>> 8;
    out[at++] = n & 0xff;
  } else {
    out[at++] = 0xdb;
    out[at++] = n >>> 24;
    out[at++] = (n >>> 16) & 0xff;
    out[at++] = (n >>> 8) & 0xff;
    out[at++] = n & 0xff;
  }
  return at;
}

/** Writes a msgpack str of `value`'s bytes (or nil) at `at`; returns the end. */
function writeStr(out: Buffer, at: number, value: ByteString | null): number {
  if (value === null) {
    out[at] = 0xc0;
    return at + 1;
  }
  const n = value.length;
  at = writeStrHeader(out, at, n);
  out.write(value, at, n, 'latin1');
  return at + n;
}

/** Writes a msgpack str of src[from, from + n) (or nil when src is null) at `at`; returns the end. */
function writeStrBytes(out: Buffer, at: number, src: Uint8Array | null, from: number, n: number): number {
  if (src === null) {
    out[at] = 0xc0;
    return at + 1;
  }
  at = writeStrHeader(out, at, n);
  out.set(src.subarray(from, from + n), at);
  return at + n;
}

/** The Result body of a get, from the value's UTF-8 bytes as a byte string (null: absent). */
export function encodeGetResult(value: ByteString | null): Uint8Array {
  const n = value === null ? 1 : strHeaderBytes(value.length) + value.length;
  const out = Buffer.allocUnsafe(GET_HEAD.length + n);
  out.set(GET_HEAD, 0);
  writeStr(out, GET_HEAD.length, value);
  return out;
}

/** The Result body of a get, from the value's UTF-8 bytes src[from, from + n) (src null: absent). */
export function encodeGetResultBytes(src: Uint8Array | null, from: number, n: number): Uint8Array {
  const out = Buffer.allocUnsafe(GET_HEAD.length + (src === null ? 1 : strHeaderBytes(n) + n));
  out.set(GET_HEAD, 0);
  writeStrBytes(out, GET_HEAD.length, src, from, n);
  return out;
}

/** The Result body of a compare-and-set, from the value it found as a byte string (null: absent). */
export function encodeCasResult(ok: boolean, value: ByteString | null): Uint8Array {
  const n = value === null ? 1 : strHeaderBytes(value.length) + value.length;
  const out = Buffer.allocUnsafe(CAS_HEAD.length + 1 + VALUE_KEY.length + n);
  out.set(CAS_HEAD, 0);
  let at = CAS_HEAD.length;
  out[at++] = ok ? 0xc3 : 0xc2;
  out.set(VALUE_KEY, at);
  writeStr(out, at + VALUE_KEY.length, value);
  return out;
}

/** The Result body of a compare-and-set, from the bytes of the value it found (src null: absent). */
export function encodeCasResultBytes(ok: boolean, src: Uint8Array | null, from: number, n: number): Uint8Array {
  const out = Buffer.allocUnsafe(CAS_HEAD.length + 1 + VALUE_KEY.length + (src === null ? 1 : strHeaderBytes(n) + n));
  out.set(CAS_HEAD, 0);
  let at = CAS_HEAD.length;
  out[at++] = ok ? 0xc3 : 0xc2;
  out.set(VALUE_KEY, at);
  writeStrBytes(out, at + VALUE_KEY.length, src, from, n);
  return out;
}

/** The Result body of a KV command. */
export function encodeKvResult(result: KvResult): Uint8Array {
  if (result.op === 'put') return PUT_RESULT;
  if (result.op === 'noop') return NOOP_RESULT;
  return pack(result) as Uint8Array;
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
