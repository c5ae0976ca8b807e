/**
 * The send path of a Conn: every frame — a `write()`, a `writer()` frame, a
 * ping, a pong or a close — reaches the transport through `transmit()`, one
 * socket write per frame, so frames never interleave. Callers take their
 * turn and wait for 'drain' first, then check the connection's state and
 * encode with nothing awaited between the check and the write.
 * @module
 */
import type { Duplex } from 'node:stream';
import { waitFor } from './internal/abort.js';
import type { Protocol } from './protocol/engine.js';

/** Frames at least this big are built in the connection's reusable buffer. */
const scratchMinimum = 64 * 1024;
/** How long the reusable buffer outlives its last use, in ms. */
const scratchIdleMs = 1000;

const release = (sender: Sender): void => Sender.release(sender);

/** Writes frames to the socket and waits for 'drain'. */
export class Sender {
  readonly #socket: Duplex;
  /** Waits for 'drain'; created when the first one starts. */
  #waiters: Set<(error?: Error) => void> | undefined;
  /** Set once the socket is gone: makes the error waits for 'drain' fail with. */
  #gone: (() => Error) | undefined;

  /** Its Conn passes the socket's 'drain' events to `drained()`. */
  constructor(socket: Duplex) {
    this.#socket = socket;
  }

  /** The socket drained: wakes every wait for it. */
  drained(): void {
    const waiters = this.#waiters;
    if (waiters === undefined) return;
    this.#waiters = undefined;
    for (const wake of waiters) wake();
  }

  /**
   * Answers a ping (RFC 6455 §5.5.2: the pong carries its payload). While
   * the socket is full, one pong is held and later pings replace it: §5.5.3
   * allows answering only the most recent ping, and a peer that pings
   * without reading cannot grow the send buffer.
   */
  pong(engine: Protocol, payload: Uint8Array): void {
    if (this.full) {
      if (this.#heldPong === undefined) this.onDrain(() => this.#sendHeldPong(engine));
      this.#heldPong = payload;
      return;
    }
    // RFC 6455 §5.5.1: nothing after our close frame.
    if (!engine.closeSent && this.writable) this.transmit(engine.encodeControl(0xa, payload));
  }

  #heldPong: Uint8Array | undefined;

  #sendHeldPong(engine: Protocol): void {
    const payload = this.#heldPong;
    this.#heldPong = undefined;
    if (payload !== undefined) this.pong(engine, payload);
  }

  /** Whether the socket's buffer is over its high-water mark: a frame written now would have to wait. */
  get full(): boolean {
    return this.#socket.writableNeedDrain;
  }

  /** Whether the socket still takes bytes. */
  get writable(): boolean {
    return this.#socket.writable;
  }

  /**
   * Holds the socket's writes until the end of this turn of the event
   * loop (cork, then uncork on `process.nextTick`), so that the frames of
   * several broadcasts in one turn reach the kernel in one system call.
   */
  holdThisTurn(): void {
    if (this.#holding) return;
    this.#holding = true;
    this.#socket.cork();
    process.nextTick(release, this);
  }

  #holding = false;

  /** @internal Ends `holdThisTurn()`. */
  static release(sender: Sender): void {
    sender.#holding = false;
    sender.#socket.uncork();
  }

  /** Writes one encoded frame; returns false when the caller should wait for 'drain'. */
  transmit(bytes: Uint8Array): boolean {
    const socket = this.#socket;
    if (bytes.buffer !== this.#scratch?.buffer) return socket.write(bytes);
    const use = ++this.#scratchUse;
    const room = socket.write(bytes, () => this.#release(use));
    // Handed to the kernel at once (libuv's synchronous write): free for the next frame already.
    if (socket.writableLength === 0) this.#release(use);
    return room;
  }

  /**
   * The buffer a big frame is built in. A fresh buffer of 1 MiB costs about
   * ten times as much to fill as one already touched (page faults: ~290 µs
   * against ~24 µs measured here), more than the socket write itself. So a
   * connection sending big frames builds them in one buffer, reused once
   * the socket's write callback ran, and lets it go after a second without
   * big frames (idle connections hold none).
   */
  readonly allocate = (size: number): Uint8Array => {
    if (size < scratchMinimum || this.#scratchBusy) return Buffer.allocUnsafe(size);
    this.#scratchUsedAt = performance.now();
    if (this.#scratch === undefined || this.#scratch.length < size) {
      this.#scratch = Buffer.allocUnsafe(size);
      this.#sweepLater();
    }
    this.#scratchBusy = true;
    return this.#scratch.subarray(0, size);
  };

  #scratch: Uint8Array | undefined;
  #scratchBusy = false;
  /** Counts the frames built in the scratch buffer, so a late write callback frees only its own use. */
  #scratchUse = 0;
  #scratchUsedAt = 0;
  #sweep: NodeJS.Timeout | undefined;

  #release(use: number): void {
    if (use === this.#scratchUse) this.#scratchBusy = false;
  }

  #sweepLater(): void {
    if (this.#sweep !== undefined) return;
    this.#sweep = setTimeout(() => {
      this.#sweep = undefined;
      if (performance.now() - this.#scratchUsedAt < scratchIdleMs || this.#scratchBusy) return this.#sweepLater();
      this.#scratch = undefined;
    }, scratchIdleMs);
    this.#sweep.unref();
  }

  /** Resolves once the socket's buffer is under its high-water mark; rejects once the socket is gone or on abort. */
  drain(signal: AbortSignal | undefined): Promise<void> {
    if (!this.#socket.writableNeedDrain) return Promise.resolve();
    if (this.#gone !== undefined) return Promise.reject(this.#gone());
    return waitFor((settle) => {
      const waiters = (this.#waiters ??= new Set());
      waiters.add(settle);
      return () => waiters.delete(settle);
    }, signal);
  }

  /** Calls `callback` once the socket drains or is gone (for the receive pump's pong backpressure). */
  onDrain(callback: () => void): void {
    if (this.#gone !== undefined || !this.#socket.writableNeedDrain) return queueMicrotask(callback);
    (this.#waiters ??= new Set()).add(() => callback());
  }

  /** Fails every wait for 'drain', now and later, with the error `error` makes. */
  fail(error: () => Error): void {
    this.#gone ??= error;
    clearTimeout(this.#sweep);
    this.#sweep = undefined;
    this.#scratch = undefined;
    const waiters = this.#waiters;
    this.#waiters = undefined;
    for (const wake of waiters ?? []) wake(error());
  }
}
