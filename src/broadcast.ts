/**
 * `broadcast()`: one prepared message to many connections, with a bounded
 * queue per connection and a policy for connections that cannot keep up.
 * @module
 */
import { checkClose, StatusCode } from './close.js';
import { broadcastAccess, type Conn, type QueuedMessage } from './conn.js';
import { ClosedError } from './errors.js';
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
   * 32, counting one being written. Beyond it, `whenFull` decides. Queued
   * messages are shared, not copied: a queued message costs its place in
   * the connection's write queue (a few hundred bytes).
   */
  queueLimit?: number;
  /** What happens to a connection whose queue is full; default `'close'`. */
  whenFull?: WhenFull;
  /** The close code for `whenFull: 'close'`: default 1008 (policy violation); 1013 (try again later) suits an overloaded server. 1005 and other codes `close()` refuses are refused here too. */
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

/** The broadcast messages waiting for one connection's write turn, oldest first. */
interface Outbox {
  readonly waiting: QueuedMessage[];
  /** How many of them are not dropped. */
  live: number;
  /** Set once the policy closed the connection: later broadcasts skip it. */
  closed: boolean;
}

const outboxes = new WeakMap<Conn, Outbox>();

const noop = (): void => {};

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
 * A broadcast and the connection's own `write()` calls take turns: a
 * queued message takes its place in the connection's write queue when
 * `broadcast()` is called, so each message goes out whole and in the order
 * the calls were made. A `close()` goes ahead of queued messages (which
 * are then refused), as it does ahead of waiting `write()` calls.
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
      const done = broadcastAccess.offer(conn, message);
      if (done === 'sent') result.sent++;
      else if (done === 'closed') result.skipped++;
      else enqueue(conn, newOutbox(conn), message, result);
    } else if (outbox.closed || !broadcastAccess.writable(conn)) {
      result.skipped++;
    } else if (outbox.live < policy.queueLimit) {
      enqueue(conn, outbox, message, result);
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
  if (whenFull === 'close') checkClose(closeCode, closeReason);
  return policy;
}

function newOutbox(conn: Conn): Outbox {
  const outbox: Outbox = { waiting: [], live: 0, closed: false };
  outboxes.set(conn, outbox);
  return outbox;
}

/**
 * Queues `message` for a connection that cannot take it now: it takes its
 * place in the connection's write queue at once, so it goes out in call
 * order with the connection's own `write()` calls, as the socket drains.
 */
function enqueue(conn: Conn, outbox: Outbox, message: PreparedMessage, result: BroadcastResult): void {
  const queued: QueuedMessage = { message, dropped: false, started: false, withdraw: noop };
  outbox.waiting.push(queued);
  outbox.live++;
  result.queued++;
  broadcastAccess.enqueue(conn, queued).then(
    () => settled(conn, outbox, queued),
    (err: unknown) => {
      settled(conn, outbox, queued);
      // The connection ending rejects every queued message; anything else is a defect: end the connection.
      if (!(err instanceof ClosedError)) closeOrDrop(conn, StatusCode.InternalError, 'broadcast failed');
    },
  );
}

/** A queued message was written, skipped or failed: it leaves the outbox. */
function settled(conn: Conn, outbox: Outbox, queued: QueuedMessage): void {
  const at = outbox.waiting.indexOf(queued);
  if (at !== -1) outbox.waiting.splice(at, 1);
  if (!queued.dropped) outbox.live--;
  if (outbox.waiting.length === 0 && outboxes.get(conn) === outbox) outboxes.delete(conn);
}

/** Closes with `code`; if even that fails, drops the connection (never a silent failure). */
function closeOrDrop(conn: Conn, code: number, reason: string): void {
  conn.close(code, reason).catch(() => conn.closeNow());
}

function whenFull(conn: Conn, outbox: Outbox, message: PreparedMessage, policy: Policy, result: BroadcastResult): void {
  if (policy.whenFull === 'close') {
    outbox.closed = true;
    result.closed++;
    // Its close frame goes out behind what its socket holds; if the peer
    // never reads it, the close handshake times out (closeTimeout) and the
    // TCP connection is dropped. Queued messages are rejected by the close.
    closeOrDrop(conn, policy.closeCode, policy.closeReason);
    return;
  }
  result.dropped++;
  // The oldest message that has not got the write turn yet makes room for this one.
  const oldest = policy.whenFull === 'drop-oldest' ? outbox.waiting.find((q) => !q.started && !q.dropped) : undefined;
  if (oldest === undefined) return;
  oldest.dropped = true;
  outbox.live--;
  oldest.withdraw(); // its promise settles, and it leaves the outbox
  enqueue(conn, outbox, message, result);
  result.queued--; // counted as dropped, not as queued
}
