/**
 * Pure payload masking (RFC 6455 §5.3), a 32-bit word at a time.
 * @module
 */
import { endianness } from 'node:os';

const littleEndian = endianness() === 'LE';

/** Below this many bytes a plain byte loop beats setting up a word view. */
const wordThreshold = 32;

/**
 * XORs `buf` in place with the 4-byte `maskKey`, starting at byte
 * `keyOffset` of the key, and returns the key offset for the byte after
 * `buf`, so that a payload masked in several pieces comes out the same as if
 * it were masked at once. Masking twice with the same key restores the bytes.
 *
 * Only pass buffers wsconn owns: callers' bytes are copied before masking.
 */
export function maskInPlace(buf: Uint8Array, maskKey: Uint8Array, keyOffset = 0): number {
  const length = buf.length;
  let k = keyOffset & 3;
  let i = 0;
  if (length >= wordThreshold) {
    // Bytes before the first 4-byte-aligned address, then whole words.
    const lead = (4 - (buf.byteOffset & 3)) & 3;
    for (; i < lead; i++, k = (k + 1) & 3) buf[i] = buf[i]! ^ maskKey[k]!;
    const words = (length - i) >>> 2;
    xorWords(new Uint32Array(buf.buffer, buf.byteOffset + i, words), keyWord(maskKey, k));
    i += words << 2;
  }
  for (; i < length; i++, k = (k + 1) & 3) buf[i] = buf[i]! ^ maskKey[k]!;
  return k;
}

/** XORs every word of `view` with `key`, eight words a turn (about twice as fast as one). */
function xorWords(view: Uint32Array, key: number): void {
  const words = view.length;
  const unrolled = words & ~7;
  let w = 0;
  for (; w < unrolled; w += 8) {
    view[w] = view[w]! ^ key;
    view[w + 1] = view[w + 1]! ^ key;
    view[w + 2] = view[w + 2]! ^ key;
    view[w + 3] = view[w + 3]! ^ key;
    view[w + 4] = view[w + 4]! ^ key;
    view[w + 5] = view[w + 5]! ^ key;
    view[w + 6] = view[w + 6]! ^ key;
    view[w + 7] = view[w + 7]! ^ key;
  }
  for (; w < words; w++) view[w] = view[w]! ^ key;
}

/** The key rotated to start at byte `k`, as a word in the machine's byte order. */
function keyWord(maskKey: Uint8Array, k: number): number {
  const b0 = maskKey[k]!;
  const b1 = maskKey[(k + 1) & 3]!;
  const b2 = maskKey[(k + 2) & 3]!;
  const b3 = maskKey[(k + 3) & 3]!;
  return littleEndian
    ? (b0 | (b1 << 8) | (b2 << 16) | (b3 << 24)) >>> 0
    : ((b0 << 24) | (b1 << 16) | (b2 << 8) | b3) >>> 0;
}
