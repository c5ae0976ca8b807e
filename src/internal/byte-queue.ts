/** The empty list every idle queue shares; never written to. */
const none: Uint8Array[] = [];

/**
 * The bytes read from the socket and not yet parsed: a list of chunks that
 * hands out views instead of copies wherever it can.
 */
export class ByteQueue {
  /** The shared `none` while empty, so an idle connection holds no array of its own. */
  #chunks: Uint8Array[] = none;
  #length = 0;

  /** How many bytes are queued. */
  get length(): number {
    return this.#length;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    if (this.#chunks === none) this.#chunks = [chunk];
    else this.#chunks.push(chunk);
    this.#length += chunk.length;
  }

  /**
   * Up to `n` bytes from the front as one contiguous view, without consuming
   * them. Joins the first chunks when the first alone is too short.
   */
  peek(n: number): Uint8Array {
    const first = this.#chunks[0];
    if (first === undefined) return new Uint8Array(0);
    if (first.length >= n || this.#chunks.length === 1) return first;
    const want = Math.min(n, this.#length);
    const joined = Buffer.allocUnsafe(want);
    let filled = 0;
    while (filled < want) {
      const chunk = this.#chunks.shift()!;
      const used = Math.min(chunk.length, want - filled);
      joined.set(used === chunk.length ? chunk : chunk.subarray(0, used), filled);
      filled += used;
      if (used < chunk.length) this.#chunks.unshift(chunk.subarray(used));
    }
    this.#chunks.unshift(joined);
    return joined;
  }

  /** Drops the first chunk; the last one gone, the queue lets go of its array. */
  #dropFirst(): void {
    if (this.#chunks.length === 1) this.#chunks = none;
    else this.#chunks.shift();
  }

  /** Drops everything queued. */
  clear(): void {
    this.#chunks = none;
    this.#length = 0;
  }

  /** Consumes `n` bytes (at most `length`). */
  skip(n: number): void {
    let left = n;
    while (left > 0) {
      const chunk = this.#chunks[0]!;
      if (chunk.length > left) {
        this.#chunks[0] = chunk.subarray(left);
        this.#length -= left;
        return;
      }
      this.#dropFirst();
      this.#length -= chunk.length;
      left -= chunk.length;
    }
  }

  /** Consumes and returns up to `max` bytes of the first chunk, as a view. */
  shift(max: number): Uint8Array {
    const chunk = this.#chunks[0];
    if (chunk === undefined) return new Uint8Array(0);
    if (chunk.length <= max) {
      this.#dropFirst();
      this.#length -= chunk.length;
      return chunk;
    }
    this.#chunks[0] = chunk.subarray(max);
    this.#length -= max;
    return chunk.subarray(0, max);
  }

  /** Consumes exactly `n` bytes (at most `length`) as one contiguous view. */
  take(n: number): Uint8Array {
    const view = this.peek(n).subarray(0, n);
    this.skip(n);
    return view;
  }
}
