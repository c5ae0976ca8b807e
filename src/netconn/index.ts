/**
 * `wsconn/netconn`: a WebSocket connection as a Node `Duplex`, for
 * tunnelling byte protocols (HTTP, SSH, a database's wire protocol…) over
 * a WebSocket.
 * @module wsconn/netconn
 */
import { Duplex } from 'node:stream';
import { closeStatus } from '../close.js';
import { MessageType, type Conn } from '../conn.js';
import { ClosedError, ProtocolError } from '../errors.js';

/**
 * The read limit of a netConn whose Conn negotiated permessage-deflate: a
 * compressed message is inflated whole, so it needs a bound (16 MiB).
 */
export const compressedMessageLimit = 16 * 1024 * 1024;

/** Options of {@link netConn}. */
export interface NetConnOptions {
  /**
   * Bounds the whole life of the stream: aborting it destroys the stream
   * with `signal.reason` and drops the connection at once.
   */
  signal?: AbortSignal;
}

/**
 * The `Duplex` that {@link netConn} returns, with the addresses of the
 * connection underneath, as `net.Socket` has them.
 */
export interface NetConn extends Duplex {
  /** The peer's IP address, when the Conn runs over TCP. */
  readonly remoteAddress: string | undefined;
  /** The peer's port, when the Conn runs over TCP. */
  readonly remotePort: number | undefined;
  /** The local IP address, when the Conn runs over TCP. */
  readonly localAddress: string | undefined;
  /** The local port, when the Conn runs over TCP. */
  readonly localPort: number | undefined;
}

/**
 * Wraps a Conn as a Node `Duplex` byte stream, the way Go's
 * `websocket.NetConn` wraps one as a `net.Conn`: each `write()` sends one
 * message of `messageType`, and reading yields the bytes of the messages
 * received, in order, without their boundaries.
 *
 * - **Backpressure is end to end.** `write()` completes once the socket has
 *   taken the message (waiting for 'drain'), and the Conn is read only while
 *   the stream's consumer wants data (`push()` returning false stops it), so
 *   a slow reader on one side slows the writer on the other through TCP.
 * - **No read limit.** A byte stream has no message size, so `netConn()`
 *   turns the Conn's read limit off (`conn.setReadLimit(-1)`). Memory stays
 *   bounded anyway: a message is never held whole, each piece is pushed as
 *   it arrives from the socket. The exception is a compressed message
 *   (permessage-deflate negotiated), which is inflated whole: on such a
 *   Conn the limit is set to `compressedMessageLimit` (16 MiB) instead, so
 *   a compression bomb cannot take more; keep each `write()` under it.
 *   The Conn takes input before `netConn()` is called, though, and holds
 *   what arrives then to the limit it had: when the peer may send first
 *   and the wrap comes later (after an `await`), pass `readLimit: -1` to
 *   `accept()` or `dial()` as well, or a first message over 32 KiB closes
 *   the connection with 1009.
 * - **Ending.** A close frame from the peer with 1000 (normal closure) or
 *   1001 (going away) reads as end-of-stream, and so does the peer's answer
 *   to our own close. Any other close code, or a failure, destroys the
 *   stream with the Conn's error: `closeStatus(err)` gives the peer's close
 *   code (the error is a `CloseError`, or a `ClosedError` whose `cause` is
 *   one), and errors wsconn detects itself carry the code it sent in `code`.
 * - **Wrong message type.** A message of the other type closes the
 *   connection with 1003 (unsupported data) and destroys the stream with a
 *   `ProtocolError` whose `code` is 1003.
 * - **No half-close.** `end()` sends close 1000 once pending writes are out,
 *   and 'finish' comes when the close handshake has completed (the stream
 *   errors instead if it did not complete cleanly; see `Conn.close()`).
 *   WebSocket has no half-open state: the peer answers a close frame with
 *   its own and can send nothing after it, so the peer reads end-of-stream
 *   and its side ends too. Data the peer sent before seeing our close is
 *   delivered (see "Keep reading").
 *   For the same reason the stream is created with `allowHalfOpen: false`,
 *   as a `net.Socket` is by default: when the readable side ends, the
 *   writable side ends too.
 * - **Keep reading.** The Conn answers pings and the peer's close while
 *   input flows, up to its receive buffer (64 KiB of unparsed bytes and
 *   64 KiB of unread messages). A consumer that stops reading lets that
 *   buffer fill; then TCP pushes back and pings wait until it reads on.
 *   After `end()` the peer's data keeps arriving until its close frame:
 *   what it sent before seeing our close is all delivered, in order (the
 *   close handshake waits for a slow consumer, up to the Conn's
 *   `closeTimeout`).
 * - **`destroy()` drops the connection at once** (`conn.closeNow()`): the
 *   peer sees it end without a close frame (code 1006), as it would see a TCP
 *   reset. It leaves alone a close handshake the Conn is already running
 *   because the peer closed or broke the protocol; an aborted signal always
 *   drops the connection.
 * - **Text.** With `MessageType.Text` every chunk written must be complete
 *   UTF-8 on its own (the write fails otherwise); prefer `MessageType.Binary`
 *   for arbitrary bytes.
 *
 * The stream owns the Conn from now on: use the Conn only through it.
 *
 * @param conn a connection no one else reads from or writes to.
 * @param messageType the type of every message sent; a received message of
 * the other type is a protocol violation.
 * @throws TypeError for a `messageType` other than `MessageType.Text` or
 * `MessageType.Binary`.
 * @see https://github.com/coder/websocket/issues/100 (why NetConn exists)
 * @example
 * ```ts
 * import { connect } from 'node:net';
 * import { pipeline } from 'node:stream/promises';
 * import { dial, MessageType } from 'wsconn';
 * import { netConn } from 'wsconn/netconn';
 *
 * // Forward one local TCP connection through a WebSocket tunnel.
 * const conn = await dial('ws://127.0.0.1:8080/tunnel', { signal: AbortSignal.timeout(5000) });
 * const tunnel = netConn(conn, MessageType.Binary);
 * const local = connect(5432, '127.0.0.1');
 * await pipeline(local, tunnel, local); // local → tunnel → local, one pipeline for both directions
 * ```
 */
