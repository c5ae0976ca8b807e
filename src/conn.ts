/**
 * `Conn`, one WebSocket connection. The public methods are thin: they take
 * the read or write lock and delegate to the frame reader (read.ts), the
 * frame writer (write.ts), the close handshake (close.ts) and the pinger
 * (ping.ts); this file answers control frames and ties them together.
 * @module
 */
import type { Duplex } from 'node:stream';
import { closeStatus, Closing, type CloseHost, type CloseInfo } from './close.js';
import type { DeflateParams } from './compress.js';
import { ClosedError, CloseError, MessageTooBigError, ProtocolError } from './errors.js';
import { Opcode } from './frame.js';
import { MessageBuffer } from './internal/byte-queue.js';
import { Lock } from './internal/lock.js';
import { Pinger } from './ping.js';
import { FrameReader, messageStream, type ReadHost } from './read.js';
import {
  checkConnOptions,
  checkLimit,
  checkMessage,
  defaultReadLimit,
  MessageType,
  type ConnOptions,
  type Message,
  type SignalOptions,
  type WriteOptions,
} from './options.js';
import { FrameWriter, messageSink, type SinkHost } from './write.js';

export { MessageType, defaultReadLimit } from './options.js';
export type { ConnOptions, Message, SignalOptions, WriteOptions } from './options.js';
export type { CloseInfo } from './close.js';

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
}

/** Only this module can make a Conn: its constructor wants this key. */
const internal: unique symbol = Symbol('wsconn.internal');

/** @internal Creates the Conn for a socket whose handshake has succeeded. */
export function newConn(init: ConnInit): Conn {
  return new Conn(internal, init);
}

/**
 * One WebSocket connection, from `accept()`, `dial()` or `pipe()`.
 *
 * Reads pull: nothing is read from the socket unless a read, `closeRead()`
 * or the close handshake waits, and control frames (pings, the peer's
 * close) are only seen then. Failures surface through the promises of the
 * calls and through `closed`; there are no events.
 *
 * @example
 * ```ts
 * import { dial, MessageType } from 'wsconn';
 * const conn = await dial('ws://127.0.0.1:8080', { signal: AbortSignal.timeout(5000) });
 * await conn.write(MessageType.Text, 'hello');
 * const { data } = await conn.read({ signal: AbortSignal.timeout(5000) });
 * console.log(new TextDecoder().decode(data));
 * await conn.close(1000, 'done');
 * ```
 */
export class Conn {
  /** The subprotocol the handshake chose ('' when none). */
  readonly subprotocol: string;
  /** The extensions the handshake negotiated, as in the response header ('' when none). */
  readonly extensions: string;
  /**
   * Settles once when the TCP connection has closed, with how it ended.
   * It never rejects.
   */
  readonly closed: Promise<CloseInfo>;

  readonly #socket: Duplex;
  readonly #reader: FrameReader;
  readonly #writer: FrameWriter;
  readonly #options: ConnOptions;
  readonly #readLock = new Lock();
  readonly #writeLock = new Lock();
  /** Pieces of a message collected by a read() that was aborted. */
  #partial: MessageBuffer | undefined;
  /** The close handshake: who closed, why the connection is ending, `closed`. */
  readonly #closing: Closing;
  #closeRead: AbortController | undefined;
  #pinger: Pinger | undefined;

  readonly #onReadable = (): void => this.#reader.wake();

  /**
   * What the frame reader and the close handshake need of a Conn. Its
   * methods live on a prototype, so a connection pays for one small object
   * rather than a closure per callback.
   */
  static readonly #Host = class implements ReadHost, CloseHost {
    readonly conn: Conn;

    constructor(conn: Conn) {
      this.conn = conn;
    }

    control(opcode: number, payload: Uint8Array): void {
      this.conn.#onControl(opcode, payload);
    }

    mustDrain(): boolean {
      return this.conn.#socket.writableNeedDrain;
    }

    drain(signal: AbortSignal | undefined): Promise<void> {
      return this.conn.#writer.drain(signal);
    }

    ended(): Error {
      return this.conn.#closing.lost();
    }

