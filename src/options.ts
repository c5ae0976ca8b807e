/**
 * The types and options a Conn is used with, and the checks of their values.
 * @module
 */
import { isUtf8 } from 'node:buffer';
import type { Duplex } from 'node:stream';
import type { DeflateParams } from './internal/deflate-params.js';
import { MessageType, type SignalOptions } from './message.js';

export { MessageType, type Message, type MessageReader, type SignalOptions } from './message.js';

/** Options of `Conn.closeRead()`. */
export interface CloseReadOptions {
  /** Aborting it stops the background reading (the connection stays open). */
  signal?: AbortSignal;
}

/** @internal What `accept()` and `dial()` hand to a new Conn. */
export interface ConnInit {
  socket: Duplex;
  /** Bytes that arrived after the handshake, read before anything else. */
  head?: Uint8Array;
  /** True on the dialing side: we mask, and the peer must not. */
  client: boolean;
  subprotocol: string;
  extensions: string;
  /** The permessage-deflate parameters agreed, when compression was negotiated. */
  deflate?: DeflateParams | undefined;
  options: ConnOptions;
  /**
   * How the close handshake ends and drops `socket`, when that is not a
   * plain `end()`/`destroy()`: an HTTP/2 stream (RFC 8441 §5).
   */
  transport?: Transport | undefined;
}

/** @internal What the close handshake does to the transport: end our side (a FIN) or drop it (a reset). */
export interface Transport {
  readonly writable: boolean;
  end(): unknown;
  /** True once `end()` was called (Node's streams have it): it is not called again. */
  readonly writableEnded?: boolean;
  destroy(): unknown;
  /** Why the transport ended without a close frame, when it knows (an HTTP/2 stream's reset code). */
  failure?(): Error | undefined;
  /**
   * True when the client need not wait for the server to end the transport
   * first once close frames crossed (RFC 6455 §7.1.1 asks that over TCP,
   * for TIME_WAIT's sake; an HTTP/2 stream has none).
   */
  readonly endsEitherWay?: boolean;
}

/** Options of `write()` and `writer()`. */
export interface WriteOptions extends SignalOptions {
  /**
   * Compress this message (true) or not (false), when permessage-deflate
   * was negotiated. By default a `write()` is compressed when it is at
   * least `compressionThreshold` bytes long, and a `writer()` always is.
   */
  compress?: boolean;
}

/** Options of a connection, accepted by both `accept()` and `dial()`. */
export interface ConnOptions {
  /**
   * The largest message `read()` or `reader()` will take, in bytes; -1 or
   * `Infinity` for no limit. Default 32 KiB (`defaultReadLimit`). A bigger message closes
   * the connection with 1009 and rejects the read with `MessageTooBigError`.
   */
  readLimit?: number;
  /**
   * Called with the payload of each ping received. Return `false` to send
   * no pong for it. Both hooks are looked up when the connection is made:
   * set them before `accept()` or `dial()`.
   */
  onPingReceived?: (payload: Uint8Array) => boolean | void;
  /** Called with the payload of each pong received. */
  onPongReceived?: (payload: Uint8Array) => void;
  /**
   * How long, in ms, each of the two waits of the close handshake lasts: for
   * the peer's close frame, then for the peer to close the TCP connection.
   * Default 5000.
   */
  closeTimeout?: number;
  /**
   * With permessage-deflate negotiated, `write()` compresses messages of at
   * least this many bytes. Default 128 with context takeover, 512 without:
   * shorter messages gain too little to be worth the CPU.
   */
  compressionThreshold?: number;
  /**
   * Dead-peer detection: every `interval` ms a ping is sent, and if its pong
   * has not arrived `timeout` ms later the connection is dropped (`closed`
   * then reports 1006 with a `ClosedError` saying so). Pongs are seen while
   * input flows: a connection whose unread messages fill its receive
   * buffer (64 KiB) sees none until it reads. Off by default.
   */
  keepalive?: {
    /** Milliseconds from one ping to the next. */
    interval: number;
    /** Milliseconds to wait for a ping's pong before dropping the connection. */
    timeout: number;
  };
}

/**
 * The default read limit: 32 KiB. `read()` holds a whole message in memory,
 * so the limit is what one connection can make the process hold; at 32 KiB,
 * ten thousand connections cost at most about 320 MiB. Raise it per
 * connection with `readLimit` or `setReadLimit()`.
 */
export const defaultReadLimit = 32 * 1024;

/** The read limit for a `readLimit` value: -1 means none. */
export function checkLimit(n: number): number {
  if (n === -1 || n === Infinity) return Infinity;
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RangeError(`read limit must be a non-negative integer, -1 or Infinity, got ${n}`);
  }
  return n;
}

/** Throws unless `type` and `data` make a message `write()` can send. */
export function checkMessage(type: number, data: unknown): void {
  if (type !== MessageType.Text && type !== MessageType.Binary) {
    throw new TypeError(`message type must be MessageType.Text (1) or MessageType.Binary (2), got ${type}`);
  }
  if (typeof data === 'string') return;
  if (!(data instanceof Uint8Array)) throw new TypeError('message data must be a string or a Uint8Array');
  if (type === MessageType.Text && !isUtf8(data)) throw new TypeError('text message bytes are not valid UTF-8');
}

/** The longest delay a Node timer honours, in ms. */
const maxTimerDelay = 2 ** 31 - 1;

function checkDelay(name: string, ms: unknown): void {
  if (typeof ms !== 'number' || !(ms > 0) || ms > maxTimerDelay) {
    throw new RangeError(`${name} must be a positive number of ms up to ${maxTimerDelay}, got ${String(ms)}`);
  }
}

/**
 * Checks the options every Conn takes, so that `accept()` and `dial()` can
 * refuse bad ones before the handshake rather than after it.
 * @throws RangeError or TypeError naming the first bad option.
 */
export function checkConnOptions(options: ConnOptions): void {
  if (options.readLimit !== undefined) checkLimit(options.readLimit);
  if (options.closeTimeout !== undefined) checkDelay('closeTimeout', options.closeTimeout);
  const threshold = options.compressionThreshold;
  if (threshold !== undefined && !(Number.isSafeInteger(threshold) && threshold >= 0)) {
    throw new RangeError(`compressionThreshold must be a non-negative integer, got ${String(threshold)}`);
  }
  if (options.keepalive !== undefined) {
    checkDelay('keepalive.interval', options.keepalive.interval);
    checkDelay('keepalive.timeout', options.keepalive.timeout);
  }
  for (const name of ['onPingReceived', 'onPongReceived'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'function') throw new TypeError(`${name} must be a function`);
  }
}
