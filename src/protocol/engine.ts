/**
 * The WebSocket protocol engine, without I/O (the sans-I/O design of
 * Python's `websockets`): bytes go in through `receive()` and come out of
 * `next()` as events; what this end sends comes back from the `encode*`
 * methods as bytes for the transport to write whole. Every protocol rule
 * lives here once: frame validation, masking, message assembly, the read
 * limit, UTF-8, permessage-deflate, the control-frame rules and the close
 * state machine. No socket, timer, promise or stream.
 * @module
 */
import { closeReason, decodeClosePayload, encodeClosePayload, type ClosePayload } from './close-frame.js';
import { MessageDeflater, MessageInflater, compressedLimit, type DeflateParams } from '../compress.js';
import { ClosedError, MessageTooBigError, ProtocolError } from '../errors.js';
import { Opcode } from '../frame.js';
import { ByteQueue } from '../internal/byte-queue.js';
import { Utf8Validator } from '../internal/utf8.js';
import { maskInPlace } from '../mask.js';
import { encodeFrame, randomMaskKey } from './encode.js';
import type { PreparedMessage } from './prepared.js';

/** Options of a {@link Protocol}. */
export interface ProtocolOptions {
  /** True on the client side: this end masks its frames and the peer must not (RFC 6455 §5.1). */
  client: boolean;
  /** The permessage-deflate parameters the handshake agreed, if any (RFC 7692). */
  deflate?: DeflateParams | undefined;
  /** The largest message in bytes after decompression; Infinity (the default) for none. */
  readLimit?: number;
  /** `encodeMessage()` compresses messages at least this long (default 128 B with context takeover, 512 B without). */
  compressionThreshold?: number | undefined;
  /** Makes the 4-byte masking keys of a client; by default a strong random source (RFC 6455 §10.3). Tests pass a fixed one. */
  maskKey?: () => Uint8Array;
  /** Allocates the buffer an outgoing frame is built in (default `Buffer.allocUnsafe`), so a transport can reuse buffers. */
  allocate?: (size: number) => Uint8Array;
}

/** A piece of a data message: the first piece has `start`, the last `fin`. Text is validated UTF-8. */
export interface DataEvent {
  /** Always 'data'. */
  kind: 'data';
  /** 1 for text, 2 for binary. */
  type: 1 | 2;
  /** This piece's bytes (unmasked, inflated); a view the caller may keep. */
  data: Uint8Array;
  /** Whether this is the message's first piece. */
  start: boolean;
  /** Whether this is the message's last piece. */
  fin: boolean;
}

/** A ping or pong from the peer. Answering a ping is up to the caller (`encodeControl(Opcode.Pong, payload)`). */
export interface ControlEvent {
  /** Which control frame arrived. */
  kind: 'ping' | 'pong';
  /** Its payload (at most 125 bytes), a copy the caller owns. */
  payload: Uint8Array;
}

/** The peer's close frame. Answer it with `closeReply()` once the messages before it have been handled. */
export interface CloseEvent {
  /** Always 'close'. */
  kind: 'close';
  /** The peer's status code; 1005 when its frame carried none. */
  code: number;
  /** The peer's reason ('' when none). */
  reason: string;
}

/** The peer broke the protocol: fail the connection (RFC 6455 §7.1.7) by sending `closeReply()`. */
export interface FailEvent {
  /** Always 'fail'. */
  kind: 'fail';
  /** What the peer did wrong; its `code` is the status the close reply carries. */
  error: ProtocolError | MessageTooBigError;
}

/** What {@link Protocol.next} returns. */
export type ProtocolEvent = DataEvent | ControlEvent | CloseEvent | FailEvent;

const empty = new Uint8Array(0);
const headerStage = 0;
const payloadStage = 1;

