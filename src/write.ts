/**
 * The write side of a Conn: frame encoding onto the socket, masking into
 * wsconn's own buffers, and waiting for 'drain'. Each frame goes to the
 * socket in a single `write()` (or under `cork()`), so frames never
 * interleave and a control frame can slip between the frames of a message.
 * @module
 */
import { randomFillSync } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { MessageDeflater, type DeflateParams } from './compress.js';
import { ClosedError, ProtocolError } from './errors.js';
import { encodeHeader, headerLength, Opcode, type FrameHeader } from './frame.js';
import { waitFor } from './internal/abort.js';
import { Utf8Validator } from './internal/utf8.js';
import { maskCopy, maskInPlace } from './mask.js';

/** Payloads at least this big go out without being copied (server side only). */
const copyLimit = 64 * 1024;

/** A pool of random bytes for masking keys, refilled as it runs out. */
const keyPool = Buffer.allocUnsafe(4096);
let keyPoolUsed = keyPool.length;

/** A fresh masking key from a strong source (RFC 6455 §5.3, §10.3). */
function nextMaskKey(): Uint8Array {
  if (keyPoolUsed === keyPool.length) {
    randomFillSync(keyPool);
    keyPoolUsed = 0;
  }
  const key = keyPool.subarray(keyPoolUsed, keyPoolUsed + 4);
  keyPoolUsed += 4;
  return key;
}

function headerOf(frame: OutFrame, payloadLength: number, maskKey: Uint8Array | undefined): FrameHeader {
  return { fin: frame.fin, rsv1: frame.rsv1, rsv2: false, rsv3: false, opcode: frame.opcode, payloadLength, maskKey };
}

/** One frame to send. */
export interface OutFrame {
  fin: boolean;
  rsv1: boolean;
  opcode: number;
  payload: Uint8Array | string;
}

/**
 * Encodes frames onto a socket. Returns from `send()` whether the socket
 * wants the caller to wait for 'drain' before sending more.
 */
export class FrameWriter {
  readonly #socket: Duplex;
  /** We are the client: every frame we send is masked (RFC 6455 §5.3). */
  readonly #client: boolean;

  /** Waits for 'drain'; created when the first one starts. */
  #drainWaiters: Set<(error?: Error) => void> | undefined;
  /** Set once the socket is gone: makes the error waits for 'drain' fail with. */
  #gone: (() => Error) | undefined;
  /** What permessage-deflate parameters the handshake agreed, if any. */
  readonly #deflate: DeflateParams | undefined;
  #deflater: MessageDeflater | undefined;
  readonly #threshold: number | undefined;

