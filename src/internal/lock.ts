/**
 * A first-come, first-served mutex whose waits can be abandoned through an
 * AbortSignal. Used so that concurrent reads take turns and concurrent
 * writes never interleave their frames.
 */
export class Lock {
  #held = false;
  /** Callers waiting in line; created when the first one waits. */
  #waiters: Array<{ grant: () => void; fail: (reason: unknown) => void }> | undefined;
  /** Makes the error acquire() rejects with once the lock has failed. */
  #failure: (() => Error) | undefined;

  /** Whether someone holds the lock now. */
  get held(): boolean {
    return this.#held;
  }

  /** Takes the lock if it is free and not failed; returns whether it did. */
  tryAcquire(): boolean {
    if (this.#held || this.#failure !== undefined) return false;
    this.#held = true;
    return true;
  }

  /**
   * Takes the lock, waiting behind earlier callers. Rejects with
   * `signal.reason` if the signal aborts first (the place in line is given
   * up), and with the `fail()` error once the lock is failed.
   */
  acquire(signal?: AbortSignal): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure());
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (!this.#held) {
      this.#held = true;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        fail: (reason: unknown) => {
          signal?.removeEventListener('abort', onAbort);
          reject(reason);
        },
      };
      const onAbort = (): void => {
        this.#waiters!.splice(this.#waiters!.indexOf(waiter), 1);
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      (this.#waiters ??= []).push(waiter);
    });
  }

  /**
   * Takes a place in line like `acquire()`, with a way out: resolves true
   * once the lock is held, or false if `withdraw()` was called first (the
   * place is given up; nothing to release). Rejects like `acquire()` once
   * the lock has failed.
   */
  enter(): { granted: Promise<boolean>; withdraw: () => void } {
    if (this.#failure !== undefined) return { granted: Promise.reject(this.#failure()), withdraw: noop };
    if (!this.#held) {
      this.#held = true;
      return { granted: Promise.resolve(true), withdraw: noop };
    }
    let withdraw = noop;
    const granted = new Promise<boolean>((resolve, reject) => {
      const waiter = { grant: () => resolve(true), fail: reject };
      withdraw = () => {
        const at = this.#waiters?.indexOf(waiter) ?? -1;
        if (at === -1) return;
        this.#waiters!.splice(at, 1);
        resolve(false);
      };
      (this.#waiters ??= []).push(waiter);
    });
    return { granted, withdraw };
  }

  /** Hands the lock to the next waiter, or frees it. */
  release(): void {
    const next = this.#waiters?.shift();
    if (next === undefined) this.#held = false;
    else next.grant();
  }

  /**
   * Rejects every waiter and every later `acquire()` with the error `error`
   * makes. The first call wins. The error is made only when someone is
   * there to receive it: building an Error captures a stack trace, which is
   * not free on every connection's close.
   */
  fail(error: () => Error): void {
    this.#failure ??= error;
    for (const waiter of this.#waiters?.splice(0) ?? []) waiter.fail(error());
  }
}

const noop = (): void => {};
