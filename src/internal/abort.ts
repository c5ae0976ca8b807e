/**
 * Waits for a callback-style event while racing an optional AbortSignal.
 *
 * `subscribe` registers `settle` wherever the event will be reported and
 * returns a function that unregisters it. The promise resolves when
 * `settle()` is called, rejects when it is called with an error, and rejects
 * with `signal.reason` itself if the signal aborts first. Every listener is
 * removed once it settles; with no signal, no abort listener is created.
 */
export function waitFor(
  subscribe: (settle: (error?: Error) => void) => () => void,
  signal?: AbortSignal,
): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<void>((resolve, reject) => {
    let unsubscribe: (() => void) | undefined;
    let settled = false;
    const onAbort = (): void => {
      finish();
      reject(signal?.reason);
    };
    const finish = (): void => {
      settled = true;
      unsubscribe?.();
      signal?.removeEventListener('abort', onAbort);
    };
    unsubscribe = subscribe((error) => {
      if (settled) return;
      finish();
      if (error === undefined) resolve();
      else reject(error);
    });
    if (settled) unsubscribe();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
}
