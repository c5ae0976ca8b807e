/**
 * A server helper: turns an async per-connection handler into an
 * `'upgrade'` listener that routes by path, authenticates before the 101,
 * tracks its connections for a graceful shutdown and never lets an error
 * escape into the event emitter (where it would crash the process).
 * @module
 */
import type { IncomingMessage } from 'node:http';
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import { checkAcceptOptions, type AcceptOptions } from './accept.js';
import { isWebSocketConnect } from './accept-http2.js';
import { encodeClosePayload } from './close.js';
import type { Conn } from './conn.js';
import { HandshakeError } from './errors.js';
import { streamDoor, streamRequest, upgradeDoor, type Door } from './internal/door.js';
import type { RefuseUpgradeOptions } from './refuse.js';
import { ConnSet, type CloseAllOptions } from './shutdown.js';

/** What `authenticate` gets besides the request. */
export interface AuthenticateContext {
  /** The request's path, without the query (`/chat` for `/chat?room=1`). */
  readonly pathname: string;
  /**
   * Aborts when the client goes away, when `authenticateTimeout` passes or
   * when the listener is closed. Pass it to whatever the hook awaits.
   */
  readonly signal: AbortSignal;
  /**
   * Builds the refusal to throw: `throw refuse(401, { headers: { 'WWW-Authenticate': 'Bearer' } })`.
   * The client then gets that status, those headers and that body (see
   * `refuseUpgrade`), and the connection ends.
   */
  refuse(status: number, options?: RefuseUpgradeOptions): Error;
}

/** What the handler gets besides the connection. */
export interface UpgradeContext<T> {
  /** The upgrade request (its headers, `url`, `socket.remoteAddress`). */
  readonly req: IncomingMessage;
  /** The request's path, without the query. */
  readonly pathname: string;
  /** What `authenticate` returned (`undefined` without one). */
  readonly user: T;
  /** Aborts when the connection has closed or the listener starts shutting down. */
  readonly signal: AbortSignal;
}

/** Options of {@link createUpgradeListener}: its own, plus every option of `accept()`. */
export interface UpgradeListenerOptions<T> extends AcceptOptions {
  /**
   * The path (or paths) served, compared exactly with the request's path
   * without its query. Other paths are answered 404. Default: every path.
   */
  path?: string | readonly string[];
  /**
   * Runs after the request has passed the handshake and origin checks and
   * before the `101` is sent. Return (or resolve) the value the handler
   * gets as `user`; `throw refuse(status, …)` to answer 401, 403 or any
   * other error status. Any other throw is answered 500 and reported to
   * `onError`.
   */
  authenticate?: (req: IncomingMessage, ctx: AuthenticateContext) => T | Promise<T>;
  /** How long `authenticate` may take, in ms, before the client gets a 503. Default 10 000. */
  authenticateTimeout?: number;
  /**
   * Receives every refused upgrade (a `HandshakeError` whose `status` is
   * what was sent, 0 if the client went away) and every error the handler
   * or `authenticate` threw. It must not throw. Default: one line on
   * `console.warn`.
   */
  onError?: (error: Error, req: IncomingMessage) => void;
}

/**
 * An `'upgrade'` listener made by {@link createUpgradeListener}: call it
 * with an `'upgrade'` event's arguments (or pass it to `server.on`).
 */
export interface UpgradeListener {
  (req: IncomingMessage, socket: Duplex, head: Uint8Array): void;
  /**
   * The same listener for WebSockets over HTTP/2 (RFC 8441): call it from a
   * `node:http2` server's `'stream'` event. It takes an extended CONNECT
   * with `:protocol websocket` through the same steps (503, 404, the checks
   * of `acceptHttp2()`, `authenticate`, the handler, `conns`, `close()`)
   * and returns true; any other stream it leaves alone and returns false,
   * for your own code to answer. `authenticate`, the handler and `onError`
   * get an `IncomingMessage` describing the CONNECT: `method` `'CONNECT'`,
   * `url` from `:path`, `httpVersion` `'2.0'`, the headers with `host` set
   * from `:authority`, and the session's socket as `socket`.
   * @see RFC 8441 §4, §5
   * @example
   * ```ts
   * import { createSecureServer } from 'node:http2';
   * import { createUpgradeListener } from 'wsconn';
   *
   * declare const key: Buffer, cert: Buffer;
   * const server = createSecureServer({ key, cert, allowHTTP1: true, settings: { enableConnectProtocol: true } });
   * const listener = createUpgradeListener({ path: '/echo' }, async (conn) => {
   *   for await (const msg of conn) await conn.write(msg.type, msg.data);
   * });
   * server.on('upgrade', listener); // HTTP/1.1 clients
   * server.on('stream', (stream, headers) => {
   *   if (listener.stream(stream, headers)) return; // a WebSocket over HTTP/2
   *   stream.respond({ ':status': 404 });
   *   stream.end();
   * });
   * ```
   */
  readonly stream: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => boolean;
  /** The open connections, for broadcasting; they leave by themselves once closed. */
  readonly conns: ConnSet;
  /** True once `close()` has been called. */
  readonly closing: boolean;
  /**
   * Shuts down gracefully: new upgrades and those still authenticating are
   * answered 503, every open connection is closed with 1001 (or
   * `options.code`), and it resolves once they have closed and their
   * handlers have returned. When `options.signal` aborts, the connections
   * still open are dropped and it stops waiting for handlers. It does not
   * close the HTTP server: call `server.close()` too.
   * @throws RangeError for a code or reason `Conn.close()` refuses.
   */
  close(options?: CloseAllOptions): Promise<void>;
}