  constructor(socket: Duplex, client: boolean, deflate?: DeflateParams, threshold?: number) {
    this.#socket = socket;
    this.#client = client;
    this.#deflate = deflate;
    this.#threshold = threshold;
    socket.on('drain', () => {
      for (const wake of this.#drainWaiters ?? []) wake();
    });
  }

  /**
   * The payload and RSV1 bit of a whole message: compressed when
   * permessage-deflate was negotiated and either `compress` is true or,
   * when it is undefined, the message is at least the threshold long.
   * Call it only right before sending: with context takeover, compressing
   * moves the window the peer decodes against (RFC 7692 §7.2.1).
   */
  encodeMessage(data: string | Uint8Array, compress: boolean | undefined): { payload: string | Uint8Array; rsv1: boolean } {
    if (this.#deflate === undefined || compress === false) return { payload: data, rsv1: false };
    const deflater = this.#deflaterNow();
    if (compress === undefined) {
      const size = typeof data === 'string' ? Buffer.byteLength(data) : data.length;
      if (size < (this.#threshold ?? deflater.defaultThreshold)) return { payload: data, rsv1: false };
    }
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    return { payload: deflater.compress(bytes, true), rsv1: true };
  }

  /** Whether a streamed message will be compressed, given the caller's `compress` option. */
  compressesStream(compress: boolean | undefined): boolean {
    return this.#deflate !== undefined && compress !== false;
  }

  /** Compresses one frame of a streamed message (see `encodeMessage` on when to call it). */
  compressFrame(chunk: Uint8Array, fin: boolean): Uint8Array {
    return this.#deflaterNow().compress(chunk, fin);
  }

  #deflaterNow(): MessageDeflater {
    this.#deflater ??= new MessageDeflater(this.#deflate!, this.#client);
    return this.#deflater;
  }

  /** Fails every wait for 'drain', now and later, with the error `error` makes. */
  fail(error: () => Error): void {
    this.#gone ??= error;
    for (const wake of this.#drainWaiters ?? []) wake(error());
  }

  /** Resolves once the socket's buffer is under its high-water mark. */
  drain(signal: AbortSignal | undefined): Promise<void> {
    if (!this.#socket.writableNeedDrain) return Promise.resolve();
    if (this.#gone !== undefined) return Promise.reject(this.#gone());
    return waitFor((settle) => {
      const waiters = (this.#drainWaiters ??= new Set());
      waiters.add(settle);
      return () => waiters.delete(settle);
    }, signal);
  }

  /**
   * Sends a data frame and waits until the socket has accepted it. The
   * frame is queued whole before the first wait, so an abort can only stop
   * the waiting, never cut the frame.
   */
  async sendAndWait(frame: OutFrame, signal: AbortSignal | undefined): Promise<void> {
    const sent = this.send(frame);
    if (sent !== true) await this.settle(sent, signal);
  }

  /** Waits for what `send()` returned: 'drain' for false, else its promise. */
  settle(sent: false | Promise<void>, signal: AbortSignal | undefined): Promise<void> {
    if (sent === false) return this.drain(signal);
    if (signal === undefined) return sent;
    return waitFor((settle) => {
      sent.then(() => settle(), settle);
      return () => {};
    }, signal);
  }

  /**
   * Writes one frame. The caller's bytes are never modified. Returns a
   * promise when the payload went out uncopied: it settles once the socket
   * no longer references the caller's buffer. Otherwise returns whether the
   * socket's buffer is still under its high-water mark.
   */
  send(frame: OutFrame): boolean | Promise<void> {
    const { payload } = frame;
    if (typeof payload === 'string') return this.#sendString(frame, payload);
    if (this.#client || payload.length < copyLimit) return this.#sendCopy(frame, payload);
    return this.#sendUncopied(frame, payload);
  }

  #sendString(frame: OutFrame, text: string): boolean {
    const payloadLength = Buffer.byteLength(text);
    const maskKey = this.#client ? nextMaskKey() : undefined;
    const start = headerLength(payloadLength, maskKey !== undefined);
    const out = Buffer.allocUnsafe(start + payloadLength);
    encodeHeader(headerOf(frame, payloadLength, maskKey), out);
    out.write(text, start, 'utf8');
    if (maskKey !== undefined) maskInPlace(out.subarray(start), maskKey);
    return this.#socket.write(out);
  }

  #sendCopy(frame: OutFrame, payload: Uint8Array): boolean {
    const payloadLength = payload.length;
    const maskKey = this.#client ? nextMaskKey() : undefined;
    const start = headerLength(payloadLength, maskKey !== undefined);
    if (maskKey === undefined) {
      const out = Buffer.allocUnsafe(start + payloadLength);
      encodeHeader(headerOf(frame, payloadLength, undefined), out);
      out.set(payload, start);
      return this.#socket.write(out);
    }
    // Start the frame so that its payload lines up with the caller's bytes
    // modulo 4: then masking copies a word at a time, in one pass.
    const room = Buffer.allocUnsafe(start + payloadLength + 3);
    const shift = (payload.byteOffset - (room.byteOffset + start)) & 3;
    const out = room.subarray(shift, shift + start + payloadLength);
    encodeHeader(headerOf(frame, payloadLength, maskKey), out);
    maskCopy(payload, out, start, maskKey);
    return this.#socket.write(out);
  }

  #sendUncopied(frame: OutFrame, payload: Uint8Array): Promise<void> {
    const payloadLength = payload.length;
    const header = Buffer.allocUnsafe(headerLength(payloadLength, false));
    encodeHeader(headerOf(frame, payloadLength, undefined), header);
    const socket = this.#socket;
    return new Promise<void>((resolve, reject) => {
      socket.cork();
      socket.write(header);
      // Settles when the payload has been handed to the kernel. Node calls
      // back without an error when the socket was destroyed mid-write, so
      // check for that too.
      socket.write(payload, (err) => {
        if (err == null && !socket.destroyed) return resolve();
        reject(new ClosedError('the connection closed before the message was sent', err ? { cause: err } : undefined));
      });
      socket.uncork();
    });
  }
}

/** What `messageSink` needs from its Conn. */
export interface SinkHost {
  writer: FrameWriter;
  /** Throws unless a frame may be sent; waits for 'drain' if the socket is full. */
  ready(signal: AbortSignal | undefined): Promise<void>;
  /** Throws unless a frame may be sent now (checked with no await before the send). */
  assertOpen(): void;
  /** Gives the write turn to the next writer. */
  release(): void;
  /** Fails the connection. */
  fail(error: ProtocolError): void;
}

/**
 * The stream behind `Conn.writer()`: each chunk one frame, `close()` the
 * final frame. Aborting it (or `signal`) after a frame went out fails the
 * connection with 1011, since the peer cannot learn where the message ends.
 */
export function messageSink(
  host: SinkHost,
  type: number,
  signal: AbortSignal | undefined,
  compress: boolean,
): WritableStream<Uint8Array> {
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
    await host.ready(signal);
    host.assertOpen(); // RFC 6455 §5.5.1: nothing after our close frame, which may have gone meanwhile
    // RFC 7692 §6.1: RSV1 on the first frame of a compressed message only.
    const rsv1 = compress && !started;
    const opcode = started ? Opcode.Continuation : type;
    started = true;
    const body = compress ? host.writer.compressFrame(payload, fin) : payload;
    await host.writer.sendAndWait({ fin, rsv1, opcode, payload: body }, signal);
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
  const utf8 = type === Opcode.Text ? new Utf8Validator() : undefined;
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
