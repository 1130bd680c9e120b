// Worker thread of the seed pool (pool.ts): runs one seed per message, answers with its result.
import { parentPort } from 'node:worker_threads';
import { runSeed } from './simulation.js';
import type { SimOptions } from './profile.js';

const port = parentPort;
if (port === null) throw new Error('worker.js runs as a worker thread of pool.js');
port.on('message', (opts: SimOptions) => {
  port.postMessage(runSeed(opts));
});