/** A handler of one accepted connection. When it returns the connection is closed with 1000; when it throws, with 1011. */
export type ConnHandler<T> = (conn: Conn, ctx: UpgradeContext<T>) => void | Promise<void>;

/** Everything one listener shares between its upgrades. */
interface State<T> {
  readonly options: UpgradeListenerOptions<T>;
  readonly handler: ConnHandler<T>;
  readonly paths: ReadonlySet<string> | undefined;
  readonly conns: ConnSet;
  /** Aborted by close(): authentications in progress and handlers' signals. */
  readonly shutdown: AbortController;
  readonly tasks: Set<Promise<void>>;
  /** The errors `refuse()` built, with the response they stand for. */
  readonly refusals: WeakMap<Error, RefuseUpgradeOptions>;
}

const defaultAuthenticateTimeout = 10_000;

/**
 * Turns an async per-connection handler into an `'upgrade'` listener for a
 * node:http or node:https server, like `ws`'s
 * `WebSocketServer({ server, path, verifyClient })` but promise-first.
 *
 * For each upgrade request it answers 503 once shutting down, 404 for a
 * path not in `options.path`, then the refusals of `accept()` (400, 403,
 * 405, 426), then runs `authenticate` (whose refusal or failure is
 * answered before any `101`), accepts, and calls `handler(conn, ctx)`.
 * Nothing escapes: refusals and thrown errors go to `onError`, a handler
 * that throws gets its connection closed with 1011, and one that returns
 * gets it closed with 1000 if it is still open. Every connection is tracked
 * in `conns` so that `close()` can shut them all down with 1001.
 *
 * One listener serves one server; for several endpoints, list their paths
 * and switch on `ctx.pathname`.
 *
 * @throws Error for invalid `accept()` options, when it is created (not for
 * each request).
 * @see RFC 6455 §4.2
 * @example
 * ```ts
 * import { createServer } from 'node:http';
 * import { createUpgradeListener } from 'wsconn';
 *
 * const server = createServer();
 * const listener = createUpgradeListener(
 *   {
 *     path: '/echo',
 *     authenticate: (req, { refuse }) => {
 *       const name = req.headers['x-user'];
 *       if (typeof name !== 'string') throw refuse(401, { headers: { 'WWW-Authenticate': 'X-User' } });
 *       return { name };
 *     },
 *   },
 *   async (conn, { user }) => {
 *     await conn.write(1, `hello, ${user.name}`);
 *     for await (const msg of conn) await conn.write(msg.type, msg.data);
 *   },
 * );
 * server.on('upgrade', listener);
 * server.listen(8080);
 * process.once('SIGTERM', async () => {
 *   server.close();
 *   await listener.close({ signal: AbortSignal.timeout(10_000) });
 * });
 * ```
 */
export function createUpgradeListener<T = undefined>(
  options: UpgradeListenerOptions<T>,
  handler: ConnHandler<T>,
): UpgradeListener {
  checkAcceptOptions(options);
  const timeout = options.authenticateTimeout ?? defaultAuthenticateTimeout;
  if (!Number.isFinite(timeout) || timeout <= 0) {
    throw new RangeError(`createUpgradeListener: authenticateTimeout must be a positive number of ms, not ${timeout}`);
  }
  const { path } = options;
  const state: State<T> = {
    options,
    handler,
    paths: path === undefined ? undefined : new Set(typeof path === 'string' ? [path] : path),
    conns: new ConnSet(),
    shutdown: new AbortController(),
    tasks: new Set(),
    refusals: new WeakMap(),
  };
  const start = (req: IncomingMessage, door: Door, head: Uint8Array): void => {
    const task = serve(state, req, door, head).catch((err: unknown) => report(state, err, req));
    state.tasks.add(task);
    void task.then(() => state.tasks.delete(task));
  };
  const listener = (req: IncomingMessage, socket: Duplex, head: Uint8Array): void => {
    start(req, upgradeDoor(req, socket, options), head);
  };
  const stream = (http2Stream: ServerHttp2Stream, headers: IncomingHttpHeaders): boolean => {
    if (!isWebSocketConnect(headers)) return false;
    start(streamRequest(http2Stream, headers), streamDoor(http2Stream, headers, options), new Uint8Array(0));
    return true;
  };
  return Object.defineProperties(listener, {
    stream: { value: stream, enumerable: true },
    conns: { value: state.conns, enumerable: true },
    closing: { get: () => state.shutdown.signal.aborted, enumerable: true },
    close: { value: (closeOptions?: CloseAllOptions) => shutDown(state, closeOptions) },
  }) as UpgradeListener;
}

