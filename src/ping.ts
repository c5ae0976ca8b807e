/**
 * Pings of one connection: matching pongs to the pings awaiting them, and
 * the optional keepalive heartbeat (RFC 6455 §5.5.2, §5.5.3).
 * @module
 */
import { waitFor } from './internal/abort.js';

/** What the pinger needs from its Conn. */
export interface PingHost {
  /** Sends a ping frame with this payload; throws if the connection is closing. */
  sendPing(payload: string): void;
  /** Drops the connection because the keepalive pong came too late. */
  dead(timeout: number): void;
}

/** The payload prefix that marks our pings; a counter follows. */
const prefix = 'wsconn';

/** Tracks the pings of one Conn; created on the first `ping()` or for `keepalive`. */
export class Pinger {
  readonly #host: PingHost;
  readonly #waiting = new Map<string, (error?: Error) => void>();
  #count = 0;
  #heartbeat: NodeJS.Timeout | undefined;

  constructor(host: PingHost) {
    this.#host = host;
  }

  /** Sends a ping and resolves with the round-trip time in ms once its pong arrives. */
  async ping(signal: AbortSignal | undefined): Promise<number> {
    const id = `${prefix}${++this.#count}`;
    const start = performance.now();
    await waitFor((settle) => {
      this.#waiting.set(id, settle);
      this.#host.sendPing(id);
      return () => this.#waiting.delete(id);
    }, signal);
    return performance.now() - start;
  }

  /** Settles the ping a pong answers, and every ping sent before it. */
  pong(payload: Uint8Array): void {
    const id = Buffer.from(payload).toString('latin1');
    if (!this.#waiting.has(id)) return; // RFC 6455 §5.5.3: unsolicited pongs are ignored.
    // A peer may answer only the latest of several pings (§5.5.3), so a
    // pong also answers every ping sent before its own.
    for (const [key, settle] of this.#waiting) {
      settle();
      if (key === id) break;
    }
  }

  /**
   * Pings every `interval` ms; a pong more than `timeout` ms late calls
   * `host.dead()`. The timer stops when the connection ends.
   */
  startHeartbeat(interval: number, timeout: number): void {
    let waiting = false;
    this.#heartbeat = setInterval(() => {
      if (waiting) return;
      waiting = true;
      const deadline = AbortSignal.timeout(timeout);
      this.ping(deadline).then(
        () => (waiting = false),
        (err: unknown) => {
          if (err === deadline.reason) this.#host.dead(timeout); // else the connection is ending anyway
        },
      );
    }, interval);
  }

  /** Stops the heartbeat and rejects every waiting ping with the error `error` makes. */
  stop(error: () => Error): void {
    clearInterval(this.#heartbeat);
    for (const settle of this.#waiting.values()) settle(error());
  }
}
