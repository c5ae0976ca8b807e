/**
 * The server side of WebSocket over HTTP/2 (RFC 8441): an extended CONNECT
 * stream from a `node:http2` server is checked like an HTTP/1.1 upgrade and
 * answered `200`, or refused with a complete response on that stream alone.
 * @module
 */
import { STATUS_CODES } from 'node:http';
import { constants, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { checkAcceptOptions, negotiate, type AcceptOptions } from './accept.js';
import { newConn, type Conn } from './conn.js';
import { HandshakeError } from './errors.js';
import { verifyConnectRequest, type Refusal } from './handshake.js';
import { isConnectionSpecific, streamTransport } from './internal/h2-stream.js';
import { bodyText, entries, type RefuseUpgradeOptions } from './refuse.js';

/** How long a refused stream may linger for its response to be read before it is reset. */
const refusalLingerMs = 1000;

/**
 * Reports whether an HTTP/2 stream's request headers are an extended
 * CONNECT for a WebSocket (`:method CONNECT`, `:protocol websocket`), so a
 * `'stream'` listener can route it to {@link acceptHttp2} and serve other
 * requests itself.
 *
 * @see RFC 8441 §4, §5
 * @example
 * ```ts
 * import { createServer } from 'node:http2';
 * import { acceptHttp2, isWebSocketConnect } from 'wsconn';
 *
 * const server = createServer({ settings: { enableConnectProtocol: true } });
 * server.on('stream', (stream, headers) => {
 *   if (!isWebSocketConnect(headers)) {
 *     stream.respond({ ':status': 404 });
 *     stream.end();
 *     return;
 *   }
 *   acceptHttp2(stream, headers).then((conn) => conn.close(1000), () => {});
 * });
 * ```
 */
export function isWebSocketConnect(headers: IncomingHttpHeaders): boolean {
  return headers[':method'] === 'CONNECT' && headers[':protocol'] === 'websocket';
}

/**
 * Completes the server side of a WebSocket opening handshake over HTTP/2:
 * checks the extended CONNECT on `stream` (from a `node:http2` server's
 * `'stream'` event) and answers `:status 200` with the negotiated
 * `sec-websocket-protocol` and `sec-websocket-extensions`, then resolves
 * with a `Conn` that behaves exactly like one from `accept()` (same
 * options, limits, close handshake and keepalive).
 *
 * The server must send `SETTINGS_ENABLE_CONNECT_PROTOCOL`
 * (`settings: { enableConnectProtocol: true }`), or clients will not send
 * an extended CONNECT at all. With `allowHTTP1: true` one server takes both
 * kinds: HTTP/1.1 upgrades still arrive as `'upgrade'` events for
 * `accept()`. Do not add a `'request'` listener for these streams: Node's
 * compatibility layer answers an extended CONNECT itself.
 *
 * Refusals use the statuses of `accept()` (400, 403, 426) plus 405 for a
 * method other than CONNECT and 501 for a `:protocol` other than
 * `websocket`; the response, with a short text body, ends that stream
 * only, never the HTTP/2 session. The stream is then reset a second later
 * if the client has not closed it.
 *
 * Closing follows RFC 8441 §5: END_STREAM where TCP would send a FIN, and
 * RST_STREAM (CANCEL) where it would reset; other streams of the session
 * are never affected.
 *
 * @throws HandshakeError when the request is refused (its `status`,
 * `headers` and `body` are what was sent), or with `status` 0 when the
 * stream was already closed.
 * @throws Error for invalid options; the client then gets a 500.
 * @see RFC 8441 §4, §5; RFC 6455 §4.2
 * @example
 * ```ts
 * import { createSecureServer } from 'node:http2';
 * import { acceptHttp2, isWebSocketConnect } from 'wsconn';
 *
 * declare const key: Buffer, cert: Buffer;
 * const server = createSecureServer({ key, cert, allowHTTP1: true, settings: { enableConnectProtocol: true } });
 * server.on('stream', async (stream, headers) => {
 *   if (!isWebSocketConnect(headers)) return; // or serve the request
 *   let conn;
 *   try {
 *     conn = await acceptHttp2(stream, headers, { subprotocols: ['echo.v1'] });
 *   } catch {
 *     return; // already refused on this stream
 *   }
 *   for await (const msg of conn) await conn.write(msg.type, msg.data);
 * });
 * server.listen(8443);
 * ```
 */
export async function acceptHttp2(
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  opts: AcceptOptions = {},
): Promise<Conn> {
  return acceptStream(stream, headers, undefined, opts);
}

/** @internal `acceptHttp2()` with bytes already read from the stream (by a helper), read first. */
export function acceptStream(
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  head: Uint8Array | undefined,
  opts: AcceptOptions,
): Conn {
  if (stream.destroyed || stream.closed || stream.headersSent) {
    throw new HandshakeError('cannot accept a WebSocket: the HTTP/2 stream is closed or already answered', { status: 0 });
  }
  // Until the Conn listens, a reset of this stream must not crash the process.
  const ignoreError = (): void => {};
  stream.on('error', ignoreError);
  try {
    checkAcceptOptions(opts);
  } catch (err) {
    refuseStream(stream, 500, { body: 'the WebSocket server is misconfigured\n' });
    throw err;
  }
  const refusal = verifyConnectRequest(headers, opts);
  if (refusal !== undefined) throw refuse(stream, refusal);
  const { subprotocol, extensions, deflate } = negotiate(headers, opts);
  // RFC 8441 §5: a 200 accepts; there is no Sec-WebSocket-Accept.
  const response: OutgoingHttpHeaders = { ':status': 200 };
  if (subprotocol !== '') response['sec-websocket-protocol'] = subprotocol;
  if (extensions !== '') response['sec-websocket-extensions'] = extensions;
  stream.respond(response);
  const transport = streamTransport(stream, true);
  const conn = newConn({ socket: stream, ...(head && { head }), client: false, subprotocol, extensions, deflate, options: opts, transport });
  stream.off('error', ignoreError);
  return conn;
}

function refuse(stream: ServerHttp2Stream, refusal: Refusal): HandshakeError {
  return refuseStream(stream, refusal.status, { headers: refusal.headers, body: `${refusal.reason}\n` });
}

/**
 * Answers an HTTP/2 stream with a complete error response, the
 * counterpart of `refuseUpgrade()` for a stream: the HTTP/1.1-only
 * `Connection` and `Upgrade` fields are left out (RFC 9113 §8.2.2).
 * @internal
 */
export function refuseStream(
  stream: ServerHttp2Stream,
  status: number,
  options: RefuseUpgradeOptions = {},
): HandshakeError {
  stream.on('error', () => {});
  let fields: Array<[string, string]>;
  let body: string;
  let responded = false;
  try {
    body = bodyText(options.body ?? `${STATUS_CODES[status] ?? 'Error'}\n`);
    if (!Number.isInteger(status) || status < 300 || status > 599) {
      throw new RangeError(`refuse: status ${status} is not a 3xx, 4xx or 5xx code`);
    }
    fields = [['content-type', 'text/plain; charset=utf-8']];
    for (const [given, value] of entries(options.headers, 'refuse')) {
      const name = given.toLowerCase(); // RFC 9113 §8.2.1: lower-case names
      if (name === 'content-type') fields[0] = [name, value];
      else if (!isConnectionSpecific(name) && name !== 'content-length') fields.push([name, value]);
    }
    if (!stream.destroyed && !stream.closed && !stream.headersSent) {
      stream.respond(responseHead(status, fields));
      responded = true;
    }
  } catch (err) {
    // Nothing was sent: reset the stream, as refuseUpgrade() destroys its socket.
    if (!stream.destroyed) stream.close(constants.NGHTTP2_INTERNAL_ERROR);
    throw err;
  }
  if (responded) {
    const timer = setTimeout(() => stream.close(constants.NGHTTP2_CANCEL), refusalLingerMs);
    timer.unref();
    stream.once('close', () => clearTimeout(timer));
    stream.end(body);
    stream.resume();
  }
  const text = STATUS_CODES[status] ?? 'Unknown';
  return new HandshakeError(`WebSocket handshake refused with ${status} ${text}: ${body.split('\n', 1)[0]!.slice(0, 200)}`, {
    status,
    headers: fields,
    body,
  });
}

/**
 * The response's header object. Repeated names are joined with ", " as
 * RFC 9110 §5.3 allows, except `set-cookie`, whose fields stay separate
 * (RFC 6265 §3); Node refuses an array for the fields it knows to be single-valued.
 */
function responseHead(status: number, fields: ReadonlyArray<readonly [string, string]>): OutgoingHttpHeaders {
  const values = new Map<string, string[]>();
  for (const [name, value] of fields) {
    const list = values.get(name);
    if (list === undefined) values.set(name, [value]);
    else list.push(value);
  }
  // Object.fromEntries makes own properties, so a field named like an Object.prototype member is kept as given.
  return Object.fromEntries([
    [':status', status],
    ...[...values].map(([name, list]) => [name, name === 'set-cookie' && list.length > 1 ? list : list.join(', ')] as const),
  ]) as OutgoingHttpHeaders;
}
