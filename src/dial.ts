/**
 * The client side of the opening handshake (RFC 6455 §4.1), sent through an
 * undici `Dispatcher` so that proxies, TLS settings and connection limits
 * configured there apply to WebSockets too.
 *
 * It uses `dispatcher.dispatch()` with its own handler rather than undici's
 * `upgrade()`, which hides the status, headers and body of a refused
 * upgrade. The handler speaks both handler interfaces: the controller-based
 * one of undici 7 and 8 and the older callbacks of undici 6, which Node 20's
 * built-in `fetch` installs as the global dispatcher when it runs first.
 * @module
 */
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { getGlobalDispatcher, type Dispatcher } from 'undici';
import { clientOffer, CompressionMode, parseClientResponse, type DeflateParams } from './compress.js';
import { newConn, type Conn, type ConnOptions } from './conn.js';
import { checkConnOptions } from './options.js';
import { HandshakeError } from './errors.js';
import { acceptKey, hasToken, isToken } from './handshake.js';
import { deferred, type Deferred } from './internal/deferred.js';

/** Options of {@link dial}: the handshake's own, plus those of the Conn. */
export interface DialOptions extends ConnOptions {
  /**
   * Bounds the opening handshake only; the connection it yields outlives
   * it. Aborting rejects with `signal.reason` itself (also when it is
   * already aborted on entry) and drops the connection being opened.
   */
  signal?: AbortSignal;
  /**
   * Extra request headers, such as `authorization` or `origin`. The
   * handshake's own headers (`upgrade`, `connection`, `sec-websocket-*`)
   * are set by dial and may not appear here.
   */
  headers?: Record<string, string> | Headers | Array<[string, string]>;
  /** The `Host` header to send instead of the URL's host (for TLS, it also becomes the SNI name). */
  host?: string;
  /**
   * Subprotocols to offer, most preferred first; each must be an HTTP
   * token. The server picks one or none: `conn.subprotocol` is `''` when it
   * ignored the offer.
   */
  subprotocols?: string[];
  /** The undici dispatcher to send the request through. Default: undici's `getGlobalDispatcher()`. */
  dispatcher?: Dispatcher;
  /**
   * The most time, in ms, the whole handshake may take (connecting,
   * request, response), applied even when no `signal` is given. Default
   * 30000; `Infinity` for none. When it runs out, dial rejects with a
   * `HandshakeError` whose `cause` is a `TimeoutError` DOMException.
   */
  handshakeTimeout?: number;
  /**
   * permessage-deflate (RFC 7692): `'disabled'` (the default) offers none;
   * `'context-takeover'` offers compression that keeps each direction's
   * window across messages (best ratio, about 50 KiB per connection);
   * `'no-context-takeover'` asks both sides to reset it after every message
   * (no memory between messages). The server may decline: check
   * `conn.extensions`.
   */
  compressionMode?: CompressionMode;
}

/** How long a handshake may take by default, in ms. */
const defaultHandshakeTimeout = 30_000;

/** How much of a refused upgrade's body `HandshakeError.body` keeps, in bytes. */
const maxBodyBytes = 1024;

/** The largest delay `setTimeout` honours (a larger one fires at once). */
const maxTimerDelay = 2 ** 31 - 1;

/** Dispatcher origins for the schemes dial accepts (RFC 6455 §3: ws and wss ride on http and https). */
const httpScheme = new Map([
  ['ws:', 'http:'],
  ['wss:', 'https:'],
  ['http:', 'http:'],
  ['https:', 'https:'],
]);

/** Request headers that dial writes itself, or that would break the upgrade. */
const reservedHeaders = new Set([
  'connection',
  'upgrade',
  'sec-websocket-key',
  'sec-websocket-version',
  'sec-websocket-protocol',
  'sec-websocket-extensions',
  'sec-websocket-accept',
  'content-length',
  'transfer-encoding',
  'keep-alive',
  'expect',
]);

/** What the handler needs to know about the request it answers for. */
interface Offer {
  /** The `Sec-WebSocket-Key` sent. */
  key: string;
  /** The subprotocols offered. */
  subprotocols: readonly string[];
  /** What permessage-deflate use was offered. */
  compression: CompressionMode;
  /** The URL without credentials or query, for error messages. */
  where: string;
  /** Options for the Conn. */
  connOptions: ConnOptions;
}

