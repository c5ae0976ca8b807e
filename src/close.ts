/**
 * The close handshake of a connection (RFC 6455 §7) on the I/O side: the
 * bounded waits, who closes TCP first, and the `CloseInfo` a connection
 * ends with. The close state itself (which close frames went which way)
 * lives in the protocol engine; the payload codec in
 * `protocol/close-frame.ts`, re-exported here.
 * @module
 */
import { ClosedError, CloseError, type MessageTooBigError, type ProtocolError } from './errors.js';
import type { Protocol } from './protocol/engine.js';
import { encodeClosePayload, StatusCode } from './protocol/close-frame.js';
import type { Transport } from './options.js';
import type { Receiver } from './receive.js';
import type { CloseInfo } from './status.js';

export {
  closeReason,
  decodeClosePayload,
  encodeClosePayload,
  isValidCloseCode,
  maxReasonBytes,
  StatusCode,
} from './protocol/close-frame.js';

/**
 * @internal Throws unless `close(code, reason)` may send them: RangeError
 * for a code that may not be sent (1005 included, RFC 6455 §7.4.1) or a
 * reason over 123 bytes.
 */
export function checkClose(code: number, reason: string): void {
  if (code === StatusCode.NoStatusReceived) throw new RangeError('close code 1005 may not be sent');
  encodeClosePayload(code, reason);
}

export { closeStatus, type CloseInfo } from './status.js';

/** What the close handshake needs from its Conn. */
export interface CloseHost {
  /** Writes one encoded frame through the Conn's send path. */
  transmit(bytes: Uint8Array): void;
  /**
   * Makes every pending and later write reject with a `ClosedError` (with
   * `cause` as its cause, or `cause` itself when it is one), made only when
   * a write is there to reject: an Error's stack trace is not free on every
   * connection's close.
   */
  endCalls(cause: Error | undefined): void;
  /** Lets go of what the Conn holds, once the TCP connection has closed. */
  released(error: Error): void;
}

