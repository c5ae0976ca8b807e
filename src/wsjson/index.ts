/**
 * `wsconn/wsjson`: read and write JSON values as WebSocket text messages.
 * @module wsconn/wsjson
 */
import { ProtocolError } from '../errors.js';
import { MessageType, type Message, type SignalOptions } from '../message.js';

/**
 * What wsjson needs of a connection: the `Conn` of `wsconn`, in Node or in
 * the browser build, has it. Only pure modules are imported at run time, so
 * this entry point bundles for a browser as it is.
 */
export interface JsonConn {
  /** As `Conn.read()`. */
  read(options?: SignalOptions): Promise<Message>;
  /** As `Conn.write()`. */
  write(type: MessageType, data: string, options?: SignalOptions): Promise<void>;
  /** As `Conn.close()`. */
  close(code: number, reason: string): Promise<unknown>;
  /** As `Conn.closeNow()`. */
  closeNow(): void;
}

const decoder = new TextDecoder();

/**
 * Reads the next message and parses it as JSON. The message must be a text
 * message (RFC 8259 §8.1: JSON exchanged between systems is UTF-8, which
 * the Conn has already validated for text).
 *
 * A message that is not JSON text is a broken agreement with the peer, so
 * it fails the connection and the peer learns why from the close code
 * (coder/websocket's wsjson also closes with 1007 for bad JSON; its first
 * versions closed with 1003 for a binary message, as wsconn does, while
 * later ones parse binary messages too):
 * - a binary message closes the connection with 1003 (unsupported data)
 *   and rejects with a `ProtocolError` whose `code` is 1003;
 * - text that does not parse closes with 1007 (invalid frame payload data)
 *   and rejects with a `ProtocolError` whose `code` is 1007 and whose
 *   `cause` is the `SyntaxError`.
 * The rejection comes at once; the close handshake runs on in the
 * background (`conn.closed` tells when it ends). Leaving the connection
 * open would be possible (messages have boundaries, so the next one is
 * intact), but the peer would never learn that its message was dropped.
 *
 * The value is not checked against `T`: validate it if the peer is not
 * trusted. The message is read whole, so the Conn's read limit bounds it.
 *
 * An abort rejects with `signal.reason` and, as for `Conn.read()`, leaves a
 * half-received message in the Conn for the next read.
 *
 * @throws ProtocolError 1003 for a binary message, 1007 for invalid JSON.
 * @throws CloseError, ClosedError, MessageTooBigError as `Conn.read()` does.
 * @see RFC 6455 §7.4.1 (status codes 1003 and 1007)
 * @example
 * ```ts
 * import type { Conn } from 'wsconn';
 * import * as wsjson from 'wsconn/wsjson';
 *
 * interface Greeting { hello: string }
 * async function greet(conn: Conn): Promise<string> {
 *   await wsjson.write(conn, { hello: 'server' });
 *   const reply = await wsjson.read<Greeting>(conn, { signal: AbortSignal.timeout(5000) });
 *   return reply.hello;
 * }
 * ```
 */
export async function read<T = unknown>(conn: JsonConn, options?: SignalOptions): Promise<T> {
  const { type, data } = await conn.read(options);
  if (type !== MessageType.Text) {
    throw fail(conn, new ProtocolError(1003, 'wsjson: expected a text message, got a binary message'));
  }
  try {
    return JSON.parse(decoder.decode(data)) as T;
  } catch (err) {
    throw fail(conn, new ProtocolError(1007, 'wsjson: the message is not valid JSON', { cause: err }));
  }
}

/** Starts closing the connection with the error's code and returns the error. */
function fail(conn: JsonConn, error: ProtocolError): ProtocolError {
  // close() resolves once the handshake ends and rejects only for a code or
  // reason it cannot send: never in Node. The browser build's WebSocket API
  // sends only 1000 and 3000–4999, so there 1003 goes as 4003 and 1007 as
  // 4007, the way the browser build sends 1008 as 4008; if even that fails,
  // the connection is dropped.
  const reason = error.message.slice(0, 100);
  conn
    .close(error.code, reason)
    .catch(() => conn.close(3000 + error.code, reason))
    .catch(() => conn.closeNow());
  return error;
}

/**
 * Sends `value` as JSON in one text message, encoded with `JSON.stringify`
 * (so `toJSON()` methods apply, object properties that are `undefined` or
 * functions are left out, and such array items become `null`).
 *
 * Resolves once the socket has taken the message, as `Conn.write()` does;
 * an abort before the message is queued sends nothing.
 *
 * @throws TypeError, before anything is sent, for a value JSON cannot encode
 * at the top level (`undefined`, a function, a symbol), a `BigInt` anywhere,
 * or a circular structure.
 * @throws ClosedError when the connection is closing or gone.
 * @example
 * ```ts
 * import type { Conn } from 'wsconn';
 * import { write } from 'wsconn/wsjson';
 *
 * async function report(conn: Conn, temperatures: number[]): Promise<void> {
 *   await write(conn, { kind: 'report', temperatures, at: new Date() }, { signal: AbortSignal.timeout(5000) });
 * }
 * ```
 */
export async function write(conn: JsonConn, value: unknown, options?: SignalOptions): Promise<void> {
  // JSON.stringify throws TypeError for BigInt and cycles by itself.
  const text = JSON.stringify(value) as string | undefined;
  if (text === undefined) {
    throw new TypeError(`wsjson: a value of type ${typeof value} cannot be encoded as JSON`);
  }
  await conn.write(MessageType.Text, text, options);
}
