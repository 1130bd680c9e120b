// `flotilla kv put|get|delete`: the key-value service from the command line, through the
// client library (one connection per command, bounded in time by client-target.ts).
import type { CommandSpec, OptionSpecs, ParsedCommand } from './args.js';
import { CLIENT_OPTIONS, clientCall, withClient } from './client-target.js';

export const KV_SPECS = {
  'kv put': {
    name: 'flotilla kv put', operands: 'KEY VALUE', operandsMin: 2, operandsMax: 2,
    summary: 'Writes VALUE under KEY; prints OK. Put "--" before operands that start with "-".',
    options: CLIENT_OPTIONS,
  },
  'kv get': {
    name: 'flotilla kv get', operands: 'KEY', operandsMin: 1, operandsMax: 1,
    summary: 'Prints the value of KEY, or (nil). Linearizable unless --stale.',
    options: { ...CLIENT_OPTIONS, stale: { type: 'boolean', help: 'read from whichever member answers, possibly stale' } },
  },
  'kv delete': {
    name: 'flotilla kv delete', operands: 'KEY', operandsMin: 1, operandsMax: 1,
    summary: 'Deletes KEY; prints OK, or (nil) when the key was not there.',
    options: CLIENT_OPTIONS,
  },
} as const satisfies Record<string, CommandSpec>;

export async function kvCommand(name: string, p: ParsedCommand<OptionSpecs>, dry: (extra?: Record<string, unknown>) => number): Promise<number> {
  const { v, target, a, b, print } = clientCall(p);
  switch (name) {
    case 'kv put':
      if (p.dryRun) return dry({ servers: target.servers });
      return withClient(target, async (client) => {
        await client.put(a, b!);
        print('OK', { ok: true, key: a });
        return 0;
      });
    case 'kv get': {
      if (p.dryRun) return dry({ servers: target.servers });
      const stale = v['stale'] === true;
      return withClient(target, async (client) => {
        const value = showValue(await client.get(a, { stale }));
        print(value ?? '(nil)', { key: a, found: value !== null, value });
        return 0;
      });
    }
    case 'kv delete':
      if (p.dryRun) return dry({ servers: target.servers });
      return withClient(target, async (client) => {
        // delete says whether the key was there.
        const existed = (await client.delete(a)) !== false;
        print(existed ? 'OK' : '(nil)', { key: a, existed });
        return 0;
      });
    default:
      throw new Error(`no runner for ${name}`);
  }
}

/** A value as text, or null for no value. */
function showValue(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') return v;
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('utf8');
  return JSON.stringify(v);
}