/** Runs `make` with stack traces off: for errors that report what the peer did, not a place in the code. */
function withoutStack<T>(make: () => T): T {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return make();
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** A failure of the connection: it carries the status code sent to the peer. */
type Failure = ProtocolError | MessageTooBigError;

/**
 * The close handshake of one connection (RFC 6455 §7): why the connection
 * is ending, the two bounded waits, and the `CloseInfo` it ends with.
 */
export class Closing {
  /** How the connection ended, once it has. */
  #info: CloseInfo | undefined;
  /** `closed`, made on first use: most connections are never asked. */
  #closed: Promise<CloseInfo> | undefined;
  #settle: ((info: CloseInfo) => void) | undefined;
  readonly #socket: Transport;
  readonly #engine: Protocol;
  readonly #receiver: Receiver;
  readonly #host: CloseHost;
  /** Each of the two waits of the handshake, in ms. */
  readonly #timeout: number;
  #ended: Error | undefined;
  #socketError: Error | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** Set while close() waits for the peer's close frame. */
  #answered: (() => void) | undefined;
  #closing: Promise<CloseInfo> | undefined;
  #settled = false;
  #peerEnded = false;

  constructor(socket: Transport, engine: Protocol, receiver: Receiver, host: CloseHost, timeout: number) {
    this.#socket = socket;
    this.#engine = engine;
    this.#receiver = receiver;
    this.#host = host;
    this.#timeout = timeout;
  }

  /** Why the connection is ending, once it is. */
  get ended(): Error | undefined {
    return this.#ended;
  }

  /** Settles once, when the TCP connection has closed; never rejects. */
  get closed(): Promise<CloseInfo> {
    if (this.#closed !== undefined) return this.#closed;
    const info = this.#info;
    this.#closed = info !== undefined ? Promise.resolve(info) : new Promise((resolve) => (this.#settle = resolve));
    return this.#closed;
  }

  /** Whether the TCP connection has closed and `closed` has settled. */
  get settled(): boolean {
    return this.#settled;
  }

  /** `Conn.close()`: see there. */
  close(code: number, reason: string): Promise<CloseInfo> {
    if (this.#closing !== undefined) return this.#closing;
    try {
      checkClose(code, reason);
    } catch (err) {
      return Promise.reject(err);
    }
    this.#closing = this.#handshake(code, reason);
    return this.#closing;
  }

  async #handshake(code: number, reason: string): Promise<CloseInfo> {
    // A close or failure waiting behind unread messages takes effect now.
    this.#receiver.settle();
    if (this.#ended === undefined && !this.#engine.closeSent) {
      this.#send(this.#engine.encodeClose(code, reason)!);
      // Read on until the peer's close frame: data sent before it stays readable,
      // and what nobody reads is dropped once the queue is full.
      const receiver = this.#receiver;
      receiver.demand++;
      receiver.discardWhenFull();
      const answered = new Promise<void>((resolve) => (this.#answered = resolve));
      const timer = setTimeout(() => this.drop(new ClosedError('the peer did not answer the close frame in time')), this.#timeout);
      if (this.#ended === undefined) await answered;
      clearTimeout(timer);
      receiver.demand--;
    }
    // However the wait ended, the TCP connection gets no longer than this to close.
    this.#armTimer();
    return this.closed;
  }

  /** Sends our close frame; no data frame may follow it (RFC 6455 §5.5.1). */
  #send(bytes: Uint8Array | undefined): void {
    if (bytes !== undefined && this.#socket.writable) this.#host.transmit(bytes);
    this.#host.endCalls(this.#ended);
  }

  /** The peer's close frame has been reached: answers it and returns the `CloseError` reads end with. */
  peerClosed(code: number, reason: string): Error {
    // A stack trace would show only the receive pump; capturing one cost ~5 µs per close.
    const error = withoutStack(() => new CloseError(code, reason));
    this.#ended ??= error;
    this.#send(this.#engine.closeReply());
    // RFC 6455 §7.1.1: once close frames crossed, the server closes the TCP connection
    // first; the client ends its side once the server's FIN has come.
    // Over an HTTP/2 stream there is no TIME_WAIT to leave with the server: either side ends it.
    if (!this.#engine.client || this.#peerEnded || this.#socket.endsEitherWay === true) this.#end();
    this.#answered?.();
    this.#armTimer();
    return error;
  }

  /**
   * Fails the connection (RFC 6455 §7.1.7) with the close frame `reply`
   * (from the engine): closes the TCP connection and makes every pending
   * and later call reject with `error`.
   */
  failed(error: Failure): void {
    if (this.#ended !== undefined) return;
    this.#ended = error;
    this.#send(this.#engine.closeReply());
    this.#receiver.finish(error);
    this.#end();
    this.#answered?.();
    this.#armTimer();
  }

  /** Fails the connection for a reason this end found. */
  fail(error: Failure): void {
    if (this.#ended !== undefined) return;
    this.#engine.fail(error);
    this.failed(error);
  }

  /** Drops the TCP connection at once; `error` says why, unless the connection was already ending. */
  drop(error: Error): void {
    if (this.#ended === undefined) {
      this.#ended = error;
      this.#host.endCalls(error);
      this.#receiver.finish(error);
    }
    this.#answered?.();
    this.#socket.destroy();
  }

  /** The transport ended with no close frame: the connection is lost. */
  lost(): Error {
    if (this.#ended === undefined) {
      const cause = this.#socketError ?? this.#socket.failure?.();
      this.drop(new ClosedError('connection closed without a close frame', cause ? { cause } : undefined));
    }
    return this.#ended!;
  }

  /** The peer sent its FIN: once our close frame is out, end ours. */
  peerEnded(): void {
    this.#peerEnded = true;
    if (this.#engine.closeSent) this.#end();
  }

  /** The socket reported an error; the 'close' that follows ends the connection. */
  socketFailed(error: Error): void {
    this.#socketError ??= error;
  }

  /** The TCP connection has closed: settle `closed` and let go of everything. */
  socketClosed(): void {
    if (this.#settled) return;
    this.#settled = true;
    clearTimeout(this.#timer);
    const error = this.lost();
    this.#host.endCalls(error);
    this.#receiver.finish(error);
    this.#answered?.();
    this.#host.released(error);
    const received = this.#engine.closeReceived;
    const wasClean = this.#engine.closeSent && received !== undefined;
    this.#info = {
      code: received?.code ?? StatusCode.AbnormalClosure,
      reason: received?.reason ?? '',
      wasClean,
      ...(wasClean ? {} : { error }),
    };
    this.#settle?.(this.#info);
    this.#settle = undefined;
  }

  /** Ends our side of the transport, once: ending it again made Node build an Error nobody sees. */
  #end(): void {
    if (this.#socket.writableEnded !== true) this.#socket.end();
  }

  /** Bounds the time the TCP connection may take to close. */
  #armTimer(): void {
    if (this.#timer !== undefined || this.#settled) return;
    this.#timer = setTimeout(() => this.#socket.destroy(), this.#timeout);
  }
}
