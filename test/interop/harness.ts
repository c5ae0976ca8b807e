/**
 * Shared pieces of the interop suites: a node:http server whose upgrades
 * go to wsconn's `accept()`, an echo loop, and the rule for missing peers
 * (skip locally with the reason, fail in CI).
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { accept, type AcceptOptions } from '../../src/accept.js';
import type { Conn } from '../../src/conn.js';
import { deferred, type Deferred } from '../../src/internal/deferred.js';

export { describeWithPeer, inCI, python, requirePeer } from '../helpers/peers.js';

interface Pending {
  opts: AcceptOptions;
  conn: Deferred<Conn>;
}

/**
 * A node:http server on 127.0.0.1:0. Each `nextConn()` arms it for one
 * upgrade, which `accept()` answers; plain requests go to `onRequest`.
 */
export class WsconnServer {
  readonly http: Server;
  port = 0;
  onRequest: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
    res.writeHead(404).end();
  };
  readonly #pending: Pending[] = [];
  readonly #conns = new Set<Conn>();

  constructor() {
    this.http = createServer((req, res) => this.onRequest(req, res));
    this.http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.#upgrade(req, socket, head));
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  async listen(): Promise<this> {
    this.http.listen(0, '127.0.0.1');
    await once(this.http, 'listening');
    this.port = (this.http.address() as AddressInfo).port;
    return this;
  }

  /** Resolves with the Conn of the next upgrade request (rejects if accept() refuses it). */
  nextConn(opts: AcceptOptions = {}): Promise<Conn> {
    const conn = deferred<Conn>();
    this.#pending.push({ opts, conn });
    return conn.promise;
  }

  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const pending = this.#pending.shift();
    if (pending === undefined) {
      socket.destroy();
      return;
    }
    accept(req, socket, head, pending.opts).then((conn) => {
      this.#conns.add(conn);
      pending.conn.resolve(conn);
    }, pending.conn.reject);
  }

  /** Drops every connection still open and stops listening. */
  async close(): Promise<void> {
    for (const conn of this.#conns) conn.closeNow();
    await Promise.all([...this.#conns].map((conn) => conn.closed));
    this.http.closeAllConnections();
    this.http.close();
    await once(this.http, 'close');
  }
}

/**
 * Echoes every message back until the connection ends; resolves with the
 * error that ended the reading (a `CloseError` for a peer's close frame).
 */
export async function echo(conn: Conn): Promise<unknown> {
  try {
    for (;;) {
      const { type, data } = await conn.read();
      await conn.write(type, data);
    }
  } catch (err) {
    return err;
  }
}

/** Deterministic bytes of a given length (a counter pattern: wrong offsets show). */
export function pattern(length: number, seed = 0): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + seed + (i >>> 8)) & 0xff;
  return bytes;
}

/** A text of exactly `bytes` UTF-8 bytes that includes multi-byte characters. */
export function text(bytes: number): string {
  const unit = 'é€😀a'; // 2 + 3 + 4 + 1 = 10 bytes
  let out = unit.repeat(Math.floor(bytes / 10));
  out += 'x'.repeat(bytes - Buffer.byteLength(out));
  return out;
}

/** A queue filled by an event listener and drained by awaiting `next()`, so no event is missed between awaits. */
export class Inbox<T> {
  readonly #items: T[] = [];
  readonly #waiters: Array<(item: T) => void> = [];

  push(item: T): void {
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) waiter(item);
    else this.#items.push(item);
  }

  next(): Promise<T> {
    if (this.#items.length > 0) return Promise.resolve(this.#items.shift()!);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  get size(): number {
    return this.#items.length;
  }
}

/**
 * Resolves with `promise`'s value, or rejects if it takes longer than `ms`:
 * for promises that do settle eventually (after a close timeout, say) but
 * must settle promptly.
 */
export async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}
