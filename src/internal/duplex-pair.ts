import { Duplex } from 'node:stream';

/** The most one read of the pipe delivers, like a TCP socket's read. */
const segment = 64 * 1024;

/**
 * One end of an in-memory byte pipe. What one end writes, the other reads;
 * a write completes only when the reading end has room, so backpressure
 * works as it does over TCP. Destroying one end ends the other, as a
 * dropped connection would.
 */
class PipeEnd extends Duplex {
  constructor() {
    // Like a TCP connection, the pipe holds some bytes in flight before a
    // write has to wait for the reader.
    super({ readableHighWaterMark: 256 * 1024 });
  }

  peer: PipeEnd | undefined;
  /** The callback of a write into this end's peer, held until we have room. */
  #blocked: ((error?: Error | null) => void) | undefined;

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const peer = this.peer!;
    if (peer === undefined || peer.destroyed) return callback(new Error('the other end of the pipe is gone'));
    // Copies, as the kernel makes them (the writer may reuse its buffer once
    // the write completed), in segments of at most 64 KiB as TCP delivers them.
    let room = true;
    for (let at = 0; at < chunk.length; at += segment) {
      room = peer.push(Buffer.from(chunk.subarray(at, Math.min(chunk.length, at + segment))));
    }
    if (room) callback();
    else peer.#blocked = callback;
  }

  override _final(callback: (error?: Error | null) => void): void {
    const peer = this.peer;
    if (peer !== undefined && !peer.destroyed) peer.push(null);
    callback();
  }

  override _read(): void {
    const blocked = this.#blocked;
    this.#blocked = undefined;
    blocked?.();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const peer = this.peer;
    this.peer = undefined;
    const blocked = this.#blocked;
    this.#blocked = undefined;
    blocked?.(new Error('the other end of the pipe is gone'));
    if (peer !== undefined && !peer.destroyed) {
      // Like a closed TCP connection: the other end reads what it already
      // received, then end-of-stream; its writes fail from now on.
      peer.peer = undefined;
      peer.push(null);
      const stuck = peer.#blocked;
      peer.#blocked = undefined;
      stuck?.(new Error('the other end of the pipe is gone'));
    }
    callback(error);
  }
}

/** Two connected in-memory duplex streams (Node 20 lacks `stream.duplexPair`). */
export function duplexPair(): [Duplex, Duplex] {
  const a = new PipeEnd();
  const b = new PipeEnd();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
