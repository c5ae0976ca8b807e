/**
 * The message types and call options a Conn shares between the Node and the
 * browser builds: pure, with no Node import, so that both can use them.
 * @module
 */

/** The two kinds of data message (RFC 6455 §5.6): the values are their opcodes. */
export const MessageType = {
  /** A text message: its payload is UTF-8 (opcode 1). */
  Text: 1,
  /** A binary message: its payload is any bytes (opcode 2). */
  Binary: 2,
} as const;
/** `MessageType.Text` (1) or `MessageType.Binary` (2). */
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/** A whole data message, as `Conn.read()` returns it. */
export interface Message {
  /** Whether the message is text or binary. */
  type: MessageType;
  /**
   * The payload; for text, UTF-8 that wsconn has validated. It may be a
   * view into a larger buffer the socket read (as with `ws`): to keep many
   * small messages for long, keep copies (`new Uint8Array(data)`; note that
   * `Buffer#slice` does not copy) so that each does not hold on to its
   * whole read buffer.
   */
  data: Uint8Array;
}

/** What `Conn.reader()` resolves with: one message, as it arrives. */
export interface MessageReader {
  /** Text (1) or binary (2). */
  type: MessageType;
  /** The message's payload, piece by piece; it ends with the message. */
  stream: ReadableStream<Uint8Array>;
}

/** Options every wait-bearing call takes. */
export interface SignalOptions {
  /** Aborting it rejects the call with `signal.reason`; see each method for what stays. */
  signal?: AbortSignal;
}
