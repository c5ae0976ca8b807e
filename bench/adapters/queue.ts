/**
 * A one-consumer queue that turns pushed messages (event callbacks) into
 * `next()` promises, for the adapters whose client side is event based. It
 * pauses the source while too many messages wait, so an idle consumer does
 * not buffer without bound (wsconn gets the same from its pull reads).
 * @module
 */

/** Flow control hooks of the message source. */
export interface Source {
  pause(): void;
  resume(): void;
}

/** Messages kept before the source is paused. */
const highWater = 4;

/** Buffers messages until `next()` asks for them; `fail()` ends it. */
export class MessageQueue {
  #items: Uint8Array[] = [];
  #waiter: { resolve: (m: Uint8Array) => void; reject: (e: Error) => void } | undefined;
  #error: Error | undefined;
  #source: Source;
  #paused = false;

  constructor(source: Source) {
    this.#source = source;
  }

  /** Delivers a message to the waiting `next()`, or keeps it. */
  push(message: Uint8Array): void {
    const waiter = this.#waiter;
    if (waiter !== undefined) {
      this.#waiter = undefined;
      waiter.resolve(message);
      return;
    }
    if (this.#error !== undefined) return;
    this.#items.push(message);
    if (this.#items.length >= highWater && !this.#paused) {
      this.#paused = true;
      this.#source.pause();
    }
  }

  /** Drops what is kept and lets the source flow freely from now on (for closing). */
  discard(): void {
    this.#items = [];
    this.fail(new Error('the connection is closing'));
    if (this.#paused) {
      this.#paused = false;
      this.#source.resume();
    }
  }

  /** Ends the queue: the waiting and all later `next()` calls reject. */
  fail(error: Error): void {
    this.#error ??= error;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.reject(this.#error);
  }

  /** Resolves with the oldest message, waiting for one if needed. */
  next(): Promise<Uint8Array> {
    if (this.#paused && this.#items.length <= highWater / 2) {
      this.#paused = false;
      this.#source.resume();
    }
    const item = this.#items.shift();
    if (item !== undefined) return Promise.resolve(item);
    if (this.#error !== undefined) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }
}
