/**
 * The receive pump of a Conn: the one place that takes bytes from the
 * transport, feeds the protocol engine and queues what it yields for
 * `read()`, `reader()`, `closeRead()` and the close handshake alike.
 *
 * - Input is bounded: the socket is paused once the engine holds more
 *   than `highWaterMark` unparsed bytes, and parsing stops once the queued
 *   messages pass it and nobody waits for them. Bytes then stay in the
 *   kernel and TCP pushes back on the peer.
 * - Control frames are answered while input flows (the pump is eager up to
 *   those bounds); the Conn holds at most one pong while its socket is full.
 * - Nothing is dropped once the application reads: during the close
 *   handshake, messages keep their place (backpressure as usual, bounded by
 *   the close timeout); only a connection nobody has read drops what would
 *   overflow the queue, so that the peer's close frame can still be found.
 * - Fair: input is processed in slices of about a millisecond; then the
 *   pump yields to the event loop (`setImmediate`) before it goes on, so
 *   one busy connection cannot starve the others.
 * @module
 */
import type { Duplex } from 'node:stream';
import type { Message } from './options.js';
import type { CloseEvent, ControlEvent, DataEvent, FailEvent, Protocol } from './protocol/engine.js';

/** Unparsed and queued bytes a connection holds before it stops taking input. */
export const highWaterMark = 64 * 1024;
/** What a queued piece costs beyond its bytes, so that a flood of tiny frames is bounded too. */
const pieceCost = 64;
/** How long, in ms, one slice of input processing may run before the pump yields. */
const sliceMs = 1;
/** The most events one slice handles, whatever the clock says. */
const sliceEvents = 1024;

/** The empty queue every idle connection shares; never written to. */
const noPieces: DataEvent[] = [];

/** The receive pump's yes/no state, as bits of one number. */
const Flag = {
  /** The waiting reader wants any piece, not only a whole message. */
  WakeOnPiece: 1,
  /** A message went to a waiting read() in this turn (its code after the read has not run yet). */
  HandedOver: 2,
  /** The transport's input ended. */
  Eof: 4,
  /** The socket is paused. */
  Paused: 8,
  /** A slice is running (pump() is not re-entered). */
  Pumping: 16,
  /** The next slice is scheduled for a later turn. */
  Deferred: 32,
  /** Drop messages that would overflow the queue of a connection nobody reads (the close handshake sets it). */
  DiscardWhenFull: 64,
  /** A held-back close or failure is due to take effect on the next turn. */
  Settling: 128,
  /** The message being received is dropped. */
  Dropping: 256,
  /** Data messages are refused (closeRead()). */
  Refuse: 512,
  /** The application has called a read at least once. */
  Reading: 1024,
} as const;
type Flag = (typeof Flag)[keyof typeof Flag];

/** What the pump hands to its Conn. */
export interface ReceiveHost {
  /** A ping or pong arrived. */
  control(event: ControlEvent): void;
  /** The peer's close frame arrived; returns the error reads end with. */
  peerClosed(event: CloseEvent): Error;
  /** The peer broke the protocol. */
  failed(event: FailEvent): void;
  /** A data message arrived while the Conn refuses them (after `closeRead()`). */
  refused(): void;
  /** The transport ended with no close frame; returns the error reads end with. */
  lost(): Error;
  /** A `nextMessage()` settled: the read's turn is over. */
  readDone(): void;
}

/** The receive pump and the queue of received data, in pieces. */
export class Receiver {
  readonly #socket: Duplex;
  readonly #engine: Protocol;
  readonly #host: ReceiveHost;
  /** The queue; the shared `noPieces` while empty, so an idle connection holds no array of its own. */
  #pieces: DataEvent[] = noPieces;
  #head = 0;
  /** Whole messages queued (pieces with `fin`). */
  #complete = 0;
  #bytes = 0;
  /** The type of a message whose first pieces a reader already took (0 when none). */
  #midType: 0 | 1 | 2 = 0;
  /** Why no more data will come, once that is known. */
  #end: Error | undefined;
  /** The peer's close or a failure, held back until the messages before it are read. */
  #pending: CloseEvent | FailEvent | undefined;
  #wake: (() => void) | undefined;
  /** A `nextMessage()` waiting, settled by the pump: no promise or closure of its own beyond these. */
  #resolveRead: ((message: Message | Promise<never>) => void) | undefined;
  /** Removes that read's abort listener, when it has a signal. */
  #unlistenRead: (() => void) | undefined;
  #sliceStart = 0;
  /** The pump's yes/no state, one bit each (see `Flag`): one field instead of eleven on every connection. */
  #flags = 0;
  /** Something other than a read wants input to keep flowing (the close handshake, closeRead()). */
  demand = 0;

