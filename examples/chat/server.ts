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
 * Several processes make one chat when they share a Redis server:
 *
 *   REDIS_URL=redis://127.0.0.1:6379 PORT=8081 npm start
 *   REDIS_URL=redis://127.0.0.1:6379 PORT=8082 npm start
 *
 * Each process delivers its own tabs' messages to its own tabs at once and
 * publishes them to Redis (relay.ts, redis-relay.ts); the other processes
 * deliver what they receive to theirs (deliver.ts). Guests are then named
 * `guest-N@PORT` ($CHAT_SERVER_NAME instead of the port). When Redis is
 * unreachable, at start or later, each process goes on serving its own tabs,
 * tells them "cross-server relay unavailable", retries, and tells them again
 * when it is back; what was said meanwhile is not relayed later.
 *
 * What it shows:
 * - `accept()` with the origin check left on: the page is same-origin, so
 *   it is allowed, while a page on another site gets a 403;
 * - one `for await` loop per connection, which also answers pings and sees
 *   the tab's close;
 * - `broadcast()` of one `PreparedMessage` per event: framed once, never
 *   waiting for any tab; a tab that stops reading falls a bounded queue
 *   behind and is dropped instead of stalling everyone else (deliver.ts);
 * - shutting down on SIGINT/SIGTERM: every tab is told 1001 (going away);
 * - a truthful log line when a tab goes: `conn.closed` reports the *peer's*
 *   close code (1006 when none came), so when the server ended the
 *   connection (1003, 1009, a drop, shutdown) it logs its own code instead.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { accept, CloseError, ClosedError, MessageTooBigError, MessageType, ProtocolError, StatusCode, type Conn } from 'wsconn';
import { Clients, deliver, type Client } from './deliver.js';
import { openRelay, type ChatEvent } from './relay.js';

/** The largest message a tab may send, in bytes. */
const maxMessageBytes = 4096;

/** What the tabs are told when the relay to the other servers goes and comes back. */
const relayNotice = {
  down: 'cross-server relay unavailable: for now, messages reach only the people on this server',
  up: 'cross-server relay restored: messages reach every server again',
} as const;

const page = readFileSync(new URL('index.html', import.meta.url));

const clients = new Clients();
let joined = 0;
/** Appended to guest names when several servers share the chat, so that names stay unique. */
let nameSuffix = '';
/** Whether the tabs have been told that the relay is down (and so need to hear that it is back). */
let toldDown = false;

const relay = await openRelay(process.env.REDIS_URL, {
  onEvent: (event) => deliver(clients, event),
  onState(state, detail) {
    if (state === 'down') {
      console.log(`relay: unavailable (${detail}); serving this server's tabs only, retrying`);
      toldDown = true;
      deliver(clients, { kind: 'system', text: relayNotice.down });
    } else {
      console.log(`relay: up (${detail})`);
      if (toldDown) deliver(clients, { kind: 'system', text: relayNotice.up });
      toldDown = false;
    }
  },
});

if (relay.state !== 'off') console.log(`relay: connecting to Redis at ${new URL(process.env.REDIS_URL!).host}`);

/** Shows `event` to this server's tabs and hands it to the relay for the other servers' tabs. */
function share(event: ChatEvent): void {
  relay.publish(event);
  deliver(clients, event);
}

/** Runs one client's connection until it ends, then logs who ended it. */
async function serve(conn: Conn): Promise<void> {
  const client: Client = { conn, name: `guest-${++joined}${nameSuffix}` };
  clients.add(client);
  console.log(`${client.name} joined from ${conn.remoteAddress}:${conn.remotePort}`);
  try {
    await conn.write(MessageType.Text, JSON.stringify({ kind: 'welcome', name: client.name }));
    if (relay.state === 'down') await conn.write(MessageType.Text, JSON.stringify({ kind: 'system', text: relayNotice.down }));
    share({ kind: 'system', text: `${client.name} joined` });
    for await (const { type, data } of conn) {
      if (type !== MessageType.Text) {
        client.endedBy ??= StatusCode.UnsupportedData;
        await conn.close(StatusCode.UnsupportedData, 'send text');
        return;
      }
      const text = Buffer.from(data).toString('utf8').trim();
      if (text !== '') share({ kind: 'message', from: client.name, text });
    }
    await conn.close(StatusCode.NormalClosure);
  } catch (err) {
    // wsconn has already closed the connection, and its error carries the
    // code it sent: 1009 for a message over the limit, 1002 for a protocol
    // error… A tab that vanished or was dropped needs no log line.
    if (err instanceof ProtocolError || err instanceof MessageTooBigError) client.endedBy ??= err.code;
    else if (!(err instanceof ClosedError || err instanceof CloseError)) console.log(`${client.name}: ${(err as Error).message}`);
  } finally {
    clients.delete(conn);
    const { code } = await conn.closed;
    console.log(farewell(client, code));
    share({ kind: 'system', text: `${client.name} left` });
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
  if (relay.state !== 'off') nameSuffix = `@${process.env.CHAT_SERVER_NAME ?? bound}`;
  console.log(`chat server listening on http://127.0.0.1:${bound}/`);
});

async function shutdown(signal: string): Promise<void> {
  console.log(`${signal}: closing ${clients.size} connection(s)`);
  server.close();
  server.closeIdleConnections();
  // close() runs the close handshake, bounded by the Conn's closeTimeout.
  await Promise.all(
    [...clients.values()].map((client) => {
      client.endedBy ??= StatusCode.GoingAway;
      return client.conn.close(StatusCode.GoingAway, 'server shutting down');
    }),
  );
  server.closeAllConnections();
  // One more turn lets each connection's loop publish its "left" line before the relay goes.
  await new Promise((resolve) => setImmediate(resolve));
  await relay.close();
  console.log('bye');
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void shutdown(signal));
}
