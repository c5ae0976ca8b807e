/**
 * What the browser build needs of the platform: the WHATWG `WebSocket`
 * (typed here structurally, so that neither the build nor its users need
 * the DOM library) and the small waits the Conn is made of.
 * @module
 */

/** What the `WebSocket` events the browser build listens to carry. */
export interface PlatformEvent {
  /** A `message` event's payload: a string for text, an `ArrayBuffer` for binary. */
  readonly data?: unknown;
  /** A `close` event's close code (1006 when no close frame came). */
  readonly code?: number;
  /** A `close` event's close reason. */
  readonly reason?: string;
  /** A `close` event's `wasClean`: whether the close handshake completed. */
  readonly wasClean?: boolean;
}

/** The members of a WHATWG `WebSocket` that the browser build uses. */
export interface PlatformWebSocket {
  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  readonly readyState: number;
  /** Bytes of application data queued by `send()` and not yet sent. */
  readonly bufferedAmount: number;
  /** The subprotocol the server chose ('' when none). */
  readonly protocol: string;
  /** The extensions the server accepted, such as `permessage-deflate`. */
  readonly extensions: string;
  /** How binary messages are delivered; the browser build sets `'arraybuffer'`. */
  binaryType: string;
  /** Queues one message. */
  send(data: string | Uint8Array): void;
  /** Starts the close handshake. */
  close(code?: number, reason?: string): void;
  /** Adds an event listener. */
  addEventListener(type: string, listener: (event: PlatformEvent) => void): void;
  /** Removes an event listener. */
  removeEventListener(type: string, listener: (event: PlatformEvent) => void): void;
}

/** A `WebSocket` constructor: the platform's global one, or one given to `dial()`. */
export type PlatformWebSocketConstructor = new (url: string, protocols?: string[]) => PlatformWebSocket;

/** `WebSocket.OPEN`. */
export const OPEN = 1;

/** The global `WebSocket`, if the runtime has one. */
export function globalWebSocket(): PlatformWebSocketConstructor | undefined {
  const candidate = (globalThis as { WebSocket?: unknown }).WebSocket;
  return typeof candidate === 'function' ? (candidate as PlatformWebSocketConstructor) : undefined;
}

/** The longest pause between two looks at `bufferedAmount`, in ms. */
export const maxPollDelay = 32;

/**
 * Waits `ms`, or less if the connection ends first (it calls each of
 * `wakers`); rejects with `signal.reason` on abort. Every listener, waker
 * and timer is removed when it settles.
 */
export function pause(ms: number, wakers: Set<() => void>, signal: AbortSignal | undefined): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<void>((resolve, reject) => {
    const cleanUp = (): void => {
      clearTimeout(timer);
      wakers.delete(done);
      signal?.removeEventListener('abort', onAbort);
    };
    const done = (): void => {
      cleanUp();
      resolve();
    };
    const onAbort = (): void => {
      cleanUp();
      reject(signal!.reason);
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
    wakers.add(done);
  });
}

/** Races `promise` with `signal`: rejects with `signal.reason` on abort and removes its listener after. */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