/**
 * Opens a WebSocket connection to `url` (`ws:`, `wss:`, `http:` or
 * `https:`) and resolves once the server has accepted it.
 *
 * The upgrade request goes through an undici `Dispatcher` (the global one
 * unless `opts.dispatcher` is given). The server's `101` response is checked
 * as RFC 6455 §4.1 requires: `Upgrade: websocket`, `Connection: Upgrade`,
 * the `Sec-WebSocket-Accept` that matches our key, a subprotocol we offered
 * (or none) and no extensions. Bytes the server sent right after its
 * response are kept for the first read. Credentials in the URL are sent as
 * Basic `authorization` unless `opts.headers` has one. HTTP/2 (RFC 8441) is
 * not supported yet.
 *
 * The handshake is bounded by `opts.signal` and `opts.handshakeTimeout`
 * (default 30 s); on either, the request is aborted and its socket
 * destroyed. A connection still being established when the handshake is
 * abandoned is dropped as soon as undici has it (at the latest when its
 * connect timeout runs out).
 *
 * @throws TypeError for a URL that is not absolute, has another scheme or
 * has a fragment (RFC 6455 §3), and for invalid options; nothing is sent.
 * @throws HandshakeError when the server answers with anything but a valid
 * `101` (its `status`, `headers` and the first KiB of its `body`), and with
 * `status` 0 and the network error as `cause` when no response arrives or
 * the handshake times out.
 * @throws `signal.reason` when `opts.signal` aborts first.
 * @see RFC 6455 §4.1
 * @example
 * ```ts
 * import { dial, MessageType } from 'wsconn';
 *
 * const conn = await dial('wss://echo.example.com/chat', {
 *   signal: AbortSignal.timeout(10_000), // bounds the handshake only
 *   subprotocols: ['chat.v1'],
 *   headers: { authorization: 'Bearer secret' },
 * });
 * await conn.write(MessageType.Text, 'hello');
 * const { data } = await conn.read({ signal: AbortSignal.timeout(5000) });
 * console.log(conn.subprotocol, new TextDecoder().decode(data));
 * await conn.close(1000, 'bye');
 * ```
 */
export async function dial(url: string | URL, opts: DialOptions = {}): Promise<Conn> {
  const target = parseTarget(url);
  const { signal, dispatcher } = opts;
  const timeout = checkTimeout(opts.handshakeTimeout ?? defaultHandshakeTimeout);
  const subprotocols = checkSubprotocols(opts.subprotocols ?? []);
  const compression = checkCompression(opts.compressionMode ?? CompressionMode.Disabled);
  checkConnOptions(opts);
  const key = randomBytes(16).toString('base64');
  const headers = requestHeaders(opts, target, key, subprotocols, compression);
  signal?.throwIfAborted();
  const where = `${target.origin}${target.pathname}`;
  const offer: Offer = { key, subprotocols, compression, where, connOptions: connOptionsOf(opts) };
  const request: Dispatcher.DispatchOptions = {
    origin: `${httpScheme.get(target.protocol)}//${target.host}`,
    path: `${target.pathname}${target.search}`,
    method: 'GET',
    headers,
    upgrade: 'websocket',
  };
  return handshake(dispatcher ?? getGlobalDispatcher(), request, offer, signal, timeout);
}

/** The Conn's options out of dial's, so the Conn holds no reference to the signal, dispatcher or headers. */
function connOptionsOf(opts: DialOptions): ConnOptions {
  const { signal, headers, host, subprotocols, dispatcher, handshakeTimeout, compressionMode, ...connOptions } = opts;
  return connOptions;
}

/** Parses and checks the URL to dial (RFC 6455 §3). */
function parseTarget(url: string | URL): URL {
  let target: URL;
  try {
    target = new URL(url);
  } catch (err) {
    throw new TypeError(`dial: invalid URL ${JSON.stringify(String(url))}`, { cause: err });
  }
  if (!httpScheme.has(target.protocol)) {
    throw new TypeError(`dial: unsupported URL scheme ${JSON.stringify(target.protocol)}; use ws:, wss:, http: or https:`);
  }
  // RFC 6455 §3: fragment identifiers are meaningless here and must not be used.
  if (target.hash !== '' || target.href.endsWith('#')) {
    throw new TypeError('dial: a WebSocket URL must not have a fragment (RFC 6455 §3)');
  }
  return target;
}

