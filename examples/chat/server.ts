/**
 * A chat server: open http://127.0.0.1:8080 in a few browser tabs and talk.
 *
 *   node --import tsx examples/chat/server.ts        (or: npm start)
 *
 * It serves the page next to this file (index.html) and a WebSocket
 * endpoint at /ws. Every text message a tab sends goes to every connected
 * tab, as JSON. Listens on 127.0.0.1, port $PORT (default 8080; 0 picks a
 * free one) and prints its URL.
 *
 * What it shows:
 * - `accept()` with the origin check left on: the page is same-origin, so
 *   it is allowed, while a page on another site gets a 403;
 * - one `for await` loop per connection, which also answers pings and sees
 *   the tab's close;
 * - a broadcast in which each write has its own deadline, so a client that
 *   stops reading is dropped instead of stalling everyone else;
 * - shutting down on SIGINT/SIGTERM: every tab is told 1001 (going away);
 * - a truthful log line when a tab goes: `conn.closed` reports the *peer's*
 *   close code (1006 when none came), so when the server ended the
 *   connection (1003, 1009, a drop, shutdown) it logs its own code instead.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { accept, CloseError, ClosedError, MessageTooBigError, MessageType, ProtocolError, StatusCode, type Conn } from 'wsconn';

/** The largest message a tab may send, in bytes. */
const maxMessageBytes = 4096;
/** How long one client may take to accept one message before it is dropped. */
const writeTimeoutMs = Number(process.env.CHAT_WRITE_TIMEOUT_MS ?? 2000);

const page = readFileSync(new URL('index.html', import.meta.url));

interface Client {
  conn: Conn;
  name: string;
  /** How this server ended the connection, when it did: the close code it sent, or 'dropped'. */
  endedBy?: number | 'dropped';
}

const clients = new Set<Client>();
let joined = 0;

/**
 * Sends `event` to every client; never rejects. Each write races its own
 * timeout: a client that has not taken the message by then is not reading
 * (its TCP buffers are full), so it is dropped and the others carry on.
 */
async function broadcast(event: object): Promise<void> {
  const text = JSON.stringify(event);
  await Promise.all(
    [...clients].map(async (client) => {
      try {
        await client.conn.write(MessageType.Text, text, { signal: AbortSignal.timeout(writeTimeoutMs) });
      } catch (err) {
        if ((err as Error).name === 'TimeoutError') {
          console.log(`${client.name} is not keeping up: dropped`);
          client.endedBy ??= 'dropped';
          // A close frame would queue behind everything the client has not
          // read, so drop the TCP connection instead.
          client.conn.closeNow();
        }
        // Otherwise the connection is already closing; its own loop ends.
      }
    }),
  );
}

/** Runs one client's connection until it ends, then logs who ended it. */
async function serve(conn: Conn): Promise<void> {
  const client: Client = { conn, name: `guest-${++joined}` };
  clients.add(client);
  console.log(`${client.name} joined from ${conn.remoteAddress}:${conn.remotePort}`);
  try {
    await conn.write(MessageType.Text, JSON.stringify({ kind: 'welcome', name: client.name }));
    await broadcast({ kind: 'system', text: `${client.name} joined` });
    for await (const { type, data } of conn) {
      if (type !== MessageType.Text) {
        client.endedBy ??= StatusCode.UnsupportedData;
        await conn.close(StatusCode.UnsupportedData, 'send text');
        return;
      }
      const text = Buffer.from(data).toString('utf8').trim();
      if (text !== '') await broadcast({ kind: 'message', from: client.name, text });
    }
    await conn.close(StatusCode.NormalClosure);
  } catch (err) {
    // wsconn has already closed the connection, and its error carries the
    // code it sent: 1009 for a message over the limit, 1002 for a protocol
    // error… A tab that vanished or was dropped needs no log line.
    if (err instanceof ProtocolError || err instanceof MessageTooBigError) client.endedBy ??= err.code;
    else if (!(err instanceof ClosedError || err instanceof CloseError)) console.log(`${client.name}: ${(err as Error).message}`);
  } finally {
    clients.delete(client);
    const { code } = await conn.closed;
    console.log(farewell(client, code));
    void broadcast({ kind: 'system', text: `${client.name} left` });
  }
}

/**
 * The log line for a tab that has gone. `peerCode` comes from `conn.closed`,
 * which reports the code of the tab's close frame (1005 if it had none, 1006
 * if none came), not ours: when the server ended the connection, its own
 * code is the one worth logging.
 */
function farewell(client: Client, peerCode: number): string {
  if (client.endedBy === 'dropped') return `${client.name} was dropped without a close handshake`;
  if (client.endedBy !== undefined) return `${client.name} was closed by the server with ${client.endedBy} (the tab answered ${peerCode})`;
  return `${client.name} left (${peerCode})`;
}

/** Answers an upgrade that is not for /ws with a plain 404. */
function notFound(socket: Duplex): void {
  socket.on('error', () => {}); // node:http leaves upgrade sockets without an 'error' listener
  const body = 'no WebSocket endpoint here; try /ws\n';
  socket.end(
    `HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
  );
}

const server = createServer((req, res) => {
  if (req.method === 'GET' && (req.url === '/' || req.url === '/index.html')) {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'x-content-type-options': 'nosniff' });
    res.end(page);
  } else {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  }
});

server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
  if (new URL(req.url ?? '/', 'http://x').pathname !== '/ws') return notFound(socket);
  // The origin check is on by default: the page served above is same-origin.
  accept(req, socket, head, { readLimit: maxMessageBytes }).then(
    (conn) => serve(conn).catch((err: unknown) => console.log(`connection failed: ${(err as Error).message}`)),
    (err: unknown) => console.log(`refused a WebSocket: ${(err as Error).message}`),
  );
});

const port = Number(process.env.PORT ?? 8080);
server.listen(port, '127.0.0.1', () => {
  const address = server.address();
  const bound = typeof address === 'object' && address !== null ? address.port : port;
  console.log(`chat server listening on http://127.0.0.1:${bound}/`);
});

async function shutdown(signal: string): Promise<void> {
  console.log(`${signal}: closing ${clients.size} connection(s)`);
  server.close();
  server.closeIdleConnections();
  // close() runs the close handshake, bounded by the Conn's closeTimeout.
  await Promise.all(
    [...clients].map((client) => {
      client.endedBy ??= StatusCode.GoingAway;
      return client.conn.close(StatusCode.GoingAway, 'server shutting down');
    }),
  );
  server.closeAllConnections();
  console.log('bye');
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void shutdown(signal));
}
