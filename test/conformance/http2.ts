/**
 * The conformance harness's HTTP/2 transport (RFC 8441): the same raw peer
 * and the same cases, with the WebSocket carried by an extended CONNECT
 * stream of a cleartext HTTP/2 session instead of an upgraded TCP socket.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2, {
  type ClientHttp2Session,
  type Http2Server,
  type Http2Session,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type ServerHttp2Stream,
} from 'node:http2';
import type { AddressInfo } from 'node:net';
import { acceptHttp2, isWebSocketConnect } from '../../src/accept-http2.js';
import type { Conn, ConnOptions } from '../../src/conn.js';
import { dial } from '../../src/dial.js';
import { deferred, type Deferred } from '../../src/internal/deferred.js';
import { encodeAll, RawPeer, type Sendable } from '../helpers/raw.js';
import { echo, type Endpoint, type Negotiation, type Role, type Session } from './harness.js';

/** The headers as `name: value` lines, so that the cases' header helpers read them. */
function describeHeaders(headers: IncomingHttpHeaders): string {
  return Object.entries(headers).map(([name, value]) => `${name}: ${String(value)}\r\n`).join('');
}

/** A cleartext HTTP/2 server taking extended CONNECTs, and every session it saw. */
abstract class H2Server {
  protected readonly server: Http2Server = http2.createServer({ settings: { enableConnectProtocol: true } });
  readonly #sessions = new Set<Http2Session>();
  protected port = 0;

  async start(): Promise<void> {
    this.server.on('session', (session: Http2Session) => {
      this.#sessions.add(session);
      session.on('error', () => {});
      session.once('close', () => this.#sessions.delete(session));
    });
    this.server.on('stream', (stream, headers) => this.stream(stream, headers));
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    for (const session of this.#sessions) session.destroy();
    this.server.close();
    await once(this.server, 'close');
  }

  protected abstract stream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void;
}

/** wsconn as the server (acceptHttp2); the raw peer is a client stream it opened with an extended CONNECT. */
class Http2ServerRole extends H2Server implements Endpoint {
  readonly #waiting: Array<{ options: ConnOptions; conn: Deferred<Conn> }> = [];
  readonly #negotiation: Negotiation;
  #client: ClientHttp2Session | undefined;

  constructor(negotiation: Negotiation) {
    super();
    this.#negotiation = negotiation;
  }

  override async stop(): Promise<void> {
    this.#client?.destroy();
    await super.stop();
  }

  protected stream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    const next = this.#waiting.shift();
    if (next === undefined || !isWebSocketConnect(headers)) return void stream.close();
    acceptHttp2(stream, headers, next.options).then((conn) => {
      void echo(conn);
      next.conn.resolve(conn);
    }, next.conn.reject);
  }

  async #session(): Promise<ClientHttp2Session> {
    if (this.#client !== undefined) return this.#client;
    const client = http2.connect(`http://127.0.0.1:${this.port}`);
    client.on('error', () => {});
    this.#client = client;
    await once(client, 'remoteSettings');
    return client;
  }

  async open(options: ConnOptions, early: readonly Sendable[]): Promise<Session> {
    const conn = deferred<Conn>();
    this.#waiting.push({ options: { ...this.#negotiation.options, ...options }, conn });
    const session = await this.#session();
    const request: OutgoingHttpHeaders = {
      ':method': 'CONNECT',
      ':protocol': 'websocket',
      ':scheme': 'http',
      ':path': '/',
      ':authority': `127.0.0.1:${this.port}`,
      'sec-websocket-version': '13',
    };
    if (this.#negotiation.offer !== undefined) request['sec-websocket-extensions'] = this.#negotiation.offer;
    const stream = session.request(request, { endStream: false });
    // Frames "in the handshake's write": DATA right behind the HEADERS, before any response.
    if (early.length > 0) stream.write(encodeAll(early, true));
    const [response] = (await once(stream, 'response')) as [IncomingHttpHeaders];
    assert.equal(response[':status'], 200, 'the server must accept the extended CONNECT with 200 (RFC 8441 §5)');
    stream.pause();
    const peer = new RawPeer(stream, true, new Uint8Array(0), early);
    return { peer, conn: await conn.promise, handshake: describeHeaders(response) };
  }
}

/** wsconn as the client (dial with http2 'always'); the raw peer is the server's stream, answered 200 by hand. */
class Http2ClientRole extends H2Server implements Endpoint {
  readonly #waiting: Array<{ early: readonly Sendable[]; peer: Deferred<{ peer: RawPeer; head: string }> }> = [];
  readonly #negotiation: Negotiation;

  constructor(negotiation: Negotiation) {
    super();
    this.#negotiation = negotiation;
  }

  protected stream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    const next = this.#waiting.shift();
    if (next === undefined) return void stream.close();
    try {
      assert.ok(isWebSocketConnect(headers), 'dial() must send an extended CONNECT (RFC 8441 §4)');
      assert.equal(headers['sec-websocket-version'], '13');
      assert.equal(headers['sec-websocket-key'], undefined, 'no Sec-WebSocket-Key over HTTP/2 (RFC 8441 §5)');
    } catch (err) {
      stream.close();
      return next.peer.reject(err);
    }
    const response: OutgoingHttpHeaders = { ':status': 200 };
    if (this.#negotiation.answer !== undefined) response['sec-websocket-extensions'] = this.#negotiation.answer;
    stream.respond(response);
    if (next.early.length > 0) stream.write(encodeAll(next.early, false));
    next.peer.resolve({ peer: new RawPeer(stream, false, new Uint8Array(0), next.early), head: describeHeaders(headers) });
  }

  async open(options: ConnOptions, early: readonly Sendable[]): Promise<Session> {
    const peer = deferred<{ peer: RawPeer; head: string }>();
    this.#waiting.push({ early, peer });
    const conn = await dial(`ws://127.0.0.1:${this.port}/`, {
      ...this.#negotiation.options,
      ...options,
      http2: 'always',
      http2IdleTimeout: 100,
    });
    void echo(conn);
    const { peer: raw, head } = await peer.promise;
    return { peer: raw, conn, handshake: head };
  }
}

/** A fixture for wsconn in `role` over an HTTP/2 stream (not started). */
export function http2Endpoint(role: Role, negotiation: Negotiation = {}): Endpoint {
  return role === 'server' ? new Http2ServerRole(negotiation) : new Http2ClientRole(negotiation);
}