function checkTimeout(ms: number): number {
  if (typeof ms !== 'number' || !(ms > 0) || (Number.isFinite(ms) && ms > maxTimerDelay)) {
    throw new RangeError(`dial: handshakeTimeout must be a positive number of ms up to ${maxTimerDelay}, or Infinity`);
  }
  return ms;
}

/** Subprotocols must be distinct HTTP tokens (RFC 6455 §4.1, item 10). */
function checkSubprotocols(names: readonly string[]): readonly string[] {
  for (const name of names) {
    if (typeof name !== 'string' || !isToken(name)) {
      throw new TypeError(`dial: subprotocol ${JSON.stringify(name)} is not an HTTP token (RFC 6455 §4.1)`);
    }
  }
  if (new Set(names).size !== names.length) {
    throw new TypeError('dial: subprotocols must not repeat (RFC 6455 §4.1)');
  }
  return [...names];
}

function checkCompression(mode: string): CompressionMode {
  const modes: readonly string[] = Object.values(CompressionMode);
  if (!modes.includes(mode)) throw new TypeError(`dial: unknown compressionMode ${JSON.stringify(mode)}`);
  return mode as CompressionMode;
}

/** The request's headers, flattened as undici takes them; throws TypeError for invalid or reserved ones. */
function requestHeaders(
  opts: DialOptions,
  target: URL,
  key: string,
  subprotocols: readonly string[],
  compression: CompressionMode,
): string[] {
  const headers = new Headers(opts.headers);
  for (const name of headers.keys()) {
    if (reservedHeaders.has(name)) throw new TypeError(`dial: the ${name} header is set by dial and cannot be given`);
  }
  if (opts.host !== undefined) headers.set('host', opts.host);
  if ((target.username !== '' || target.password !== '') && !headers.has('authorization')) {
    const credentials = `${decodeURIComponent(target.username)}:${decodeURIComponent(target.password)}`;
    headers.set('authorization', `Basic ${Buffer.from(credentials).toString('base64')}`);
  }
  headers.set('sec-websocket-key', key);
  headers.set('sec-websocket-version', '13');
  if (subprotocols.length > 0) headers.set('sec-websocket-protocol', subprotocols.join(', '));
  const extensions = clientOffer(compression);
  if (extensions !== '') headers.set('sec-websocket-extensions', extensions);
  return [...headers].flat();
}

/** Sends the request and settles with the Conn or the failure, whichever comes first; cleans up after itself. */
function handshake(
  dispatcher: Dispatcher,
  request: Dispatcher.DispatchOptions,
  offer: Offer,
  signal: AbortSignal | undefined,
  timeoutMs: number,
): Promise<Conn> {
  const result = deferred<Conn>();
  let timer: NodeJS.Timeout | undefined;
  const onAbort = (): void => handler.cancel(signal?.reason);
  const handler = new UpgradeHandler(offer, result, () => {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  });
  signal?.addEventListener('abort', onAbort, { once: true });
  if (timeoutMs !== Infinity) timer = setTimeout(() => handler.timeOut(timeoutMs), timeoutMs);
  try {
    dispatcher.dispatch(request, handler);
  } catch (err) {
    handler.onError(err instanceof Error ? err : new Error(String(err)));
  }
  return result.promise;
}

/** A non-101 response being collected. */
interface Refusal {
  status: number;
  headers: Headers;
  body: Buffer[];
  size: number;
}

/**
 * Follows one upgrade request through undici and settles the dial. It
 * implements both of undici's handler interfaces; each callback funnels into
 * one private method. Whatever arrives after it has settled is dropped, and
 * a socket handed over late is destroyed.
 */
class UpgradeHandler implements Dispatcher.DispatchHandler {
  readonly #offer: Offer;
  readonly #result: Deferred<Conn>;
  readonly #cleanup: () => void;
  #settled = false;
  #abort: ((reason: Error) => void) | undefined;
  #refusal: Refusal | undefined;

  constructor(offer: Offer, result: Deferred<Conn>, cleanup: () => void) {
    this.#offer = offer;
    this.#result = result;
    this.#cleanup = cleanup;
  }

