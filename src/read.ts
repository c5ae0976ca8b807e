/**
 * The stream behind `Conn.reader()`: the pieces of one message, taken from
 * the receive pump's queue as the consumer reads them.
 * @module
 */
import type { Receiver } from './receive.js';

/**
 * A stream of the message at the front of `receiver`'s queue. It pulls only
 * when its consumer reads (high-water mark 0). `release` gives up the read
 * turn once the message ends, fails or is cancelled (cancelling discards
 * the rest of the message as it arrives). An abort of `signal` errors the
 * stream with `signal.reason` and leaves the rest of the message queued.
 */
export function messageStream(
  receiver: Receiver,
  signal: AbortSignal | undefined,
  release: () => void,
): ReadableStream<Uint8Array> {
  let held = true;
  const done = (): void => {
    if (held) release();
    held = false;
  };
  /** The next piece's bytes, or null once the message has ended. */
  const next = async (wait: AbortSignal | undefined): Promise<Uint8Array | null> => {
    for (;;) {
      const piece = receiver.takePiece();
      if (piece !== undefined) {
        if (piece.fin) done();
        if (piece.data.length > 0 || piece.fin) return piece.fin && piece.data.length === 0 ? null : piece.data;
        continue;
      }
      const end = receiver.ending(false);
      if (end !== undefined) throw end;
      await receiver.wait(wait, false);
    }
  };
  let pulling: Promise<void> | undefined;
  const pull = (controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> => {
    pulling = (async () => {
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
    return pulling;
  };
  const cancel = async (): Promise<void> => {
    await pulling?.catch(() => {});
    try {
      while (held && (await next(undefined)) !== null);
    } catch {
      // The connection ended: nothing more of this message will come.
    } finally {
      done();
    }
  };
  return new ReadableStream<Uint8Array>({ pull, cancel }, { highWaterMark: 0 });
}
