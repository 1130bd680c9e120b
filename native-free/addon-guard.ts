// Preloaded into every Node process of `npm run test:native-free` (NODE_OPTIONS=--import, so
// the test runner, each test file and every node process a test spawns): a process that loads
// a native add-on fails. On its main thread an add-on load is refused at once, printing the
// file and the stack that asked for it, and the process exits with code 1; a worker thread
// does not run this preload, so at exit the main thread also reads which shared objects the
// whole process loaded (workers included) and fails the exit code if any is an add-on.
// A process ended by a signal skips the exit check; no-addons.test.ts covers a node's workers
// directly.
import * as fs from 'node:fs';
import { isMainThread } from 'node:worker_threads';
import { loadedAddons } from './loaded-addons.js';

const EXIT_CODE_ADDON = 1;
/** Set on globalThis when this guard runs in the process, so native-free.test.ts can see it. */
const GUARD_MARK = Symbol.for('flotilla.native-free.addon-guard');

function fail(message: string): void {
  // Synchronous: this runs while the process is exiting.
  fs.writeSync(2, `native-free: ${message} (pid ${process.pid}: ${process.argv.slice(1).join(' ')})\n`);
}

if (isMainThread) {
  (globalThis as Record<symbol, unknown>)[GUARD_MARK] = true;
  process.dlopen = (_module: unknown, filename: string): never => {
    // Deep enough to reach past the CommonJS loader frames to whoever asked.
    Error.stackTraceLimit = 40;
    fail(`native add-on ${filename} loaded in a native-free run\n${new Error('loaded from').stack ?? ''}`);
    return process.exit(EXIT_CODE_ADDON);
  };
  process.on('exit', (code) => {
    const addons = loadedAddons();
    if (addons.length === 0) return;
    fail(`native add-ons loaded in a native-free run: ${addons.join(', ')}`);
    if (code === 0) process.exitCode = EXIT_CODE_ADDON;
  });
}
