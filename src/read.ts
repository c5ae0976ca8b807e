/**
 * The read side of a Conn: pulls bytes from the socket only while a read
 * waits, parses frames, answers control frames through its host, and hands
 * out the payload of one data message at a time. All parser state lives
 * here, not in the calling promise, so an aborted read loses nothing.
 * @module
 */
import type { Duplex } from 'node:stream';
import { compressedLimit, MessageInflater, type DeflateParams } from './compress.js';
import { MessageTooBigError, ProtocolError } from './errors.js';
import { decodeHeader, isControl, maxHeaderLength, Opcode, type FrameHeader } from './frame.js';
import { ByteQueue } from './internal/byte-queue.js';
import { Utf8Validator } from './internal/utf8.js';
import { maskInPlace } from './mask.js';

/** What the frame reader needs from its Conn. */
export interface ReadHost {
  /** Handles a whole control frame (ping, pong or close). May throw. */
  control(opcode: number, payload: Uint8Array): void;
  /** Whether a pong written now would have to wait for 'drain'. */
  mustDrain(): boolean;
  /** Resolves once the socket drains (or the connection ends). */
  drain(signal: AbortSignal | undefined): Promise<void>;
  /** The error to reject with when the socket has nothing more to give. */
  ended(): Error;
}

interface FrameState {
  remaining: number;
  fin: boolean;
  maskKey: Uint8Array | undefined;
  keyOffset: number;
}

/** Parses frames from a paused socket into messages. */
export class FrameReader {
  readonly #socket: Duplex;
  readonly #host: ReadHost;
  /** We are the client: frames from the server must not be masked. */
  readonly #client: boolean;
  readonly #queue = new ByteQueue();
  readonly #utf8 = new Utf8Validator();
  #wake: (() => void) | undefined;
  #frame: FrameState | undefined;
  /** The data message in progress: its type and size so far. */
  #type = 0;
  #size = 0;
  /** Whether the message in progress is compressed (RSV1 on its first frame), and its end was fed to the inflater. */
  #compressed = false;
  #flushed = false;
  /** What permessage-deflate parameters the handshake agreed, if any. */
  readonly #deflate: DeflateParams | undefined;
  #inflater: MessageInflater | undefined;
  /** Largest message in bytes; Infinity for none. */
  limit: number;

  constructor(socket: Duplex, host: ReadHost, client: boolean, limit: number, deflate?: DeflateParams) {
    this.#socket = socket;
    this.#host = host;
    this.#client = client;
    this.limit = limit;
    this.#deflate = deflate;
  }

  /** Queues bytes that arrived before the Conn existed (the upgrade's `head`). */
  unshift(bytes: Uint8Array): void {
    this.#queue.push(bytes);
  }

