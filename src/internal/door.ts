/**
 * The two ways a WebSocket request reaches the server helper, behind one
 * interface: an HTTP/1.1 upgrade on a socket, or an HTTP/2 extended
 * CONNECT on a stream (RFC 8441).
 * @module
 */
import { IncomingMessage } from 'node:http';
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import { accept, type AcceptOptions } from '../accept.js';
import { acceptStream, refuseStream } from '../accept-http2.js';
import type { Conn } from '../conn.js';
import type { HandshakeError } from '../errors.js';
import { verifyConnectRequest, verifyUpgradeRequest, type Refusal } from '../handshake.js';
import { refuseUpgrade, type RefuseUpgradeOptions } from '../refuse.js';

/** What the server helper does with a request, whichever HTTP version carried it. */
export interface Door {
  /** What carries the WebSocket: the upgraded socket or the HTTP/2 stream. */
  readonly socket: Duplex;
  /** The handshake checks (RFC 6455 §4.2.1, or RFC 8441 §5). */
  verify(): Refusal | undefined;
  /** Answers with a complete error response and returns the error describing it. */
  refuse(status: number, options?: RefuseUpgradeOptions): HandshakeError;
  /** Accepts, with `head` read before anything else. */
  open(head: Uint8Array): Promise<Conn>;
}

/** An HTTP/1.1 upgrade from an `'upgrade'` event. */
export function upgradeDoor(req: IncomingMessage, socket: Duplex, options: AcceptOptions): Door {
  return {
    socket,
    verify: () => verifyUpgradeRequest(req, options),
    refuse: (status, refusal) => refuseUpgrade(socket, status, refusal),
    open: (head) => accept(req, socket, head, options),
  };
}

/** An extended CONNECT from a `'stream'` event. */
export function streamDoor(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, options: AcceptOptions): Door {
  return {
    socket: stream,
    verify: () => verifyConnectRequest(headers, options),
    refuse: (status, refusal) => refuseStream(stream, status, refusal),
    open: async (head) => acceptStream(stream, headers, head.length === 0 ? undefined : head, options),
  };
}

/**
 * An `IncomingMessage` describing an extended CONNECT, so that
 * `authenticate` and handlers read HTTP/2 requests as they read HTTP/1.1
 * ones: `url` from `:path`, `host` from `:authority`, the session's socket.
 */
export function streamRequest(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): IncomingMessage {
  const socket = stream.session?.socket;
  const req = new IncomingMessage(socket as ConstructorParameters<typeof IncomingMessage>[0]);
  req.method = 'CONNECT';
  req.url = typeof headers[':path'] === 'string' ? headers[':path'] : '';
  req.httpVersion = '2.0';
  req.httpVersionMajor = 2;
  req.httpVersionMinor = 0;
  const fields: IncomingHttpHeaders = { ...headers };
  // The Host handlers read is the :authority the origin check used (a differing host field is refused, RFC 9113 §8.3.1).
  if (typeof headers[':authority'] === 'string') fields.host = headers[':authority'];
  req.headers = fields;
  const raw: string[] = [];
  for (const [name, value] of Object.entries(fields)) {
    for (const one of Array.isArray(value) ? value : [value ?? '']) raw.push(name, one);
  }
  req.rawHeaders = raw;
  req.push(null);
  return req;
}
