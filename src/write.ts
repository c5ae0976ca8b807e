/**
 * The stream behind `Conn.writer()`: each chunk one frame, `close()` the
 * final frame, all through the Conn's one send path.
 * @module
 */
import { ClosedError, ProtocolError } from './errors.js';
import { Utf8Validator } from './internal/utf8.js';

/** What `messageSink` needs from its Conn. */
export interface SinkHost {
  /** Waits for 'drain' when the socket is full. */
  drain(signal: AbortSignal | undefined): Promise<void>;
  /** Checks the connection's state, encodes one frame and writes it: nothing awaited in between. */
  transmit(chunk: Uint8Array, fin: boolean): boolean;
  /** Gives the write turn to the next writer. */
  release(): void;
  /** Fails the connection. */
  fail(error: ProtocolError): void;
}

/**
 * A stream whose chunks are the frames of one message of `type`. Aborting
 * it (or `signal`) after a frame went out fails the connection with 1011,
 * since the peer cannot learn where the message ends; before any frame it
 * only gives up the turn. A frame whose wait for 'drain' outlives the
 * stream is never sent.
 */
export function messageSink(host: SinkHost, type: number, signal: AbortSignal | undefined): WritableStream<Uint8Array> {
  let started = false;
  let open = true;
  const stop = (reason: unknown): void => {
    if (!open) return;
    open = false;
    signal?.removeEventListener('abort', onAbort);
    host.release();
    if (started) host.fail(new ProtocolError(1011, 'message writer aborted mid-message', { cause: reason }));
  };
  const onAbort = (): void => stop(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  const frame = async (payload: Uint8Array, fin: boolean): Promise<void> => {
    if (!open) throw signal?.aborted ? signal.reason : new ClosedError('message writer is closed');
    await host.drain(signal);
    // The turn may have been given up while we waited: then this frame must not go out.
    if (!open) throw signal?.aborted ? signal.reason : new ClosedError('message writer is closed');
    host.transmit(payload, fin);
    started = true;
  };
  // A sink whose write() or close() rejects errors the stream without
  // calling abort(), so give up the turn (and fail mid-message) here.
  const guard = async (task: () => Promise<void>): Promise<void> => {
    try {
      await task();
    } catch (err) {
      stop(err);
      throw err;
    }
  };
  // RFC 6455 §5.6: a text message is UTF-8; check it before it goes out, as write() does.
  const utf8 = type === 1 ? new Utf8Validator() : undefined;
  return new WritableStream<Uint8Array>({
    write: (chunk) =>
      guard(async () => {
        if (!(chunk instanceof Uint8Array)) throw new TypeError('writer chunks must be Uint8Array');
        if (utf8 !== undefined && !utf8.push(chunk)) throw new TypeError('text message bytes are not valid UTF-8');
        if (chunk.length > 0) await frame(chunk, false);
      }),
    close: () =>
      guard(async () => {
        if (utf8 !== undefined && !utf8.complete()) throw new TypeError('text message ends inside a UTF-8 sequence');
        await frame(new Uint8Array(0), true);
        started = false;
        stop(undefined);
      }),
    abort: (reason) => stop(reason),
  });
}
