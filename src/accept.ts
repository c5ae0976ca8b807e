/**
 * The server side of the opening handshake (RFC 6455 §4.2): verify the
 * client's upgrade request, check its origin, choose a subprotocol, then
 * answer `101 Switching Protocols` or a complete HTTP error on the raw socket.
 * @module
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { CompressionMode, negotiateServer, parseExtensions } from './compress.js';
import { newConn, type Conn, type ConnOptions } from './conn.js';
import { checkConnOptions } from './options.js';
import { HandshakeError } from './errors.js';
import { acceptKey, isToken, selectSubprotocol, tokenList, verifyUpgradeRequest, type Refusal } from './handshake.js';
import type { DeflateParams } from './internal/deflate-params.js';
import { validateGlob } from './internal/glob.js';
import { refuseUpgrade } from './refuse.js';

/** Options of {@link accept}: the handshake's own, plus those of the Conn. */
export interface AcceptOptions extends ConnOptions {
  /**
   * Subprotocols the server speaks, most preferred first. The first one the
   * client also offered is chosen (RFC 6455 §4.2.2); with none in common the
   * connection proceeds without a subprotocol and `conn.subprotocol` is `''`.
   */
  subprotocols?: string[];
  /**
   * Host patterns of the cross-origin pages allowed to connect, matched like
   * Go's `path.Match` ignoring case: `'*.example.com'`, `'localhost:*'`.
   * A pattern containing `://` is matched against `scheme://host` instead.
   * Requests without an `Origin` and same-origin requests (origin host equal
   * to the `Host` header) are always allowed.
   */
  originPatterns?: string[];
  /**
   * Skips the origin check, allowing every page on the web to open a
   * connection with the user's cookies. Prefer `originPatterns`.
   */
  insecureSkipVerify?: boolean;
  /**
   * permessage-deflate (RFC 7692): `'disabled'` (the default) declines
   * every offer; `'context-takeover'` accepts the client's first acceptable
   * offer as it stands, keeping each direction's window across messages
   * (best ratio, about 50 KiB per connection); `'no-context-takeover'` also
   * makes both sides reset their windows after every message (no memory
   * between messages). Offers with unknown, repeated or out-of-range
   * parameters are declined, not refused (RFC 7692 §5).
   */
  compressionMode?: CompressionMode;
}

/**
 * Completes the server side of a WebSocket opening handshake on a socket
 * taken from a node:http(s) server's `'upgrade'` event, and resolves with
 * the connection.
 *
 * The request must be an HTTP/1.1 `GET` with one valid `Host`,
 * `Upgrade: websocket`, `Connection: Upgrade`, `Sec-WebSocket-Version: 13`,
 * a valid `Sec-WebSocket-Key`, well-formed `Sec-WebSocket-Protocol` and
 * `Sec-WebSocket-Extensions` lists if present, and an allowed `Origin`
 * (RFC 6455 §4.2.1). If it is not, accept answers with a complete HTTP
 * error response (400, 403, 405 or 426 with a short text body and
 * `Connection: close`), ends the connection and rejects with a
 * `HandshakeError` describing that response: there is nothing left for the
 * caller to clean up. `head` (bytes that arrived after the request) is read
 * by the connection before anything else from the socket.
 *
 * In an `'upgrade'` listener, a rejection that nobody catches crashes the
 * process; `createUpgradeListener()` does the catching for you.
 *
 * @throws HandshakeError when the request is refused (its `status`,
 * `headers` and `body` are what was sent), or with `status` 0 when the
 * socket was already destroyed.
 * @throws Error for invalid options (a malformed origin pattern, a
 * subprotocol that is not a token, unsupported compression); the client
 * then gets a 500.
 * @see RFC 6455 §4.2
 * @example
 * ```ts
 * import { createServer } from 'node:http';
 * import { accept } from 'wsconn';
 *
 * const server = createServer((_req, res) => res.end('WebSocket only\n'));
 * server.on('upgrade', async (req, socket, head) => {
 *   let conn;
 *   try {
 *     conn = await accept(req, socket, head, { subprotocols: ['echo.v1'], originPatterns: ['*.example.com'] });
 *   } catch {
 *     return; // accept already answered with an HTTP error and closed the socket
 *   }
 *   try {
 *     for await (const msg of conn) await conn.write(msg.type, msg.data);
 *   } catch {
 *     // the connection failed; conn.closed tells how
 *   } finally {
 *     conn.closeNow();
 *   }
 * });
 * server.listen(8080);
 * ```
 */
