/**
 * `Conn`, one WebSocket connection: a thin I/O shell around the protocol
 * engine (protocol/engine.ts). Input flows through one receive pump
 * (receive.ts) and output through one send path (send.ts); the close
 * handshake's waits are in close.ts, pings in ping.ts, the `reader()` and
 * `writer()` streams in read.ts and write.ts.
 * @module
 */
import type { Duplex } from 'node:stream';
import { Closing, type CloseHost, type CloseInfo } from './close.js';
import { endsIteration } from './status.js';
import { ClosedError, ProtocolError } from './errors.js';
import { Opcode } from './frame.js';
import { endpointOf } from './internal/endpoint.js';
import { Lock } from './internal/lock.js';
import {
  checkConnOptions,
  checkLimit,
  checkMessage,
  defaultReadLimit,
  type CloseReadOptions,
  type ConnInit,
  type ConnOptions,
  type Message,
  type MessageReader,
  type MessageType,
  type SignalOptions,
  type WriteOptions,
} from './options.js';
import { Pinger } from './ping.js';
import { Protocol, type CloseEvent, type ControlEvent, type FailEvent } from './protocol/engine.js';
import { PreparedMessage } from './protocol/prepared.js';
import { messageStream } from './read.js';
import { Receiver, type ReceiveHost } from './receive.js';
import { Sender } from './send.js';
import { messageSink } from './write.js';

export { MessageType, defaultReadLimit } from './options.js';
export type { CloseReadOptions, ConnInit, ConnOptions, Message, MessageReader, SignalOptions, WriteOptions } from './options.js';
export type { CloseInfo } from './close.js';

/** Where a socket keeps its Conn, for the listeners all Conns share. */
const connKey: unique symbol = Symbol('wsconn.conn');
type Tagged = Duplex & { [connKey]?: Conn };

/** What a write takes: a message's payload, or a prepared message. */
type Payload = string | Uint8Array | PreparedMessage;

/** What `offer()` did with a prepared message. */
export type Offer = 'sent' | 'busy' | 'closed';

/** @internal A broadcast message waiting for a connection's write turn. */
export interface QueuedMessage {
  readonly message: PreparedMessage;
  /** Set by the broadcast's policy: when its turn comes, it is skipped. */
  dropped: boolean;
  /** Set once it has the write turn: too late to drop it. */
  started: boolean;
  /** Gives up its place in the write queue while it waits (set by `enqueue()`). */
  withdraw: () => void;
}

/** @internal What `broadcast()` needs of a Conn beyond its public methods. */
export interface BroadcastAccess {
  /** Writes `message` at once if nobody else writes and the socket has room. */
  offer(conn: Conn, message: PreparedMessage): Offer;
  /** Takes a place in the write queue now, in call order with `write()` calls; resolves once written (or skipped). */
  enqueue(conn: Conn, queued: QueuedMessage): Promise<void>;
  /** Whether data frames may still be sent. */
  writable(conn: Conn): boolean;
}

/** @internal Set by Conn's static block. */
export let broadcastAccess: BroadcastAccess;

/** Only this module can make a Conn: its constructor wants this key. */
const internal: unique symbol = Symbol('wsconn.internal');

/** @internal Creates the Conn for a socket whose handshake has succeeded. */
export function newConn(init: ConnInit): Conn {
  return new Conn(internal, init);
}

