/**
 * Connected pairs of Conns for tests that must hold for every transport and
 * both roles. A pair is `{ local, peer }`: `local` is the Conn under test and
 * `peer` the other end. Each `Setup` fixes the transport (the in-memory
 * `pipe()`, or a real loopback TCP connection from `dial()` to a node:http
 * server that `accept()`s) and which role `local` plays.
 *
 * Every Conn opened here is remembered; `closeAll()` drops them (call it in
 * `afterEach`), and `stopServers()` closes the loopback server (call it in
 * `after`, before the leak check).
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { accept } from '../../src/accept.js';
import { newConn, type Conn, type ConnOptions } from '../../src/conn.js';
import { dial } from '../../src/dial.js';
import { deferred, type Deferred } from '../../src/internal/deferred.js';
import { pipe } from '../../src/pipe.js';
import { headerOf, readHttpHead } from './raw.js';

export type TransportName = 'pipe' | 'loopback';
export type Role = 'client' | 'server';

export interface PairOptions {
  /** Options of the Conn under test. */
  local?: ConnOptions;
  /** Options of the other end. */
  peer?: ConnOptions;
  /**
   * Loopback only: make the client side by hand over `net.connect()` instead
   * of `dial()`, so that its raw socket is known (`peerSocket` when the peer
   * is the client).
   */
  rawClient?: boolean;
}

export interface Pair {
  /** The Conn under test. */
  local: Conn;
  /** The other end. */
  peer: Conn;
  /**
   * The peer's own TCP socket: on loopback when the peer is the server, or
   * the client with `rawClient`; otherwise undefined.
   */
  peerSocket: Socket | undefined;
}

export interface Setup {
  /** e.g. "pipe, client→server": `local` is the client. */
  name: string;
  transport: TransportName;
  /** The role `local` plays. */
  role: Role;
  open(options?: PairOptions): Promise<Pair>;
}

const opened = new Set<Conn>();

function remember(pair: Pair): Pair {
  opened.add(pair.local);
  opened.add(pair.peer);
  return pair;
}

/** Every transport × role combination. */
export const setups: readonly Setup[] = (['pipe', 'loopback'] as const).flatMap((transport) =>
  (['client', 'server'] as const).map(
    (role): Setup => ({
      name: `${transport}, ${role === 'client' ? 'client→server' : 'server→client'}`,
      transport,
      role,
      open: async (options = {}) => remember(await openPair(transport, role, options)),
    }),
  ),
);

async function openPair(transport: TransportName, role: Role, options: PairOptions): Promise<Pair> {
  const clientOptions = (role === 'client' ? options.local : options.peer) ?? {};
  const serverOptions = (role === 'client' ? options.peer : options.local) ?? {};
  let client: Conn;
  let server: Conn;
  let clientSocket: Socket | undefined;
  let serverSocket: Socket | undefined;
  if (transport === 'pipe') {
    [client, server] = pipe({ client: clientOptions, server: serverOptions });
  } else {
    ({ client, server, clientSocket, serverSocket } = await loopbackPair(clientOptions, serverOptions, options.rawClient));
  }
  return role === 'client'
    ? { local: client, peer: server, peerSocket: serverSocket }
    : { local: server, peer: client, peerSocket: clientSocket };
}

/** Drops every Conn opened since the last call and waits until each is gone. */
export async function closeAll(): Promise<void> {
  const conns = [...opened];
  opened.clear();
  for (const conn of conns) conn.closeNow();
  await Promise.all(conns.map((conn) => conn.closed));
}

// --- loopback: a node:http server on 127.0.0.1:0 that accept()s ---

let server: Server | undefined;
let listening: Promise<number> | undefined;
let nextId = 0;
const waiting = new Map<string, { options: ConnOptions; accepted: Deferred<{ conn: Conn; socket: Duplex }> }>();

function onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
  const entry = waiting.get(req.url ?? '');
  waiting.delete(req.url ?? '');
  if (entry === undefined) {
    socket.destroy();
    return;
  }
  accept(req, socket, head, entry.options).then(
    (conn) => entry.accepted.resolve({ conn, socket }),
    (err: unknown) => entry.accepted.reject(err),
  );
}

function serverPort(): Promise<number> {
  if (listening !== undefined) return listening;
  const s = createServer((_req, res) => res.writeHead(426).end());
  s.on('upgrade', onUpgrade);
  server = s;
  listening = (async () => {
    s.listen(0, '127.0.0.1');
    await once(s, 'listening');
    return (s.address() as AddressInfo).port;
  })();
  return listening;
}

async function loopbackPair(
  clientOptions: ConnOptions,
  serverOptions: ConnOptions,
  rawClient = false,
): Promise<{ client: Conn; server: Conn; clientSocket: Socket | undefined; serverSocket: Socket }> {
  const port = await serverPort();
  const path = `/pair/${++nextId}`;
  const accepted = deferred<{ conn: Conn; socket: Duplex }>();
  waiting.set(path, { options: serverOptions, accepted });
  let client: Conn;
  let clientSocket: Socket | undefined;
  if (rawClient) {
    ({ conn: client, socket: clientSocket } = await dialRaw(port, path, clientOptions));
  } else {
    client = await dial(`ws://127.0.0.1:${port}${path}`, { ...clientOptions, signal: AbortSignal.timeout(5000) });
  }
  const { conn: server, socket: serverSocket } = await accepted.promise;
  return { client, server, clientSocket, serverSocket: serverSocket as Socket };
}

/**
 * The client side of the opening handshake written by hand (RFC 6455 §4.1),
 * then a client Conn on the socket, for tests that need the client's socket.
 */
async function dialRaw(port: number, path: string, options: ConnOptions): Promise<{ conn: Conn; socket: Socket }> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.setNoDelay(true);
  socket.write(
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  );
  const { head, rest } = await readHttpHead(socket);
  if (!head.startsWith('HTTP/1.1 101 ') || headerOf(head, 'sec-websocket-accept') !== 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=') {
    socket.destroy();
    throw new Error(`handshake failed: ${head}`);
  }
  const conn = newConn({ socket, head: rest, client: true, subprotocol: '', extensions: '', options });
  return { conn, socket };
}

/** Closes the loopback server, if one was started. */
export async function stopServers(): Promise<void> {
  const s = server;
  server = undefined;
  listening = undefined;
  if (s === undefined) return;
  s.closeAllConnections();
  s.close();
  await once(s, 'close');
}
