/**
 * Refusing an upgrade: a complete HTTP error response written on the raw
 * socket of an `'upgrade'` event, then an orderly end of the connection.
 * @module
 */
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { HandshakeError } from './errors.js';
import { hasToken, isFieldValue, isToken, withoutOws } from './handshake.js';

/** Header fields as `refuseUpgrade` takes them: a `Headers`, a plain object or name/value pairs. */
export type RefusalHeaders = Headers | Readonly<Record<string, string>> | ReadonlyArray<readonly [string, string]>;

/** Options of {@link refuseUpgrade}. */
export interface RefuseUpgradeOptions {
  /**
   * Extra header fields, such as `WWW-Authenticate` for a 401 or
   * `Retry-After` for a 503. `Content-Length` is always computed and
   * `Connection` always includes `close`; `Content-Type` defaults to
   * `text/plain; charset=utf-8`.
   */
  headers?: RefusalHeaders;
  /** The body. Default: the status's reason phrase and a newline. */
  body?: string | Uint8Array;
}

/** How long a refused socket may linger for its response to reach the client. */
const refusalLingerMs = 1000;

/** Fields that refuseUpgrade owns: a caller's value would break the response's framing. */
const framingFields = new Set(['content-length', 'transfer-encoding']);

/**
 * Refuses a WebSocket upgrade by hand: writes a complete HTTP/1.1 response
 * with `status`, the given header fields and body, and `Connection: close`,
 * then ends the socket. It keeps reading (and discarding) what the client
 * still sends until the client closes too, so that the response is not
 * lost to a TCP reset, and destroys the socket after at most a second.
 * The socket is never reused for another request (no keep-alive after a
 * refused upgrade).
 *
 * Use it in your own `'upgrade'` listener, for requests you do not want to
 * pass to `accept()`; `accept()` and `createUpgradeListener()` use it for
 * their own refusals. A socket that is already destroyed is left alone.
 *
 * @returns a `HandshakeError` describing the response sent (its `status`,
 * `headers` and `body`), to log or to throw.
 * @throws RangeError for a status outside 300–599, TypeError for a header
 * name that is not a token, a value with a control character or a
 * character above U+00FF (RFC 9110 §5.5), a symbol, a header entry that is
 * not a name/value pair, a `Content-Length`/`Transfer-Encoding` field, or a
 * body that is neither a string nor bytes; the socket is then destroyed,
 * so nothing is left half-answered.
 * @see RFC 9110 §15.5, RFC 9112 §9.6 (`Connection: close`)
 * @example
 * ```ts
 * import { createServer } from 'node:http';
 * import { accept, refuseUpgrade } from 'wsconn';
 *
 * const server = createServer();
 * server.on('upgrade', (req, socket, head) => {
 *   if (req.headers.authorization !== 'Bearer let-me-in') {
 *     refuseUpgrade(socket, 401, { headers: { 'WWW-Authenticate': 'Bearer' }, body: 'a token is required\n' });
 *     return;
 *   }
 *   accept(req, socket, head).then(
 *     (conn) => conn.close(1000, 'hello and goodbye'),
 *     () => {}, // accept() answered the refusal itself
 *   );
 * });
 * ```
 */
export function refuseUpgrade(socket: Duplex, status: number, options: RefuseUpgradeOptions = {}): HandshakeError {
  let fields: Array<[string, string]>;
  let body: Uint8Array;
  try {
    if (!Number.isInteger(status) || status < 300 || status > 599) {
      throw new RangeError(`refuseUpgrade: status ${status} is not a 3xx, 4xx or 5xx code`);
    }
    body = toBytes(options.body ?? `${STATUS_CODES[status] ?? 'Error'}\n`);
    fields = responseFields(options.headers, body.byteLength);
  } catch (err) {
    socket.destroy();
    throw err;
  }
  const text = STATUS_CODES[status] ?? 'Unknown';
  const lines = fields.map(([name, value]) => `${name}: ${value}\r\n`).join('');
  const head = Buffer.from(`HTTP/1.1 ${status} ${text}\r\n${lines}\r\n`, 'latin1');
  endGracefully(socket, Buffer.concat([head, body]));
  const bodyText = new TextDecoder().decode(body.subarray(0, 1024));
  const firstLine = bodyText.split('\n', 1)[0]!.slice(0, 200);
  return new HandshakeError(`WebSocket handshake refused with ${status} ${text}${firstLine === '' ? '' : `: ${firstLine}`}`, {
    status,
    headers: fields,
    body: bodyText,
  });
}

