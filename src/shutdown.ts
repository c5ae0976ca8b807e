/**
 * Graceful shutdown: a set of a server's connections that can all be
 * closed at once, within a deadline (coder/websocket leaves this to the
 * application, #209).
 * @module
 */
import { encodeClosePayload } from './close.js';
import type { Conn } from './conn.js';

/** Options of `ConnSet.closeAll()`. */
export interface CloseAllOptions {
  /** The status code to close with. Default 1001 (going away). */
  code?: number;
  /** The reason to close with. Default 'server shutting down'. */
  reason?: string;
  /** When it aborts, the connections still open are dropped with `closeNow()`. */
  signal?: AbortSignal;
}

/**
 * Tracks open connections so that a server can close them all when it
 * shuts down. A connection leaves the set by itself once it has closed.
 *
 * @example
 * ```ts
 * import { createServer } from 'node:http';
 * import { accept, ConnSet } from 'wsconn';
 *
 * const conns = new ConnSet();
 * const server = createServer();
 * server.on('upgrade', async (req, socket, head) => {
 *   try {
 *     const conn = conns.add(await accept(req, socket, head));
 *     for await (const msg of conn) await conn.write(msg.type, msg.data);
 *   } catch {
 *     // A refused handshake or a failed connection: already answered or closed.
 *   }
 * });
 * process.once('SIGTERM', async () => {
 *   server.close();
 *   await conns.closeAll({ signal: AbortSignal.timeout(10_000) });
 * });
 * ```
 */
export class ConnSet implements Iterable<Conn> {
  readonly #conns = new Set<Conn>();
  #closing: Required<Omit<CloseAllOptions, 'signal'>> | undefined;

  /** How many connections are open. */
  get size(): number {
    return this.#conns.size;
  }

  /**
   * Adds `conn` and returns it. Once `closeAll()` has been called, a
   * connection added later is closed at once, the same way (bounded by its
   * own `closeTimeout`; a later `closeAll()` also covers it).
   */
  add(conn: Conn): Conn {
    this.#conns.add(conn);
    void conn.closed.then(() => this.#conns.delete(conn));
    if (this.#closing !== undefined) {
      // closeAll() checked the code and reason; close() never rejects otherwise.
      conn.close(this.#closing.code, this.#closing.reason).catch(() => {});
    }
    return conn;
  }

  /** The connections open now, in the order they were added. */
  [Symbol.iterator](): Iterator<Conn> {
    return this.#conns.values();
  }

  /**
   * Closes every connection with the close handshake (1001 by default) and
   * resolves once all of them have closed. Each handshake is bounded by the
   * Conn's own `closeTimeout`; `signal` bounds them all together: when it
   * aborts, the connections still open are dropped at once.
   * @throws RangeError for a code or reason `Conn.close()` refuses.
   */
  async closeAll(options: CloseAllOptions = {}): Promise<void> {
    const code = options.code ?? 1001;
    const reason = options.reason ?? 'server shutting down';
    if (code === 1005) throw new RangeError('close code 1005 may not be sent');
    encodeClosePayload(code, reason); // throws RangeError before anything is closed
    this.#closing ??= { code, reason };
    const conns = [...this.#conns];
    const dropAll = (): void => {
      for (const conn of conns) conn.closeNow();
    };
    const { signal } = options;
    if (signal?.aborted) dropAll();
    signal?.addEventListener('abort', dropAll, { once: true });
    try {
      await Promise.all(conns.map((conn) => conn.close(code, reason)));
      await Promise.all(conns.map((conn) => conn.closed));
    } finally {
      signal?.removeEventListener('abort', dropAll);
    }
  }
}
