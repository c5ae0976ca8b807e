/**
 * permessage-deflate (RFC 7692): the negotiation (re-exported from
 * `internal/deflate-params.ts`) and the data path, one `MessageDeflater` and
 * one `MessageInflater` per Conn.
 *
 * The data path is synchronous and keeps no zlib state between messages:
 * each message (or frame) is one call of zlib's one-shot API, and context
 * takeover is carried by handing zlib the last bytes of the direction's
 * history as a preset `dictionary`. Measured against persistent async zlib
 * streams (the way `ws` works) this costs less than half the CPU per 1 KiB
 * message, needs no thread-pool queue or concurrency cap, cannot be torn by
 * an aborted read, and holds at most ~50 KiB per idle connection instead of
 * ~290 KiB (bench/compress-micro.ts; numbers in bench/compression-design.md).
 * @module
 */
import { constants as bufferConstants } from 'node:buffer';
import zlib from 'node:zlib';
import { MessageTooBigError, ProtocolError } from './errors.js';
import type { DeflateParams } from './internal/deflate-params.js';

export { parseExtensions, type ExtensionOffer, type ExtensionParam } from './internal/extensions.js';
export {
  clientOffer,
  CompressionMode,
  negotiateServer,
  parseClientResponse,
  type DeflateParams,
} from './internal/deflate-params.js';

const { Z_SYNC_FLUSH } = zlib.constants;

/** The empty stored block's LEN/NLEN that ends every flushed message (RFC 7692 §7.2.1). */
const tail = Buffer.from([0x00, 0x00, 0xff, 0xff]);

const empty = new Uint8Array(0);

/**
 * How much of what it sent the deflater offers zlib as a dictionary when the
 * window is kept. Hashing a dictionary is the main cost of a one-shot
 * compression: 8 KiB gives ~95 % of the ratio of a full 32 KiB window on
 * small JSON messages at a fraction of the CPU (bench/compression-design.md).
 */
const deflateHistory = 8 * 1024;

/** zlib's memLevel for compression: its default, 256 KiB of transient state per call at 15 window bits. */
const memLevel = 8;

/**
 * The smallest message worth compressing by default: with the window kept
 * even short messages shrink (they repeat earlier ones); without it, deflate
 * rarely pays for itself below ~512 bytes.
 */
const thresholds = { takeover: 128, noTakeover: 512 } as const;

/**
 * The most compressed bytes a message may occupy before it is refused with
 * 1009, for a read limit on decompressed bytes (Infinity for none). Normal
 * deflate output is at most a few bytes over its input; the generous factor
 * allows senders that flush often. read.ts can check declared frame lengths
 * against it before the bytes arrive.
 *
 * @see RFC 7692 §7.2.2
 * @example
 * ```ts
 * compressedLimit(32 * 1024); // 131072
 * ```
 */
export function compressedLimit(limit: number): number {
  return Number.isFinite(limit) ? 2 * limit + 64 * 1024 : Infinity;
}

/**
 * The last `size` bytes of a byte stream, contiguous so zlib can take them as
 * a dictionary. The buffer has some slack so appending rarely moves bytes;
 * it is allocated on first use and dropped by `clear()`.
 */
class History {
  readonly #size: number;
  #buffer: Buffer | undefined;
  #used = 0;

  constructor(size: number) {
    this.#size = size;
  }

