import { isUtf8 } from 'node:buffer';

/**
 * Validates UTF-8 that arrives in pieces, rejecting as soon as a byte makes
 * the text invalid rather than at the end of the message (RFC 6455 §8.1).
 * Whole sequences go through Node's native `isUtf8`; only the few bytes of a
 * sequence split across pieces go through the byte-wise checker.
 */
export class Utf8Validator {
  /** Continuation bytes still expected; 0 between sequences. */
  #need = 0;
  /** Allowed range of the next continuation byte (RFC 3629 §4). */
  #lo = 0x80;
  #hi = 0xbf;

  /** Feeds the next piece; false once the text cannot be valid UTF-8. */
  push(chunk: Uint8Array): boolean {
    const length = chunk.length;
    let i = 0;
    while (this.#need !== 0 && i < length) {
      if (!this.#step(chunk[i]!)) return false;
      i++;
    }
    if (i === length) return true;
    const end = completeEnd(chunk, i);
    if (end > i && !isUtf8(chunk.subarray(i, end))) return false;
    for (let j = end; j < length; j++) {
      if (!this.#step(chunk[j]!)) return false;
    }
    return true;
  }

  /** True when the text fed so far ends on a whole character. */
  complete(): boolean {
    return this.#need === 0;
  }

  /** Forgets all state, ready for the next message. */
  reset(): void {
    this.#need = 0;
    this.#lo = 0x80;
    this.#hi = 0xbf;
  }

  #step(byte: number): boolean {
    if (this.#need !== 0) {
      if (byte < this.#lo || byte > this.#hi) return false;
      this.#need--;
      this.#lo = 0x80;
      this.#hi = 0xbf;
      return true;
    }
    if (byte < 0x80) return true;
    if (byte >= 0xc2 && byte <= 0xdf) return this.#expect(1, 0x80, 0xbf);
    if (byte === 0xe0) return this.#expect(2, 0xa0, 0xbf); // no overlong forms
    if (byte === 0xed) return this.#expect(2, 0x80, 0x9f); // no surrogates
    if (byte >= 0xe1 && byte <= 0xef) return this.#expect(2, 0x80, 0xbf);
    if (byte === 0xf0) return this.#expect(3, 0x90, 0xbf); // no overlong forms
    if (byte >= 0xf1 && byte <= 0xf3) return this.#expect(3, 0x80, 0xbf);
    if (byte === 0xf4) return this.#expect(3, 0x80, 0x8f); // nothing above U+10FFFF
    return false;
  }

  #expect(need: number, lo: number, hi: number): boolean {
    this.#need = need;
    this.#lo = lo;
    this.#hi = hi;
    return true;
  }
}

/**
 * The index after the last whole sequence in `chunk` from `start`: a lead
 * byte in the last three bytes whose sequence runs past the end is left out.
 */
function completeEnd(chunk: Uint8Array, start: number): number {
  const length = chunk.length;
  for (let j = length - 1; j >= start && j >= length - 3; j--) {
    const byte = chunk[j]!;
    if ((byte & 0xc0) === 0x80) continue; // a continuation byte: look further back
    if (byte < 0xc0) return length; // ASCII: everything before is whole
    const size = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : 2;
    return length - j < size ? j : length;
  }
  return length;
}
