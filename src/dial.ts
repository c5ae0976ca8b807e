/**
 * The client side of the opening handshake (RFC 6455 §4.1): the options,
 * the request and the choice of the path that carries it, an undici
 * `Dispatcher` (`internal/upgrade-undici.ts`) or dial's own connection
 * (`internal/upgrade-direct.ts`). Both report into one `Attempt`
 * (`internal/upgrade-attempt.ts`), which checks the answer and settles.
 * @module
 */
import { randomBytes } from 'node:crypto';
import type { Dispatcher } from 'undici';
import { clientOffer, CompressionMode } from './compress.js';
import type { Conn, ConnOptions } from './conn.js';
import { checkConnOptions } from './options.js';
import { isFieldValue, isToken, withoutHttpWhitespace } from './handshake.js';
import { deferred } from './internal/deferred.js';
import { Attempt, type Offer } from './internal/upgrade-attempt.js';
import { upgradeDirect } from './internal/upgrade-direct.js';
import type { TlsOptions } from './internal/h2-pool.js';
import { upgradeHttp2 } from './internal/upgrade-http2.js';
import type { UpgradeRequest } from './internal/upgrade-request.js';
import { upgradeThrough } from './internal/upgrade-undici.js';

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
  /**
   * The undici dispatcher to send the request through (a proxy agent, TLS
   * settings, a mock). Without one, dial uses the global dispatcher if the
   * application installed one with `setGlobalDispatcher()` that is not a
   * plain `Agent` (one composed with interceptors is used), and otherwise opens
   * the connection itself (see {@link dial}). A global `Agent`, with or
   * without options, is bypassed: pass it here to use it.
   */
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
  /**
   * WebSocket over HTTP/2 (RFC 8441). `'never'` (the default) always
   * upgrades an HTTP/1.1 connection, as before. `'auto'`, for `wss:`,
   * offers `h2` in ALPN and uses an extended CONNECT when the server's
   * SETTINGS enable it, else falls back to HTTP/1.1 (and remembers that for
   * the idle timeout); for `ws:` it is `'never'`, since cleartext HTTP/2
   * needs prior knowledge. `'always'` uses HTTP/2 or fails (with prior
   * knowledge over `ws:`). Over HTTP/2, connection-specific headers given in
   * `headers` (`TE` other than `trailers`, `Proxy-Connection`,
   * `HTTP2-Settings`) are left out (RFC 9113 §8.2.2). Dials to one origin with the same `host` and
   * the same `tls` object (or none) share one HTTP/2 session. Not with a
   * `dispatcher`.
   * @see RFC 8441 §3–§5
   */
  http2?: 'auto' | 'always' | 'never';
  /**
   * How long, in ms, a pooled HTTP/2 session stays open after its last
   * WebSocket closed, for the next dial to reuse. Default 5000. An idle
   * session does not keep the process alive.
   */
  http2IdleTimeout?: number;
  /**
   * TLS settings for the connections dial opens itself (`ca`, `cert`,
   * `key`, `rejectUnauthorized`, `servername` …), over HTTP/1.1 and HTTP/2.
   * With a `dispatcher`, configure TLS there instead.
   */
  tls?: TlsOptions;
}

/** How long an idle HTTP/2 session stays open by default, in ms. */
const defaultHttp2IdleTimeout = 5000;

/** How long a handshake may take by default, in ms. */
const defaultHandshakeTimeout = 30_000;

/** The largest delay `setTimeout` honours (a larger one fires at once). */
const maxTimerDelay = 2 ** 31 - 1;

/** The schemes dial accepts (RFC 6455 §3: ws and wss ride on http and https). */
const schemes = new Set(['ws:', 'wss:', 'http:', 'https:']);

/**
 * Where undici keeps the global dispatcher, on `globalThis`, in the order
 * dial reads them: the slot undici 8 keeps its own in, then the one that
 * undici 6 and 7 and Node's built-in `fetch()` read and write (undici 7
 * writes the same dispatcher to both; undici 8 leaves a `Dispatcher1Wrapper`
 * for older readers there). dial only reads them, so importing wsconn
 * neither loads undici (about 4 MB of heap that a server which only accepts
 * would carry) nor installs a dispatcher.
 */
const globalDispatcherSlots = [Symbol.for('undici.globalDispatcher.2'), Symbol.for('undici.globalDispatcher.1')] as const;

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

