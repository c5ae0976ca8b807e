/**
 * The server side of the opening handshake (RFC 6455 §4.2): verify the
 * client's upgrade request, check its origin, choose a subprotocol, then
 * answer `101 Switching Protocols` or a complete HTTP error on the raw socket.
 * @module
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { CompressionMode, negotiateServer, parseExtensions } from './compress.js';
import { newConn, type Conn, type ConnOptions } from './conn.js';
import { checkConnOptions } from './options.js';
import { HandshakeError } from './errors.js';
import { acceptKey, hasToken, isToken, isValidKey, originAllowed, selectSubprotocol, tokenList } from './handshake.js';
import { validateGlob } from './internal/glob.js';

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

/** How long a refused socket may linger for its response to reach the client. */
const refusalLingerMs = 1000;

const statusText: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  403: 'Forbidden',
  405: 'Method Not Allowed',
  426: 'Upgrade Required',
  500: 'Internal Server Error',
};

/** A 426 must name the protocol to upgrade to and list `Upgrade` in `Connection` (RFC 9110 §7.8, §15.5.22). */
const upgradeRequired: ReadonlyArray<[string, string]> = [
  ['Connection', 'Upgrade, close'],
  ['Upgrade', 'websocket'],
];

interface Refusal {
  status: number;
  reason: string;
  headers: ReadonlyArray<[string, string]>;
}

/**
 * Completes the server side of a WebSocket opening handshake on a socket
 * taken from a node:http(s) server's `'upgrade'` event, and resolves with
 * the connection.
 *
 * The request must be an HTTP/1.1 `GET` with `Upgrade: websocket`,
 * `Connection: Upgrade`, `Sec-WebSocket-Version: 13`, a valid
 * `Sec-WebSocket-Key` and an allowed `Origin` (RFC 6455 §4.2.1). If it is
 * not, accept answers with a complete HTTP error response (400, 403, 405 or
 * 426 with a short text body), closes the socket and rejects with a
 * `HandshakeError` describing that response: there is nothing left for the
 * caller to clean up. `head` (bytes that arrived after the request) is read
 * by the connection before anything else from the socket.
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
    checkOptions(opts);
  } catch (err) {
    refuse(socket, { status: 500, reason: 'the WebSocket server is misconfigured', headers: [] });
    throw err;
  }
  const refusal = verifyRequest(req, opts);
  if (refusal !== undefined) throw refuse(socket, refusal);

  const offered = tokenList(req.headers['sec-websocket-protocol']);
  const subprotocol = selectSubprotocol(opts.subprotocols ?? [], offered);
  // RFC 7692 §5: take the first acceptable permessage-deflate offer, if any.
  const mode = opts.compressionMode ?? CompressionMode.Disabled;
  const deflate = negotiateServer(parseExtensions(req.headers['sec-websocket-extensions']), mode);
  const extensions = deflate?.response ?? '';
  socket.write(switchingProtocols(req.headers['sec-websocket-key']!, subprotocol, extensions), 'latin1');
  if (typeof (socket as { setNoDelay?: unknown }).setNoDelay === 'function') {
    (socket as Duplex & { setNoDelay(noDelay: boolean): unknown }).setNoDelay(true);
  }
  const conn = newConn({ socket, head, client: false, subprotocol, extensions, deflate: deflate?.params, options: opts });
  socket.off('error', ignoreError);
  return conn;
}

/** Throws for options that no request could satisfy, before the socket is answered. */
function checkOptions(opts: AcceptOptions): void {
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

/** Checks the request against RFC 6455 §4.2.1; returns the refusal to send, if any. */
function verifyRequest(req: IncomingMessage, opts: AcceptOptions): Refusal | undefined {
  const h = req.headers;
  if (req.method !== 'GET') {
    return { status: 405, reason: 'a WebSocket handshake must use the GET method', headers: [['Allow', 'GET']] };
  }
  if (req.httpVersionMajor < 1 || (req.httpVersionMajor === 1 && req.httpVersionMinor < 1)) {
    return { status: 400, reason: 'a WebSocket handshake needs HTTP/1.1 or later', headers: [] };
  }
  if (!hasToken(h.upgrade, 'websocket')) {
    return { status: 426, reason: 'the Upgrade header must list "websocket"', headers: upgradeRequired };
  }
  if (!hasToken(h.connection, 'upgrade')) {
    return { status: 426, reason: 'the Connection header must list "Upgrade"', headers: upgradeRequired };
  }
  // RFC 6455 §4.4: answer an unknown version with the versions we speak.
  if (h['sec-websocket-version'] !== '13') {
    const headers: Array<[string, string]> = [...upgradeRequired, ['Sec-WebSocket-Version', '13']];
    return { status: 426, reason: 'Sec-WebSocket-Version must be 13', headers };
  }
  const key = h['sec-websocket-key'];
  if (key === undefined || !isValidKey(key)) {
    return { status: 400, reason: 'Sec-WebSocket-Key must be the base64 of 16 bytes', headers: [] };
  }
  // RFC 6455 §10.2: refuse origins the server does not trust.
  if (opts.insecureSkipVerify !== true && !originAllowed(h.origin, h.host, opts.originPatterns ?? [])) {
    return { status: 403, reason: 'the request Origin is not allowed', headers: [] };
  }
  return undefined;
}

/**
 * Writes `refusal` as a complete response, closes the socket once it is sent
 * (or after a bounded linger) and returns the error describing it.
 */
function refuse(socket: Duplex, refusal: Refusal): HandshakeError {
  const { status, reason } = refusal;
  const body = `${reason}\n`;
  const fields: Array<[string, string]> = [
    ['Connection', 'close'],
    ['Content-Type', 'text/plain; charset=utf-8'],
    ['Content-Length', String(Buffer.byteLength(body))],
  ];
  for (const [name, value] of refusal.headers) {
    if (name === 'Connection') fields[0] = [name, value];
    else fields.push([name, value]);
  }
  const text = statusText[status] ?? 'Error';
  const lines = fields.map(([name, value]) => `${name}: ${value}\r\n`).join('');
  endGracefully(socket, `HTTP/1.1 ${status} ${text}\r\n${lines}\r\n${body}`);
  return new HandshakeError(`WebSocket handshake refused with ${status} ${text}: ${reason}`, {
    status,
    headers: new Headers(fields),
    body,
  });
}

/**
 * Sends `response` and a FIN, then discards whatever the client still sends
 * until it closes too, so that the response is not lost to a TCP reset. A
 * client that never closes is cut off after `refusalLingerMs`.
 */
function endGracefully(socket: Duplex, response: string): void {
  if (socket.destroyed) return;
  const timer = setTimeout(() => socket.destroy(), refusalLingerMs);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  let pending = 2; // our side flushed ('finish') and the client's FIN ('end')
  const oneDone = (): void => {
    if (--pending === 0) socket.destroy();
  };
  socket.once('finish', oneDone);
  socket.once('end', oneDone);
  socket.end(response, 'utf8');
  socket.resume();
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
