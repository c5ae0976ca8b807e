/**
 * The write side of a Conn: frame encoding onto the socket, masking into
 * wsconn's own buffers, and waiting for 'drain'. Each frame goes to the
 * socket in a single `write()` (or under `cork()`), so frames never
 * interleave and a control frame can slip between the frames of a message.
 * @module
 */
import { randomFillSync } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { encodeHeader, headerLength } from './frame.js';
import { maskInPlace } from './mask.js';

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

  constructor(socket: Duplex, client: boolean) {
    this.#socket = socket;
    this.#client = client;
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
    encodeHeader({ ...frame, rsv2: false, rsv3: false, payloadLength, maskKey }, out);
    out.write(text, start, 'utf8');
    if (maskKey !== undefined) maskInPlace(out.subarray(start), maskKey);
    return this.#socket.write(out);
  }

  #sendCopy(frame: OutFrame, payload: Uint8Array): boolean {
    const payloadLength = payload.length;
    const maskKey = this.#client ? nextMaskKey() : undefined;
    const start = headerLength(payloadLength, maskKey !== undefined);
    const out = Buffer.allocUnsafe(start + payloadLength);
    encodeHeader({ ...frame, rsv2: false, rsv3: false, payloadLength, maskKey }, out);
    out.set(payload, start);
    if (maskKey !== undefined) maskInPlace(out.subarray(start), maskKey);
    return this.#socket.write(out);
  }

  #sendUncopied(frame: OutFrame, payload: Uint8Array): Promise<void> {
    const payloadLength = payload.length;
    const header = Buffer.allocUnsafe(headerLength(payloadLength, false));
    encodeHeader({ ...frame, rsv2: false, rsv3: false, payloadLength, maskKey: undefined }, header);
    const socket = this.#socket;
    return new Promise<void>((resolve) => {
      socket.cork();
      socket.write(header);
      // Settles when the payload has been handed to the kernel, or when the
      // socket failed (the Conn learns of that through its own listeners).
      socket.write(payload, () => resolve());
      socket.uncork();
    });
  }
}
