// Chooses the WebSocket client listener: uWebSockets.js (uws-listener.ts) when it loads, is not
// switched off by FLOTILLA_NATIVE_FREE=1 and is not declined with engine 'ws'; else the pure-JS
// server of ws-listener.ts. Both keep the same contract (client-listener.ts);
// `ClientListener.engine` says which one runs.
//
// The uWebSockets.js build in use (`@trufflesuite/uws-js-unofficial` 20.30) ships binaries for
// the Node ABIs of Node 16, 18 and 20 only, so on Node 22 and later `auto` serves with `ws` and
// `uws` refuses to start (UWS_UNAVAILABLE): an operator who asked for uWS by name should learn
// at start that they do not have it, not from a benchmark.

import { listenWs } from './ws-listener.js';
import type { ClientHandler, ClientListener, ListenerOptions } from './client-listener.js';
import { listenUws, uwsProblem } from './uws-listener.js';

export type WebSocketEngine = 'auto' | 'uws' | 'ws';

/** `websocket: 'uws'` was asked for where uWebSockets.js cannot load. */
export class WebSocketEngineError extends Error {
  readonly code = 'UWS_UNAVAILABLE';
}

export interface WebSocketEngineChoice {
  readonly engine: 'uws' | 'ws';
  /** Why this engine, for the start log: what was asked for, and what uWS loading said. */
  readonly reason: string;
}

/**
 * The engine that serves when `asked` is configured, and why. Throws WebSocketEngineError
 * (UWS_UNAVAILABLE, naming this Node version and the load error) when 'uws' is asked for and
 * uWebSockets.js cannot load. Loads uWS on the first call that needs it (uws-listener.ts).
 */
export function chooseWebSocketEngine(asked: WebSocketEngine): WebSocketEngineChoice {
  if (asked === 'ws') return { engine: 'ws', reason: 'websocket: ws' };
  const problem = uwsProblem();
  const node = `Node ${process.version} (ABI ${process.versions.modules}, ${process.platform}-${process.arch})`;
  if (problem === null) return { engine: 'uws', reason: `websocket: ${asked}; uWebSockets.js loads on ${node}` };
  if (asked === 'uws') {
    throw new WebSocketEngineError(`websocket: uws, but uWebSockets.js cannot be used on ${node}: ${problem}`
      + ' (set websocket: auto or ws to serve WebSocket clients with the ws package)');
  }
  return { engine: 'ws', reason: `websocket: auto; uWebSockets.js cannot be used on ${node}: ${problem}` };
}

/**
 * Listens with the engine chooseWebSocketEngine picks (rejecting with its UWS_UNAVAILABLE) and
 * logs that engine and the reason at info.
 */
export function listenWebSocket(opts: ListenerOptions & { engine?: WebSocketEngine }, handler: ClientHandler): Promise<ClientListener> {
  const { engine = 'auto', ...listenerOpts } = opts;
  let choice: WebSocketEngineChoice;
  try {
    choice = chooseWebSocketEngine(engine);
  } catch (e) {
    return Promise.reject(e as Error);
  }
  opts.log?.info({ engine: choice.engine, reason: choice.reason }, `WebSocket clients served by ${choice.engine}`);
  return choice.engine === 'uws' ? listenUws(listenerOpts, handler) : listenWs(listenerOpts, handler);
}