function toBytes(body: string | Uint8Array): Uint8Array {
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  if (body instanceof Uint8Array) return body;
  throw new TypeError('refuse: the body must be a string or a Uint8Array');
}

/** The body of a refusal as text (`refuseStream()` sends it as given, or decoded as UTF-8). @internal */
export function bodyText(body: string | Uint8Array): string {
  return typeof body === 'string' ? body : new TextDecoder().decode(toBytes(body));
}

/** The response's header fields: ours first, the caller's merged in, all checked. */
function responseFields(extra: RefusalHeaders | undefined, length: number): Array<[string, string]> {
  const fields: Array<[string, string]> = [
    ['Connection', 'close'],
    ['Content-Type', 'text/plain; charset=utf-8'],
    ['Content-Length', String(length)],
  ];
  /** The caller's Connection values so far. */
  let given: string | undefined;
  for (const [name, value] of entries(extra, 'refuseUpgrade')) {
    const lower = name.toLowerCase();
    if (framingFields.has(lower)) throw new TypeError(`refuseUpgrade: ${name} is set by refuseUpgrade itself`);
    if (lower === 'connection') {
      // RFC 9112 §9.6: the response closes the connection, whatever else it says. Repeats add up
      // to one list (RFC 9110 §5.3), with no empty element (§5.6.1).
      given = given === undefined || given === '' ? value : value === '' ? given : `${given}, ${value}`;
      fields[0] = [name, given === '' ? 'close' : hasToken(given, 'close') ? given : `${given}, close`];
    } else if (lower === 'content-type') {
      fields[1] = [name, value];
    } else {
      fields.push([name, value]);
    }
  }
  return fields;
}

/**
 * The fields of a {@link RefusalHeaders} as strings, values without the
 * spaces and tabs around them, without naming the global `Headers`, each
 * checked: a token name (RFC 9110 §5.1) and a value that can neither inject
 * a field (a caller's string may be, say, a reflected user name) nor be
 * mangled as Latin-1 (§5.5). A value that is not a string (from JavaScript
 * callers) is converted first, so that the checks see what will be written.
 * Throws TypeError, naming `who`, for the first bad entry.
 * @internal
 */
export function* entries(headers: RefusalHeaders | undefined, who: string): Iterable<readonly [string, string]> {
  if (headers === undefined) return;
  let pairs: Iterable<readonly [unknown, unknown]>;
  if (Array.isArray(headers)) pairs = headers as ReadonlyArray<readonly [unknown, unknown]>;
  // A Headers, told by its shape: naming the global Headers would make Node load its fetch implementation.
  else if (typeof (headers as Headers).entries === 'function') pairs = (headers as Headers).entries();
  else pairs = Object.entries(headers as Record<string, unknown>);
  for (const pair of pairs) {
    if (!Array.isArray(pair) || pair.length !== 2) throw new TypeError(`${who}: each header must be a [name, value] pair`);
    const name = fieldText(pair[0], who);
    const value = withoutOws(fieldText(pair[1], who));
    if (!isToken(name)) throw new TypeError(`${who}: header name ${JSON.stringify(name)} is not a token`);
    if (!isFieldValue(value)) throw new TypeError(`${who}: the value of ${name} has a control character or a character above U+00FF`);
    yield [name, value];
  }
}

function fieldText(item: unknown, who: string): string {
  if (typeof item === 'symbol') throw new TypeError(`${who}: a header name or value must not be a symbol`);
  return String(item);
}

/**
 * Sends `response` and a FIN, then discards whatever the client still sends
 * until it closes too, so that the response is not lost to a TCP reset. A
 * client that never closes is cut off after `refusalLingerMs`.
 */
function endGracefully(socket: Duplex, response: Uint8Array): void {
  if (socket.destroyed) return;
  // Node's http server leaves upgraded sockets without an 'error' listener:
  // a reset while lingering must not crash the process.
  socket.on('error', () => {});
  const timer = setTimeout(() => socket.destroy(), refusalLingerMs);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  let pending = 2; // our side flushed ('finish') and the client's FIN ('end')
  const oneDone = (): void => {
    if (--pending === 0) socket.destroy();
  };
  socket.once('finish', oneDone);
  socket.once('end', oneDone);
  socket.end(response);
  socket.resume();
}
