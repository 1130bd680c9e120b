// Preloaded with `node --import` by the package tests: appends the URL of every module the
// process loads through the ES module loader to the file named by RECORD_LOADS_FILE, one a
// line, so a test can see which of Flotilla's files an import pulled in. Node 22.15+ runs
// module hooks in the thread (registerHooks); Node 20 only off-thread (register), where the
// hooks module is this same file, so both paths share `load`. Not a test file.
import { appendFileSync } from 'node:fs';
import * as nodeModule from 'node:module';
import { isMainThread } from 'node:worker_threads';

const file = process.env['RECORD_LOADS_FILE'];

type LoadResult = { format?: string | null; source?: unknown; shortCircuit?: boolean };
type NextLoad = (url: string, context: unknown) => LoadResult | Promise<LoadResult>;

/** The load hook: records, then loads as usual. */
export function load(url: string, context: unknown, nextLoad: NextLoad): LoadResult | Promise<LoadResult> {
  if (file !== undefined && url.startsWith('file:')) appendFileSync(file, `${url}\n`);
  return nextLoad(url, context);
}

interface SyncHooks {
  registerHooks?: (hooks: { load: typeof load }) => unknown;
  register?: (specifier: string, parentUrl: string) => void;
}

// This file runs twice on Node 20: as the preload (main thread) and as the hooks module in the
// loader's own thread, where it must not register itself again.
const hooksApi = nodeModule as unknown as SyncHooks;
if (file !== undefined && isMainThread && !('__recordLoadsRegistered' in globalThis)) {
  (globalThis as Record<string, unknown>)['__recordLoadsRegistered'] = true;
  if (typeof hooksApi.registerHooks === 'function') hooksApi.registerHooks({ load });
  else hooksApi.register?.(import.meta.url, import.meta.url);
}
