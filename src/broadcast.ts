/**
 * `broadcast()`: one prepared message to many connections, with a bounded
 * queue per connection and a policy for connections that cannot keep up.
 * @module
 */
import { StatusCode } from './close.js';
import { type Conn, offer } from './conn.js';
import { ClosedError } from './errors.js';
import { encodeClosePayload } from './protocol/close-frame.js';
import { PreparedMessage } from './protocol/prepared.js';

/**
 * What `broadcast()` does with a connection whose queue is full:
 * - `'close'`: close it (default code 1008) and forget its queue;
 * - `'drop-newest'`: skip this message for it;
 * - `'drop-oldest'`: drop the oldest message still queued for it (for
 *   feeds where only the latest state matters).
 */
export type WhenFull = 'close' | 'drop-newest' | 'drop-oldest';

/** Options of `broadcast()`. */
export interface BroadcastOptions {
  /**
   * The most messages held for one connection that cannot take them yet
   * (its socket's buffer is full, or another write is under way); default
   * 32. Beyond it, `whenFull` decides. Queued messages are shared, so a
   * queue costs a reference per message, not a copy.
   */
  queueLimit?: number;
  /** What happens to a connection whose queue is full; default `'close'`. */
  whenFull?: WhenFull;
  /** The close code for `whenFull: 'close'`: default 1008 (policy violation); 1013 (try again later) suits an overloaded server. */
  closeCode?: number;
  /** The close reason for `whenFull: 'close'`; default `'too slow to keep up'`. */
  closeReason?: string;
  /**
   * Called for each connection whose queue was full, after the policy was
   * applied and every connection was handled (for a log line or a
   * metric). An exception it throws propagates out of `broadcast()`.
   */
  onFull?: (conn: Conn) => void;
}

/** What one `broadcast()` call did, counted in connections. */
export interface BroadcastResult {
  /** Written to the socket at once. */
  sent: number;
  /** Queued behind earlier messages or a full socket buffer; written as the connection drains. */
  queued: number;
  /** Connections that did not get this message (or lost an older one) under a `'drop-…'` policy. */
  dropped: number;
  /** Connections closed now because their queue was full. */
  closed: number;
  /** Connections that were closing or closed already, and were skipped. */
  skipped: number;
}

/** The messages waiting for one connection while its writer runs. */
interface Outbox {
  readonly queue: PreparedMessage[];
  /** Set once the policy closed the connection: later broadcasts skip it. */
  closed: boolean;
}

const outboxes = new WeakMap<Conn, Outbox>();

const defaults = { queueLimit: 32, whenFull: 'close', closeCode: StatusCode.PolicyViolation, closeReason: 'too slow to keep up' } as const;

/**
 * Sends `message` to every connection in `conns` (a `Set`, a `ConnSet`, an
 * array: any iterable of Conns) without waiting for any of them. A
 * connection that can take it now gets the message's shared frame at once;
 * one that cannot (its socket's buffer is full) gets it queued, and its
 * queue is written as its socket drains, in order. When a connection's
 * queue holds `queueLimit` messages, `whenFull` decides: close it, or drop
 * a message for it. So one stalled client never delays the others, no
 * timer is set per message, and memory stays bounded by connections ×
 * `queueLimit` plus each socket's buffer.
 *
 * A broadcast and the connection's own `write()` calls take turns: each
 * message goes out whole, in the order the calls were made once the socket
 * has room.
 *
 * @returns counts of what happened; it never throws for a connection that
 * is closing or gone (it is skipped).
 * @throws TypeError unless `message` is a `PreparedMessage`; RangeError for
 * a bad option (before anything is sent).
 * @example
 * ```ts
 * import { broadcast, ConnSet, MessageType, PreparedMessage } from 'wsconn';
 * const room = new ConnSet();
 * // … room.add(conn) for each connection a handler accepts …
 * const result = broadcast(room, new PreparedMessage(MessageType.Text, '{"tick":1}'), {
 *   queueLimit: 16,
 *   whenFull: 'drop-oldest',
 * });
 * console.log(result.sent, result.queued, result.dropped);
 * ```
 */
export function broadcast(conns: Iterable<Conn>, message: PreparedMessage, options: BroadcastOptions = {}): BroadcastResult {
  if (!(message instanceof PreparedMessage)) throw new TypeError('broadcast() takes a PreparedMessage');
  const policy = checkOptions(options);
  const result: BroadcastResult = { sent: 0, queued: 0, dropped: 0, closed: 0, skipped: 0 };
  let full: Conn[] | undefined;
  for (const conn of conns) {
    const outbox = outboxes.get(conn);
    if (outbox === undefined) {
      const done = offer(conn, message);
      if (done === 'sent') result.sent++;
      else if (done === 'closed') result.skipped++;
      else startOutbox(conn, message, result);
    } else if (outbox.closed) {
      result.skipped++;
    } else if (outbox.queue.length < policy.queueLimit) {
      outbox.queue.push(message);
      result.queued++;
    } else {
      whenFull(conn, outbox, message, policy, result);
      (full ??= []).push(conn);
    }
  }
  if (full !== undefined && options.onFull !== undefined) for (const conn of full) options.onFull(conn);
  return result;
}

type Policy = Required<Omit<BroadcastOptions, 'onFull'>>;

function checkOptions(options: BroadcastOptions): Policy {
  const policy: Policy = { ...defaults, ...options };
  const { queueLimit, whenFull, closeCode, closeReason } = policy;
  if (!Number.isInteger(queueLimit) || queueLimit < 1) throw new RangeError(`queueLimit must be a positive integer, got ${queueLimit}`);
  if (whenFull !== 'close' && whenFull !== 'drop-newest' && whenFull !== 'drop-oldest') {
    throw new RangeError(`whenFull must be 'close', 'drop-newest' or 'drop-oldest', got ${String(whenFull)}`);
  }
  if (whenFull === 'close') encodeClosePayload(closeCode, closeReason); // RangeError for a code that may not be sent
  return policy;
}

/** Queues `message` for a connection that is busy, and writes its queue as the socket drains. */
function startOutbox(conn: Conn, message: PreparedMessage, result: BroadcastResult): void {
  const outbox: Outbox = { queue: [message], closed: false };
  outboxes.set(conn, outbox);
  result.queued++;
  writeOutbox(conn, outbox).catch(() => {
    // Not the connection ending (handled inside) but a defect: end the connection with 1011.
    conn.close(StatusCode.InternalError, 'broadcast failed').catch(() => {});
  });
}

async function writeOutbox(conn: Conn, outbox: Outbox): Promise<void> {
  const { queue } = outbox;
  try {
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
      await conn.writePrepared(next);
    }
  } catch (err) {
    // The connection is closing or gone: what is queued for it goes with it.
    if (!(err instanceof ClosedError)) throw err;
    queue.length = 0;
  } finally {
    if (outboxes.get(conn) === outbox) outboxes.delete(conn);
  }
}

function whenFull(conn: Conn, outbox: Outbox, message: PreparedMessage, policy: Policy, result: BroadcastResult): void {
  if (policy.whenFull === 'drop-newest') {
    result.dropped++;
  } else if (policy.whenFull === 'drop-oldest') {
    outbox.queue.shift();
    outbox.queue.push(message);
    result.dropped++;
  } else {
    outbox.queue.length = 0;
    outbox.closed = true;
    result.closed++;
    // Its close frame goes out behind what its socket holds; if the peer
    // never reads it, the close handshake times out (closeTimeout) and the
    // TCP connection is dropped.
    conn.close(policy.closeCode, policy.closeReason).catch(() => {});
  }
}
