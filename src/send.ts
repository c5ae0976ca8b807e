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

/** A connection's reusable buffer for big frames (see `Sender.allocate()`). */
class Scratch {
  bytes: Uint8Array | undefined;
  busy = false;
  /** Counts the frames built in the buffer, so a late write callback frees only its own use. */
  use = 0;
  usedAt = 0;
  sweep: NodeJS.Timeout | undefined;

  /** A view of `size` bytes of the buffer, or a fresh buffer while the buffer is still being written. */
  take(size: number): Uint8Array {
    if (this.busy) return Buffer.allocUnsafe(size);
    this.usedAt = performance.now();
    if (this.bytes === undefined || this.bytes.length < size) {
      this.bytes = Buffer.allocUnsafe(size);
      this.sweepLater();
    }
    this.busy = true;
    return this.bytes.subarray(0, size);
  }

  /** The socket is done with the frame of `use`. */
  release(use: number): void {
    if (use === this.use) this.busy = false;
  }

  /** Lets the buffer go once it was not used for `scratchIdleMs`. */
  sweepLater(): void {
    if (this.sweep !== undefined) return;
    this.sweep = setTimeout(() => {
      this.sweep = undefined;
      if (performance.now() - this.usedAt < scratchIdleMs || this.busy) return this.sweepLater();
      this.bytes = undefined;
    }, scratchIdleMs);
    this.sweep.unref();
  }

  /** Lets go of the buffer now (the socket is gone). */
  drop(): void {
    clearTimeout(this.sweep);
    this.sweep = undefined;
    this.bytes = undefined;
  }
}

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
    const scratch = this.#scratch;
    if (scratch === undefined || bytes.buffer !== scratch.bytes?.buffer) return socket.write(bytes);
    const use = ++scratch.use;
    const room = socket.write(bytes, () => scratch.release(use));
    // Handed to the kernel at once (libuv's synchronous write): free for the next frame already.
    if (socket.writableLength === 0) scratch.release(use);
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
  allocate(size: number): Uint8Array {
    if (size < scratchMinimum) return Buffer.allocUnsafe(size);
    return (this.#scratch ??= new Scratch()).take(size);
  }

  /** The reusable buffer's state, made with the first big frame. */
  #scratch: Scratch | undefined;

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
    this.#scratch?.drop();
    const waiters = this.#waiters;
    this.#waiters = undefined;
    for (const wake of waiters ?? []) wake(error());
  }
}
