/**
 * Prepared messages: a data message encoded once and written to many
 * connections (a broadcast), the way gorilla/websocket's `PreparedMessage`
 * works. Pure: bytes and caches, no I/O.
 * @module
 */
import { deflateMessage } from '../compress.js';
import { checkMessage, type MessageType } from '../options.js';
import { encodeFrame } from './encode.js';

/** Window bits a deflater may use: 9..15 (8 is raised to 9, see compress.ts). */
const maxWindowBits = 15;

/**
 * A data message encoded once for many connections. Write it with
 * `conn.writePrepared()` or `broadcast()`.
 *
 * What is shared, and what each connection still does:
 * - A server connection sending it uncompressed writes the very same frame
 *   bytes as every other one: no copy, no encoding per connection.
 * - Compressed, the payload is deflated once per window size (in practice
 *   once) and framed once for servers. That holds for both compression
 *   modes: a prepared message is compressed without reference to earlier
 *   messages, which RFC 7692 §7.2.1 allows with the window kept too; a
 *   connection that keeps its window still records the message in it, so
 *   its later messages may refer back to it. Its ratio is that of
 *   no-context-takeover for this one message.
 * - A client connection masks every frame with a fresh key (RFC 6455
 *   §5.3), so it copies the (shared, possibly compressed) payload into a
 *   frame of its own.
 *
 * The message copies `data` when it is made, so the caller may reuse its
 * buffer at once; frames are built on first use and kept while the message
 * is referenced (about twice its size, more when it is sent both
 * compressed and not).
 *
 * @example
 * ```ts
 * import { broadcast, MessageType, PreparedMessage, type Conn } from 'wsconn';
 * declare const room: Set<Conn>;
 * const message = new PreparedMessage(MessageType.Text, JSON.stringify({ price: 101.5 }));
 * broadcast(room, message);
 * ```
 * @see https://www.rfc-editor.org/rfc/rfc7692#section-7.2.1 RFC 7692 §7.2.1
 */
export class PreparedMessage {
  /** Text (1) or binary (2). */
  readonly type: MessageType;
  /** @internal The message's payload, uncompressed (a private copy). */
  readonly payload: Uint8Array;
  #frame: Uint8Array | undefined;
  /** Deflated payloads and their server frames, indexed by window bits. */
  #deflated: Array<Uint8Array | undefined> | undefined;
  #deflatedFrames: Array<Uint8Array | undefined> | undefined;

  /**
   * Whether to compress it where permessage-deflate was negotiated: true,
   * false, or undefined for the connection's `compressionThreshold` rule.
   * A `compress` given to `writePrepared()` overrides it.
   */
  readonly compress: boolean | undefined;

  /**
   * @param type `MessageType.Text` or `MessageType.Binary`
   * @param data the payload: a string (sent as UTF-8) or bytes (copied)
   * @param options `compress`: see the property of that name.
   * @throws TypeError for a bad type, or text bytes that are not UTF-8.
   */
  constructor(type: MessageType, data: string | Uint8Array, options?: { compress?: boolean }) {
    checkMessage(type, data);
    this.type = type;
    this.compress = options?.compress;
    this.payload = typeof data === 'string' ? Buffer.from(data, 'utf8') : Uint8Array.prototype.slice.call(data);
  }

  /** The payload's length in bytes, uncompressed. */
  get size(): number {
    return this.payload.length;
  }

  /** @internal The unmasked, uncompressed frame (what a server sends), built once. */
  frame(): Uint8Array {
    return (this.#frame ??= encodeFrame(true, false, this.type, this.payload, undefined));
  }

  /** @internal The payload deflated on its own with `windowBits`, built once per value. */
  deflated(windowBits: number): Uint8Array {
    const cache = (this.#deflated ??= new Array<Uint8Array | undefined>(maxWindowBits + 1));
    return (cache[windowBits] ??= deflateMessage(this.payload, windowBits));
  }

  /** @internal The unmasked frame of `deflated(windowBits)` with RSV1 set (RFC 7692 §6.1), built once per value. */
  deflatedFrame(windowBits: number): Uint8Array {
    const cache = (this.#deflatedFrames ??= new Array<Uint8Array | undefined>(maxWindowBits + 1));
    return (cache[windowBits] ??= encodeFrame(true, true, this.type, this.deflated(windowBits), undefined));
  }
}