  /** Wakes a read waiting for bytes; called on 'readable', 'end' and 'close'. */
  wake(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Whether a data message has been started and not yet read to its end. */
  get inMessage(): boolean {
    return this.#type !== 0;
  }

  /**
   * Reads up to the start of the next data message, handling control frames
   * on the way, and returns its type (1 text, 2 binary). If a message is
   * already in progress (an earlier read was aborted), returns its type.
   */
  async begin(signal: AbortSignal | undefined): Promise<number> {
    if (this.#type !== 0) return this.#type;
    const header = await this.#nextDataHeader(signal);
    if (header.opcode === Opcode.Continuation) {
      // RFC 6455 §5.4: a continuation frame must follow a text or binary frame.
      throw new ProtocolError(1002, 'continuation frame without a message to continue');
    }
    this.#startMessage(header);
    return this.#type;
  }

  /**
   * Returns the next message without waiting, when its one frame (and any
   * control frames before it) is already buffered. Otherwise it consumes
   * nothing but whole control frames and returns 'wait' when a small frame
   * is still arriving (call `fill()`, then try again) or 'general' for
   * anything else (use `begin()` and `next()`). Only call it between
   * messages.
   */
  tryMessage(): { type: number; data: Uint8Array } | 'wait' | 'general' {
    for (;;) {
      const decoded = decodeHeader(this.#queue.peek(maxHeaderLength));
      const total = decoded === undefined ? Infinity : decoded.headerLength + decoded.header.payloadLength;
      if (this.#queue.length < total) {
        if (this.#pull()) continue;
        if (decoded === undefined) return 'wait';
        // A frame that has started to arrive goes through the general path,
        // which checks each piece as it comes (limit, UTF-8: fail fast).
        this.#validate(decoded.header);
        return 'general';
      }
      const { header, headerLength } = decoded!;
      this.#validate(header);
      if (isControl(header.opcode)) {
        if (header.opcode === Opcode.Ping && this.#host.mustDrain()) return 'general';
        this.#control(header, headerLength);
        continue;
      }
      // Fragments, and the errors a lone continuation frame raises, take the general path.
      if (!header.fin || header.opcode === Opcode.Continuation) return 'general';
      this.#queue.skip(headerLength);
      this.#startMessage(header);
      const payload = this.#queue.take(header.payloadLength);
      this.#frame!.remaining = 0;
      if (header.maskKey !== undefined) maskInPlace(payload, header.maskKey);
      const data = this.#compressed ? this.#inflate(payload, true) : this.#check(payload);
      const type = this.#type;
      this.#finish();
      return { type, data };
    }
  }

  /**
   * The next piece of the message in progress, or null once it has been
   * read to its end. Pieces are views the caller may keep.
   */
  async next(signal: AbortSignal | undefined): Promise<Uint8Array | null> {
    for (;;) {
      const frame = this.#frame;
      if (frame !== undefined && frame.remaining > 0) {
        if (this.#queue.length === 0) {
          await this.fill(signal);
          continue;
        }
        const chunk = this.#queue.shift(frame.remaining);
        frame.remaining -= chunk.length;
        if (frame.maskKey !== undefined) frame.keyOffset = maskInPlace(chunk, frame.maskKey, frame.keyOffset);
        if (!this.#compressed) return this.#check(chunk);
        const out = this.#inflate(chunk, frame.fin && frame.remaining === 0);
        if (out.length > 0) return out;
        continue;
      }
      if (frame !== undefined && frame.fin) {
        // A compressed message may end with an empty frame: its end still has to reach the inflater.
        if (this.#compressed && !this.#flushed) {
          const out = this.#inflate(new Uint8Array(0), true);
          if (out.length > 0) return out;
        }
        return this.#finish();
      }
      this.#frame = undefined;
      const header = await this.#nextDataHeader(signal);
      if (header.opcode !== Opcode.Continuation) {
        // RFC 6455 §5.4: fragments of one message may not be interleaved.
        throw new ProtocolError(1002, 'new data frame before the fragmented message ended');
      }
      this.#startFrame(header);
    }
  }

  /** Sets up the state of a new data message, whose first frame `header` is. */
  #startMessage(header: FrameHeader): void {
    this.#type = header.opcode;
    this.#size = 0;
    this.#compressed = header.rsv1;
    this.#flushed = false;
    this.#utf8.reset();
    this.#startFrame(header);
  }

  #startFrame(header: FrameHeader): void {
    this.#checkLimit(header.payloadLength);
    this.#frame = { remaining: header.payloadLength, fin: header.fin, maskKey: header.maskKey, keyOffset: 0 };
  }

  #checkLimit(incoming: number): void {
    // RFC 6455 §10.4: refuse as soon as the declared length crosses the
    // limit, before the bytes arrive, so a too-big message is never buffered. A compressed
    // message is held to a bound on its compressed size here; the inflater
    // counts its decompressed bytes against the limit itself.
    const limit = this.#compressed ? compressedLimit(this.limit) : this.limit;
    if (this.#size + incoming > limit) throw new MessageTooBigError(this.limit);
    this.#size += incoming;
  }

  /** Feeds a compressed piece to the inflater (synchronously, so an abort cannot tear its state). */
  #inflate(chunk: Uint8Array, last: boolean): Uint8Array {
    this.#inflater ??= new MessageInflater(this.#deflate!, this.#client);
    this.#flushed = last;
    return this.#check(this.#inflater.decompress(chunk, last, this.limit));
  }

  #check(chunk: Uint8Array): Uint8Array {
    // RFC 6455 §8.1: invalid UTF-8 fails the connection, here as early as the
    // first bad byte rather than at the end of the message.
    if (this.#type === Opcode.Text && !this.#utf8.push(chunk)) {
      throw new ProtocolError(1007, 'text message is not valid UTF-8');
    }
    return chunk;
  }

  #finish(): null {
    this.#frame = undefined;
    const text = this.#type === Opcode.Text;
    this.#type = 0;
    // RFC 6455 §8.1: a text message must end on a whole character.
    if (text && !this.#utf8.complete()) throw new ProtocolError(1007, 'text message ends inside a UTF-8 sequence');
    return null;
  }

  /**
   * Reads frames until a data frame's header, which it consumes and returns.
   * Control frames met on the way are handled whole; a frame is consumed only
   * once it has been acted on, so an abort leaves it for the next read.
   */
  async #nextDataHeader(signal: AbortSignal | undefined): Promise<FrameHeader> {
    for (;;) {
      const decoded = decodeHeader(this.#queue.peek(maxHeaderLength));
      if (decoded === undefined) {
        await this.fill(signal);
        continue;
      }
      const { header, headerLength } = decoded;
      this.#validate(header);
      if (!isControl(header.opcode)) {
        this.#queue.skip(headerLength);
        return header;
      }
      const total = headerLength + header.payloadLength;
      if (this.#queue.length < total) {
        await this.fill(signal);
        continue;
      }
      // A peer that pings without reading must not grow our send buffer:
      // answer only once earlier output has drained.
      if (header.opcode === Opcode.Ping && this.#host.mustDrain()) {
        await this.#host.drain(signal);
        continue;
      }
      this.#control(header, headerLength);
    }
  }

  /** Consumes a whole control frame from the queue and hands it to the host. */
  #control(header: FrameHeader, headerLength: number): void {
    const payload = this.#queue.take(headerLength + header.payloadLength).slice(headerLength);
    if (header.maskKey !== undefined) maskInPlace(payload, header.maskKey);
    this.#host.control(header.opcode, payload);
  }

  /** The checks every frame header must pass (RFC 6455 §5.1–§5.5). */
  #validate(header: FrameHeader): void {
    if (header.rsv2 || header.rsv3) {
      // RFC 6455 §5.2: nonzero RSV bits need a negotiated extension.
      throw new ProtocolError(1002, 'reserved bits set without a negotiated extension');
    }
    if (header.rsv1) {
      // RFC 7692 §6: RSV1 marks a compressed message, on its first frame only
      // (§6.1), and never on a control frame.
      if (this.#deflate === undefined) throw new ProtocolError(1002, 'RSV1 set without permessage-deflate');
      if (header.opcode !== Opcode.Text && header.opcode !== Opcode.Binary) {
        throw new ProtocolError(1002, 'RSV1 set on a control or continuation frame');
      }
    }
    if (this.#client === (header.maskKey !== undefined)) {
      // RFC 6455 §5.1: clients mask every frame, servers none.
      throw new ProtocolError(1002, this.#client ? 'server sent a masked frame' : 'client sent an unmasked frame');
    }
    const { opcode } = header;
    if (isControl(opcode)) {
      if (opcode !== Opcode.Close && opcode !== Opcode.Ping && opcode !== Opcode.Pong) {
        throw new ProtocolError(1002, `unknown control opcode ${opcode}`);
      }
      // RFC 6455 §5.5: control frames are not fragmented and carry ≤ 125 bytes.
      if (!header.fin) throw new ProtocolError(1002, 'fragmented control frame');
      if (header.payloadLength > 125) throw new ProtocolError(1002, 'control frame payload over 125 bytes');
    } else if (opcode > Opcode.Binary) {
      throw new ProtocolError(1002, `unknown data opcode ${opcode}`);
    }
  }

  /** Moves what the socket has buffered into the queue; false if it had nothing. */
  #pull(): boolean {
    const chunk = this.#socket.read() as Uint8Array | null;
    if (chunk === null) return false;
    this.#queue.push(chunk);
    return true;
  }

  /**
   * Queues more bytes from the socket: at once (returning undefined) when
   * it has some, else once they arrive (returning a promise). Not an async
   * function, so a read waiting here holds no extra suspended frame.
   */
  fill(signal: AbortSignal | undefined): Promise<void> | undefined {
    if (this.#pull()) return undefined;
    if (this.#socket.readableEnded || this.#socket.destroyed) throw this.#host.ended();
    return this.#waitReadable(signal);
  }

  #waitReadable(signal: AbortSignal | undefined): Promise<void> {
    if (signal === undefined) {
      return new Promise((resolve) => {
        this.#wake = resolve;
      });
    }
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const wake = (): void => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = (): void => {
        // Only withdraw our own wake-up: another read may be waiting by now.
        if (this.#wake === wake) this.#wake = undefined;
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.#wake = wake;
    });
  }
}

/**
 * The stream behind `Conn.reader()`. It pulls from the frame reader only
 * when its consumer reads (high-water mark 0), starting with `early`, the
 * pieces an aborted `read()` had collected. `release` gives up the read
 * turn once the message ends, fails or is cancelled (cancelling reads and
 * discards the rest); `failed` maps a read error to what the stream errors
 * with.
 */
export function messageStream(
  reader: FrameReader,
  early: Uint8Array[],
  signal: AbortSignal | undefined,
  release: () => void,
  failed: (err: unknown) => unknown,
): ReadableStream<Uint8Array> {
  let held = true;
  const done = (): void => {
    if (held) release();
    held = false;
  };
  /** The pull under way, if any: cancel() must not read beside it. */
  let pulling: Promise<void> | undefined;
  const next = async (): Promise<Uint8Array | null> => {
    try {
      return await reader.next(signal);
    } catch (err) {
      done();
      throw failed(err);
    }
  };
  const fetch = async (controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> => {
    let chunk = early.shift() ?? (await next());
    while (chunk !== null && chunk.length === 0) chunk = await next();
    if (chunk !== null) return controller.enqueue(chunk);
    done();
    controller.close();
  };
  const pull = (controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> => {
    pulling = fetch(controller);
    return pulling;
  };
  const cancel = async (): Promise<void> => {
    await pulling?.catch(() => {});
    if (!held) return;
    try {
      while ((await reader.next(undefined)) !== null);
    } catch (err) {
      failed(err);
    } finally {
      done();
    }
  };
  return new ReadableStream<Uint8Array>({ pull, cancel }, { highWaterMark: 0 });
}