/**
 * Opens a WebSocket connection to `url` (`ws:`, `wss:`, `http:` or
 * `https:`) and resolves once the server has accepted it.
 *
 * The upgrade request goes through an undici `Dispatcher` when
 * `opts.dispatcher` is given, or when the application installed a global
 * one with undici's `setGlobalDispatcher()` that is not a plain `Agent` (a
 * `ProxyAgent`, `EnvHttpProxyAgent`, `MockAgent`, an `Agent` composed with
 * interceptors, a subclass of `Agent`, a custom dispatcher), so what is
 * configured there applies. Otherwise (no global dispatcher, or a plain
 * `Agent` such as the default one that importing undici or calling
 * `fetch()` installs) dial opens the TCP or TLS connection itself and
 * writes the same request: no undici pool or request objects, about half
 * the client CPU per handshake. An `Agent` made with options (TLS settings,
 * say) applies only when passed as `opts.dispatcher`; `opts.tls`
 * configures dial's own connection. Importing wsconn does not load undici,
 * and a successful dial does not install a global dispatcher; reading a
 * refusal's `HandshakeError.headers` (a global `Headers`) makes Node load
 * its fetch implementation, which installs Node's default `Agent` there.
 * All paths fail alike. The server's `101` response is checked
 * as RFC 6455 §4.1 requires: `Upgrade: websocket`, `Connection: Upgrade`,
 * the `Sec-WebSocket-Accept` that matches our key, a subprotocol we offered
 * (or none) and no extensions. Bytes the server sent right after its
 * response are kept for the first read. Credentials in the URL are sent as
 * Basic `authorization` unless `opts.headers` has one. With `opts.http2`
 * (`'auto'` or `'always'`), the WebSocket may instead be an extended
 * CONNECT stream on a shared HTTP/2 session (RFC 8441): the server's `200`
 * is checked for a subprotocol and extensions we offered, and there is no
 * key or accept value.
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
  const { signal } = opts;
  const timeout = checkTimeout(opts.handshakeTimeout ?? defaultHandshakeTimeout);
  const subprotocols = checkSubprotocols(opts.subprotocols ?? []);
  const compression = checkCompression(opts.compressionMode ?? CompressionMode.Disabled);
  checkConnOptions(opts);
  const key = randomBytes(16).toString('base64');
  const headers = requestHeaders(opts, target, key, subprotocols, compression);
  signal?.throwIfAborted();
  const where = `${target.origin}${target.pathname}`;
  const offer: Offer = { key, subprotocols, compression, where, connOptions: connOptionsOf(opts) };
  const request: UpgradeRequest = { target, headers, tls: opts.tls };
  return handshake(chooseStart(request, opts), offer, signal, timeout);
}

/** The path the request takes: a dispatcher, an HTTP/2 session (RFC 8441), or dial's own HTTP/1.1 connection. */
function chooseStart(request: UpgradeRequest, opts: DialOptions): (attempt: Attempt) => void {
  if (opts.tls !== undefined && (typeof opts.tls !== 'object' || opts.tls === null)) {
    throw new TypeError('dial: tls must be an object of tls.connect() options');
  }
  const mode = opts.http2 ?? 'never';
  if (mode !== 'auto' && mode !== 'always' && mode !== 'never') {
    throw new TypeError(`dial: http2 must be 'auto', 'always' or 'never', got ${JSON.stringify(mode)}`);
  }
  const idleTimeout = opts.http2IdleTimeout ?? defaultHttp2IdleTimeout;
  if (!(idleTimeout >= 0 && idleTimeout <= maxTimerDelay)) {
    throw new RangeError(`dial: http2IdleTimeout must be a number of ms from 0 to ${maxTimerDelay}`);
  }
  if (opts.dispatcher !== undefined && (mode === 'always' || opts.tls !== undefined)) {
    throw new TypeError(`dial: ${opts.tls !== undefined ? 'tls' : "http2: 'always'"} cannot be used with a dispatcher`);
  }
  // A global dispatcher (a proxy, say) is not bypassed unless asked to: http2 'always' or own tls settings.
  const through = opts.dispatcher ?? (mode === 'always' || opts.tls !== undefined ? undefined : configuredGlobalDispatcher());
  if (through !== undefined) return (attempt) => upgradeThrough(through, request, attempt);
  const secure = request.target.protocol === 'wss:' || request.target.protocol === 'https:';
  if (mode === 'never' || (mode === 'auto' && !secure)) return (attempt) => upgradeDirect(request, attempt);
  const h2 = { ...request, mode, tls: opts.tls, idleTimeout };
  return (attempt) => upgradeHttp2(h2, attempt, () => upgradeDirect(request, attempt));
}

/**
 * The global dispatcher the application chose: the first of the two slots
 * (undici 8's first) that holds neither undici 8's wrapper nor a plain
 * undici `Agent`, with or without options. A plain `Agent` is what undici
 * installs when it is first imported and what `fetch()` installs on its
 * first call; dial's own connection does the same job with about half the
 * CPU. Any other dispatcher (a `ProxyAgent`, a `MockAgent`, an `Agent`
 * composed with interceptors or subclassed, a custom one) is one the
 * application chose, and is used.
 */
function configuredGlobalDispatcher(): Dispatcher | undefined {
  const slots = globalThis as Record<symbol, Dispatcher | undefined>;
  // The second slot first: undici 8 keeps its own there. A slot another undici filled with its
  // default Agent (or undici 8's wrapper) does not hide a dispatcher chosen in the other one.
  for (const slot of globalDispatcherSlots) {
    const installed = slots[slot];
    if (installed === undefined || installed.constructor?.name === 'Dispatcher1Wrapper') continue;
    // By class name: npm's undici and the one bundled in Node have Agent classes of their own.
    // compose() returns a Proxy of the Agent whose dispatch is the interceptors' chain.
    const plainAgent = installed.constructor?.name === 'Agent' && installed.dispatch === Object.getPrototypeOf(installed)?.dispatch;
    if (!plainAgent) return installed;
  }
  return undefined;
}