  // undici 7+ (controller) interface

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#started((reason) => controller.abort(reason));
  }

  onRequestUpgrade(_c: Dispatcher.DispatchController, status: number, headers: HeaderRecord, socket: Duplex): void {
    this.#upgraded(status, headersFromRecord(headers), socket);
  }

  onResponseStart(_c: Dispatcher.DispatchController, status: number, headers: HeaderRecord): void {
    this.#response(status, headersFromRecord(headers));
  }

  onResponseData(_c: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#data(chunk);
  }

  onResponseEnd(): void {
    this.#end();
  }

  onResponseError(_c: Dispatcher.DispatchController | undefined, err: Error): void {
    this.#error(err);
  }

  // undici 6 (callback) interface

  onConnect(abort: (err?: Error) => void): void {
    this.#started(abort);
  }

  onUpgrade(status: number, headers: RawHeaders, socket: Duplex): void {
    this.#upgraded(status, headersFromRaw(headers), socket);
  }

  onHeaders(status: number, headers: Buffer[]): boolean {
    this.#response(status, headersFromRaw(headers));
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.#data(chunk);
    return true;
  }

  onComplete(): void {
    this.#end();
  }

  onError(err: Error): void {
    this.#error(err);
  }

  // dial's side

  /** Rejects the dial with `reason` and drops the request (at once, or as soon as undici starts it). */
  cancel(reason: unknown): void {
    if (this.#settled) return;
    this.#reject(reason);
    this.#abort?.(reason instanceof Error ? reason : new Error('WebSocket handshake cancelled'));
  }

  /** Gives up because `handshakeTimeout` ran out; a refusal being read is reported with what arrived of it. */
  timeOut(ms: number): void {
    const timeout = new DOMException(`the WebSocket handshake took longer than ${ms} ms`, 'TimeoutError');
    const error = this.#refusal !== undefined
      ? this.#refusalError(this.#refusal, timeout)
      : new HandshakeError(`dial ${this.#offer.where}: ${timeout.message}`, { status: 0 }, { cause: timeout });
    this.cancel(error);
  }

  // the shared path

  #started(abort: (reason: Error) => void): void {
    this.#abort = abort;
    // Cancelled before undici had a connection to drop: drop it now.
    if (this.#settled) abort(new Error('WebSocket handshake cancelled'));
  }

  #response(status: number, headers: Headers): void {
    if (this.#settled) return;
    if (status === 101) {
      // undici reports a 101 here, not as an upgrade, when it lacks Upgrade or Connection.
      const verdict = verifyUpgrade(status, headers, this.#offer);
      this.#fail(status, headers, typeof verdict === 'string' ? verdict : 'undici did not take the 101 as an upgrade');
      return;
    }
    if (status >= 100 && status < 200) return; // interim (such as 103 Early Hints): the final one follows
    this.#refusal = { status, headers, body: [], size: 0 };
  }

  #data(chunk: Buffer): void {
    const refusal = this.#refusal;
    if (this.#settled || refusal === undefined) return;
    const room = maxBodyBytes - refusal.size;
    refusal.body.push(chunk.subarray(0, room));
    refusal.size += Math.min(room, chunk.length);
    if (refusal.size < maxBodyBytes) return;
    // Enough to explain the refusal; the rest of the body is not worth waiting for.
    this.cancel(this.#refusalError(refusal));
  }

  #end(): void {
    if (this.#settled) return;
    if (this.#refusal !== undefined) this.#reject(this.#refusalError(this.#refusal));
    else this.#reject(new HandshakeError(`dial ${this.#offer.where}: the response ended without a status`, { status: 0 }));
  }

  #error(err: Error): void {
    if (this.#settled) return;
    if (this.#refusal !== undefined) {
      this.#reject(this.#refusalError(this.#refusal, err));
      return;
    }
    this.#reject(new HandshakeError(`dial ${this.#offer.where}: ${err.message}`, { status: 0 }, { cause: err }));
  }

  #upgraded(status: number, headers: Headers, socket: Duplex): void {
    if (this.#settled) {
      socket.destroy(); // undici has let go of it: it is ours to close
      return;
    }
    const verdict = verifyUpgrade(status, headers, this.#offer);
    if (typeof verdict === 'string') {
      socket.destroy();
      this.#fail(status, headers, verdict);
      return;
    }
    if (typeof (socket as { setNoDelay?: unknown }).setNoDelay === 'function') {
      (socket as Duplex & { setNoDelay(noDelay: boolean): unknown }).setNoDelay(true);
    }
    // undici has put the bytes that followed the 101 back into the socket
    // (socket.unshift), so they are the socket's first read: no `head` here.
    // The Conn is made right away, inside undici's callback: until it listens,
    // the socket has no 'error' listener at all.
    let conn: Conn;
    try {
      const { subprotocol, extensions, deflate } = verdict;
      conn = newConn({ socket, client: true, subprotocol, extensions, deflate, options: this.#offer.connOptions });
    } catch (err) {
      socket.destroy();
      this.#reject(err);
      return;
    }
    this.#settle();
    this.#result.resolve(conn);
  }

  #fail(status: number, headers: Headers, why: string): void {
    this.cancel(new HandshakeError(`dial ${this.#offer.where}: ${why}`, { status, headers }));
  }

  #refusalError(refusal: Refusal, cause?: unknown): HandshakeError {
    const { status, headers, body, size } = refusal;
    const bytes = Buffer.concat(body, size);
    // A body cut at the limit may end inside a character: decode as a stream to leave that out.
    const text = new TextDecoder().decode(bytes, { stream: size >= maxBodyBytes });
    const message = `dial ${this.#offer.where}: the server answered ${status} instead of 101 Switching Protocols`;
    return new HandshakeError(message, { status, headers, body: text }, cause === undefined ? undefined : { cause });
  }

  #reject(reason: unknown): void {
    this.#settle();
    this.#result.reject(reason);
  }

  #settle(): void {
    this.#settled = true;
    this.#cleanup();
  }
}

/**
 * Checks a `101 Switching Protocols` response (RFC 6455 §4.1, the client's
 * checks of the server's handshake). Returns the chosen subprotocol, or why
 * the connection must fail.
 */
function verifyUpgrade(
  status: number,
  headers: Headers,
  offer: Offer,
): string | { subprotocol: string; extensions: string; deflate: DeflateParams | undefined } {
  if (status !== 101) return `expected 101 Switching Protocols, got ${status}`;
  if (!hasToken(headers.get('upgrade') ?? undefined, 'websocket')) {
    return 'the 101 response lacks "Upgrade: websocket" (RFC 6455 §4.1)';
  }
  if (!hasToken(headers.get('connection') ?? undefined, 'upgrade')) {
    return 'the 101 response lacks "Connection: Upgrade" (RFC 6455 §4.1)';
  }
  if (headers.get('sec-websocket-accept') !== acceptKey(offer.key)) {
    return 'Sec-WebSocket-Accept does not match the Sec-WebSocket-Key sent (RFC 6455 §4.1)';
  }
  const subprotocol = headers.get('sec-websocket-protocol');
  if (subprotocol !== null && !offer.subprotocols.includes(subprotocol)) {
    return `the server chose subprotocol ${JSON.stringify(subprotocol)}, which was not offered (RFC 6455 §4.1)`;
  }
  const extensions = headers.get('sec-websocket-extensions')?.trim() ?? '';
  let deflate: DeflateParams | undefined;
  try {
    // RFC 6455 §4.1 item 6 and RFC 7692 §5: only what was offered, valid.
    deflate = parseClientResponse(extensions === '' ? undefined : extensions, offer.compression);
  } catch (err) {
    return `${(err as Error).message} (RFC 7692 §5)`;
  }
  // A compressor may always reset its window; in this mode ours does,
  // whether or not the server acknowledged client_no_context_takeover.
  if (deflate !== undefined && offer.compression === CompressionMode.NoContextTakeover) {
    deflate.clientNoContextTakeover = true;
  }
  return { subprotocol: subprotocol ?? '', extensions: deflate === undefined ? '' : extensions, deflate };
}

type HeaderRecord = Record<string, string | string[] | undefined>;
type RawHeaders = Array<Buffer | string> | null;

/** Response headers as undici 7+ reports them (lower-case names, repeated ones as arrays). */
function headersFromRecord(record: HeaderRecord): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(record)) {
    if (value === undefined) continue;
    for (const item of typeof value === 'string' ? [value] : value) appendHeader(headers, name, item);
  }
  return headers;
}

/** Response headers as undici 6 reports them: alternating raw names and values. */
function headersFromRaw(raw: RawHeaders): Headers {
  const headers = new Headers();
  for (let i = 0; raw !== null && i + 1 < raw.length; i += 2) {
    appendHeader(headers, latin1(raw[i]!), latin1(raw[i + 1]!));
  }
  return headers;
}

function latin1(field: Buffer | string): string {
  return typeof field === 'string' ? field : field.toString('latin1');
}

function appendHeader(headers: Headers, name: string, value: string): void {
  try {
    headers.append(name, value);
  } catch {
    // A field the Fetch standard cannot represent: not one the handshake needs.
  }
}