  /** The remembered bytes as a view (valid until the next change), or undefined when none. */
  view(): Buffer | undefined {
    if (this.#buffer === undefined || this.#used === 0) return undefined;
    return this.#buffer.subarray(Math.max(0, this.#used - this.#size), this.#used);
  }

  append(bytes: Uint8Array): void {
    const size = this.#size;
    const buffer = (this.#buffer ??= Buffer.allocUnsafe(size + Math.max(1024, size >>> 2)));
    if (bytes.length >= size) {
      buffer.set(bytes.subarray(bytes.length - size));
      this.#used = size;
      return;
    }
    if (this.#used + bytes.length > buffer.length) {
      const keep = Math.min(this.#used, size - bytes.length);
      buffer.copyWithin(0, this.#used - keep, this.#used);
      this.#used = keep;
    }
    buffer.set(bytes, this.#used);
    this.#used += bytes.length;
  }

  clear(): void {
    this.#buffer = undefined;
    this.#used = 0;
  }
}

/**
 * Compresses the messages one end sends (RFC 7692 §7.2.1). Construction is
 * cheap (no zlib state), so a Conn can create it on its first compressed
 * message.
 *
 * Call `compress()` only once the frame it produces is certain to be
 * written, with no `await` in between: with context takeover the call
 * extends the window the peer will decode against, so a compressed frame
 * that is then dropped would corrupt every later message.
 *
 * @see RFC 7692 §7.2.1
 * @example
 * ```ts
 * const agreed = { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 };
 * const deflater = new MessageDeflater(agreed, false); // the server's side
 * deflater.compress(new TextEncoder().encode('Hello'), true); // f2 48 cd c9 c9 07 00: one frame, RSV1 set
 * deflater.compress(new TextEncoder().encode('Hello'), true); // f2 00 11 00 00: refers to the first
 * ```
 */
export class MessageDeflater {
  /** Whether the window is kept across messages (no `*_no_context_takeover` for our direction). */
  readonly contextTakeover: boolean;
  readonly #windowBits: number;
  /** Plain text sent: across messages with takeover, else the current message only. */
  readonly #history: History;

  /**
   * @param params what the handshake agreed
   * @param client true when this end is the client (it then compresses with
   *   the client's window and takeover parameters)
   */
  constructor(params: DeflateParams, client: boolean) {
    const bits = client ? params.clientMaxWindowBits : params.serverMaxWindowBits;
    this.contextTakeover = !(client ? params.clientNoContextTakeover : params.serverNoContextTakeover);
    // zlib cannot compress raw deflate with a 256-byte window; with 512 bytes
    // its matches reach back at most 250 bytes (its MAX_DIST = window - 262),
    // so the output still fits the 8-bit window the peer asked for.
    this.#windowBits = Math.max(9, bits);
    this.#history = new History(Math.min(2 ** bits, deflateHistory));
  }

  /**
   * The default `compressionThreshold`: messages shorter than this are sent
   * uncompressed (128 bytes with context takeover, 512 without).
   */
  get defaultThreshold(): number {
    return this.contextTakeover ? thresholds.takeover : thresholds.noTakeover;
  }

  /**
   * Compresses `data`, a whole message (`fin` true) or one frame of a
   * streamed message, and returns the frame's payload. Each call ends with a
   * sync flush, so frames can be sent as they are produced; the final frame
   * has the flush's `00 00 ff ff` removed (RFC 7692 §7.2.1), and an empty
   * final frame becomes the single byte `00` (§7.2.3.6). `data` is not
   * modified. Set RSV1 on the first frame of the message only (§6.1).
   */
  compress(data: Uint8Array, fin: boolean): Uint8Array {
    const out = deflate(data, this.#windowBits, this.#history.view());
    if (fin && !this.contextTakeover) this.#history.clear();
    else this.#history.append(data);
    return fin ? stripTail(out) : out;
  }

  /**
   * The window bits this end compresses with. A message compressed without
   * a dictionary under these bits (`deflateMessage()`) is a valid payload
   * on every connection that compresses with the same bits, whether or not
   * it keeps its window: RFC 7692 §7.2.1 lets a sender refer back to
   * earlier messages, it never requires it.
   */
  get windowBits(): number {
    return this.#windowBits;
  }

  /**
   * Records a whole message that was sent compressed by
   * `deflateMessage()` (a prepared message): with the window kept, later
   * messages may refer back to it, since the peer's window now holds it.
   */
  sent(data: Uint8Array): void {
    if (this.contextTakeover) this.#history.append(data);
  }
}

/**
 * Compresses one whole message on its own (no dictionary) with
 * `windowBits` (from `MessageDeflater#windowBits`): the payload of a final
 * frame with RSV1 set, the flush's `00 00 ff ff` removed.
 * @see RFC 7692 §7.2.1
 */
export function deflateMessage(data: Uint8Array, windowBits: number): Uint8Array {
  return stripTail(deflate(data, windowBits, undefined));
}

/** One sync-flushed raw deflate call, with `dictionary` as the preset window. */
function deflate(data: Uint8Array, windowBits: number, dictionary: Buffer | undefined): Buffer {
  const options: zlib.ZlibOptions = {
    finishFlush: Z_SYNC_FLUSH,
    windowBits,
    memLevel,
    // Room for the whole output in one buffer (deflate never grows data by more than a few bytes per 16 KiB).
    chunkSize: Math.min(64 * 1024, data.length + 64),
  };
  if (dictionary !== undefined) options.dictionary = dictionary;
  return zlib.deflateRawSync(data, options);
}

/**
 * The end of a message: RFC 7692 §7.2.1 step 3 drops the empty stored
 * block's LEN/NLEN; an empty message stays the single byte `00` (§7.2.3.6).
 */
function stripTail(out: Buffer): Buffer {
  if (out.length < 4 || !out.subarray(out.length - 4).equals(tail)) {
    throw new Error('permessage-deflate: zlib output does not end with a sync flush');
  }
  return out.subarray(0, out.length - 4);
}

/**
 * Decompresses the messages one end receives (RFC 7692 §7.2.2), counting
 * decompressed bytes against the read limit. Construction is cheap (no
 * zlib state), so a Conn can create it on the first compressed message.
 *
 * Feed it every piece of a compressed message's payload, in order, with
 * `fin` set on the last one. Pieces before the last are buffered (copied)
 * and the message is inflated in one synchronous call when it is complete,
 * so there is no await in which a read could be aborted halfway: the
 * inflater's state only changes inside `decompress()`.
 *
 * @see RFC 7692 §7.2.2
 * @example
 * ```ts
 * const agreed = { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 };
 * const inflater = new MessageInflater(agreed, true); // the client's side
 * inflater.decompress(Uint8Array.of(0xf2, 0x48, 0xcd), false, 1024); // empty: the message goes on
 * inflater.decompress(Uint8Array.of(0xc9, 0xc9, 0x07, 0x00), true, 1024); // 'Hello' as bytes
 * ```
 */
export class MessageInflater {
  readonly #windowBits: number;
  /** What the peer's compressor can refer back to; undefined when it resets per message. */
  readonly #history: History | undefined;
  /** The compressed bytes of the message so far, in one buffer that doubles as it fills. */
  #input: Uint8Array = empty;
  #pending = 0;

  /**
   * @param params what the handshake agreed
   * @param client true when this end is the client (it then inflates what the
   *   server compressed, with the server's window and takeover parameters)
   */
  constructor(params: DeflateParams, client: boolean) {
    const bits = client ? params.serverMaxWindowBits : params.clientMaxWindowBits;
    const peerResets = client ? params.serverNoContextTakeover : params.clientNoContextTakeover;
    this.#windowBits = bits;
    this.#history = peerResets ? undefined : new History(2 ** bits);
  }

  /**
   * Takes the next piece of a compressed message's payload and returns the
   * decompressed bytes it completes: empty until `fin`, then the whole
   * message (possibly empty). `limit` is the most decompressed bytes the
   * message may have (Infinity for no limit).
   *
   * @throws MessageTooBigError as soon as the message inflates past `limit`
   *   (inflation stops there, within one output chunk of at most 64 KiB) or
   *   its compressed size passes `compressedLimit(limit)`.
   * @throws ProtocolError with code 1007 when the payload is not valid
   *   DEFLATE data.
   * The inflater must not be used after it threw.
   */
  decompress(chunk: Uint8Array, fin: boolean, limit: number): Uint8Array {
    const size = this.#pending + chunk.length;
    if (size > compressedLimit(limit)) {
      this.#input = empty;
      this.#pending = 0;
      throw new MessageTooBigError(limit);
    }
    // One growing buffer, not a list of pieces: a message sent in thousands
    // of tiny fragments then costs its size, not thousands of objects.
    this.#reserve(size + (fin ? tail.length : 0), compressedLimit(limit) + tail.length);
    this.#input.set(chunk, this.#pending);
    this.#pending = size;
    if (!fin) return empty;
    // RFC 7692 §7.2.2: restore the flush's LEN/NLEN before inflating.
    this.#input.set(tail, size);
    const input = Buffer.from(this.#input.buffer, this.#input.byteOffset, size + tail.length);
    this.#input = empty;
    this.#pending = 0;
    const out = this.#inflate(input, limit);
    this.#history?.append(out);
    return out;
  }

  /** Makes room for `size` bytes of input, keeping what is there; it never grows past `cap`. */
  #reserve(size: number, cap: number): void {
    if (size <= this.#input.length) return;
    const grown = new Uint8Array(Math.max(size, Math.min(this.#input.length * 2, cap)));
    grown.set(this.#input.subarray(0, this.#pending));
    this.#input = grown;
  }

  #inflate(input: Buffer, limit: number): Buffer {
    const options: zlib.ZlibOptions = {
      finishFlush: Z_SYNC_FLUSH,
      windowBits: this.#windowBits,
      // Under 4 KiB Node takes output buffers from its shared pool, which
      // makes small messages ~35 % cheaper; big ones get few large chunks.
      chunkSize: input.length < 1024 ? 4095 : 64 * 1024,
    };
    // Node stops inflating once its output passes maxOutputLength (checked per output chunk).
    if (limit < bufferConstants.MAX_LENGTH) options.maxOutputLength = Math.max(1, limit);
    const dictionary = this.#history?.view();
    if (dictionary !== undefined) options.dictionary = dictionary;
    let out: Buffer;
    try {
      out = zlib.inflateRawSync(input, options);
    } catch (err) {
      if (err instanceof RangeError && (err as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE') {
        throw new MessageTooBigError(Math.min(limit, bufferConstants.MAX_LENGTH));
      }
      const reason = err instanceof Error ? err.message : String(err);
      throw new ProtocolError(1007, `invalid compressed message: ${reason}`, { cause: err });
    }
    if (out.length > limit) throw new MessageTooBigError(limit);
    return out;
  }
}