export async function accept(
  req: IncomingMessage,
  socket: Duplex,
  head: Uint8Array,
  opts: AcceptOptions = {},
): Promise<Conn> {
  if (socket.destroyed) {
    throw new HandshakeError('cannot accept a WebSocket: the socket is already destroyed', { status: 0 });
  }
  // Node's http server leaves upgraded sockets without an 'error' listener; until
  // the Conn has its own, a reset must not crash the process.
  const ignoreError = (): void => {};
  socket.on('error', ignoreError);
  try {
    checkAcceptOptions(opts);
  } catch (err) {
    refuse(socket, { status: 500, reason: 'the WebSocket server is misconfigured', headers: [] });
    throw err;
  }
  const refusal = verifyUpgradeRequest(req, opts);
  if (refusal !== undefined) throw refuse(socket, refusal);

  const { subprotocol, extensions, deflate } = negotiate(req.headers, opts);
  socket.write(switchingProtocols(req.headers['sec-websocket-key']!, subprotocol, extensions), 'latin1');
  if (typeof (socket as { setNoDelay?: unknown }).setNoDelay === 'function') {
    (socket as Duplex & { setNoDelay(noDelay: boolean): unknown }).setNoDelay(true);
  }
  const conn = newConn({ socket, head, client: false, subprotocol, extensions, deflate, options: opts });
  socket.off('error', ignoreError);
  return conn;
}

/**
 * Throws for options that no request could satisfy, before the socket is
 * answered (so that a helper can check them once, up front).
 * @internal
 */
export function checkAcceptOptions(opts: AcceptOptions): void {
  checkConnOptions(opts);
  for (const pattern of opts.originPatterns ?? []) {
    try {
      validateGlob(pattern);
    } catch (err) {
      throw new Error(`accept: invalid originPatterns entry: ${(err as Error).message}`, { cause: err });
    }
  }
  for (const name of opts.subprotocols ?? []) {
    if (!isToken(name)) {
      throw new TypeError(`accept: subprotocol ${JSON.stringify(name)} is not an HTTP token (RFC 6455 §4.1)`);
    }
  }
  const mode = opts.compressionMode ?? CompressionMode.Disabled;
  if (!Object.values<string>(CompressionMode).includes(mode)) {
    throw new TypeError(`accept: unknown compressionMode ${JSON.stringify(mode)}`);
  }
}

/**
 * What the server answers to the client's offers, the same over HTTP/1.1
 * and HTTP/2: the subprotocol (server preference, RFC 6455 §4.2.2) and the
 * first acceptable permessage-deflate offer (RFC 7692 §5).
 * @internal
 */
export function negotiate(
  headers: IncomingHttpHeaders,
  opts: AcceptOptions,
): { subprotocol: string; extensions: string; deflate: DeflateParams | undefined } {
  const offered = tokenList(headers['sec-websocket-protocol']);
  const subprotocol = selectSubprotocol(opts.subprotocols ?? [], offered);
  const mode = opts.compressionMode ?? CompressionMode.Disabled;
  const deflate = negotiateServer(parseExtensions(headers['sec-websocket-extensions']), mode);
  return { subprotocol, extensions: deflate?.response ?? '', deflate: deflate?.params };
}

/** Answers `refusal` with a complete response that ends the connection, and returns the error describing it. */
function refuse(socket: Duplex, refusal: Refusal): HandshakeError {
  return refuseUpgrade(socket, refusal.status, { headers: refusal.headers, body: `${refusal.reason}\n` });
}

/** The `101 Switching Protocols` response (RFC 6455 §4.2.2, item 5). */
function switchingProtocols(key: string, subprotocol: string, extensions: string): string {
  let response =
    'HTTP/1.1 101 Switching Protocols\r\n' +
    'Upgrade: websocket\r\n' +
    'Connection: Upgrade\r\n' +
    `Sec-WebSocket-Accept: ${acceptKey(key)}\r\n`;
  if (subprotocol !== '') response += `Sec-WebSocket-Protocol: ${subprotocol}\r\n`;
  if (extensions !== '') response += `Sec-WebSocket-Extensions: ${extensions}\r\n`;
  return `${response}\r\n`;
}