/** Starts the handshake and settles with the Conn or the failure, whichever comes first; cleans up after itself. */
function handshake(
  start: (attempt: Attempt) => void,
  offer: Offer,
  signal: AbortSignal | undefined,
  timeoutMs: number,
): Promise<Conn> {
  const result = deferred<Conn>();
  let timer: NodeJS.Timeout | undefined;
  const onAbort = (): void => attempt.cancel(signal?.reason);
  const attempt = new Attempt(offer, result, () => {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  });
  signal?.addEventListener('abort', onAbort, { once: true });
  if (timeoutMs !== Infinity) timer = setTimeout(() => attempt.timeOut(timeoutMs), timeoutMs);
  try {
    start(attempt);
  } catch (err) {
    attempt.error(err instanceof Error ? err : new Error(String(err)));
  }
  return result.promise;
}

/** The Conn's options out of dial's, so the Conn holds no reference to the signal, dispatcher or headers. */
function connOptionsOf(opts: DialOptions): ConnOptions {
  const { signal, headers, host, subprotocols, dispatcher, handshakeTimeout, compressionMode, http2, http2IdleTimeout, tls, ...connOptions } = opts;
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
  if (!schemes.has(target.protocol)) {
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

/** The request's header fields (lower-case names); throws TypeError for invalid or reserved ones. */
function requestHeaders(
  opts: DialOptions,
  target: URL,
  key: string,
  subprotocols: readonly string[],
  compression: CompressionMode,
): Array<[string, string]> {
  const headers = givenHeaders(opts.headers);
  for (const name of headers.keys()) {
    if (reservedHeaders.has(name)) throw new TypeError(`dial: the ${name} header is set by dial and cannot be given`);
  }
  if (opts.host !== undefined) headers.set('host', checkedValue('host', String(opts.host)));
  if ((target.username !== '' || target.password !== '') && !headers.has('authorization')) {
    const credentials = `${decodeURIComponent(target.username)}:${decodeURIComponent(target.password)}`;
    headers.set('authorization', `Basic ${Buffer.from(credentials).toString('base64')}`);
  }
  headers.set('sec-websocket-key', key);
  headers.set('sec-websocket-version', '13');
  if (subprotocols.length > 0) headers.set('sec-websocket-protocol', subprotocols.join(', '));
  const extensions = clientOffer(compression);
  if (extensions !== '') headers.set('sec-websocket-extensions', extensions);
  return [...headers];
}

/**
 * The application's headers much as `new Headers(init)` would hold them:
 * lower-case names, values without surrounding whitespace, a repeated
 * name's values joined with ", " (with "; " for `cookie`, RFC 6265 §5.4).
 * Done here because the global `Headers` makes Node load its fetch
 * implementation, which installs its own default Agent as undici's global
 * dispatcher. Stricter than `Headers` in two ways: a value may hold no
 * control character (RFC 9110 §5.5), and each pair must be an array.
 */
function givenHeaders(init: DialOptions['headers']): Map<string, string> {
  const headers = new Map<string, string>();
  if (init === undefined) return headers;
  if (typeof init !== 'object' || init === null) throw new TypeError('dial: headers must be an object, a Headers or [name, value] pairs');
  let pairs: Iterable<unknown>;
  if (Symbol.iterator in init) pairs = init as Iterable<unknown>;
  else if (Object.getOwnPropertySymbols(init).length > 0) throw new TypeError('dial: a header name must be a string, not a symbol');
  else pairs = Object.entries(init);
  for (const pair of pairs) {
    if (!Array.isArray(pair) || pair.length !== 2) throw new TypeError('dial: each header must be a [name, value] pair');
    const name = headerString(pair[0]);
    // RFC 9110 §5.1: a field name is a token.
    if (!isToken(name)) throw new TypeError(`dial: header name ${JSON.stringify(name)} is not an HTTP token (RFC 9110 §5.1)`);
    const lower = name.toLowerCase();
    const value = checkedValue(lower, headerString(pair[1]));
    const earlier = headers.get(lower);
    headers.set(lower, earlier === undefined ? value : `${earlier}${lower === 'cookie' ? '; ' : ', '}${value}`);
  }
  return headers;
}

function headerString(item: unknown): string {
  if (typeof item === 'symbol') throw new TypeError('dial: a header name or value must not be a symbol');
  return String(item);
}

/**
 * `value` without leading and trailing whitespace (space, tab, CR, LF, as
 * the Fetch standard normalizes); throws TypeError unless what remains is a
 * field value (RFC 9110 §5.5: visible characters, spaces, tabs and obs-text,
 * so no NUL, CR or LF to inject a field with, and no other control
 * character) written as Latin-1 bytes (nothing above U+00FF).
 */
function checkedValue(name: string, value: string): string {
  const trimmed = withoutHttpWhitespace(value);
  if (!isFieldValue(trimmed)) {
    throw new TypeError(`dial: the value of header ${name} has a control character or a character above U+00FF (RFC 9110 §5.5)`);
  }
  return trimmed;
}