export function netConn(conn: Conn, messageType: MessageType, options: NetConnOptions = {}): NetConn {
  if (messageType !== MessageType.Text && messageType !== MessageType.Binary) {
    throw new TypeError(`messageType must be MessageType.Text (1) or MessageType.Binary (2), got ${String(messageType)}`);
  }
  return new WebSocketDuplex(conn, messageType, options.signal);
}

/** Reads pieces of one message; see `Conn.reader()`. */
type MessageReader = ReadableStreamDefaultReader<Uint8Array>;

class WebSocketDuplex extends Duplex implements NetConn {
  readonly #conn: Conn;
  readonly #type: MessageType;
  readonly #signal: AbortSignal | undefined;
  readonly #onAbort = (): void => {
    this.destroy(this.#signal?.reason);
  };
  /** The message being read, between `_read` calls. */
  #message: MessageReader | undefined;
  #pulling = false;
  /** The Conn is already closing with a close frame sent or received: let it finish. */
  #connEnding = false;
  /** end() has sent our close frame: whatever close answers it is a normal end. */
  #ending = false;

  constructor(conn: Conn, type: MessageType, signal: AbortSignal | undefined) {
    super({ allowHalfOpen: false });
    this.#conn = conn;
    this.#type = type;
    this.#signal = signal;
    conn.setReadLimit(conn.extensions === '' ? -1 : compressedMessageLimit);
    if (signal?.aborted) this.destroy(signal.reason);
    else signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  get remoteAddress(): string | undefined {
    return this.#conn.remoteAddress;
  }

  get remotePort(): number | undefined {
    return this.#conn.remotePort;
  }

  get localAddress(): string | undefined {
    return this.#conn.localAddress;
  }

  get localPort(): number | undefined {
    return this.#conn.localPort;
  }

  // --- reading: one piece per _read, so the Conn is read only on demand ---

  override _read(): void {
    if (this.#pulling) return;
    this.#pulling = true;
    this.#pull().then(
      (chunk) => {
        this.#pulling = false;
        this.push(chunk);
        // At the end, a read lets 'end' come even when nobody is reading now.
        if (chunk === null) this.read(0);
      },
      (err: unknown) => {
        this.#pulling = false;
        this.destroy(err as Error);
      },
    );
  }

  /** The next non-empty piece of message data, or null at a clean end. */
  async #pull(): Promise<Uint8Array | null> {
    for (;;) {
      this.#message ??= await this.#nextMessage();
      if (this.#message === undefined) return null;
      let result: Awaited<ReturnType<MessageReader['read']>>;
      try {
        result = await this.#message.read();
      } catch (err) {
        this.#message = undefined;
        if (this.#isEnd(err)) return null;
        throw err;
      }
      if (result.done) this.#message = undefined;
      else if (result.value.length > 0) return result.value;
    }
  }

  /** Starts reading the next message; undefined once the peer closed normally. */
  async #nextMessage(): Promise<MessageReader | undefined> {
    let next: Awaited<ReturnType<Conn['reader']>>;
    try {
      next = await this.#conn.reader();
    } catch (err) {
      if (this.#isEnd(err)) return undefined;
      throw err;
    }
    if (next.type !== this.#type) this.#unsupported(next.stream);
    return next.stream.getReader();
  }

  /** Whether a read failure is the peer's normal close; notes that the Conn is ending either way. */
  #isEnd(err: unknown): boolean {
    // A failed read means the Conn has sent or answered a close frame, or
    // is gone: it finishes by itself, bounded by its closeTimeout.
    this.#connEnding = true;
    const code = closeStatus(err);
    return code === 1000 || code === 1001 || (this.#ending && code !== -1);
  }

  #unsupported(stream: ReadableStream<Uint8Array>): never {
    const want = this.#type === MessageType.Binary ? 'binary' : 'text';
    const got = want === 'binary' ? 'text' : 'binary';
    this.#connEnding = true;
    // Send the close frame first, then discard the rest of the message so
    // that the close handshake can read on (RFC 6455 §7.4.1: 1003).
    this.#conn.close(1003, `expected ${want} messages`).catch(() => {});
    stream.cancel().catch(() => {});
    throw new ProtocolError(1003, `netConn received a ${got} message but carries ${want} messages`);
  }

  // --- writing: one message per chunk, completing when the socket took it ---

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#conn.write(this.#type, chunk).then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#ending = true;
    this.#conn.close(1000).then((info) => {
      if (!info.wasClean) return callback(info.error ?? new ClosedError('the close handshake did not complete'));
      // The Conn is closed: nothing more can arrive, but what it received
      // before the peer's close may still be queued. Pull it (the pull ends
      // the readable side once the Conn reports the close).
      if (!this.#pulling) this.read(0);
      callback();
    }, callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#signal?.removeEventListener('abort', this.#onAbort);
    if (!this.#connEnding || this.#signal?.aborted) this.#conn.closeNow();
    callback(error);
  }
}
