/**
 * Both ends of a TCP-over-WebSocket tunnel, as functions that
 * tunnel-server.ts, tunnel-client.ts and demo.ts start.
 *
 *   TCP client ──TCP──▶ tunnel client ══WebSocket══▶ tunnel server ──TCP──▶ target
 *
 * Each TCP connection accepted by the client end gets its own WebSocket;
 * `netConn()` turns each end of that WebSocket into a Node `Duplex`, and
 * `splice()` copies bytes both ways with backpressure, so a slow receiver
 * on one side slows the sender on the other.
 */
import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer as createTcpServer, type AddressInfo, type Server } from 'node:net';
import type { Duplex } from 'node:stream';
import { accept, dial, MessageType, StatusCode, type Conn } from 'wsconn';
import { netConn } from 'wsconn/netconn';

/** A listening end of the tunnel. */
export interface TunnelEnd {
  /** The port it listens on (on 127.0.0.1 unless told otherwise). */
  port: number;
  /** Stops listening and drops the connections still open. */
  close(): Promise<void>;
}

/** Where to listen or connect: `host:port`, or a port alone for 127.0.0.1. */
export function parseHostPort(text: string): { host: string; port: number } {
  const colon = text.lastIndexOf(':');
  const host = colon === -1 ? '127.0.0.1' : text.slice(0, colon).replace(/^\[|\]$/g, '');
  const port = Number(text.slice(colon + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`not a host:port: ${text}`);
  return { host, port };
}

/**
 * Copies bytes both ways between two connections, with backpressure, until
 * both have closed, and resolves with the first error, if any.
 *
 * When one side ends, the other is ended once its pending writes are out
 * (for a netConn, that is a close 1000; a WebSocket has no half-close, so
 * ending one direction ends the connection). When one side fails, both are
 * destroyed.
 *
 * Why `pipe()` rather than two `pipeline()`s: a pipeline counts the far side
 * closing before the near side has ended as a failure and destroys the near
 * side, which can drop the last bytes it was still flushing.
 */
export function splice(a: Duplex, b: Duplex): Promise<Error | undefined> {
  let first: Error | undefined;
  const fail = (err: Error): void => {
    first ??= err;
    a.destroy();
    b.destroy();
  };
  a.on('error', fail);
  b.on('error', fail);
  // One side may have gone while the other was being set up (a client that
  // hung up while the tunnel was dialing): then there is nothing to copy.
  if (a.destroyed || b.destroyed) {
    a.destroy();
    b.destroy();
  }
  a.pipe(b);
  b.pipe(a);
  return Promise.all([closed(a), closed(b)]).then(() => first);
}

function closed(stream: Duplex): Promise<void> {
  if (stream.closed) return Promise.resolve();
  return new Promise((resolve) => stream.once('close', () => resolve()));
}

/**
 * Starts the server end: an HTTP server whose WebSocket upgrades (on any
 * path) are each piped to a new TCP connection to `target`.
 *
 * Anyone who can reach this port can reach `target`: in real use, check a
 * token in the upgrade request before `accept()`, and serve it over TLS.
 */
export async function startTunnelServer(
  target: { host: string; port: number },
  listen: { host: string; port: number },
): Promise<TunnelEnd> {
  const server = createHttpServer((_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain' }).end('this is a WebSocket tunnel\n');
  });
  const open = new Set<Duplex>();
  server.on('upgrade', (req, socket: Duplex, head: Buffer) => {
    // No read limit from the start: netConn() lifts it too, but only once the
    // target has answered, and the client's first bytes (one message per TCP
    // read, up to 64 KiB) may arrive before that. Input flows while no one
    // reads, so the default 32 KiB limit would close the tunnel with 1009.
    accept(req, socket, head, { readLimit: -1 }).then(
      (conn) => forward(conn, target, open),
      () => {}, // accept() has answered the client with an HTTP error
    );
  });
  server.listen(listen.port, listen.host);
  await once(server, 'listening');
  return end(server, open);
}

/** Connects to the target, then pipes it and the WebSocket together. Never rejects. */
async function forward(conn: Conn, target: { host: string; port: number }, open: Set<Duplex>): Promise<void> {
  const upstream = connect(target.port, target.host);
  track(open, upstream);
  try {
    await once(upstream, 'connect');
  } catch (err) {
    // Tell the client why, rather than just dropping it (RFC 6455 §7.4.1: 1014).
    console.error(`tunnel server: cannot reach ${target.host}:${target.port}: ${(err as Error).message}`);
    await conn.close(StatusCode.BadGateway, 'cannot reach the target');
    return;
  }
  const tunnel = netConn(conn, MessageType.Binary);
  track(open, tunnel);
  const err = await splice(tunnel, upstream);
  if (err !== undefined) console.error(`tunnel server: ${err.message}`);
}

/**
 * Starts the client end: a TCP server on `listen` that, for each
 * connection, dials the tunnel server at `url` and pipes the two together.
 */
export async function startTunnelClient(url: string, listen: { host: string; port: number }): Promise<TunnelEnd> {
  const open = new Set<Duplex>();
  const server = createTcpServer((socket) => {
    track(open, socket);
    // Until splice() listens, a reset of the socket must not crash the process.
    socket.on('error', () => {});
    // Nothing reads the socket until splice() does: the client's first
    // bytes wait in its buffer (and then in TCP) while the tunnel opens.
    dial(url, { signal: AbortSignal.timeout(10_000) }).then(
      async (conn) => {
        const tunnel = netConn(conn, MessageType.Binary);
        track(open, tunnel);
        const err = await splice(socket, tunnel);
        if (err !== undefined) console.error(`tunnel client: ${err.message}`);
      },
      (err: unknown) => {
        console.error(`tunnel client: cannot reach ${url}: ${(err as Error).message}`);
        socket.destroy();
      },
    );
  });
  server.listen(listen.port, listen.host);
  await once(server, 'listening');
  return end(server, open);
}

function track(open: Set<Duplex>, ...streams: Duplex[]): void {
  for (const stream of streams) {
    open.add(stream);
    stream.on('close', () => open.delete(stream));
  }
}

function end(server: Server, open: Set<Duplex>): TunnelEnd {
  return {
    port: (server.address() as AddressInfo).port,
    async close() {
      const closed = once(server, 'close');
      server.close();
      for (const stream of open) stream.destroy();
      await closed;
    },
  };
}