    sendCloseFrame(payload: Uint8Array): void {
      const conn = this.conn;
      conn.#writer.send({ fin: true, rsv1: false, opcode: Opcode.Close, payload });
      // When answering the peer's close (or failing), say so: closeStatus() follows `cause`.
      const cause = conn.#closing.ended;
      conn.#writeLock.fail(() => new ClosedError('the connection is closing', cause ? { cause } : undefined));
    }

    endCalls(error: Error): void {
      this.conn.#readLock.fail(() => error);
      this.conn.#writeLock.fail(() => new ClosedError('the connection is closing', { cause: error }));
    }

    discardInput(): void {
      const socket = this.conn.#socket;
      // resume() does nothing while a 'readable' listener is attached.
      socket.off('readable', this.conn.#onReadable);
      socket.resume();
    }

    readUntilClose(): Promise<void> {
      const conn = this.conn;
      // After closeRead() its background loop reads the peer's close frame.
      return conn.#closeRead === undefined ? conn.#discardUntilClose() : conn.closed.then(() => {});
    }

    released(error: Error): void {
      const conn = this.conn;
      conn.#reader.wake();
      const gone = (): Error => new ClosedError('the connection is closed', { cause: error });
      conn.#writer.fail(gone);
      conn.#pinger?.stop(gone);
      conn.#closeRead?.abort(error);
    }
  };

