/**
 * The broadcast scenario's server loop, the same for every implementation:
 * numbered ~1 KiB JSON messages are broadcast as fast as delivery allows.
 * One client (the probe) acknowledges every 16th message it receives, over
 * the benchmark's IPC channel (not over its WebSocket, where a compressed
 * acknowledgement would queue behind the server's own zlib work); the
 * server keeps at most `window` messages beyond the last acknowledged one
 * in flight, so no implementation is asked to buffer without bound, and
 * yields to I/O every 16 messages.
 * @module
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { jsonCorpus } from '../corpus.js';

/** Messages the server may be ahead of the probe's last acknowledgement. */
const window = 64;
/** The probe acknowledges messages whose number is a multiple of this. */
export const ackEvery = 16;

const corpus = jsonCorpus(64).map((bytes) => Buffer.from(bytes).toString('latin1').slice(1));

/** Message `seq`: `{"seq":N,` then the rest of a corpus event (valid JSON, ~1 KiB). */
export function numbered(seq: number): Buffer {
  return Buffer.from(`{"seq":${seq},${corpus[seq % corpus.length]}`, 'latin1');
}

/** The number a broadcast message starts with. */
export function seqOf(message: Uint8Array): number {
  let n = 0;
  for (let i = 7; i < message.length; i++) {
    const digit = message[i]! - 0x30;
    if (digit < 0 || digit > 9) break;
    n = n * 10 + digit;
  }
  return n;
}

/** Paces one server's broadcast loop by the probe's acknowledgements. */
export class Pacer {
  #sent = 0;
  #acked = -1;
  #wake: (() => void) | undefined;
  #running = false;

  /** The probe got message `seq`. */
  ack(seq: number): void {
    if (seq > this.#acked) this.#acked = seq;
    this.#wake?.();
  }

  /** Starts the loop once; it broadcasts with `send` while `active()` holds. */
  start(send: (message: Buffer) => void, active: () => boolean): void {
    if (this.#running) return;
    this.#running = true;
    this.#run(send, active).finally(() => (this.#running = false));
  }

  async #run(send: (message: Buffer) => void, active: () => boolean): Promise<void> {
    while (active()) {
      if (this.#sent - this.#acked > window) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 50); // re-check active() now and then
          this.#wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.#wake = undefined;
        continue;
      }
      send(numbered(this.#sent++));
      if (this.#sent % ackEvery === 0) await nextTurn();
    }
  }
}

/** The server process's one pacer (a server child runs one broadcast case). */
export const pacer = new Pacer();
