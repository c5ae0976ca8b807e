/**
 * The browser build's `dial()`: opens the platform's `WebSocket` and wraps
 * it in a Conn.
 * @module
 */
import { HandshakeError } from '../errors.js';
import { checkDelay, checkSize, Conn, type BrowserConnOptions } from './conn.js';
import { globalWebSocket, type PlatformEvent, type PlatformWebSocket, type PlatformWebSocketConstructor } from './platform.js';

/** Options of the browser build's {@link dial}. */
export interface DialOptions extends BrowserConnOptions {
  /**
   * Bounds the opening handshake only. Aborting rejects with `signal.reason`
   * itself and closes the socket being opened.
   */
  signal?: AbortSignal;
  /** Subprotocols to offer, most preferred first; `conn.subprotocol` is `''` when the server chose none. */
  subprotocols?: string[];
  /**
   * The most time, in ms, the handshake may take, even with no `signal`.
   * Default 30000, as in Node; `Infinity` for none. When it runs out, dial
   * rejects with a `HandshakeError` whose `cause` is a `TimeoutError` DOMException.
   */
  handshakeTimeout?: number;
  /**
   * Accepted and checked for the Node build's sake; a no-op here (see `Conn.setReadLimit`).
   */
  readLimit?: number;
  /**
   * The `WebSocket` class to use instead of the global one: a polyfill, or
   * undici's `WebSocket` to run the browser build in Node 20.
   */
  webSocket?: PlatformWebSocketConstructor;
}

/** The Node build's options that the WebSocket API has no way to honour, and why. */
const unsupported: Record<string, string> = {
  headers: 'the WebSocket API cannot set request headers',
  host: 'the WebSocket API cannot set the Host header',
  dispatcher: 'the browser opens the connection itself',
  compressionMode: 'the browser decides compression itself (see conn.extensions)',
  compressionThreshold: 'the browser decides compression itself',
  keepalive: 'the WebSocket API cannot send pings',
  onPingReceived: 'the WebSocket API does not report pings',
  onPongReceived: 'the WebSocket API does not report pongs',
};

const defaultHandshakeTimeout = 30_000;

/**
 * Opens a WebSocket connection with the platform's `WebSocket` (a
 * browser's, Deno's, Bun's, a worker's or Node 22's global, or
 * `options.webSocket`) and resolves with a Conn once it is open.
 *
 * A failed handshake rejects with a `HandshakeError` whose `status` is 0:
 * the WebSocket API reports only that the connection failed, never the
 * server's status, headers or body (look in the browser's network panel).
 *
 * @throws TypeError for an option of the Node build the WebSocket API
 * cannot honour (`headers`, `host`, `dispatcher`, `compressionMode`,
 * `keepalive`, …), naming it, or when there is no `WebSocket` global.
 * @throws SyntaxError (a DOMException) for a URL the WebSocket API refuses.
 * @throws HandshakeError with `status` 0 when the connection failed or timed out.
 * @see RFC 6455 §4.1
 * @example
 * ```ts
 * import { dial, MessageType } from 'wsconn';
 * const conn = await dial('wss://example.com/feed', { signal: AbortSignal.timeout(10_000) });
 * await conn.write(MessageType.Text, 'hi');
 * const { data } = await conn.read();
 * await conn.close(1000, 'bye');
 * ```
 */
export async function dial(url: string | URL, options: DialOptions = {}): Promise<Conn> {
  const { signal } = options;
  if (signal?.aborted) throw signal.reason;
  checkOptions(options);
  const WebSocketClass = options.webSocket ?? globalWebSocket();
  if (WebSocketClass === undefined) throw new TypeError('this runtime has no WebSocket global: pass options.webSocket, or use the Node build');
  const ws = new WebSocketClass(String(url), options.subprotocols ?? []);
  ws.binaryType = 'arraybuffer';
  const conn = new Conn(ws, options);
  await opened(ws, signal, options.handshakeTimeout ?? defaultHandshakeTimeout);
  return conn;
}

function checkOptions(options: DialOptions): void {
  for (const [name, why] of Object.entries(unsupported)) {
    if ((options as Record<string, unknown>)[name] !== undefined) throw new TypeError(`dial option '${name}' is not available in the browser build: ${why}`);
  }
  checkDelay('closeTimeout', options.closeTimeout);
  checkSize('readQueueLimit', options.readQueueLimit);
  checkSize('writeBufferLimit', options.writeBufferLimit);
  const timeout = options.handshakeTimeout;
  if (timeout !== undefined && timeout !== Infinity) checkDelay('handshakeTimeout', timeout);
  const limit = options.readLimit;
  if (limit !== undefined && limit !== -1 && limit !== Infinity && !(Number.isSafeInteger(limit) && limit >= 0)) {
    throw new RangeError(`read limit must be a non-negative integer, -1 or Infinity, got ${limit}`);
  }
}

/** Resolves on `open`; rejects on failure, abort or timeout, closing the socket. Removes its listeners either way. */
function opened(ws: PlatformWebSocket, signal: AbortSignal | undefined, timeout: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const settle = (error?: unknown): void => {
      ws.removeEventListener('open', onOpen);
      ws.removeEventListener('close', onFailed);
      signal?.removeEventListener('abort', onAbort);
      clearTimeout(timer);
      if (error === undefined) return resolve();
      if (ws.readyState < 2) ws.close();
      reject(error);
    };
    const onOpen = (): void => settle();
    // 'error' is always followed by 'close' before open: one listener sees both.
    const onFailed = (event: PlatformEvent): void =>
      settle(new HandshakeError(`the WebSocket handshake failed (close code ${event.code ?? 1006}); the WebSocket API does not say why`, { status: 0 }));
    const onAbort = (): void => settle(signal!.reason);
    const onTimeout = (): void =>
      settle(new HandshakeError(`the WebSocket handshake took over ${timeout} ms`, { status: 0 }, { cause: new DOMException('handshake timed out', 'TimeoutError') }));
    const timer = timeout === Infinity ? undefined : setTimeout(onTimeout, timeout);
    ws.addEventListener('open', onOpen);
    ws.addEventListener('close', onFailed);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