/**
 * One WebSocket connection, from `accept()`, `dial()` or `pipe()`.
 *
 * Input is read as it arrives, up to a bounded buffer (64 KiB of unparsed
 * bytes and 64 KiB of messages nobody has read yet); beyond that TCP pushes
 * back on the peer. Pings are answered and pongs seen while input flows.
 * Failures surface through the promises of the calls and through `closed`;
 * there are no events.
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
   * Settles once when the TCP connection has closed, with how it ended: the
   * peer's close code (1005 when its frame had none, 1006 when none came).
   * It never rejects.
   */
  get closed(): Promise<CloseInfo> {
    return this.#closing.closed;
  }

  readonly #socket: Duplex;
  readonly #engine: Protocol;
  readonly #receiver: Receiver;
  readonly #sender: Sender;
  readonly #closing: Closing;
  /** The options, kept only when they carry ping or pong callbacks (most connections hold no options object). */
  readonly #hooks: ConnOptions | undefined;
  readonly #readLock = new Lock();
  readonly #writeLock = new Lock();
  #closeRead: AbortController | undefined;
  #pinger: Pinger | undefined;

  /**
   * What the pump and the close handshake need of a Conn, on one
   * prototype-backed object rather than a closure per callback.
   */
  static readonly #Host = class implements ReceiveHost, CloseHost {
    readonly conn: Conn;

    constructor(conn: Conn) {
      this.conn = conn;
    }

    control(event: ControlEvent): void {
      this.conn.#onControl(event);
    }

    peerClosed(event: CloseEvent): Error {
      return this.conn.#closing.peerClosed(event.code, event.reason);
    }

    failed(event: FailEvent): void {
      this.conn.#closing.failed(event.error);
    }

    refused(): void {
      this.conn.#closing.fail(new ProtocolError(1008, 'data message received after closeRead()'));
    }

    lost(): Error {
      return this.conn.#closing.lost();
    }

    readDone(): void {
      this.conn.#readLock.release();
    }

    transmit(bytes: Uint8Array): void {
      this.conn.#sender.transmit(bytes);
    }

    endCalls(cause: Error | undefined): void {
      this.conn.#writeLock.fail(() =>
        cause instanceof ClosedError ? cause : new ClosedError('the connection is closing', cause === undefined ? undefined : { cause }),
      );
    }

    released(error: Error): void {
      const conn = this.conn;
      const gone = (): Error => new ClosedError('the connection is closed', { cause: error });
      conn.#sender.fail(gone);
      conn.#pinger?.stop(gone);
      conn.#closeRead?.abort(error);
    }
  };

  /** @internal Use `accept()`, `dial()` or `pipe()`. */
  constructor(key: typeof internal, init: ConnInit) {
    if (key !== internal) throw new TypeError('use accept(), dial() or pipe() to make a Conn');
    const { socket, options } = init;
    checkConnOptions(options);
    this.subprotocol = init.subprotocol;
    this.extensions = init.extensions;
    this.#socket = socket;
    this.#hooks = options.onPingReceived !== undefined || options.onPongReceived !== undefined ? options : undefined;
    const host = new Conn.#Host(this);
    this.#sender = new Sender(socket);
    this.#engine = new Protocol({
      client: init.client,
      deflate: init.deflate,
      readLimit: checkLimit(options.readLimit ?? defaultReadLimit),
      compressionThreshold: options.compressionThreshold,
      allocate: this.#sender.allocate.bind(this.#sender),
    });
    this.#receiver = new Receiver(socket, this.#engine, host);
    this.#closing = new Closing(init.transport ?? socket, this.#engine, this.#receiver, host, options.closeTimeout ?? 5000);
    // Listeners shared by all Conns, which find their Conn on the socket: a
    // closure per listener and connection would cost its context and feedback.
    (socket as Tagged)[connKey] = this;
    socket.on('data', Conn.#onData);
    socket.on('end', Conn.#onEnd);
    socket.on('error', Conn.#onError);
    socket.on('close', Conn.#onClose);
    socket.on('drain', Conn.#onDrain);
    this.#receiver.start(init.head);
    if (socket.destroyed) queueMicrotask(() => this.#closing.socketClosed());
    if (options.keepalive !== undefined) {
      this.#pingerNow().startHeartbeat(options.keepalive.interval, options.keepalive.timeout);
    }
  }

  static #onData(this: Duplex, chunk: Buffer): void {
    (this as Tagged)[connKey]!.#receiver.received(chunk);
  }

  static #onEnd(this: Duplex): void {
    const conn = (this as Tagged)[connKey]!;
    conn.#closing.peerEnded();
    conn.#receiver.ended();
  }

  static #onError(this: Duplex, err: Error): void {
    (this as Tagged)[connKey]!.#closing.socketFailed(err);
  }

  static #onClose(this: Duplex): void {
    (this as Tagged)[connKey]!.#closing.socketClosed();
  }

  static #onDrain(this: Duplex): void {
    (this as Tagged)[connKey]!.#sender.drained();
  }

  /** The peer's IP address, when the connection runs over TCP (over HTTP/2, the session's). */
  get remoteAddress(): string | undefined {
    return endpointOf(this.#socket).remoteAddress;
  }

  /** The peer's port, when the connection runs over TCP. */
  get remotePort(): number | undefined {
    return endpointOf(this.#socket).remotePort;
  }

  /** The local IP address, when the connection runs over TCP. */
  get localAddress(): string | undefined {
    return endpointOf(this.#socket).localAddress;
  }

  /** The local port, when the connection runs over TCP. */
  get localPort(): number | undefined {
    return endpointOf(this.#socket).localPort;
  }

  /**
   * Reads the next data message whole.
   *
   * Concurrent calls take turns in call order, each getting its own
   * message. Aborting the signal rejects with `signal.reason` and leaves
   * the connection as it was: nothing of the message is lost, the next
   * `read()` or `reader()` gets it. Messages that arrived before the
   * connection ended (even after `close()`) are still returned; then reads
   * reject.
   *
   * @throws CloseError once the peer's close frame has arrived.
   * @throws MessageTooBigError for a message over the read limit (the
   * connection is closed with 1009).
   * @throws ProtocolError when the peer broke the protocol (the connection
   * is closed with the code the error carries).
   * @throws ClosedError when the connection is gone, or after `closeRead()`.
   */
  read(options?: SignalOptions): Promise<Message> {
    const receiver = this.#receiver;
    receiver.reading = true;
    const signal = options?.signal;
    // The common cases, without an async function: nobody else reads, and a
    // message is queued, or the end is known, or the pump settles the read.
    if (this.#closeRead !== undefined || signal?.aborted || !this.#readLock.tryAcquire()) return this.#readWaiting(signal);
    if (receiver.hasMessage) {
      this.#readLock.release();
      return Promise.resolve(receiver.takeMessage());
    }
    const end = receiver.ending(true);
    if (end !== undefined) {
      this.#readLock.release();
      return Promise.reject(end);
    }
    return receiver.nextMessage(signal);
  }

  async #readWaiting(signal: AbortSignal | undefined): Promise<Message> {
    this.#assertReadable();
    await this.#readLock.acquire(signal);
    try {
      const receiver = this.#receiver;
      for (;;) {
        if (receiver.hasMessage) return receiver.takeMessage();
        const end = receiver.ending(true);
        if (end !== undefined) throw end;
        await receiver.wait(signal, true);
      }
    } finally {
      this.#readLock.release();
    }
  }

  /**
   * Starts reading the next data message and resolves with its type and a
   * stream of its payload, piece by piece as it arrives. Later reads wait
   * until the stream has been read to its end or cancelled (`cancel()`
   * resolves at once; the rest of the message is discarded as it arrives,
   * and later reads get the messages after it).
   *
   * The signal bounds the wait for the message and each read of the
   * stream; an abort, also while nobody reads the stream, errors it with
   * `signal.reason`, and the rest of the message stays for the next
   * `read()` or `reader()`.
   */
  async reader(options?: SignalOptions): Promise<MessageReader> {
    const signal = options?.signal;
    this.#assertReadable();
    this.#receiver.reading = true;
    await this.#readLock.acquire(signal);
    const receiver = this.#receiver;
    try {
      while (!receiver.hasPiece) {
        const end = receiver.ending(false);
        if (end !== undefined) throw end;
        await receiver.wait(signal, false);
      }
    } catch (err) {
      this.#readLock.release();
      throw err;
    }
    const type = receiver.frontType as MessageType;
    return { type, stream: messageStream(receiver, signal, () => this.#readLock.release()) };
  }

  /**
   * Sends one data message. `data` is a string (sent as UTF-8) or bytes,
   * which are copied into the frame and never modified: the caller may
   * reuse its buffer as soon as this returns. Concurrent calls take turns;
   * their frames never interleave. Resolves once the socket has accepted
   * the message, waiting for 'drain' when its buffer is full.
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
    return this.#write(type, data, options);
  }

  /**
   * Writes a prepared message: `write()` for a message encoded once for
   * many connections (see `PreparedMessage`). A server connection writes
   * the message's shared frame without copying it. Same waits, ordering and
   * abort rules as `write()`.
   *
   * @throws TypeError unless `message` is a `PreparedMessage`.
   * @throws ClosedError when the connection is closing or gone.
   */
  writePrepared(message: PreparedMessage, options?: WriteOptions): Promise<void> {
    if (!(message instanceof PreparedMessage)) return Promise.reject(new TypeError('writePrepared() takes a PreparedMessage'));
    return this.#write(message.type, message, options);
  }

  #write(type: MessageType, data: Payload, options: WriteOptions | undefined): Promise<void> {
    const signal = options?.signal;
    if (!signal?.aborted && !this.#sender.full && this.#writeLock.tryAcquire()) {
      // The common case: nobody else is writing and the socket has room.
      let room: boolean;
      try {
        room = this.#transmitMessage(type, data, options?.compress);
      } catch (err) {
        this.#writeLock.release();
        return Promise.reject(err);
      }
      if (room) {
        this.#writeLock.release();
        return Promise.resolve();
      }
      return this.#drainHolding(signal);
    }
    return this.#writeWaiting(type, data, options);
  }

  async #writeWaiting(type: MessageType, data: Payload, options: WriteOptions | undefined): Promise<void> {
    const signal = options?.signal;
    await this.#writeLock.acquire(signal);
    try {
      await this.#sender.drain(signal);
      if (!this.#transmitMessage(type, data, options?.compress)) await this.#sender.drain(signal);
    } finally {
      this.#writeLock.release();
    }
  }

  /** Holds the write turn until the socket has drained what the last message left. */
  async #drainHolding(signal: AbortSignal | undefined): Promise<void> {
    try {
      await this.#sender.drain(signal);
    } finally {
      this.#writeLock.release();
    }
  }

  /** The send path's last step for a message: state check, encode, one socket write; nothing awaited. */
  #transmitMessage(type: MessageType, data: Payload, compress: boolean | undefined): boolean {
    this.#assertOpen();
    const engine = this.#engine;
    const bytes = data instanceof PreparedMessage ? engine.encodePrepared(data, compress) : engine.encodeMessage(type, data, compress);
    return this.#sender.transmit(bytes);
  }

  /**
   * Writes `message` now if nobody else is writing and the socket has
   * room, for `broadcast()`: 'sent', 'busy' (queue it and use
   * `writePrepared()`), or 'closed' (the connection is closing or gone).
   */
  #offer(message: PreparedMessage): Offer {
    if (!this.#writable()) return 'closed';
    if (this.#sender.full || !this.#writeLock.tryAcquire()) return 'busy';
    try {
      this.#sender.holdThisTurn();
      this.#transmitMessage(message.type, message, undefined);
      return 'sent';
    } finally {
      this.#writeLock.release();
    }
  }

  #writable(): boolean {
    return this.#closing.ended === undefined && !this.#engine.closeSent && this.#sender.writable;
  }

  /** A queued broadcast message: it takes its place in the write queue when called. */
  #enqueue(queued: QueuedMessage): Promise<void> {
    const { granted, withdraw } = this.#writeLock.enter();
    queued.withdraw = withdraw;
    return this.#writeQueued(granted, queued);
  }

  async #writeQueued(granted: Promise<boolean>, queued: QueuedMessage): Promise<void> {
    if (!(await granted)) return;
    try {
      // Dropped between getting the turn and running: it gives the turn straight on.
      if (queued.dropped) return;
      queued.started = true;
      await this.#sender.drain(undefined);
      this.#sender.holdThisTurn();
      if (!this.#transmitMessage(queued.message.type, queued.message, undefined)) await this.#sender.drain(undefined);
    } finally {
      this.#writeLock.release();
    }
  }

  static {
    broadcastAccess = {
      offer: (conn, message) => conn.#offer(message),
      enqueue: (conn, queued) => conn.#enqueue(queued),
      writable: (conn) => conn.#writable(),
    };
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
      this.#assertOpen();
      await this.#sender.drain(signal);
    } catch (err) {
      this.#writeLock.release();
      throw err;
    }
    const compress = this.extensions !== '' && options?.compress !== false;
    return messageSink(
      {
        drain: (signal) => this.#sender.drain(signal),
        transmit: (chunk, fin) => {
          this.#assertOpen();
          return this.#sender.transmit(this.#engine.encodeFragment(type, chunk, fin, compress));
        },
        release: () => this.#writeLock.release(),
        // A writer cut short by our own close() is not a failure of the connection.
        fail: (error) => {
          if (!this.#engine.closeSent) this.#closing.fail(error);
        },
      },
      type,
      signal,
    );
  }

  /**
   * Sends a ping and resolves with the round-trip time in milliseconds once
   * its pong arrives. Pongs are seen while input flows: keep reading (or
   * call `closeRead()`) so that the receive buffer does not fill.
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
        this.#sender.transmit(this.#engine.encodeControl(Opcode.Ping, payload));
      },
      dead: (timeout) => this.#closing.drop(new ClosedError(`keepalive: no pong within ${timeout} ms; the peer is gone`)),
    });
    return this.#pinger;
  }

  /**
   * Reads and discards in the background so that control frames are
   * answered and the close handshake completes when the application only
   * writes. A data message from the peer closes the connection with 1008
   * (policy violation). `read()` and `reader()` reject with `ClosedError`
   * after this.
   *
   * @param options `signal` stops the background reading when it aborts. A
   * bare `AbortSignal` is still accepted for one release (deprecated).
   * @returns a signal that aborts, with the reason the connection ended,
   * once it has ended.
   */
  closeRead(options?: CloseReadOptions | AbortSignal): AbortSignal {
    if (this.#closeRead !== undefined) return this.#closeRead.signal;
    const signal = options instanceof AbortSignal ? options : options?.signal;
    const controller = new AbortController();
    this.#closeRead = controller;
    if (this.#closing.settled) {
      controller.abort(this.#closing.ended);
      return controller.signal;
    }
    const receiver = this.#receiver;
    const stop = (): void => {
      receiver.refuse = false;
      receiver.demand--;
    };
    if (signal?.aborted) return controller.signal;
    receiver.demand++;
    signal?.addEventListener('abort', stop, { once: true });
    controller.signal.addEventListener('abort', () => signal?.removeEventListener('abort', stop), { once: true });
    receiver.startRefusing();
    receiver.pump();
    return controller.signal;
  }

  /**
   * Sets the read limit in bytes for the messages read from now on; -1 or
   * `Infinity` removes it. See `ConnOptions.readLimit`.
   * @throws RangeError unless `n` is a non-negative integer, -1 or Infinity.
   */
  setReadLimit(n: number): void {
    this.#engine.readLimit = checkLimit(n);
  }

  /**
   * Closes the connection with the close handshake (RFC 6455 §7): sends a
   * close frame, waits up to `closeTimeout` (5 s) for the peer's, then up to
   * as long again for the TCP connection to close. Input keeps flowing
   * meanwhile: messages the peer sent before its close frame can all still
   * be read, in order; only a connection that has never been read drops
   * what would overflow its receive buffer.
   * Idempotent: later calls return the first call's result. Never rejects
   * for a slow or vanished peer: it resolves with `closed`.
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

  /** Drops the TCP connection at once, with no close handshake; unread messages are discarded. Idempotent. */
  closeNow(): void {
    this.#receiver.clear();
    this.#closing.drop(new ClosedError('connection closed by closeNow()'));
  }

  /**
   * A graceful `close(1000)`, bounded by `closeTimeout`, for `await using`
   * (like Python's `async with`); use `closeNow()` for an abrupt end.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close(1000);
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
        if (endsIteration(err)) return;
        throw err;
      }
      yield message;
    }
  }

  #onControl(event: ControlEvent): void {
    const { payload } = event;
    if (event.kind === 'ping') {
      const answer = this.#hooks?.onPingReceived?.(payload);
      if (answer !== false) this.#sender.pong(this.#engine, payload);
    } else {
      this.#hooks?.onPongReceived?.(payload);
      this.#pinger?.pong(payload);
    }
  }

  #assertReadable(): void {
    if (this.#closeRead !== undefined) throw new ClosedError('read after closeRead(): the connection is write-only');
  }

  /** Throws unless a data frame may go out now (RFC 6455 §5.5.1: none after our close frame). */
  #assertOpen(): void {
    const ended = this.#closing.ended;
    if (ended !== undefined) throw new ClosedError(undefined, { cause: ended });
    if (this.#engine.closeSent || !this.#sender.writable) throw new ClosedError('the connection is closing');
  }
}