/**
 * One end of a WebSocket connection as a pure state machine.
 *
 * @example
 * ```ts
 * import { Protocol } from 'wsconn/protocol';
 * const server = new Protocol({ client: false });
 * // A masked "Hi" from a client (RFC 6455 §5.7), then a ping.
 * server.receive(Uint8Array.of(0x81, 0x82, 1, 2, 3, 4, 0x49, 0x6b, 0x89, 0x80, 0, 0, 0, 0));
 * console.log(server.next()); // { kind: 'data', type: 1, data: 'Hi' as bytes, start: true, fin: true }
 * console.log(server.next()); // { kind: 'ping', payload: empty }
 * const pong = server.encodeControl(0xa, new Uint8Array(0)); // bytes to write: 8a 00
 * server.receive(Uint8Array.of(0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8)); // close 1000
 * console.log(server.next()); // { kind: 'close', code: 1000, reason: '' }
 * const reply = server.closeReply(); // 88 02 03 e8: the echo (RFC 6455 §5.5.1)
 * ```
 */
export class Protocol {
  /** True on the client side. */
  readonly client: boolean;
  readonly #input = new ByteQueue();
  readonly #deflate: DeflateParams | undefined;
  readonly #threshold: number | undefined;
  readonly #maskKey: () => Uint8Array;
  readonly #allocate: ((size: number) => Uint8Array) | undefined;
  #limit: number;
  #inflater: MessageInflater | undefined;
  #deflater: MessageDeflater | undefined;
  #utf8: Utf8Validator | undefined;

  // The frame being received.
  #stage = headerStage;
  #fin = false;
  #opcode = 0;
  #remaining = 0;
  /** The frame's masking key, as a big-endian number (no typed array per connection). */
  #key = 0;
  #keyOffset = 0;

  // The data message being received: its type (0 between messages), size and mode.
  #type: 0 | 1 | 2 = 0;
  #size = 0;
  #compressed = false;
  #started = false;

  // The close state machine (RFC 6455 §7): open until a close frame went either way.
  #closeSent = false;
  #closeReceived: ClosePayload | undefined;
  #failure: ProtocolError | MessageTooBigError | undefined;
  /** The type of the fragmented message being sent (0 when none). */
  #sending: 0 | 1 | 2 = 0;

  /** Makes the engine of one end of one connection, open and with nothing received. */
  constructor(options: ProtocolOptions) {
    this.client = options.client;
    this.#deflate = options.deflate;
    this.#limit = options.readLimit ?? Infinity;
    this.#threshold = options.compressionThreshold;
    this.#maskKey = options.maskKey ?? randomMaskKey;
    this.#allocate = options.allocate;
  }

  /** The largest message in bytes, after decompression (Infinity for none); applies from the next frame on. */
  get readLimit(): number {
    return this.#limit;
  }

  /** Sets the read limit for the frames that start from now on. */
  set readLimit(limit: number) {
    this.#limit = limit;
  }

  /** Bytes received and not yet turned into events. */
  get buffered(): number {
    return this.#input.length;
  }

  /** Whether this end has sent (or encoded) its close frame: no data may follow (RFC 6455 §5.5.1). */
  get closeSent(): boolean {
    return this.#closeSent;
  }

  /** The peer's close frame, once it arrived. */
  get closeReceived(): ClosePayload | undefined {
    return this.#closeReceived;
  }

  /** Why the connection was failed, if it was. */
  get failure(): ProtocolError | MessageTooBigError | undefined {
    return this.#failure;
  }

  /** Whether input is over: the peer's close frame arrived or the connection failed. Later bytes are ignored. */
  get inputDone(): boolean {
    return this.#closeReceived !== undefined || this.#failure !== undefined;
  }

  /** Whether a data message has started arriving and not ended. */
  get inMessage(): boolean {
    return this.#type !== 0;
  }

  /**
   * Takes bytes from the transport. The engine owns them from now on: it
   * unmasks client frames in place and hands out views of them.
   */
  receive(bytes: Uint8Array): void {
    if (!this.inputDone) this.#input.push(bytes);
  }