  /** @internal Use `accept()`, `dial()` or `pipe()`. */
  constructor(key: typeof internal, init: ConnInit) {
    if (key !== internal) throw new TypeError('use accept(), dial() or pipe() to make a Conn');
    const { socket, options } = init;
    this.subprotocol = init.subprotocol;
    this.extensions = init.extensions;
    this.#socket = socket;
    this.#options = options;
    checkConnOptions(options);
    const limit = checkLimit(options.readLimit ?? defaultReadLimit);
    const host = new Conn.#Host(this);
    this.#reader = new FrameReader(socket, host, init.client, limit, init.deflate);
    this.#writer = new FrameWriter(socket, init.client, init.deflate, options.compressionThreshold);
    if (init.head !== undefined && init.head.length > 0) this.#reader.unshift(Buffer.from(init.head));
    this.#closing = new Closing(socket, host, init.client, options.closeTimeout ?? 5000);
    this.closed = this.#closing.closed;
    socket.on('readable', this.#onReadable);
    socket.on('end', () => {
      this.#reader.wake();
      this.#closing.peerEnded();
    });
    socket.on('error', (err: Error) => this.#closing.socketFailed(err));
    socket.on('close', () => this.#closing.socketClosed());
    if (socket.destroyed) queueMicrotask(() => this.#closing.socketClosed());
    if (options.keepalive !== undefined) {
      this.#pingerNow().startHeartbeat(options.keepalive.interval, options.keepalive.timeout);
    }
  }

  /** The peer's IP address, when the connection runs over TCP. */
  get remoteAddress(): string | undefined {
    return (this.#socket as { remoteAddress?: string }).remoteAddress;
  }

  /** The peer's port, when the connection runs over TCP. */
  get remotePort(): number | undefined {
    return (this.#socket as { remotePort?: number }).remotePort;
  }

  /** The local IP address, when the connection runs over TCP. */
  get localAddress(): string | undefined {
    return (this.#socket as { localAddress?: string }).localAddress;
  }

  /** The local port, when the connection runs over TCP. */
  get localPort(): number | undefined {
    return (this.#socket as { localPort?: number }).localPort;
  }

  /**
   * Reads the next data message whole, answering control frames on the way.
   *
   * Concurrent calls take turns in call order, each getting its own
   * message. Aborting the signal rejects with `signal.reason` and leaves
   * the connection as it was: a message half received stays in the Conn
   * and the next `read()` or `reader()` continues it.
   *
   * @throws CloseError once the peer's close frame has arrived.
   * @throws MessageTooBigError for a message over the read limit (the
   * connection is closed with 1009).
   * @throws ProtocolError when the peer broke the protocol (the connection
   * is closed with the code the error carries).
   * @throws ClosedError when the connection is gone.
   */
  read(options?: SignalOptions): Promise<Message> {
    const quick = this.#closing.ended === undefined && this.#closeRead === undefined && !this.#reader.inMessage;
    if (quick && !options?.signal?.aborted && this.#readLock.tryAcquire()) {
      // The common case: the whole message is already buffered; no await.
      try {
        const message = this.#reader.tryMessage();
        if (typeof message === 'object') return Promise.resolve(message as Message);
      } catch (err) {
        return Promise.reject(this.#readFailed(err, undefined));
      } finally {
        this.#readLock.release();
      }
    }
    return this.#readWaiting(options?.signal);
  }

  async #readWaiting(signal: AbortSignal | undefined): Promise<Message> {
    this.#assertReadable();
    await this.#readLock.acquire(signal);
    try {
      while (!this.#reader.inMessage) {
        const message = this.#reader.tryMessage();
        if (typeof message === 'object') return message as Message;
        if (message === 'general') break;
        await this.#reader.fill(signal);
      }
      const type = (await this.#reader.begin(signal)) as MessageType;
      for (;;) {
        const chunk = await this.#reader.next(signal);
        if (chunk === null) break;
        (this.#partial ??= new MessageBuffer()).append(chunk);
      }
      return { type, data: this.#partial?.takeAll() ?? new Uint8Array(0) };
    } catch (err) {
      throw this.#readFailed(err, signal);
    } finally {
      this.#readLock.release();
    }
  }

  /**
   * Starts reading the next data message and resolves with its type and a
   * stream of its payload. Nothing is read ahead of what the stream's
   * consumer asks for. Later reads wait until the stream has been read to
   * its end or cancelled (cancelling discards the rest of the message).
   *
   * The signal bounds the wait for the message and each read of the
   * stream; an abort errors the stream with `signal.reason` and the rest of
   * the message stays for the next `read()` or `reader()`.
   */
  async reader(options?: SignalOptions): Promise<{ type: MessageType; stream: ReadableStream<Uint8Array> }> {
    const signal = options?.signal;
    this.#assertReadable();
    await this.#readLock.acquire(signal);
    let type: MessageType;
    try {
      type = (await this.#reader.begin(signal)) as MessageType;
    } catch (err) {
      this.#readLock.release();
      throw this.#readFailed(err, signal);
    }
    const release = (): void => this.#readLock.release();
    const failed = (err: unknown): unknown => this.#readFailed(err, signal);
    return { type, stream: messageStream(this.#reader, this.#partial?.takeParts() ?? [], signal, release, failed) };
  }

  /**
   * Sends one data message. `data` is a string (sent as UTF-8) or bytes,
   * which are never modified. Concurrent calls take turns; their frames
   * never interleave. Resolves once the socket has accepted the message,
   * waiting for 'drain' when its buffer is full.
   *
   * Aborting before the message is queued sends nothing; an abort while
   * waiting for 'drain' rejects, but the message, already queued whole, is
   * still delivered.
   *
   * @throws TypeError for a bad type, or text bytes that are not UTF-8.
   * @throws ClosedError when the connection is closing or gone.
   */
  write(type: MessageType, data: string | Uint8Array, options?: WriteOptions): Promise<void> {
    try {
      checkMessage(type, data);
    } catch (err) {
      return Promise.reject(err);
    }
    const signal = options?.signal;
    if (!signal?.aborted && this.#canSendNow() && this.#writeLock.tryAcquire()) {
      // The common case: nobody else is writing and the socket has room.
      let sent: boolean | Promise<void>;
      try {
        const { payload, rsv1 } = this.#writer.encodeMessage(data, options?.compress);
        sent = this.#writer.send({ fin: true, rsv1, opcode: type, payload });
      } catch (err) {
        this.#writeLock.release();
        return Promise.reject(err);
      }
      if (sent === true) {
        this.#writeLock.release();
        return Promise.resolve();
      }
      return this.#afterSend(sent, signal);
    }
    return this.#writeWaiting(type, data, options);
  }

  async #writeWaiting(type: MessageType, data: string | Uint8Array, options: WriteOptions | undefined): Promise<void> {
    const signal = options?.signal;
    await this.#writeLock.acquire(signal);
    try {
      await this.#readyToSend(signal);
      // No await between this check and the send: a close() in between must not be followed by data.
      this.#assertOpen();
      const { payload, rsv1 } = this.#writer.encodeMessage(data, options?.compress);
      await this.#writer.sendAndWait({ fin: true, rsv1, opcode: type, payload }, signal);
    } finally {
      this.#writeLock.release();
    }
  }

  /** Holds the write turn until the socket has taken a message that did not fit at once. */
  async #afterSend(sent: false | Promise<void>, signal: AbortSignal | undefined): Promise<void> {
    try {
      await this.#writer.settle(sent, signal);
    } finally {
      this.#writeLock.release();
    }
  }

  #canSendNow(): boolean {
    const closing = this.#closing;
    return closing.ended === undefined && !closing.sent && this.#socket.writable && !this.#socket.writableNeedDrain;
  }

  /**
   * Starts a message whose payload you stream: resolves, once no other
   * message is being written, with a `WritableStream` in which each chunk
   * becomes one frame and `close()` ends the message.
   *
   * Control frames may go out between its frames. Aborting the stream, or
   * the signal, after a frame has been sent closes the connection with
   * 1011 (internal error), since the peer cannot be told where the message
   * ended; before any frame it just gives the turn to the next writer.
   */
  async writer(type: MessageType, options?: WriteOptions): Promise<WritableStream<Uint8Array>> {
    checkMessage(type, '');
    const signal = options?.signal;
    await this.#writeLock.acquire(signal);
    try {
      await this.#readyToSend(signal);
    } catch (err) {
      this.#writeLock.release();
      throw err;
    }
    const host: SinkHost = {
      writer: this.#writer,
      ready: (signal) => this.#readyToSend(signal),
      assertOpen: () => this.#assertOpen(),
      release: () => this.#writeLock.release(),
      // A writer cut short by our own close() is not a failure of the connection.
      fail: (error) => {
        if (!this.#closing.sent) this.#closing.fail(error);
      },
    };
    return messageSink(host, type, signal, this.#writer.compressesStream(options?.compress));
  }

  /**
   * Sends a ping and resolves with the round-trip time in milliseconds once
   * its pong arrives. The pong is only seen while a read is pending or
   * `closeRead()` runs, so ping from beside a reading loop.
   * @throws ClosedError when the connection is closing or gone.
   */
  async ping(options?: SignalOptions): Promise<number> {
    this.#assertOpen();
    return this.#pingerNow().ping(options?.signal);
  }

  #pingerNow(): Pinger {
    this.#pinger ??= new Pinger({
      sendPing: (payload) => {
        this.#assertOpen();
        this.#writer.send({ fin: true, rsv1: false, opcode: Opcode.Ping, payload });
      },
      dead: (timeout) => this.#closing.drop(new ClosedError(`keepalive: no pong within ${timeout} ms; the peer is gone`)),
    });
    return this.#pinger;
  }

  /**
   * Reads and discards in the background so that control frames are
   * answered and the close handshake completes when the application only
   * writes. A data message from the peer closes the connection with 1008
   * (policy violation). `read()` and `reader()` reject after this.
   *
   * @param signal stops the background reading when it aborts.
   * @returns a signal that aborts, with the reason the connection ended,
   * once it has ended.
   */
  closeRead(signal?: AbortSignal): AbortSignal {
    if (this.#closeRead !== undefined) return this.#closeRead.signal;
    const controller = new AbortController();
    this.#closeRead = controller;
    if (this.#closing.settled) controller.abort(this.#closing.ended);
    const readAll = async (): Promise<void> => {
      await this.#readLock.acquire(signal);
      try {
        await this.#reader.begin(signal);
        this.#closing.fail(new ProtocolError(1008, 'data message received after closeRead()'));
      } catch (err) {
        this.#readFailed(err, signal);
      } finally {
        this.#readLock.release();
      }
    };
    readAll().catch(() => {});
    return controller.signal;
  }

  /**
   * Sets the read limit in bytes for the messages read from now on; -1
   * removes it. See `ConnOptions.readLimit`.
   * @throws RangeError unless `n` is a non-negative integer or -1.
   */
  setReadLimit(n: number): void {
    this.#reader.limit = checkLimit(n);
  }

  /**
   * Closes the connection with the close handshake (RFC 6455 §7): sends a
   * close frame, waits up to `closeTimeout` (5 s) for the peer's, then up to
   * as long again for the TCP connection to close, reading and discarding
   * data meanwhile. Idempotent: later calls return the first call's result.
   * Never rejects for a slow or vanished peer: it resolves with `closed`.
   *
   * @param code the status code (default 1000); 1000–1003, 1007–1014 or
   * 3000–4999.
   * @param reason at most 123 bytes of UTF-8.
   * @throws RangeError for a code that may not be sent or a reason too long
   * (nothing is sent).
   */
  close(code: number = 1000, reason = ''): Promise<CloseInfo> {
    return this.#closing.close(code, reason);
  }

  async #discardUntilClose(): Promise<void> {
    try {
      for (;;) await this.#readWaiting(undefined);
    } catch {
      // The read ends with the peer's close frame, a failure or teardown:
      // each one settles `closed` by itself.
    }
  }

  /** Drops the TCP connection at once, with no close handshake. Idempotent. */
  closeNow(): void {
    this.#closing.drop(new ClosedError('connection closed by closeNow()'));
  }

  /** Drops the connection (`closeNow()`) and waits until it is gone, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.closeNow();
    await this.closed;
  }

  /**
   * Yields messages as `read()` returns them, until the peer closes with
   * 1000 (normal closure), 1001 (going away) or no status (1005); any other
   * ending throws.
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<Message, void, undefined> {
    for (;;) {
      let message: Message;
      try {
        message = await this.read();
      } catch (err) {
        // A close without a status (1005) is how browsers' close() ends by default.
        const code = closeStatus(err);
        if (code === 1000 || code === 1001 || code === 1005) return;
        throw err;
      }
      yield message;
    }
  }

  // --- control frames and the close handshake ---

  #onControl(opcode: number, payload: Uint8Array): void {
    if (opcode === Opcode.Ping) {
      const answer = this.#options.onPingReceived?.(payload);
      // RFC 6455 §5.5.2: a pong carries the ping's payload.
      if (answer !== false && !this.#closing.sent) {
        this.#writer.send({ fin: true, rsv1: false, opcode: Opcode.Pong, payload });
      }
    } else if (opcode === Opcode.Pong) {
      this.#options.onPongReceived?.(payload);
      this.#pinger?.pong(payload);
    } else {
      this.#closing.received(payload);
    }
  }

  // --- helpers shared by the public methods ---

  /** Turns a read's failure into what the caller sees, failing the connection if the peer broke the protocol. */
  #readFailed(err: unknown, signal: AbortSignal | undefined): unknown {
    if (signal?.aborted && err === signal.reason) return err;
    if (err instanceof ProtocolError || err instanceof MessageTooBigError) {
      this.#closing.fail(err);
    } else if (!(err instanceof CloseError || err instanceof ClosedError)) {
      this.#closing.fail(new ProtocolError(1011, 'internal error while reading', { cause: err }));
    }
    return err;
  }

  #assertReadable(): void {
    if (this.#closeRead !== undefined) throw new Error('read after closeRead(): the connection is write-only');
  }

  #assertOpen(): void {
    const { ended } = this.#closing;
    if (ended !== undefined) throw new ClosedError(undefined, { cause: ended });
    if (this.#closing.sent || !this.#socket.writable) throw new ClosedError('the connection is closing');
  }

  /**
   * Checks the connection can take a frame, and waits for 'drain' if the
   * socket is full. Callers check `#assertOpen()` again after awaiting it,
   * right before they send: RFC 6455 §5.5.1 allows no data after our close.
   */
  async #readyToSend(signal: AbortSignal | undefined): Promise<void> {
    this.#assertOpen();
    if (this.#socket.writableNeedDrain) await this.#writer.drain(signal);
  }
}
