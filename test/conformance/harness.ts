/**
 * The table-driven conformance harness. Each case is raw frames sent by a
 * hand-driven peer (test/helpers/raw.ts) to a wsconn Conn running an echo
 * loop, and what that peer must receive back: echoed messages, pongs, the
 * close frame with its code, then the end of the TCP connection. Every
 * table runs six times: wsconn as the server (accept()) and as the client
 * (dial()), both again over an HTTP/2 stream (RFC 8441, http2.ts), then the
 * pure protocol engine in both roles (engine.ts), with the same bytes and
 * the same expectations.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { connect, createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { accept } from '../../src/accept.js';
import type { CompressionMode } from '../../src/compress.js';
import type { CloseInfo, Conn, ConnOptions } from '../../src/conn.js';
import { dial } from '../../src/dial.js';
import { deferred, type Deferred } from '../../src/internal/deferred.js';
import { leakCheck } from '../helpers/leak.js';
import { runEngineCase } from './engine.js';
import { http2Endpoint } from './http2.js';
import {
  bytesOf,
  concat,
  encodeAll,
  headerOf,
  RawPeer,
  readHttpHead,
  sampleAccept,
  switchingProtocols,
  upgradeRequest,
  withHeaders,
  type Sendable,
} from '../helpers/raw.js';

/** The role wsconn plays; the raw peer plays the other one. */
export type Role = 'server' | 'client';

/** How wsconn's `conn.closed` must settle. */
export interface ClosedWant {
  code: number;
  wasClean: boolean;
  reason?: string;
  /** The `code` of `closed.error`: the status wsconn failed the connection with. */
  errorCode?: number;
}

/** One conformance case. */
export interface Case {
  /** What is checked, with its RFC section. */
  name: string;
  /** Frames (or raw bytes) the raw peer sends, masked as its role requires unless a frame says otherwise. */
  send: Sendable[];
  /** What the raw peer must receive before the TCP connection ends, as `want.*` strings. */
  want: string[];
  closed: ClosedWant;
  /** wsconn's read limit for this connection; default: wsconn's default. */
  readLimit?: number;
  /** Send the bytes in pieces of this size, one per event-loop turn. */
  chop?: number;
  /** Send the frames in the same TCP write as the handshake request or response. */
  withHandshake?: boolean;
  /** Run for this role only (masking rules differ by role). */
  only?: Role;
  /** Mark as a known failure: the reason. */
  todo?: string;
}

/** wsconn answered a close frame: both close frames were exchanged. */
export function clean(code: number, reason?: string): ClosedWant {
  return reason === undefined ? { code, wasClean: true } : { code, wasClean: true, reason };
}

/** wsconn failed the connection with `code` (RFC 6455 §7.1.7); it never read a close frame back. */
export function failed(code: number): ClosedWant {
  return { code: 1006, wasClean: false, errorCode: code };
}

/** An open connection: the raw peer, and wsconn's Conn running its echo loop. */
export interface Session {
  peer: RawPeer;
  conn: Conn;
  /** The HTTP head the raw peer received: the 101 response (server role) or dial()'s request (client role). */
  handshake: string;
}

/** One role's test fixture: a listening server, and a way to open connections through it. */
export interface Endpoint {
  start(): Promise<void>;
  stop(): Promise<void>;
  open(options: ConnOptions, early: readonly Sendable[]): Promise<Session>;
}

/**
 * What the opening handshake negotiates for a group of cases. Every field
 * is optional; without any, the handshake carries no extension.
 */
export interface Negotiation {
  /** Options for wsconn's accept() or dial(), under the case's own `readLimit`. */
  options?: ConnOptions & { compressionMode?: CompressionMode };
  /** Server role: the `Sec-WebSocket-Extensions` value the raw client offers. */
  offer?: string;
  /** Client role: the `Sec-WebSocket-Extensions` value the raw server answers with. */
  answer?: string;
}

function extensionHeader(value: string | undefined): string[] {
  return value === undefined ? [] : [`Sec-WebSocket-Extensions: ${value}`];
}

/** How long the raw peer waits for wsconn to finish and close TCP; well under the 5 s close timeout. */
const endWithinMs = 2000;

/** Reads messages and writes each one back, until the connection ends. */
export async function echo(conn: Conn): Promise<void> {
  try {
    for (;;) {
      const message = await conn.read();
      await conn.write(message.type, message.data);
    }
  } catch {
    // The case checks how the connection ended through the raw peer and `closed`.
  }
}