  /**
   * The next event the received bytes make, or undefined until more bytes
   * arrive (and for good once input is done). Never throws for anything the
   * peer sent: a violation becomes a `fail` event.
   */
  next(): ProtocolEvent | undefined {
    if (this.inputDone) return undefined;
    try {
      for (;;) {
        if (this.#stage === headerStage && !this.#readHeader()) return undefined;
        if ((this.#opcode & 0x8) !== 0) return this.#controlFrame();
        const event = this.#dataPiece();
        if (event !== undefined) return event;
        // A piece that gave nothing to report (compressed bytes, an empty fragment): go on while bytes remain.
        if (this.#remaining > 0 && this.#input.length === 0) return undefined;
      }
    } catch (err) {
      if (err instanceof ProtocolError || err instanceof MessageTooBigError) return this.#failed(err);
      throw err;
    }
  }

  /**
   * Fails the connection for a reason this end found (RFC 6455 §7.1.7):
   * input stops; `closeReply()` then gives the close frame carrying
   * `error.code` to send. After the peer's close frame (or an earlier
   * failure) it changes nothing: `closeReply()` answers that instead.
   */
  fail(error: ProtocolError | MessageTooBigError): void {
    this.#failed(error);
  }

  /**
   * The close frame that answers the peer's close frame, echoing its status
   * code (RFC 6455 §5.5.1), or that reports this end's failure with its
   * code (§7.1.7); undefined when a close frame was sent already or there
   * is nothing to answer. Sending it is the transport's turn: after the
   * messages that came before the close have been handled.
   */
  closeReply(): Uint8Array | undefined {
    if (this.#closeSent) return undefined;
    const failure = this.#failure;
    if (failure !== undefined) return this.encodeClose(failure.code, closeReason(failure.message));
    const received = this.#closeReceived;
    return received === undefined ? undefined : this.encodeClose(received.code, '');
  }

  // --- receiving ---

  /** Parses and checks the next frame header as far as its bytes allow; true once it is whole. */
  #readHeader(): boolean {
    const input = this.#input;
    if (input.length === 0) return false;
    const head = input.peek(14);
    const b0 = head[0]!;
    this.#checkFirstByte(b0);
    if (head.length < 2) return false;
    const b1 = head[1]!;
    const masked = (b1 & 0x80) !== 0;
    this.#checkSecondByte(b0, b1, masked);
    const length7 = b1 & 0x7f;
    const lengthBytes = length7 === 126 ? 2 : length7 === 127 ? 8 : 0;
    if (head.length < 2 + lengthBytes) return false;
    const payloadLength = lengthBytes === 0 ? length7 : readLength(head, lengthBytes);
    this.#checkLength(b0, payloadLength);
    const headerLength = 2 + lengthBytes + (masked ? 4 : 0);
    if (head.length < headerLength) return false;
    if (masked) this.#key = readUint32(head, headerLength - 4);
    input.skip(headerLength);
    this.#startFrame(b0, payloadLength);
    return true;
  }

  /** The checks the first header byte allows (RFC 6455 §5.2, §5.4, §5.5; RFC 7692 §6). */
  #checkFirstByte(b0: number): void {
    const opcode = b0 & 0x0f;
    // RFC 6455 §5.2: nonzero RSV bits need a negotiated extension.
    if ((b0 & 0x30) !== 0) throw new ProtocolError(1002, 'reserved bits set without a negotiated extension');
    if (opcode >= 0x8) {
      if (opcode > Opcode.Pong) throw new ProtocolError(1002, `unknown control opcode ${opcode}`);
      // RFC 6455 §5.5: control frames are never fragmented.
      if ((b0 & 0x80) === 0) throw new ProtocolError(1002, 'fragmented control frame');
    } else if (opcode > Opcode.Binary) {
      throw new ProtocolError(1002, `unknown data opcode ${opcode}`);
    } else if (opcode === Opcode.Continuation) {
      // RFC 6455 §5.4: a continuation frame continues a started message.
      if (this.#type === 0) throw new ProtocolError(1002, 'continuation frame without a message to continue');
    } else if (this.#type !== 0) {
      // RFC 6455 §5.4: fragments of one message are not interleaved with another.
      throw new ProtocolError(1002, 'new data frame before the fragmented message ended');
    }
    if ((b0 & 0x40) !== 0) {
      // RFC 7692 §6: RSV1 marks a compressed message, on its first frame only (§6.1).
      if (this.#deflate === undefined) throw new ProtocolError(1002, 'RSV1 set without permessage-deflate');
      if (opcode !== Opcode.Text && opcode !== Opcode.Binary) {
        throw new ProtocolError(1002, 'RSV1 set on a control or continuation frame');
      }
    }
  }

  /** The checks the second header byte allows (RFC 6455 §5.1, §5.5). */
  #checkSecondByte(b0: number, b1: number, masked: boolean): void {
    // RFC 6455 §5.1: clients mask every frame, servers none.
    if (this.client === masked) {
      throw new ProtocolError(1002, this.client ? 'server sent a masked frame' : 'client sent an unmasked frame');
    }
    // RFC 6455 §5.5: control frames carry at most 125 bytes.
    if ((b0 & 0x08) !== 0 && (b1 & 0x7f) > 125) throw new ProtocolError(1002, 'control frame payload over 125 bytes');
  }

  /** Refuses a data frame that would take the message past the read limit, before its bytes arrive (RFC 6455 §10.4). */
  #checkLength(b0: number, payloadLength: number): void {
    const opcode = b0 & 0x0f;
    if (opcode >= 0x8) return;
    // A compressed message is bounded here by its compressed size; the inflater counts the rest.
    const compressed = opcode === Opcode.Continuation ? this.#compressed : (b0 & 0x40) !== 0;
    const limit = compressed ? compressedLimit(this.#limit) : this.#limit;
    const size = opcode === Opcode.Continuation ? this.#size : 0;
    if (size + payloadLength > limit) throw new MessageTooBigError(this.#limit);
  }

  /** A frame whose header passed every check starts; it is masked exactly when this end is the server (checked above). */
  #startFrame(b0: number, payloadLength: number): void {
    const opcode = b0 & 0x0f;
    this.#stage = payloadStage;
    this.#fin = (b0 & 0x80) !== 0;
    this.#opcode = opcode;
    this.#remaining = payloadLength;
    this.#keyOffset = 0;
    if (opcode === Opcode.Text || opcode === Opcode.Binary) {
      this.#type = opcode;
      this.#size = 0;
      this.#compressed = (b0 & 0x40) !== 0;
      this.#started = false;
      if (opcode === Opcode.Text) (this.#utf8 ??= new Utf8Validator()).reset();
    }
    if (opcode < 0x8) this.#size += payloadLength;
  }

  /** The next piece of a data frame's payload as an event; undefined when there is none yet (or the piece was empty). */
  #dataPiece(): DataEvent | undefined {
    const input = this.#input;
    let chunk: Uint8Array = empty;
    if (this.#remaining > 0) {
      if (input.length === 0) return undefined;
      chunk = input.shift(this.#remaining);
      this.#remaining -= chunk.length;
      if (!this.client) this.#keyOffset = maskInPlace(chunk, keyBytes(this.#key), this.#keyOffset);
    }
    const frameDone = this.#remaining === 0;
    const last = this.#fin && frameDone;
    if (frameDone) this.#stage = headerStage;
    if (this.#compressed) {
      this.#inflater ??= new MessageInflater(this.#deflate!, this.client);
      chunk = this.#inflater.decompress(chunk, last, this.#limit);
    }
    const type = this.#type as 1 | 2;
    // RFC 6455 §8.1: invalid UTF-8 fails the connection, as early as the first bad byte.
    if (type === Opcode.Text && !this.#utf8!.push(chunk)) throw new ProtocolError(1007, 'text message is not valid UTF-8');
    const start = !this.#started;
    if (chunk.length === 0 && !start && !last) return undefined;
    this.#started = true;
    if (last) {
      this.#type = 0;
      if (type === Opcode.Text && !this.#utf8!.complete()) {
        throw new ProtocolError(1007, 'text message ends inside a UTF-8 sequence');
      }
    }
    return { kind: 'data', type, data: chunk, start, fin: last };
  }

  /** A whole control frame, once its payload is in (RFC 6455 §5.5). */
  #controlFrame(): ProtocolEvent | undefined {
    const input = this.#input;
    const length = this.#remaining;
    if (input.length < length) return undefined;
    // A copy: a control payload is at most 125 bytes and may be kept by the caller.
    const payload = length === 0 ? new Uint8Array(0) : input.take(length).slice();
    if (!this.client) maskInPlace(payload, keyBytes(this.#key));
    this.#stage = headerStage;
    this.#remaining = 0;
    if (this.#opcode === Opcode.Ping) return { kind: 'ping', payload };
    if (this.#opcode === Opcode.Pong) return { kind: 'pong', payload };
    const { code, reason } = decodeClosePayload(payload);
    this.#closeReceived = { code, reason };
    this.#input.clear();
    return { kind: 'close', code, reason };
  }

  #failed(error: ProtocolError | MessageTooBigError): FailEvent {
    if (this.#failure === undefined && this.#closeReceived === undefined) this.#failure = error;
    this.#input.clear();
    return { kind: 'fail', error };
  }

  // --- sending ---

  /**
   * Encodes one whole data message as one frame, compressed when
   * permessage-deflate was negotiated and `compress` is true or, when it is
   * undefined, the message reaches the compression threshold. Call it only
   * right before writing the bytes: with context takeover, compressing
   * moves the window the peer decodes against (RFC 7692 §7.2.1).
   * @throws ClosedError once a close frame was sent (RFC 6455 §5.5.1).
   */
  encodeMessage(type: 1 | 2, data: string | Uint8Array, compress?: boolean): Uint8Array {
    this.#assertCanSend();
    if (this.#sending !== 0) throw new Error('a fragmented message is being sent: end it with encodeFragment(…, fin = true) first');
    const deflater = this.#deflaterFor(compress, data);
    if (deflater === undefined) return this.#frame(true, false, type, data);
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    return this.#frame(true, true, type, deflater.compress(bytes, true));
  }

  /**
   * Encodes a prepared message for this connection, sharing what can be
   * shared: a server gets the message's own frame (the same bytes for every
   * connection), a client masks a copy of the shared payload. Compression
   * follows `encodeMessage()`'s rule; a compressed prepared message is
   * deflated without reference to earlier messages and recorded in this
   * end's window (see `PreparedMessage`). Call it only right before writing
   * the bytes, as `encodeMessage()`.
   * @throws ClosedError once a close frame was sent (RFC 6455 §5.5.1).
   */
  encodePrepared(message: PreparedMessage, compress?: boolean): Uint8Array {
    this.#assertCanSend();
    if (this.#sending !== 0) throw new Error('a fragmented message is being sent: end it with encodeFragment(…, fin = true) first');
    const { type, payload } = message;
    const deflater = this.#deflaterFor(compress ?? message.compress, payload);
    if (deflater === undefined) {
      return this.client ? this.#frame(true, false, type, payload) : message.frame();
    }
    // RFC 7692 §7.2.1: with the window kept, the peer's window now holds this message.
    deflater.sent(payload);
    const bits = deflater.windowBits;
    return this.client ? this.#frame(true, true, type, message.deflated(bits)) : message.deflatedFrame(bits);
  }

  /**
   * Encodes one frame of a message sent in pieces: the first call starts
   * the message, later ones continue it, `fin` ends it. `compress` must be
   * the same for every frame of a message (RFC 7692 §6.1: RSV1 on the
   * first frame only).
   * @throws ClosedError once a close frame was sent.
   */
  encodeFragment(type: 1 | 2, chunk: Uint8Array, fin: boolean, compress: boolean): Uint8Array {
    this.#assertCanSend();
    const first = this.#sending === 0;
    const payload = compress && this.#deflate !== undefined ? this.#deflaterNow().compress(chunk, fin) : chunk;
    const rsv1 = first && compress && this.#deflate !== undefined;
    this.#sending = fin ? 0 : type;
    return this.#frame(fin, rsv1, first ? type : Opcode.Continuation, payload);
  }

  /** Whether a message sent with `encodeFragment()` is under way. */
  get sendingFragments(): boolean {
    return this.#sending !== 0;
  }

  /**
   * Encodes a ping or pong (at most 125 bytes, RFC 6455 §5.5).
   * @throws ClosedError once a close frame was sent; RangeError for a payload over 125 bytes.
   */
  encodeControl(opcode: 0x9 | 0xa, payload: Uint8Array | string): Uint8Array {
    this.#assertCanSend();
    const length = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
    if (length > 125) throw new RangeError('a control frame carries at most 125 bytes');
    return this.#frame(true, false, opcode, payload);
  }

  /**
   * Encodes this end's close frame (RFC 6455 §5.5.1), or returns undefined
   * when one was sent already. Code 1005 with no reason makes a close frame
   * without a status.
   * @throws RangeError for a code that may not be sent or a reason over 123 bytes.
   */
  encodeClose(code: number, reason: string): Uint8Array | undefined {
    if (this.#closeSent) return undefined;
    const payload = encodeClosePayload(code, reason);
    this.#closeSent = true;
    return this.#frame(true, false, Opcode.Close, payload);
  }

  #assertCanSend(): void {
    // RFC 6455 §5.5.1: nothing may follow this end's close frame.
    if (this.#closeSent) throw new ClosedError('the connection is closing');
  }

  #frame(fin: boolean, rsv1: boolean, opcode: number, payload: Uint8Array | string): Uint8Array {
    return encodeFrame(fin, rsv1, opcode, payload, this.client ? this.#maskKey() : undefined, this.#allocate);
  }

  /**
   * The deflater when a whole message is to be compressed: permessage-deflate
   * was negotiated and `compress` is true or, when undefined, the message
   * reaches the compression threshold.
   */
  #deflaterFor(compress: boolean | undefined, data: string | Uint8Array): MessageDeflater | undefined {
    if (this.#deflate === undefined || compress === false) return undefined;
    const deflater = this.#deflaterNow();
    if (compress === true) return deflater;
    const size = typeof data === 'string' ? Buffer.byteLength(data) : data.length;
    return size < (this.#threshold ?? deflater.defaultThreshold) ? undefined : deflater;
  }

  #deflaterNow(): MessageDeflater {
    this.#deflater ??= new MessageDeflater(this.#deflate!, this.client);
    return this.#deflater;
  }
}

/** One scratch key for unmasking, filled right before each (synchronous) use. */
const scratchKey = new Uint8Array(4);

/** The masking key `key` as bytes, in the shared scratch array. */
function keyBytes(key: number): Uint8Array {
  scratchKey[0] = key >>> 24;
  scratchKey[1] = (key >>> 16) & 0xff;
  scratchKey[2] = (key >>> 8) & 0xff;
  scratchKey[3] = key & 0xff;
  return scratchKey;
}

function readUint32(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
}

/** A 16- or 64-bit payload length (RFC 6455 §5.2). */
function readLength(head: Uint8Array, bytes: number): number {
  if (bytes === 2) return (head[2]! << 8) | head[3]!;
  const high = ((head[2]! << 24) | (head[3]! << 16) | (head[4]! << 8) | head[5]!) >>> 0;
  // RFC 6455 §5.2: "the most significant bit MUST be 0".
  if (high >= 0x8000_0000) throw new ProtocolError(1002, 'frame length has its most significant bit set');
  if (high > 0x1f_ffff) throw new ProtocolError(1009, 'frame length exceeds 2^53 - 1 bytes');
  const low = ((head[6]! << 24) | (head[7]! << 16) | (head[8]! << 8) | head[9]!) >>> 0;
  return high * 0x1_0000_0000 + low;
}