/** Handles one upgrade from the request to the handler's end; throws what onError should see. */
async function serve<T>(state: State<T>, req: IncomingMessage, door: Door, head: Uint8Array): Promise<void> {
  const pathname = pathnameOf(req.url);
  const { conn, user } = await handshake(state, req, door, head, pathname);
  await run(state, conn, { req, pathname, user });
}

/** Bytes a client may send while `authenticate` runs before we stop reading (TCP then pushes back). */
const earlyBytesLimit = 64 * 1024;

/** Everything before the handler: routing, checks, authentication, the 101. */
async function handshake<T>(
  state: State<T>,
  req: IncomingMessage,
  door: Door,
  head: Uint8Array,
  pathname: string,
): Promise<{ conn: Conn; user: T }> {
  const { socket } = door;
  // Until a Conn owns the socket, a reset must not crash the process.
  const ignoreError = (): void => {};
  socket.on('error', ignoreError);
  try {
    if (state.shutdown.signal.aborted) throw shuttingDown(door);
    if (state.paths !== undefined && !state.paths.has(pathname)) {
      throw door.refuse(404, { body: 'no WebSocket endpoint at this path\n' });
    }
    // The checks of accept(), before authenticate runs on a request we would refuse anyway.
    const refusal = door.verify();
    if (refusal !== undefined) {
      throw door.refuse(refusal.status, { headers: refusal.headers, body: `${refusal.reason}\n` });
    }
    const { user, early } = await authenticate(state, req, door, pathname);
    if (state.shutdown.signal.aborted) throw shuttingDown(door);
    const start = early.length === 0 ? head : Buffer.concat([head, ...early]);
    return { conn: state.conns.add(await door.open(start)), user };
  } finally {
    socket.off('error', ignoreError);
  }
}

/**
 * Runs the handler, then closes the connection: 1000 if it returned, 1011
 * if it threw (reporting the error at once, not after the close handshake).
 */
async function run<T>(state: State<T>, conn: Conn, ctx: Omit<UpgradeContext<T>, 'signal'>): Promise<void> {
  const controller = new AbortController();
  const abort = (): void => controller.abort(state.shutdown.signal.reason);
  state.shutdown.signal.addEventListener('abort', abort, { once: true });
  void conn.closed.then(() => controller.abort(new Error('the WebSocket connection has closed')));
  let code = 1000;
  try {
    await state.handler(conn, { ...ctx, signal: controller.signal });
  } catch (err) {
    code = 1011;
    report(state, err, ctx.req);
  } finally {
    state.shutdown.signal.removeEventListener('abort', abort);
  }
  // Idempotent: a connection that already ended just settles.
  await conn.close(code, code === 1011 ? 'internal error' : '');
}

/**
 * Runs `authenticate`, raced with the client going away, the timeout and
 * shutdown. Returns the user and the bytes that arrived meanwhile; throws a
 * HandshakeError once the refusal is sent, or what `authenticate` threw
 * once 500 is sent.
 */
async function authenticate<T>(
  state: State<T>,
  req: IncomingMessage,
  door: Door,
  pathname: string,
): Promise<{ user: T; early: Uint8Array[] }> {
  const { socket } = door;
  const hook = state.options.authenticate;
  if (hook === undefined) return { user: undefined as T, early: [] };
  const controller = new AbortController();
  const onShutdown = (): void => controller.abort(state.shutdown.signal.reason);
  const timeout = state.options.authenticateTimeout ?? defaultAuthenticateTimeout;
  const timer = setTimeout(() => controller.abort(new DOMException('authenticate timed out', 'TimeoutError')), timeout);
  const watch = watchSocket(socket, () => controller.abort(new Error('the client went away during authentication')));
  state.shutdown.signal.addEventListener('abort', onShutdown, { once: true });
  const refuse = (status: number, options: RefuseUpgradeOptions = {}): Error => {
    const error = new HandshakeError(`refused by authenticate with ${status}`, { status });
    state.refusals.set(error, options);
    return error;
  };
  try {
    const ctx: AuthenticateContext = { pathname, signal: controller.signal, refuse };
    const result = Promise.resolve().then(() => hook(req, ctx));
    const user = await raceAbort(result, controller.signal);
    return { user, early: watch.stop() };
  } catch (err) {
    watch.stop();
    throw authenticationFailed(state, door, err, controller.signal, watch.gone);
  } finally {
    clearTimeout(timer);
    state.shutdown.signal.removeEventListener('abort', onShutdown);
  }
}