/** wsconn as the server: a node:http server whose 'upgrade' handler accept()s; the raw peer is the client. */
class ServerRole implements Endpoint {
  readonly #server: HttpServer = createHttpServer((_req, res) => res.end());
  readonly #waiting: Array<{ options: ConnOptions; conn: Deferred<Conn> }> = [];
  readonly #negotiation: Negotiation;
  #port = 0;

  constructor(negotiation: Negotiation = {}) {
    this.#negotiation = negotiation;
  }

  async start(): Promise<void> {
    this.#server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const next = this.#waiting.shift();
      if (next === undefined) return void socket.destroy();
      // The application reads from the moment accept() resolves, as a real handler does.
      accept(req, socket, head, next.options).then((conn) => {
        void echo(conn);
        next.conn.resolve(conn);
      }, next.conn.reject);
    });
    this.#server.listen(0, '127.0.0.1');
    await once(this.#server, 'listening');
    this.#port = (this.#server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    this.#server.closeAllConnections();
    this.#server.close();
    await once(this.#server, 'close');
  }

  async open(options: ConnOptions, early: readonly Sendable[]): Promise<Session> {
    const conn = deferred<Conn>();
    this.#waiting.push({ options: { ...this.#negotiation.options, ...options }, conn });
    const socket = connect(this.#port, '127.0.0.1');
    await once(socket, 'connect');
    const request = withHeaders(upgradeRequest(`127.0.0.1:${this.#port}`), extensionHeader(this.#negotiation.offer));
    socket.write(concat([bytesOf(request), encodeAll(early, true)]));
    const { head, rest } = await readHttpHead(socket);
    assert.match(head, /^HTTP\/1\.1 101 /, 'the server must switch protocols');
    assert.equal(headerOf(head, 'sec-websocket-accept'), sampleAccept);
    const peer = new RawPeer(socket, true, rest, early);
    const c = await conn.promise;
    return { peer, conn: c, handshake: head };
  }
}

/** wsconn as the client: dial() to a raw net server that writes its own 101; the raw peer is the server. */
class ClientRole implements Endpoint {
  readonly #server: NetServer = createNetServer((socket) => this.#connection(socket));
  readonly #waiting: Array<{ early: readonly Sendable[]; peer: Deferred<{ peer: RawPeer; head: string }> }> = [];
  readonly #sockets = new Set<Socket>();
  readonly #negotiation: Negotiation;
  #port = 0;

  constructor(negotiation: Negotiation = {}) {
    this.#negotiation = negotiation;
  }

  async start(): Promise<void> {
    this.#server.listen(0, '127.0.0.1');
    await once(this.#server, 'listening');
    this.#port = (this.#server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    this.#server.close();
    await once(this.#server, 'close');
  }

  #connection(socket: Socket): void {
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
    const next = this.#waiting.shift();
    if (next === undefined) return void socket.destroy();
    readHttpHead(socket).then(({ head, rest }) => {
      const key = headerOf(head, 'sec-websocket-key');
      assert.match(head, /^GET \S+ HTTP\/1\.1\r\n/, 'dial() must send an HTTP/1.1 GET');
      assert.equal(headerOf(head, 'sec-websocket-version'), '13');
      assert.ok(key !== undefined, 'dial() must send Sec-WebSocket-Key');
      const response = withHeaders(switchingProtocols(key), extensionHeader(this.#negotiation.answer));
      socket.write(concat([bytesOf(response), encodeAll(next.early, false)]));
      next.peer.resolve({ peer: new RawPeer(socket, false, rest, next.early), head });
    }).catch((err: unknown) => {
      socket.destroy();
      next.peer.reject(err);
    });
  }

  async open(options: ConnOptions, early: readonly Sendable[]): Promise<Session> {
    const peer = deferred<{ peer: RawPeer; head: string }>();
    this.#waiting.push({ early, peer });
    const conn = await dial(`ws://127.0.0.1:${this.#port}/`, { ...this.#negotiation.options, ...options });
    void echo(conn);
    const { peer: raw, head } = await peer.promise;
    return { peer: raw, conn, handshake: head };
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

function summarize(info: CloseInfo, want: ClosedWant): ClosedWant {
  const got: ClosedWant = { code: info.code, wasClean: info.wasClean };
  if (want.reason !== undefined) got.reason = info.reason;
  if (want.errorCode !== undefined) {
    const code = (info.error as { code?: unknown } | undefined)?.code;
    got.errorCode = typeof code === 'number' ? code : -1;
  }
  return got;
}

async function runCase(endpoint: Endpoint, c: Case): Promise<void> {
  const options: ConnOptions = c.readLimit === undefined ? {} : { readLimit: c.readLimit };
  const early = c.withHandshake === true ? c.send : [];
  const { peer, conn } = await endpoint.open(options, early);
  try {
    if (c.withHandshake !== true) await peer.send(c.send, c.chop);
    const transcript = await peer.transcript(endWithinMs);
    assert.deepEqual(transcript.violations, [], 'wsconn broke the framing rules');
    assert.deepEqual(transcript.events, [...c.want, 'eof'], 'what the raw peer received');
    const info = await withTimeout(conn.closed, endWithinMs, 'conn.closed did not settle');
    assert.deepEqual(summarize(info, c.closed), c.closed, 'how conn.closed settled');
  } finally {
    peer.destroy();
    conn.closeNow();
  }
}

const roles: Role[] = process.env.WSCONN_CONFORMANCE_ROLE === undefined
  ? ['server', 'client']
  : [process.env.WSCONN_CONFORMANCE_ROLE as Role];

/**
 * A fixture for wsconn in `role` (not started): the raw peer plays the
 * other role, and the handshake negotiates as `negotiation` says. For
 * tests that do not fit a table of cases.
 */
export function endpoint(role: Role, negotiation: Negotiation = {}): Endpoint {
  return role === 'server' ? new ServerRole(negotiation) : new ClientRole(negotiation);
}

/** The roles the tables run in (WSCONN_CONFORMANCE_ROLE narrows them to one). */
export const conformanceRoles: readonly Role[] = roles;

/**
 * Registers `cases` as tests, once with wsconn as the server and once as
 * the client, then once more per role against the bare protocol engine,
 * and a leak check for the file. `negotiation` sets up the opening
 * handshake (extensions) for every case.
 */
export function conformance(group: string, cases: readonly Case[], negotiation: Negotiation = {}): void {
  const checkLeaks = leakCheck();
  after(() => checkLeaks());
  // Over a TCP socket, then the same cases with the WebSocket on an HTTP/2 stream (RFC 8441).
  const transports = [
    { suffix: '', endpoint: (role: Role): Endpoint => (role === 'server' ? new ServerRole(negotiation) : new ClientRole(negotiation)) },
    { suffix: ' over HTTP/2', endpoint: (role: Role): Endpoint => http2Endpoint(role, negotiation) },
  ];
  for (const transport of transports) {
    for (const role of roles) {
      describe(`${group}: wsconn as the ${role}${transport.suffix}`, { timeout: 60_000 }, () => {
        const endpoint = transport.endpoint(role);
        before(() => endpoint.start());
        after(() => endpoint.stop());
        for (const c of cases) {
          if (c.only !== undefined && c.only !== role) continue;
          const options = c.todo === undefined ? { timeout: 5000 } : { timeout: 5000, todo: c.todo };
          it(c.name, options, () => runCase(endpoint, c));
        }
      });
    }
  }
  for (const role of roles) {
    describe(`${group}: the protocol engine as the ${role}`, { timeout: 60_000 }, () => {
      for (const c of cases) {
        if (c.only !== undefined && c.only !== role) continue;
        // The engine has no handshake: a case about frames sharing the handshake's
        // TCP write runs as frames that are the engine's very first input.
        const options = c.todo === undefined ? { timeout: 5000 } : { timeout: 5000, todo: c.todo };
        it(c.name, options, () => runEngineCase(role, c, negotiation));
      }
    });
  }
}

/** A case whose messages are all echoed: `send` then a close 1000, answered in kind. */
export function echoes(name: string, send: Sendable[], want: string[], more: Partial<Case> = {}): Case {
  return { name, send: [...send, closeFrame1000], want: [...want, 'close 1000'], closed: clean(1000), ...more };
}

/** A case where wsconn must fail the connection with `code` after the `before` replies. */
export function fails(name: string, send: Sendable[], code: number, before: string[] = [], more: Partial<Case> = {}): Case {
  return { name, send, want: [...before, `close ${code}`], closed: failed(code), ...more };
}

const closeFrame1000: Sendable = { opcode: 0x8, payload: Uint8Array.of(0x03, 0xe8) };
