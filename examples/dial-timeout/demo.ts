/**
 * Deadlines with AbortSignal, and what each failure looks like.
 *
 *   node --import tsx examples/dial-timeout/demo.ts
 *
 * Self-contained: it starts its own servers on 127.0.0.1 (a WebSocket
 * server that wants a token and answers slowly, a TCP server that never
 * answers, and a port where nothing listens), walks through the cases and
 * exits. What it shows:
 * - `dial(url, { signal: AbortSignal.timeout(ms) })` bounds the handshake
 *   only: the connection outlives the signal;
 * - a read with its own timeout rejects with a `TimeoutError` and leaves
 *   the connection usable: a later read on the same Conn gets the message;
 * - a refused upgrade (here 401) is a `HandshakeError` with the server's
 *   `status`, `headers` and `body`;
 * - a server that never answers: the dial's signal rejects with the
 *   signal's own reason (a `TimeoutError`), while `handshakeTimeout`
 *   rejects with a `HandshakeError` (status 0) whose `cause` is one;
 * - nothing listening: a `HandshakeError` with status 0 and the network
 *   error (`ECONNREFUSED`) as its `cause`.
 */
import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { accept, dial, HandshakeError, MessageType, type Conn } from 'wsconn';

const token = 'Bearer demo-token';

/** A WebSocket server that wants a token and answers each message 500 ms late. */
function slowServer(): Server {
  const server = createHttpServer();
  server.on('upgrade', (req, socket: Duplex, head: Buffer) => {
    if (req.headers.authorization !== token) {
      socket.on('error', () => {}); // node:http leaves upgrade sockets without an 'error' listener
      const body = 'a valid token is required\n';
      socket.end(
        'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\nContent-Type: text/plain\r\n' +
          `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
      );
      return;
    }
    accept(req, socket, head).then(answerLate, () => {});
  });
  return server;
}

async function answerLate(conn: Conn): Promise<void> {
  try {
    for await (const { data } of conn) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      await conn.write(MessageType.Text, `late answer to "${Buffer.from(data).toString()}"`);
    }
  } catch {
    // the client went away: nothing to do
  } finally {
    conn.closeNow();
  }
}

/** A TCP server that accepts connections and never says a word. */
function silentServer(): { server: Server; sockets: Set<Socket> } {
  const sockets = new Set<Socket>();
  const server = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  return { server, sockets };
}

async function listen(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/** A port with nothing listening on it: one the OS just gave out and took back. */
async function closedPort(): Promise<number> {
  const probe = createTcpServer();
  const port = await listen(probe);
  probe.close();
  await once(probe, 'close');
  return port;
}

function describe(err: unknown): string {
  if (err instanceof HandshakeError) {
    const cause = err.cause as { name?: string; code?: unknown; message?: string } | undefined;
    // Network errors carry a string code (ECONNREFUSED); a DOMException's code is a legacy number.
    const kind = typeof cause?.code === 'string' ? cause.code : cause?.name;
    const why = cause === undefined ? '' : `, cause ${kind}: ${cause.message}`;
    const body = err.body === '' ? '' : `, body ${JSON.stringify(err.body)}`;
    return `HandshakeError status=${err.status}${body}${why}`;
  }
  const e = err as Error;
  return `${e.name}: ${e.message}`;
}

const slow = slowServer();
const silent = silentServer();
const slowPort = await listen(slow);
const silentPort = await listen(silent.server);
const nowhere = await closedPort();
const headers = { authorization: token };

console.log('1. dial with a 2 s deadline, then read with short per-read deadlines');
const conn = await dial(`ws://127.0.0.1:${slowPort}/`, { signal: AbortSignal.timeout(2000), headers });
await conn.write(MessageType.Text, 'hello');
try {
  await conn.read({ signal: AbortSignal.timeout(100) });
} catch (err) {
  console.log(`   read with a 100 ms deadline: ${describe(err)}`);
}
const { data } = await conn.read({ signal: AbortSignal.timeout(2000) });
console.log(`   a later read on the same connection: ${Buffer.from(data).toString()}`);
const info = await conn.close(1000, 'done');
console.log(`   closed: code ${info.code}, clean ${info.wasClean}`);

console.log('2. the server refuses the upgrade (no token)');
try {
  await dial(`ws://127.0.0.1:${slowPort}/`, { signal: AbortSignal.timeout(2000) });
} catch (err) {
  console.log(`   ${describe(err)}`);
  if (err instanceof HandshakeError) console.log(`   www-authenticate: ${err.headers.get('www-authenticate')}`);
}

console.log('3. the server accepts TCP but never answers the upgrade');
try {
  await dial(`ws://127.0.0.1:${silentPort}/`, { signal: AbortSignal.timeout(300) });
} catch (err) {
  console.log(`   with signal: AbortSignal.timeout(300): ${describe(err)}`);
}
try {
  await dial(`ws://127.0.0.1:${silentPort}/`, { handshakeTimeout: 300 });
} catch (err) {
  console.log(`   with handshakeTimeout: 300: ${describe(err)}`);
}

console.log('4. nothing listens on the port');
try {
  await dial(`ws://127.0.0.1:${nowhere}/`, { signal: AbortSignal.timeout(2000) });
} catch (err) {
  console.log(`   ${describe(err)}`);
}

for (const socket of silent.sockets) socket.destroy();
silent.server.close();
slow.close();