  /** Data messages are refused (closeRead(); see `startRefusing()`). */
  get refuse(): boolean {
    return this.#is(Flag.Refuse);
  }

  set refuse(on: boolean) {
    this.#set(Flag.Refuse, on);
  }

  /** The application reads this connection (it has called a read at least once). */
  get reading(): boolean {
    return this.#is(Flag.Reading);
  }

  set reading(on: boolean) {
    this.#set(Flag.Reading, on);
  }

  #is(flag: Flag): boolean {
    return (this.#flags & flag) !== 0;
  }

  #set(flag: Flag, on: boolean): void {
    this.#flags = on ? this.#flags | flag : this.#flags & ~flag;
  }

  constructor(socket: Duplex, engine: Protocol, host: ReceiveHost) {
    this.#socket = socket;
    this.#engine = engine;
    this.#host = host;
  }

  /**
   * Starts taking input: `head` (bytes that came with the handshake) first,
   * then the socket's, which its Conn passes to `received()` and `ended()`.
   */
  start(head: Uint8Array | undefined): void {
    if (head !== undefined && head.length > 0) this.#engine.receive(head);
    // A handshake may have paused the socket; the pump decides from now on.
    this.#socket.resume();
    // The first slice runs a turn later, so that the application can start
    // reading before a close that came with the first bytes takes effect (see #handle).
    this.#defer();
  }

  /** Refuses data messages from now on (closeRead()); messages already queued are refused at once. */
  startRefusing(): void {
    this.refuse = true;
    if (this.hasPiece) this.#host.refused();
  }

  /** Bytes from the socket ('data'). */
  received(chunk: Buffer): void {
    this.#set(Flag.HandedOver, false);
    this.#engine.receive(chunk);
    this.#sliceStart = performance.now();
    this.pump();
  }

  /** The socket's end of input ('end'). */
  ended(): void {
    this.#set(Flag.Eof, true);
    this.pump();
  }

  /**
   * Why no more data will come (reads reject with it once the queue is
   * empty), or undefined. A peer's close or failure that arrived behind
   * queued messages takes effect only once a reader has taken them (`whole`:
   * only whole messages count), so the application can still answer them.
   */
  ending(whole: boolean): Error | undefined {
    if (this.#pending !== undefined && !(whole ? this.hasMessage : this.hasPiece)) this.settle();
    return this.#end;
  }

  /** Lets a held-back close or failure take effect now (the application closes, or drops the connection). */
  settle(): void {
    const pending = this.#pending;
    this.#pending = undefined;
    if (pending !== undefined) this.#terminal(pending);
  }

  /** Once the messages before a held-back close are all taken, it takes effect a turn later (the application may still answer them). */
  #settleSoon(): void {
    if (this.#pending === undefined || this.hasPiece || this.#is(Flag.Settling)) return;
    this.#set(Flag.Settling, true);
    setImmediate(() => {
      this.#set(Flag.Settling, false);
      this.settle();
    });
  }

  /** Whether a whole message is queued. */
  get hasMessage(): boolean {
    return this.#complete > 0;
  }

  /** Whether any piece is queued. */
  get hasPiece(): boolean {
    return this.#head < this.#pieces.length;
  }

  /** The type of the message at the front of the queue (0 when none). */
  get frontType(): 0 | 1 | 2 {
    return this.#midType !== 0 ? this.#midType : (this.#pieces[this.#head]?.type ?? 0);
  }

  /** Takes the whole message at the front; only when `hasMessage`. */
  takeMessage(): Message {
    const type = this.frontType as 1 | 2;
    const first = this.#shift();
    this.#midType = 0;
    this.#complete--;
    let data = first.data;
    if (!first.fin) {
      const parts = [data];
      let size = data.length;
      for (let piece = first; !piece.fin; ) {
        piece = this.#shift();
        parts.push(piece.data);
        size += piece.data.length;
      }
      data = Buffer.concat(parts, size);
    }
    this.#settleSoon();
    return { type, data };
  }

  /** Takes the next piece of the message at the front, or undefined when none is queued. */
  takePiece(): DataEvent | undefined {
    if (!this.hasPiece) return undefined;
    const type = this.frontType as 1 | 2;
    const piece = this.#shift();
    if (piece.fin) {
      this.#complete--;
      this.#midType = 0;
      this.#settleSoon();
    } else {
      this.#midType = type;
    }
    return piece;
  }

  #shift(): DataEvent {
    // Never write into the shared empty queue (callers check first; this keeps a slip local).
    if (this.#head >= this.#pieces.length) throw new Error('wsconn internal error: the receive queue is empty');
    const piece = this.#pieces[this.#head]!;
    this.#pieces[this.#head++] = undefined!;
    if (this.#head === this.#pieces.length) {
      this.#pieces = noPieces;
      this.#head = 0;
    }
    this.#bytes -= piece.data.length + pieceCost;
    return piece;
  }

  /** Drops everything queued (closeNow()). */
  clear(): void {
    this.#pending = undefined;
    this.#pieces = noPieces;
    this.#head = 0;
    this.#complete = 0;
    this.#bytes = 0;
    this.#midType = 0;
  }

  /**
   * Resolves once something arrived for the waiting reader (a whole message
   * when `whole`, else any piece) or input ended; rejects with
   * `signal.reason` on abort. One waiter at a time (reads take turns).
   */
  wait(signal: AbortSignal | undefined, whole: boolean): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const promise = new Promise<void>((resolve, reject) => {
      if (signal === undefined) {
        this.#wake = resolve;
        return;
      }
      const wake = (): void => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = (): void => {
        if (this.#wake === wake) this.#wake = undefined;
        this.#flow();
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.#wake = wake;
    });
    this.#set(Flag.WakeOnPiece, !whole);
    this.pump();
    return promise;
  }

  /**
   * Resolves with the next whole message, or rejects once input ended (or
   * with `signal.reason` on abort), for a `read()` that holds the read turn
   * and found nothing queued; `host.readDone()` is called when it settles.
   * Cheaper than `wait()` in a loop: an idle connection waiting to read
   * holds one promise.
   */
  nextMessage(signal: AbortSignal | undefined): Promise<Message> {
    // Only the resolving function is kept (its reject twin would cost every idle
    // connection a closure): a rejection resolves with a rejected promise.
    const promise = new Promise<Message>((resolve) => (this.#resolveRead = resolve));
    if (signal !== undefined) {
      const onAbort = (): void => {
        const resolve = this.#resolveRead;
        if (resolve === undefined) return;
        this.#endRead();
        this.#flow();
        resolve(Promise.reject(signal.reason as Error));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.#unlistenRead = () => signal.removeEventListener('abort', onAbort);
    }
    this.#set(Flag.WakeOnPiece, false);
    this.pump();
    return promise;
  }

  /** Settles a waiting `nextMessage()` if a message or the end is there. */
  #deliverRead(): void {
    const resolve = this.#resolveRead!;
    if (this.hasMessage) {
      const message = this.takeMessage();
      this.#set(Flag.HandedOver, true);
      this.#endRead();
      return resolve(message);
    }
    const end = this.ending(true);
    // ending() may settle a held close, which delivers (and ends this read) itself.
    if (end === undefined || this.#resolveRead !== resolve) return;
    this.#endRead();
    resolve(Promise.reject(end));
  }

  #endRead(): void {
    this.#resolveRead = undefined;
    this.#unlistenRead?.();
    this.#unlistenRead = undefined;
    this.#host.readDone();
  }

  /** Whether a reader waits for what the queue will hold. */
  #readerWaits(): boolean {
    return this.#wake !== undefined || this.#resolveRead !== undefined;
  }

  /** Ends the read side with `error` (the first reason wins) and wakes the reader. */
  finish(error: Error): void {
    this.#end ??= error;
    this.#wakeReader();
  }

  /** Once the close handshake began, messages nobody reads are dropped when the queue is full, so the peer's close frame is found. */
  discardWhenFull(): void {
    this.#set(Flag.DiscardWhenFull, true);
    this.pump();
  }

  /** Runs the engine over the input while someone wants it and the bounds allow. */
  pump(): void {
    if (this.#is(Flag.Pumping)) return;
    if (this.#is(Flag.Deferred)) return this.#flow();
    this.#set(Flag.Pumping, true);
    try {
      this.#slice();
    } finally {
      this.#set(Flag.Pumping, false);
    }
    this.#flow();
  }

  #slice(): void {
    const engine = this.#engine;
    let count = 0;
    while (this.#is(Flag.Eof) || !this.#full()) {
      const event = engine.next();
      if (event === undefined) break;
      this.#handle(event);
      // Check the clock now and then, and after any costly event.
      if ((++count & 31) === 0 || (event.kind === 'data' && event.data.length > 16384)) {
        const spent = count >= sliceEvents || performance.now() - this.#sliceStart > sliceMs;
        if (spent && !this.#is(Flag.Eof)) return this.#defer();
      }
    }
    if (!this.#is(Flag.Eof) || this.#end !== undefined) return;
    // The transport ended: a held-back close takes effect now, else the connection is lost.
    if (this.#pending !== undefined) this.settle();
    else this.finish(this.#host.lost());
  }

  /** Whether the queue is over its bound with nobody waiting for what it holds. */
  #full(): boolean {
    if (this.#bytes < highWaterMark || this.#readerWaits()) return false;
    // Input is wanted without growing the queue: refused (closeRead) or dropped (close, nobody reads).
    return !(this.demand > 0 && (this.refuse || this.#discarding()));
  }

  #discarding(): boolean {
    return this.#is(Flag.DiscardWhenFull) && !this.reading;
  }

  #defer(): void {
    this.#set(Flag.Deferred, true);
    setImmediate(() => {
      this.#set(Flag.Deferred, false);
      this.#set(Flag.HandedOver, false);
      this.#sliceStart = performance.now();
      this.pump();
    });
  }

  #handle(event: DataEvent | ControlEvent | CloseEvent | FailEvent): void {
    switch (event.kind) {
      case 'data':
        return this.#data(event);
      case 'ping':
      case 'pong':
        return this.#host.control(event);
      case 'close':
      case 'fail':
        // An application that reads gets the messages that came first before the
        // close takes effect, so it can still answer them. Once our own close frame
        // is out, or when nobody reads, it takes effect at once (the messages stay readable).
        // A message the pump has just handed to a waiting read() counts as unread
        // until the application's code after that read has run.
        if ((!this.hasPiece && !this.#is(Flag.HandedOver)) || !this.reading || this.#engine.closeSent) {
          return this.#terminal(event);
        }
        this.#pending = event;
        if (!this.hasPiece) return this.#settleSoon();
        return this.#wakeReader();
    }
  }

  #terminal(event: CloseEvent | FailEvent): void {
    if (event.kind === 'close') {
      this.finish(this.#host.peerClosed(event));
    } else {
      this.#host.failed(event);
      this.finish(event.error);
    }
  }

  #data(event: DataEvent): void {
    if (this.refuse) return this.#host.refused();
    if (event.start) {
      this.#set(Flag.Dropping, this.#discarding() && this.#bytes >= highWaterMark && !this.#readerWaits());
    }
    if (this.#is(Flag.Dropping)) return;
    if (this.#pieces === noPieces) this.#pieces = [event];
    else this.#pieces.push(event);
    this.#bytes += event.data.length + pieceCost;
    if (event.fin) this.#complete++;
    if (event.fin || this.#is(Flag.WakeOnPiece)) this.#wakeReader();
  }

  #wakeReader(): void {
    if (this.#resolveRead !== undefined) return this.#deliverRead();
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Pauses the socket while the engine holds a full buffer of unparsed bytes; resumes it otherwise. */
  #flow(): void {
    const full = this.#engine.buffered >= highWaterMark;
    if (full && !this.#is(Flag.Paused)) {
      this.#set(Flag.Paused, true);
      this.#socket.pause();
    } else if (!full && this.#is(Flag.Paused)) {
      this.#set(Flag.Paused, false);
      this.#socket.resume();
    }
  }
}
