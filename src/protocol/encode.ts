/**
 * Frame encoding for sending: one buffer holding the header and the
 * payload, masked into that buffer for a client (RFC 6455 §5.2, §5.3). The
 * caller's bytes are copied, never modified, so a caller may reuse them as
 * soon as this returns.
 * @module
 */
import { randomFillSync } from 'node:crypto';
import { encodeHeader, headerLength } from '../frame.js';
import { maskCopy, maskInPlace } from '../mask.js';

/** A pool of random bytes for masking keys, refilled as it runs out. */
const keyPool = Buffer.allocUnsafe(4096);
let keyPoolUsed = keyPool.length;

/** A fresh masking key from a strong source (RFC 6455 §5.3, §10.3). */
export function randomMaskKey(): Uint8Array {
  if (keyPoolUsed === keyPool.length) {
    randomFillSync(keyPool);
    keyPoolUsed = 0;
  }
  const key = keyPool.subarray(keyPoolUsed, keyPoolUsed + 4);
  keyPoolUsed += 4;
  return key;
}

/**
 * Encodes a whole frame into a new buffer (from `allocate`, for a byte
 * payload). A string payload is written as UTF-8. With `maskKey` the
 * payload is masked (client frames).
 */
export function encodeFrame(
  fin: boolean,
  rsv1: boolean,
  opcode: number,
  payload: Uint8Array | string,
  maskKey: Uint8Array | undefined,
  allocate: (size: number) => Uint8Array = Buffer.allocUnsafe,
): Uint8Array {
  const text = typeof payload === 'string';
  const payloadLength = text ? Buffer.byteLength(payload) : payload.length;
  const start = headerLength(payloadLength, maskKey !== undefined);
  const header = { fin, rsv1, rsv2: false, rsv3: false, opcode, payloadLength, maskKey };
  if (text || maskKey === undefined || payloadLength < 64) {
    const out = text ? Buffer.allocUnsafe(start + payloadLength) : allocate(start + payloadLength);
    encodeHeader(header, out);
    if (text) (out as Buffer).write(payload, start, 'utf8');
    else out.set(payload, start);
    if (maskKey !== undefined) maskInPlace(out.subarray(start), maskKey);
    return out;
  }
  // Start the frame so that its payload lines up with the caller's bytes
  // modulo 4: then masking copies a word at a time, in one pass.
  const room = allocate(start + payloadLength + 3);
  const shift = (payload.byteOffset - (room.byteOffset + start)) & 3;
  const out = room.subarray(shift, shift + start + payloadLength);
  encodeHeader(header, out);
  maskCopy(payload, out, start, maskKey);
  return out;
}
