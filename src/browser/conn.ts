/**
 * The browser build's Conn: wsconn's promise and AbortSignal API over the
 * platform's `WebSocket`, with the same types and, where the WebSocket API
 * lets them hold, the same semantics as the Node Conn.
 * @module
 */
import { ClosedError, CloseError, ProtocolError } from '../errors.js';
import { deferred } from '../internal/deferred.js';
import { MessageType, type Message, type MessageReader, type SignalOptions } from '../message.js';
import { endsIteration, type CloseInfo } from '../status.js';
import { abortable, maxPollDelay, OPEN, pause, type PlatformEvent, type PlatformWebSocket } from './platform.js';

/** Options of a browser Conn, taken by the browser `dial()`. */
export interface BrowserConnOptions {
  /**
   * How long, in ms, `close()` waits for the close handshake, twice over
   * (as the Node Conn's two waits). Default 5000. When it runs out,
   * `closed` settles with 1006; the browser ends the socket on its own.
   */
  closeTimeout?: number;
  /**
   * The most bytes of received messages held for `read()`; default 1 MiB,
   * each message counting at least 64 bytes. The WebSocket API cannot stop
   * the browser from receiving, so a peer that sends faster than the page
   * reads fills it: the next message closes the connection with 4008
   * ({@link policyViolationCode}) and reads, once the queue is drained, reject with
   * a `ProtocolError` whose `code` is 4008. A message that arrives when
   * nothing is queued is always taken, whatever its size.
   */
  readQueueLimit?: number;
  /**
   * `write()` waits while the socket's `bufferedAmount` is above this many
   * bytes; default 256 KiB. So a slow network pushes back on the writer.
   */
  writeBufferLimit?: number;
}

/**
 * The close code the browser build sends when its read queue overflows or
 * a message arrives after `closeRead()`: the Node Conn sends 1008 (policy
 * violation), but the WebSocket API lets a page send only 1000 and
 * 3000–4999, so the private range carries it as 4000 + 8.
 */
export const policyViolationCode = 4008;

const defaults = { closeTimeout: 5000, readQueueLimit: 1024 * 1024, writeBufferLimit: 256 * 1024 };
/** What each queued message counts for at least, so that many empty messages fill the queue too. */
const messageOverhead = 64;
/** RFC 6455 §5.5: a control frame's payload is at most 125 bytes, 2 of them the code. */
const maxReasonBytes = 123;
const encoder = new TextEncoder();
// ignoreBOM: a leading U+FEFF is part of the text and is sent as it is, as the Node build does.
const strictDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
/** The longest delay a timer honours, in ms (longer ones fire at once). */
const maxTimerDelay = 2 ** 31 - 1;

/** One `read()` waiting for a message. */
interface ReadWaiter {
  resolve(message: Message): void;
  reject(error: unknown): void;
}

/** Throws unless `n` is a positive integer, or `undefined`. */
export function checkSize(name: string, n: number | undefined): void {
  if (n !== undefined && !(Number.isSafeInteger(n) && n > 0)) throw new RangeError(`${name} must be a positive integer, got ${String(n)}`);
}

/** Throws unless `ms` is a positive number of ms a timer can wait (as the Node build checks it), or `undefined`. */
export function checkDelay(name: string, ms: number | undefined): void {
  if (ms !== undefined && !(ms > 0 && ms <= maxTimerDelay)) {
    throw new RangeError(`${name} must be a positive number of ms up to ${maxTimerDelay}, got ${String(ms)}`);
  }
}

/**
 * A WebSocket connection in a browser (or any runtime with a WHATWG
 * `WebSocket` global), made by the browser build's `dial()`. Reads pull
 * from a bounded queue fed by the socket's `message` events; writes wait
 * while the socket's `bufferedAmount` is high.
 *
 * What the WebSocket API cannot do: `ping()` rejects with a
 * `NotSupportedError` (the browser answers the server's pings itself);
 * `close()` sends only 1000 and 3000–4999; `setReadLimit()` is a no-op
 * (messages arrive whole before the page sees them: the read queue's bound
 * is the limit); a `writer()` message is sent whole when its stream closes.
 */
