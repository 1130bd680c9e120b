// What every client listener engine shares around its connections: the set of them (bounded by
// connectionsMax), the once-per-turn flush of their output (setImmediate, so that a turn costs
// one write per connection however many frames it sends), closing them all, and starting the
// server that accepts them.

import type * as net from 'node:net';
import type { ClientHandler, ClientListener, ListenerLog, ListenerOptions } from './client-listener.js';
import type { ConnectionBase } from './client-connection.js';

const LOG_NONE: ListenerLog = { warn: () => undefined, info: () => undefined };

/** One listener's connections and its once-per-turn flush. */
export class ListenerCore {
  readonly log: ListenerLog;
  readonly conns = new Set<ConnectionBase>();
  private dirty: ConnectionBase[] = [];
  private flushing: ConnectionBase[] = [];
  private flushScheduled = false;
  private closedWaiters: Array<() => void> = [];

  constructor(readonly opts: ListenerOptions, readonly handler: ClientHandler) {
    this.log = opts.log ?? LOG_NONE;
  }

  nextId(): number {
    const id = this.opts.nextId();
    if (!Number.isSafeInteger(id) || id <= 0) throw new Error(`nextId() returned ${id}: connection ids are positive integers`);
    return id;
  }

  /** At capacity: a new connection is to be turned away. */
  full(): boolean {
    return this.conns.size >= this.opts.connectionsMax;
  }

  opened(conn: ConnectionBase): void {
    this.conns.add(conn);
    this.handler.onOpen(conn);
  }

  closed(conn: ConnectionBase): void {
    this.conns.delete(conn);
    this.handler.onClose(conn);
    if (this.conns.size === 0 && this.closedWaiters.length > 0) {
      const waiters = this.closedWaiters;
      this.closedWaiters = [];
      for (const w of waiters) w();
    }
  }

  scheduleFlush(conn: ConnectionBase): void {
    this.dirty.push(conn);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushAll);
    }
  }

  private readonly flushAll = (): void => {
    this.flushScheduled = false;
    // Swap the lists so that sends made while flushing (from an onDrain) go to the next turn.
    const list = this.dirty;
    this.dirty = this.flushing;
    this.flushing = list;
    for (let i = 0; i < list.length; i++) list[i]!.flush();
    list.length = 0;
  };

  /** Closes every connection; resolves when the last one has called onClose. */
  closeAll(): Promise<void> {
    const done = new Promise<void>((resolve) => {
      if (this.conns.size === 0) resolve();
      else this.closedWaiters.push(resolve);
    });
    for (const conn of [...this.conns]) conn.close();
    return done;
  }
}

/**
 * Starts `server` listening and resolves with its ClientListener. `closeConnections` ends every
 * connection (and whatever else the engine holds); close() waits for it and for the server.
 */
export function listenServer(
  server: net.Server,
  opts: ListenerOptions,
  core: ListenerCore,
  engine: ClientListener['engine'],
  closeConnections: () => Promise<void>,
): Promise<ClientListener> {
  let closing: Promise<void> | null = null;
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(opts.port, opts.host, () => {
      server.off('error', onError);
      server.on('error', (err) => core.log.warn({ err: err.message }, 'client listener error'));
      const port = (server.address() as net.AddressInfo).port;
      resolve({
        port,
        engine,
        connections: () => core.conns.size,
        close: () => {
          closing ??= Promise.all([
            new Promise<void>((done) => server.close(() => done())),
            closeConnections(),
          ]).then(() => undefined);
          return closing;
        },
      });
    });
  });
}