/**
 * Reads the socket while `authenticate` runs, so that a client that closes
 * is noticed (a paused socket reports neither its FIN nor, on a server
 * that allows half-open connections, its close). What arrives meanwhile is
 * kept for the Conn; past `earlyBytesLimit` the socket is paused.
 */
function watchSocket(socket: Duplex, onGone: () => void): { stop(): Uint8Array[]; readonly gone: boolean } {
  const early: Uint8Array[] = [];
  let size = 0;
  let gone = false;
  const onData = (chunk: Uint8Array): void => {
    early.push(chunk);
    size += chunk.length;
    if (size >= earlyBytesLimit) socket.pause();
  };
  const onEnd = (): void => {
    gone = true;
    onGone();
  };
  socket.on('data', onData);
  socket.once('end', onEnd);
  socket.once('close', onEnd);
  return {
    stop(): Uint8Array[] {
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.pause();
      return early;
    },
    get gone(): boolean {
      return gone;
    },
  };
}

/** Answers a failed authentication and returns the error to report. */
function authenticationFailed<T>(state: State<T>, door: Door, err: unknown, signal: AbortSignal, gone: boolean): Error {
  const { socket } = door;
  if (gone || socket.destroyed) {
    socket.destroy();
    return new HandshakeError('the client went away during authentication', { status: 0 }, { cause: err });
  }
  if (signal.aborted && err === signal.reason) {
    if (state.shutdown.signal.aborted) return shuttingDown(door);
    return door.refuse(503, { headers: { 'Retry-After': '1' }, body: 'authentication took too long\n' });
  }
  const refusal = err instanceof HandshakeError ? state.refusals.get(err) : undefined;
  if (refusal !== undefined) {
    try {
      return door.refuse((err as HandshakeError).status, refusal);
    } catch (invalid) {
      return invalid as Error; // refuseUpgrade destroyed the socket
    }
  }
  door.refuse(500, { body: 'authentication failed\n' });
  return asError(err);
}

/** Settles like `promise`, or rejects with `signal.reason` once it aborts; a later rejection of `promise` is ignored. */
function raceAbort<R>(promise: Promise<R>, signal: AbortSignal): Promise<R> {
  promise.catch(() => {});
  return new Promise<R>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    if (signal.aborted) onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function shuttingDown(door: Door): HandshakeError {
  return door.refuse(503, { headers: { 'Retry-After': '5' }, body: 'the server is shutting down\n' });
}

/** Closes the listener: see `UpgradeListener.close`. */
async function shutDown<T>(state: State<T>, options: CloseAllOptions = {}): Promise<void> {
  const code = options.code ?? 1001;
  if (code === 1005) throw new RangeError('close code 1005 may not be sent');
  encodeClosePayload(code, options.reason ?? ''); // throws RangeError before anything is closed
  state.shutdown.abort(new Error('the server is shutting down'));
  await state.conns.closeAll(options);
  const { signal } = options;
  // Handlers see their connection end and return; wait for them unless told to stop.
  const handlers = Promise.allSettled([...state.tasks]);
  if (signal === undefined) await handlers;
  else if (!signal.aborted) await raceAbort(handlers, signal).catch(() => {});
}

/** The path of a request target, without query or fragment: origin-form or absolute-form (RFC 9112 §3.2). */
function pathnameOf(url: string | undefined): string {
  if (url === undefined) return '';
  if (url.startsWith('/')) {
    const end = url.search(/[?#]/);
    return end < 0 ? url : url.slice(0, end);
  }
  try {
    return new URL(url).pathname;
  } catch {
    return '';
  }
}

/** Passes `err` to onError (or the default warning); onError's own failures are contained. */
function report<T>(state: State<T>, err: unknown, req: IncomingMessage): void {
  const error = asError(err);
  try {
    (state.options.onError ?? warn)(error, req);
  } catch (failure) {
    warn(asError(failure), req);
  }
}

/** The default onError: one line, such as `wsconn: GET /chat from 127.0.0.1: HandshakeError: …`. */
function warn(error: Error, req: IncomingMessage): void {
  const from = req.socket?.remoteAddress ?? 'unknown';
  const line = `wsconn: ${req.method ?? '?'} ${(req.url ?? '').slice(0, 100)} from ${from}: ${error.name}: ${error.message}`;
  console.warn(line.replace(/[\r\n]+/g, ' ').slice(0, 300));
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(`a non-Error was thrown: ${String(err)}`, { cause: err });
}