export class Conn {
  /** Settles once, when the browser reports the socket closed; never rejects. */
  readonly closed: Promise<CloseInfo>;
  readonly #ws: PlatformWebSocket;
  readonly #info = deferred<CloseInfo>();
  readonly #queue: Message[] = [];
  readonly #waiters: ReadWaiter[] = [];
  readonly #closeTimeout: number;
  readonly #queueLimit: number;
  readonly #bufferLimit: number;
  #queuedBytes = 0;
  /** What reads reject with once the queue is empty. */
  #readEnd: Error | undefined;
  /** What writes reject with: set once the connection is closing. */
  #writeEnd: Error | undefined;
  #closing: Promise<CloseInfo> | undefined;
  #refusing = false;
  /** Set by `closeRead()`: reads reject from then on, and later calls return its signal. */
  #closeRead: AbortController | undefined;
  /** Wakes the waits for `bufferedAmount` once writes have ended. */
  readonly #wakers = new Set<() => void>();
  /** Resolves once writes have ended: the writes waiting for their turn then reject. */
  readonly #writesEnded = deferred<void>();
  /** Writes take turns in call order: each waits for the previous one's turn to end. */
  #turn: Promise<void> = Promise.resolve();
  readonly #onMessage = (event: PlatformEvent): void => this.#received(event.data);
  readonly #onClose = (event: PlatformEvent): void => this.#ended(event);

  /**
   * @internal Made by `dial()` around a new socket, before it opens, so that
   * no message can arrive unheard.
   */
  constructor(ws: PlatformWebSocket, options: BrowserConnOptions) {
    this.#ws = ws;
    this.closed = this.#info.promise;
    this.#closeTimeout = options.closeTimeout ?? defaults.closeTimeout;
    this.#queueLimit = options.readQueueLimit ?? defaults.readQueueLimit;
    this.#bufferLimit = options.writeBufferLimit ?? defaults.writeBufferLimit;
    ws.addEventListener('message', this.#onMessage);
    ws.addEventListener('close', this.#onClose);
  }

  /** The subprotocol the server chose, or `''`. */
  get subprotocol(): string {
    return this.#ws.protocol;
  }

  /** The extensions the browser negotiated (it decides compression itself), or `''`. */
  get extensions(): string {
    return this.#ws.extensions;
  }

  /**
   * Reads the next data message. An abort rejects with `signal.reason` and
   * keeps the connection: the message it would have taken stays queued for
   * the next read.
   * @throws CloseError once the peer's close has come (and the queue is empty).
   * @throws ProtocolError 4008 after the read queue overflowed.
   * @throws ClosedError when the connection ended without a close frame, or by `closeNow()`.
   */
  read(options?: SignalOptions): Promise<Message> {
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const next = this.#queue.shift();
    if (next !== undefined) {
      this.#queuedBytes -= Math.max(next.data.length, messageOverhead);
      return Promise.resolve(next);
    }
    if (this.#closeRead !== undefined) return Promise.reject(new ClosedError('read after closeRead(): the connection is write-only'));
    if (this.#readEnd !== undefined) return Promise.reject(this.#readEnd);
    const waiter = deferred<Message>();
    this.#waiters.push(waiter);
    if (signal === undefined) return waiter.promise;
    const onAbort = (): void => {
      const at = this.#waiters.indexOf(waiter);
      if (at === -1) return; // settled already
      this.#waiters.splice(at, 1);
      waiter.reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    const forget = (): void => signal.removeEventListener('abort', onAbort);
    waiter.promise.then(forget, forget);
    return waiter.promise;
  }

  /**
   * Reads the next message as a stream. The browser has received the whole
   * message already, so the stream holds it as one chunk.
   * @throws as `read()`.
   */
  async reader(options?: SignalOptions): Promise<MessageReader> {
    const { type, data } = await this.read(options);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        if (data.length > 0) controller.enqueue(data);
        controller.close();
      },
    });
    return { type, stream };
  }

  /**
   * Sends one message. Waits first, in call order, while the socket's
   * `bufferedAmount` is above `writeBufferLimit` (looking again at growing
   * intervals up to 32 ms), then queues the message whole; an abort while
   * waiting sends nothing. The bytes are handed to the socket (which copies
   * them) when the message's turn comes, by the time the promise settles:
   * the caller may reuse its buffer then, not before.
   * @throws TypeError for a bad type or data, or text bytes that are not UTF-8.
   * @throws ClosedError when the connection is closing or gone.
   */
  async write(type: MessageType, data: string | Uint8Array, options?: SignalOptions): Promise<void> {
    const payload = toPayload(type, data);
    await this.#inTurn(options?.signal, async () => {
      await this.#drained(options?.signal);
      this.#ws.send(payload);
    });
  }

