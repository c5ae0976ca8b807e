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

/** Writes frames to the socket and waits for 'drain'. */
export class Sender {
  readonly #socket: Duplex;
  /** Waits for 'drain'; created when the first one starts. */
  #waiters: Set<(error?: Error) => void> | undefined;
  /** Set once the socket is gone: makes the error waits for 'drain' fail with. */
  #gone: (() => Error) | undefined;

  constructor(socket: Duplex) {
    this.#socket = socket;
    socket.on('drain', () => {
      const waiters = this.#waiters;
      if (waiters === undefined) return;
      this.#waiters = undefined;
      for (const wake of waiters) wake();
    });
  }

  /** Whether the socket's buffer is over its high-water mark: a frame written now would have to wait. */
  get full(): boolean {
    return this.#socket.writableNeedDrain;
  }

  /** Whether the socket still takes bytes. */
  get writable(): boolean {
    return this.#socket.writable;
  }

  /** Writes one encoded frame; returns false when the caller should wait for 'drain'. */
  transmit(bytes: Uint8Array): boolean {
    return this.#socket.write(bytes);
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
    const waiters = this.#waiters;
    this.#waiters = undefined;
    for (const wake of waiters ?? []) wake(error());
  }
}
