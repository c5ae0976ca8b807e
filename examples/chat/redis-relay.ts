/**
 * The relay over Redis pub/sub (node-redis): every chat process publishes
 * its tabs' events to one channel and subscribes to it, skipping the events
 * it published itself (its own tabs already have them).
 *
 * Failure behaviour, which docs/scaling.md describes for users:
 * - the process never waits for Redis: it serves its own tabs from the start
 *   and whenever Redis is away;
 * - both connections retry with a capped, jittered exponential backoff
 *   (100 ms doubling up to 3 s, plus up to 100 ms) for as long as it takes;
 * - nothing is queued while Redis is away: an event published then is
 *   dropped (counted, and logged when the relay is back), and so is one that
 *   would make more than 1,000 publishes wait for Redis's answer;
 * - a Redis that stops answering without closing the connection (frozen, or
 *   cut off by the network) is noticed by a PING every second: one left
 *   unanswered for 5 s makes the relay `down` until Redis answers again;
 * - pub/sub does not keep messages: what other processes publish while this
 *   one is disconnected never reaches it.
 */
import { randomUUID } from 'node:crypto';
import { createClient } from 'redis';
import { decodeEnvelope, encodeEnvelope, type ChatEvent, type Relay, type RelayHooks, type RelayState } from './relay.js';

/** The pub/sub channel every chat process of one deployment shares. */
const channel = process.env.CHAT_REDIS_CHANNEL ?? 'wsconn-chat';
/** The longest wait between two attempts to reach Redis. */
const maxBackoffMs = 3000;
/** Publishes that may wait for Redis's answer at once; more are dropped. */
const maxPendingPublishes = 1000;
/** How often the publishing connection checks that Redis answers. */
const beatMs = 1000;
/**
 * How long a PING may go unanswered before Redis counts as gone. Well above
 * a healthy round-trip plus an event-loop stall, so that a busy process does
 * not tell its tabs that Redis is down when it is not.
 */
const silenceMs = 5000;

type RedisClient = ReturnType<typeof createClient>;

/** Capped exponential backoff with jitter, so that many processes do not retry in step. */
function backoff(retries: number): number {
  return Math.min(100 * 2 ** retries, maxBackoffMs) + Math.floor(Math.random() * 100);
}

/** A short reason for a log line: the errno code when there is one (ECONNREFUSED…). */
function reason(err: unknown): string {
  const { code, message, name } = err as { code?: unknown; message?: string; name?: string };
  return typeof code === 'string' ? code : message || name || String(err);
}

/**
 * A relay over two Redis connections (a subscribed connection can only
 * listen): one publishes, one subscribes. It is `up` while both are
 * connected and the subscription is in place.
 */
export class RedisRelay implements Relay {
  #state: RelayState = 'connecting';
  #closed = false;
  #subscribed = false;
  /** Events not relayed since the relay was last up. */
  #dropped = 0;
  /** When the PING that has not been answered yet was sent (`performance.now()`). */
  #pingSentAt: number | undefined;
  readonly #beat = setInterval(() => this.#checkAnswering(), beatMs).unref();
  readonly #origin = randomUUID();
  readonly #hooks: RelayHooks;
  readonly #publisher: RedisClient;
  readonly #subscriber: RedisClient;

  constructor(url: string, hooks: RelayHooks) {
    this.#hooks = hooks;
    const socket = { reconnectStrategy: backoff, connectTimeout: 5000 };
    // disableOfflineQueue: a publish while disconnected fails at once instead of waiting in memory.
    this.#publisher = createClient({ url, socket, disableOfflineQueue: true, commandsQueueMaxLength: maxPendingPublishes });
    // The subscriber sends one command, SUBSCRIBE, which may wait for a reconnection.
    this.#subscriber = createClient({ url, socket });
    for (const client of [this.#publisher, this.#subscriber]) {
      // node-redis emits 'error' on every failed attempt; without a listener it would crash the process.
      client.on('error', (err: unknown) => {
        if (client.isReady) console.log(`relay: ${reason(err)}`); // an error reply: still connected
        else this.#setDown(reason(err));
      });
      client.on('ready', () => this.#maybeUp());
    }
    this.#start().catch((err: unknown) => {
      if (!this.#closed) this.#setDown(`cannot subscribe: ${reason(err)}`);
    });
  }

  get state(): RelayState {
    return this.#state;
  }

  publish(event: ChatEvent): void {
    if (this.#state !== 'up') {
      this.#dropped++;
      return;
    }
    this.#publisher.publish(channel, encodeEnvelope(this.#origin, event)).catch(() => {
      // Redis went away with this publish in flight, or too many are waiting.
      this.#dropped++;
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#beat);
    if (this.#subscriber.isOpen) this.#subscriber.destroy();
    if (!this.#publisher.isReady) {
      if (this.#publisher.isOpen) this.#publisher.destroy(); // stops the reconnection attempts
      return;
    }
    // Let the last publishes (the "left" lines of a shutdown) go out, for a second at most.
    const timer = setTimeout(() => this.#publisher.destroy(), 1000);
    await this.#publisher.close().catch(() => {});
    clearTimeout(timer);
  }

  /** Connects both clients (each retries until it gets through), then subscribes. */
  async #start(): Promise<void> {
    await Promise.all([this.#publisher.connect(), this.#subscriber.connect()]);
    for (;;) {
      try {
        // node-redis renews the subscription by itself on every reconnection after this one.
        await this.#subscriber.subscribe(channel, this.#receive);
        break;
      } catch (err) {
        // The connection dropped before Redis confirmed: try again once it is back.
        if (this.#closed) throw err;
        await new Promise((resolve) => this.#subscriber.once('ready', resolve));
      }
    }
    this.#subscribed = true;
    this.#maybeUp();
  }

  readonly #receive = (message: string): void => {
    const envelope = decodeEnvelope(message);
    if (envelope === undefined) {
      console.log(`relay: ignored a malformed message on ${channel}`);
    } else if (envelope.origin !== this.#origin) {
      this.#hooks.onEvent(envelope.event);
    }
  };

  /**
   * Sends a PING when none is outstanding; declares Redis gone when one has
   * been outstanding for too long. A connection that closes needs no PING to
   * be noticed (its 'error' event), one that merely goes silent does.
   */
  #checkAnswering(): void {
    if (!this.#publisher.isReady) return;
    if (this.#pingSentAt !== undefined) {
      if (this.#silent()) this.#setDown(`no answer from Redis for ${silenceMs / 1000} s`);
      return;
    }
    this.#pingSentAt = performance.now();
    this.#publisher.ping().then(
      () => {
        this.#pingSentAt = undefined;
        this.#maybeUp();
      },
      // The connection failed (its 'error' event says so) or too many publishes wait: try again next beat.
      () => (this.#pingSentAt = undefined),
    );
  }

  #silent(): boolean {
    return this.#pingSentAt !== undefined && performance.now() - this.#pingSentAt > silenceMs;
  }

  #maybeUp(): void {
    if (this.#closed || this.#state === 'up' || !this.#subscribed || this.#silent()) return;
    if (!this.#publisher.isReady || !this.#subscriber.isReady) return;
    this.#state = 'up';
    const dropped = this.#dropped;
    this.#dropped = 0;
    this.#hooks.onState('up', dropped === 0 ? `channel ${channel}` : `channel ${channel}; ${dropped} event(s) were not relayed meanwhile`);
  }

  #setDown(detail: string): void {
    if (this.#closed || this.#state === 'down') return;
    this.#state = 'down';
    this.#hooks.onState('down', detail);
  }
}
