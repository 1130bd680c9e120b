// Chooses the WebSocket client listener: uWebSockets.js (uws-listener.ts) when it loads, is not
// switched off by FLOTILLA_NATIVE_FREE=1 and is not declined with engine 'ws'; else the pure-JS
// server of native-free/ws-listener.ts. Both keep the same contract (client-listener.ts);
// `ClientListener.engine` says which one runs.

import { listenWs } from '../../native-free/ws-listener.js';
import type { ClientHandler, ClientListener, ListenerOptions } from './client-listener.js';
import { listenUws, uwsProblem } from './uws-listener.js';

export type WebSocketEngine = 'auto' | 'uws' | 'ws';

/**
 * uWebSockets.js when it loads and FLOTILLA_NATIVE_FREE is not '1' and opts.engine !== 'ws';
 * else the pure-JS server of native-free/ws-listener.ts (the `ws` package over node:http).
 * Asking for 'uws' where it does not load falls back to 'ws' with a warning.
 */
export function listenWebSocket(opts: ListenerOptions & { engine?: WebSocketEngine }, handler: ClientHandler): Promise<ClientListener> {
  const { engine = 'auto', ...listenerOpts } = opts;
  if (engine !== 'ws') {
    const problem = uwsProblem();
    if (problem === null) return listenUws(listenerOpts, handler);
    if (engine === 'uws') {
      opts.log?.warn({ problem }, 'uWebSockets.js was asked for but is unavailable: using the pure-JS WebSocket server');
    }
  }
  return listenWs(listenerOpts, handler);
}
