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
    const words = ((length - i) >>> 5) << 3;
    const view = new Uint32Array(buf.buffer, buf.byteOffset + i, words);
    xorWordsInto(view, view, keyWord(maskKey, k));
    i += words << 2;
  }
  for (; i < length; i++, k = (k + 1) & 3) buf[i] = buf[i]! ^ maskKey[k]!;
  return k;
}

/**
 * Writes `src` masked with `maskKey` into `dst` at `dstOffset`, in one pass,
 * leaving `src` untouched (RFC 6455 §5.3; the key starts at its first byte).
 * Words are used when `src` and the destination share their alignment
 * modulo 4; otherwise it copies and then masks in place.
 */
export function maskCopy(src: Uint8Array, dst: Uint8Array, dstOffset: number, maskKey: Uint8Array): void {
  const length = src.length;
  const lead = (4 - (src.byteOffset & 3)) & 3;
  if (length < wordThreshold || ((dst.byteOffset + dstOffset) & 3) !== (src.byteOffset & 3)) {
    dst.set(src, dstOffset);
    maskInPlace(dst.subarray(dstOffset, dstOffset + length), maskKey);
    return;
  }
  let i = 0;
  for (; i < lead; i++) dst[dstOffset + i] = src[i]! ^ maskKey[i & 3]!;
  const words = ((length - lead) >>> 5) << 3;
  const from = new Uint32Array(src.buffer, src.byteOffset + lead, words);
  const to = new Uint32Array(dst.buffer, dst.byteOffset + dstOffset + lead, words);
  xorWordsInto(from, to, keyWord(maskKey, lead & 3));
  for (i = lead + (words << 2); i < length; i++) dst[dstOffset + i] = src[i]! ^ maskKey[i & 3]!;
}

/**
 * `to[w] = from[w] ^ key` for every word (`to` may be `from`), eight a turn,
 * about twice as fast as one. The length is a multiple of 8: callers mask
 * the rest byte by byte. No tail loop here: with one, V8 kept entering its
 * cached optimized code and bailing out at the tail (254 times in 4 s of
 * 64 KiB echoes), so masking ran at a quarter of its speed.
 */
function xorWordsInto(from: Uint32Array, to: Uint32Array, key: number): void {
  const words = from.length;
  for (let w = 0; w < words; w += 8) {
    to[w] = from[w]! ^ key;
    to[w + 1] = from[w + 1]! ^ key;
    to[w + 2] = from[w + 2]! ^ key;
    to[w + 3] = from[w + 3]! ^ key;
    to[w + 4] = from[w + 4]! ^ key;
    to[w + 5] = from[w + 5]! ^ key;
    to[w + 6] = from[w + 6]! ^ key;
    to[w + 7] = from[w + 7]! ^ key;
  }
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
