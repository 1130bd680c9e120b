// A worker thread of host-cli.ts: runs the seeds it is sent, one at a time, and posts results.
import { parentPort } from 'node:worker_threads';
import { runHostSeed } from './host-sim.js';
import type { HostSimOptions } from './host-profile.js';

parentPort!.on('message', (opts: HostSimOptions | null) => {
  if (opts === null) {
    process.exit(0);
  }
  void runHostSeed(opts).then((r) => parentPort!.postMessage(r));
});
