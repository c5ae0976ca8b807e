import http2, { type Http2Server, type Http2SecureServer, type Http2Session, type ServerHttp2Stream } from 'node:http2';
import type { IncomingHttpHeaders } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { accept, type AcceptOptions } from '../../src/accept.js';
import { acceptHttp2, isWebSocketConnect } from '../../src/accept-http2.js';
import type { Conn } from '../../src/conn.js';
import { ConnSet } from '../../src/shutdown.js';
import type { TestCert } from './tls-cert.js';

/** A test server taking WebSockets over HTTP/2 streams and (with allowHTTP1) HTTP/1.1 upgrades. */
export interface H2TestServer {
  readonly server: Http2Server | Http2SecureServer;
  readonly port: number;
  /** Every session that carried a WebSocket stream. */
  readonly sessions: Set<Http2Session>;
  /** Server-side conns, with how they came in. */
  readonly conns: ConnSet;
  readonly via: Map<Conn, 'h2' | 'http/1.1'>;
  /** The server-side stream of each HTTP/2 conn. */
  readonly streams: Map<Conn, ServerHttp2Stream>;
  /** Resolves with the next server-side Conn. */
  nextConn(): Promise<Conn>;
  close(): Promise<void>;
}

export interface H2ServerOptions {
  cert?: TestCert | undefined;
  /** SETTINGS_ENABLE_CONNECT_PROTOCOL; default true. */
  connectProtocol?: boolean;
  /** SETTINGS_MAX_CONCURRENT_STREAMS; default Node's. */
  maxConcurrentStreams?: number;
  accept?: AcceptOptions;
  /** What to do with each server-side conn; default echo until closed. */
  handler?: (conn: Conn, headers: IncomingHttpHeaders | undefined) => Promise<void>;
  /** Replaces the stream handling entirely. */
  onStream?: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void;
}

async function echo(conn: Conn): Promise<void> {
  for await (const msg of conn) await conn.write(msg.type, msg.data);
}

/** Starts a node:http2 server on 127.0.0.1, TLS with allowHTTP1 when given a certificate, else h2c. */
export async function startH2Server(options: H2ServerOptions = {}): Promise<H2TestServer> {
  const settings = {
    enableConnectProtocol: options.connectProtocol ?? true,
    ...(options.maxConcurrentStreams !== undefined && { maxConcurrentStreams: options.maxConcurrentStreams }),
  };
  const server = options.cert === undefined
    ? http2.createServer({ settings })
    : http2.createSecureServer({ ...options.cert, allowHTTP1: true, settings });
  const conns = new ConnSet();
  const via = new Map<Conn, 'h2' | 'http/1.1'>();
  const streams = new Map<Conn, ServerHttp2Stream>();
  const sessions = new Set<Http2Session>();
  const allSessions = new Set<Http2Session>();
  const waiting: Array<(conn: Conn) => void> = [];
  const handler = options.handler ?? echo;
  const serve = (conn: Conn, kind: 'h2' | 'http/1.1', headers: IncomingHttpHeaders | undefined): void => {
    conns.add(conn);
    via.set(conn, kind);
    waiting.shift()?.(conn);
    handler(conn, headers).catch(() => {}).finally(() => conn.closeNow());
  };
  server.on('session', (session: Http2Session) => {
    allSessions.add(session);
    session.on('error', () => {});
    session.once('close', () => allSessions.delete(session));
  });
  server.on('stream', (stream, headers) => {
    if (options.onStream !== undefined) return options.onStream(stream, headers);
    if (!isWebSocketConnect(headers)) {
      stream.respond({ ':status': 404 });
      stream.end('not a WebSocket\n');
      return;
    }
    sessions.add(stream.session!);
    acceptHttp2(stream, headers, options.accept).then((conn) => {
      streams.set(conn, stream);
      serve(conn, 'h2', headers);
    }, () => {});
  });
  server.on('upgrade', (req, socket, head) => {
    accept(req, socket, head, options.accept).then((conn) => serve(conn, 'http/1.1', undefined), () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    sessions,
    conns,
    via,
    streams,
    nextConn: () => new Promise<Conn>((resolve) => waiting.push(resolve)),
    async close(): Promise<void> {
      for (const conn of conns) conn.closeNow();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const session of allSessions) session.destroy();
      await closed;
    },
  };
}
