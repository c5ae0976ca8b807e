/**
 * The stream behind `Conn.reader()`: the pieces of one message, taken from
 * the receive pump's queue as the consumer reads them.
 * @module
 */
import type { Receiver } from './receive.js';

/**
 * A stream of the message at the front of `receiver`'s queue. It pulls only
 * when its consumer reads (high-water mark 0). `release` gives up the read
 * turn once the message ends, fails or is cancelled (cancelling resolves at
 * once; the rest of the message is discarded in the background as it
 * arrives, and the turn passes on after it). An abort of `signal`, even
 * while nobody pulls, errors the stream with `signal.reason`, passes the
 * turn on and leaves the rest of the message queued for the next read.
 */
export function messageStream(
  receiver: Receiver,
  signal: AbortSignal | undefined,
  release: () => void,
): ReadableStream<Uint8Array> {
  let held = true;
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  /** Set while a pull waits for the pump: an abort then rejects that wait itself. */
  let waiting = false;
  const onAbort = (): void => {
    if (!held || waiting) return;
    done();
    controller.error(signal!.reason);
  };
  const done = (): void => {
    if (held) release();
    held = false;
    signal?.removeEventListener('abort', onAbort);
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  /** The next piece's bytes, or null once the message has ended. */
  const next = async (wait: AbortSignal | undefined): Promise<Uint8Array | null> => {
    for (;;) {
      // After an abort the turn has passed on: take nothing more.
      wait?.throwIfAborted();
      const piece = receiver.takePiece();
      if (piece !== undefined) {
        if (piece.fin) done();
        if (piece.data.length > 0 || piece.fin) return piece.fin && piece.data.length === 0 ? null : piece.data;
        continue;
      }
      const end = receiver.ending(false);
      if (end !== undefined) throw end;
      waiting = true;
      try {
        await receiver.wait(wait, false);
      } finally {
        waiting = false;
      }
    }
  };
  let pulling: Promise<void> | undefined;
  const pull = async (): Promise<void> => {
    const run = (async () => {
      try {
        const chunk = await next(signal);
        if (chunk !== null) controller.enqueue(chunk);
        if (!held) controller.close();
      } catch (err) {
        // An abort or the connection's end: either way the turn passes on.
        done();
        throw err;
      }
    })();
    pulling = run;
    try {
      await run;
    } finally {
      pulling = undefined;
    }
  };
  const discardRest = async (): Promise<void> => {
    await pulling?.catch(() => {});
    try {
      while (held && (await next(undefined)) !== null);
    } catch {
      // The connection ended: nothing more of this message will come, and reads see the end themselves.
    } finally {
      done();
    }
  };
  const cancel = (): void => {
    if (!held) return;
    signal?.removeEventListener('abort', onAbort);
    void discardRest();
  };
  const start = (c: ReadableStreamDefaultController<Uint8Array>): void => {
    controller = c;
    if (signal?.aborted) onAbort();
  };
  return new ReadableStream<Uint8Array>({ start, pull, cancel }, { highWaterMark: 0 });
}