  /**
   * Starts a message written piece by piece. The WebSocket API cannot send
   * fragments, so the pieces are collected and sent as one message when the
   * stream closes; aborting the stream sends nothing (the connection stays).
   * Other writes wait until the stream is closed or aborted.
   * @throws as `write()`.
   */
  async writer(type: MessageType, options?: SignalOptions): Promise<WritableStream<Uint8Array>> {
    toPayload(type, '');
    const signal = options?.signal;
    const turn = deferred<void>();
    const started = deferred<void>();
    this.#inTurn(signal, async () => {
      started.resolve();
      await turn.promise;
    }).catch(started.reject);
    await started.promise;
    const pieces: Uint8Array[] = [];
    return new WritableStream<Uint8Array>({
      write: (chunk) => {
        if (!(chunk instanceof Uint8Array)) throw new TypeError('writer() chunks must be Uint8Arrays');
        pieces.push(chunk.slice());
      },
      close: async () => {
        try {
          const payload = toPayload(type, concat(pieces));
          await this.#drained(signal);
          this.#ws.send(payload);
        } finally {
          turn.resolve();
        }
      },
      abort: () => turn.resolve(),
    });
  }

  /**
   * Not available: the WebSocket API cannot send a ping. The browser
   * answers the server's pings itself, so the server can measure the round trip.
   * @throws DOMException `NotSupportedError`, always.
   */
  ping(options?: SignalOptions): Promise<number> {
    void options;
    return Promise.reject(new DOMException('ping() is not available in the browser build: the WebSocket API cannot send pings', 'NotSupportedError'));
  }

  /**
   * Reads and discards in the background, for a connection that only
   * writes: any data message that is or becomes queued closes the
   * connection with 4008 ({@link policyViolationCode}, the page's 1008). Returns a signal
   * that aborts when the connection ends. Aborting the options' signal stops it.
   */
  closeRead(options?: SignalOptions | AbortSignal): AbortSignal {
    if (this.#closeRead !== undefined) return this.#closeRead.signal;
    const signal = options instanceof AbortSignal ? options : options?.signal;
    const ended = new AbortController();
    this.#closeRead = ended;
    const stop = (): void => {
      this.#refusing = false;
    };
    const end = (): void => {
      signal?.removeEventListener('abort', stop);
      ended.abort(this.#readEnd ?? new ClosedError());
    };
    this.closed.then(end, end);
    this.#rejectReads(new ClosedError('read after closeRead(): the connection is write-only'));
    if (signal?.aborted) return ended.signal;
    this.#refusing = true;
    signal?.addEventListener('abort', stop, { once: true });
    if (this.#queue.length > 0) this.#fail('closeRead: a data message arrived');
    return ended.signal;
  }

  /**
   * Checks `n` as the Node Conn does, and is otherwise a no-op: the browser
   * receives each message whole before the page sees it, so the limit that
   * protects memory here is `readQueueLimit`.
   * @throws RangeError unless `n` is a non-negative integer, -1 or `Infinity`.
   */
  setReadLimit(n: number): void {
    if (n === -1 || n === Infinity || (Number.isSafeInteger(n) && n >= 0)) return;
    throw new RangeError(`read limit must be a non-negative integer, -1 or Infinity, got ${n}`);
  }

  /**
   * Starts the close handshake and resolves with `closed` once it ended
   * (at most twice `closeTimeout`). Messages already queued stay readable.
   * Idempotent: later calls return the first call's result.
   * @param code 1000 (the default) or 3000–4999: the only codes the WebSocket API sends.
   * @param reason at most 123 bytes of UTF-8 (RFC 6455 §5.5).
   * @throws RangeError for another code or a longer reason (nothing is sent).
   */
  close(code: number = 1000, reason = ''): Promise<CloseInfo> {
    if (this.#closing !== undefined) return this.#closing;
    // The WebSocket API's close() takes 1000 or 3000–4999 (the registered and private ranges, RFC 6455 §7.4.2).
    if (code !== 1000 && !(Number.isInteger(code) && code >= 3000 && code <= 4999)) {
      return Promise.reject(new RangeError(`close code ${code} cannot be sent by the WebSocket API: use 1000 or 3000–4999`));
    }
    const bytes = encoder.encode(reason).length;
    if (bytes > maxReasonBytes) return Promise.reject(new RangeError(`close reason is ${bytes} bytes; at most ${maxReasonBytes} fit`));
    return this.#shutdown(new ClosedError('the connection is closing'), code, reason);
  }

  /**
   * Ends the connection without waiting: unread messages are discarded and
   * reads and writes reject with `ClosedError`. The WebSocket API cannot
   * drop the TCP connection, so this sends a close frame without a status
   * code (the peer sees 1005); `closed` settles when the browser is done.
   */
  closeNow(): void {
    const error = new ClosedError('connection closed by closeNow()');
    this.#queue.length = 0;
    this.#queuedBytes = 0;
    this.#readEnd ??= error;
    this.#rejectReads(this.#readEnd);
    this.#shutdown(error).catch(() => {});
  }

  /**
   * A graceful `close(1000)`, bounded by `closeTimeout`, for `await using`
   * (a browser without `Symbol.asyncDispose` needs a polyfill loaded before wsconn).
   */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close(1000);
  }

  /**
   * Yields messages as `read()` returns them, until the peer closes with
   * 1000, 1001 or no status (1005); any other ending throws.
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

  /** Closes the socket once and bounds the wait for the browser's `close` event. */
  #shutdown(error: Error, code?: number, reason?: string): Promise<CloseInfo> {
    if (this.#closing !== undefined) return this.#closing;
    this.#endWrites(error);
    if (code === undefined) this.#ws.close();
    else this.#ws.close(code, reason);
    const wait = Math.min(2 * this.#closeTimeout, maxTimerDelay);
    const timer = setTimeout(() => this.#settle(1006, '', new ClosedError('the peer did not answer the close frame in time')), wait);
    const stop = (): void => clearTimeout(timer);
    this.closed.then(stop, stop);
    this.#closing = this.closed;
    return this.#closing;
  }

  /** A `message` event: hand it to a waiting read, or queue it within the bound. */
  #received(data: unknown): void {
    if (this.#readEnd !== undefined) return;
    const message = toMessage(data);
    if (message === undefined) return this.#fail(`the WebSocket delivered a ${Object.prototype.toString.call(data)}, not text or an ArrayBuffer`);
    if (this.#refusing) return this.#fail('closeRead: a data message arrived');
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) return waiter.resolve(message);
    const size = Math.max(message.data.length, messageOverhead);
    if (this.#queue.length > 0 && this.#queuedBytes + size > this.#queueLimit) {
      return this.#fail(`read queue full: ${this.#queue.length} messages (${this.#queuedBytes} bytes) unread`);
    }
    this.#queue.push(message);
    this.#queuedBytes += size;
  }

  /** Closes with 4008, the page's stand-in for 1008 (policy violation, RFC 6455 §7.4.1). */
  #fail(why: string): void {
    const error = new ProtocolError(policyViolationCode, why);
    this.#readEnd ??= error;
    this.#rejectReads(error);
    this.#shutdown(new ClosedError('the connection failed', { cause: error }), policyViolationCode, why.slice(0, maxReasonBytes)).catch(() => {});
  }

  /** The browser's `close` event: the peer's close code, or 1006. */
  #ended(event: PlatformEvent): void {
    this.#settle(event.code ?? 1006, event.reason ?? '', undefined, event.wasClean === true);
  }

  #settle(code: number, reason: string, error: Error | undefined, wasClean = false): void {
    this.#ws.removeEventListener('message', this.#onMessage);
    this.#ws.removeEventListener('close', this.#onClose);
    // The API reports 1006 (or 1015) when no close frame came; any other code is the peer's frame.
    const peerClosed = code !== 1006 && code !== 1015 && error === undefined;
    const end = peerClosed ? new CloseError(code, reason) : (error ?? new ClosedError('connection closed without a close frame'));
    this.#readEnd ??= end;
    this.#endWrites(new ClosedError(undefined, { cause: end }));
    this.#rejectReads(this.#readEnd);
    this.#info.resolve({ code, reason, wasClean, ...(wasClean ? {} : { error: error ?? this.#readEnd }) });
  }

  /** From now on writes reject with `error` (or the first such error), waiting ones too. */
  #endWrites(error: Error): void {
    this.#writeEnd ??= error;
    this.#writesEnded.resolve();
    for (const wake of this.#wakers) wake();
  }

  #rejectReads(error: Error): void {
    for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
  }

  /** Runs `task` once every earlier write's turn has ended; an abort while waiting sends nothing. */
  async #inTurn(signal: AbortSignal | undefined, task: () => Promise<void>): Promise<void> {
    const previous = this.#turn;
    const mine = deferred<void>();
    this.#turn = mine.promise;
    try {
      await abortable(Promise.race([previous, this.#writesEnded.promise]), signal);
      this.#assertWritable();
      await task();
    } finally {
      // Released only after the previous turn, so writes never overtake one another.
      void previous.then(() => mine.resolve());
    }
  }

  /** Waits, looking at growing intervals, until `bufferedAmount` is at most `writeBufferLimit`. */
  async #drained(signal: AbortSignal | undefined): Promise<void> {
    let delay = 1;
    while (this.#ws.bufferedAmount > this.#bufferLimit) {
      this.#assertWritable();
      await pause(delay, this.#wakers, signal);
      delay = Math.min(delay * 2, maxPollDelay);
    }
    if (signal?.aborted) throw signal.reason;
    this.#assertWritable();
  }

  #assertWritable(): void {
    if (this.#writeEnd !== undefined) throw this.#writeEnd;
    if (this.#ws.readyState !== OPEN) throw new ClosedError();
  }
}

/** Checks a message as the Node Conn does and turns it into what `send()` takes. */
/** A `message` event's data as a Message; undefined for anything but text or binary data. */
function toMessage(data: unknown): Message | undefined {
  if (typeof data === 'string') return { type: MessageType.Text, data: encoder.encode(data) };
  if (data instanceof ArrayBuffer) return { type: MessageType.Binary, data: new Uint8Array(data) };
  if (ArrayBuffer.isView(data)) return { type: MessageType.Binary, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  // A Blob (binaryType left at 'blob') or anything else: refusing it beats reading it as empty.
  return undefined;
}

function toPayload(type: MessageType, data: string | Uint8Array): string | Uint8Array {
  if (type !== MessageType.Text && type !== MessageType.Binary) {
    throw new TypeError(`message type must be MessageType.Text (1) or MessageType.Binary (2), got ${String(type)}`);
  }
  if (typeof data === 'string') return type === MessageType.Text ? data : encoder.encode(data);
  if (!(data instanceof Uint8Array)) throw new TypeError('message data must be a string or a Uint8Array');
  if (type === MessageType.Binary) return data;
  try {
    return strictDecoder.decode(data);
  } catch {
    throw new TypeError('text message bytes are not valid UTF-8');
  }
}

function concat(pieces: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(pieces.reduce((n, piece) => n + piece.length, 0));
  let at = 0;
  for (const piece of pieces) {
    out.set(piece, at);
    at += piece.length;
  }
  return out;
}
