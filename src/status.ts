/**
 * Close status codes and how a connection ended, shared by the Node and the
 * browser builds: pure, with no Node import.
 * @module
 */
import { CloseError } from './errors.js';

/**
 * Close status codes (RFC 6455 §7.4.1 and the IANA registry, §11.7).
 * 1005, 1006 and 1015 are never sent: they only report what happened.
 */
export const StatusCode = {
  /** 1000: the purpose of the connection was fulfilled. */
  NormalClosure: 1000,
  /** 1001: the endpoint is going away (a server shutting down, a page navigating away). */
  GoingAway: 1001,
  /** 1002: the peer broke the protocol. */
  ProtocolError: 1002,
  /** 1003: a message of a type the endpoint cannot take (text where it wants binary, or the reverse). */
  UnsupportedData: 1003,
  /** 1005: reported when the peer's close frame carried no code; never sent. */
  NoStatusReceived: 1005,
  /** 1006: reported when the connection ended without a close frame; never sent. */
  AbnormalClosure: 1006,
  /** 1007: a message's data did not match its type (text that is not UTF-8). */
  InvalidFramePayloadData: 1007,
  /** 1008: a message broke the endpoint's policy. */
  PolicyViolation: 1008,
  /** 1009: a message too big to process (over the read limit). */
  MessageTooBig: 1009,
  /** 1010: the client needed an extension the server did not negotiate. */
  MandatoryExtension: 1010,
  /** 1011: the server met an unexpected condition. */
  InternalError: 1011,
  /** 1012: the server is restarting (IANA registry). */
  ServiceRestart: 1012,
  /** 1013: try again later, for example under overload (IANA registry). */
  TryAgainLater: 1013,
  /** 1014: a gateway or proxy got an invalid response upstream (IANA registry). */
  BadGateway: 1014,
  /** 1015: reported when the TLS handshake failed; never sent. */
  TLSHandshake: 1015,
} as const;

/**
 * Returns the status code of the close frame the peer sent when `err` is (or
 * was caused by) a `CloseError`, and -1 otherwise. Follows `cause` chains,
 * so it works on errors wrapped by netconn or by your own code.
 *
 * @example
 * ```ts
 * import { closeStatus, StatusCode, type Conn } from 'wsconn';
 * async function drain(conn: Conn): Promise<void> {
 *   try {
 *     for (;;) await conn.read();
 *   } catch (err) {
 *     if (closeStatus(err) !== StatusCode.NormalClosure) throw err;
 *   }
 * }
 * ```
 */
export function closeStatus(err: unknown): number {
  const seen = new Set<unknown>();
  let current = err;
  while (current instanceof Error && !seen.has(current)) {
    if (current instanceof CloseError) return current.code;
    seen.add(current);
    current = current.cause;
  }
  return -1;
}

/** How a connection ended, shaped like a browser's `CloseEvent`. */
export interface CloseInfo {
  /** The peer's close code: 1005 if its close frame had none, 1006 if none came. */
  code: number;
  /** The peer's close reason ('' when none). */
  reason: string;
  /** True when close frames went both ways. */
  wasClean: boolean;
  /** What ended the connection, when it did not end cleanly. */
  error?: Error;
}

/**
 * @internal Whether `err`, from a `read()`, ends a `for await` loop over a
 * Conn normally: the peer closed with 1000 (normal closure), 1001 (going
 * away) or no status (1005, how a browser's `close()` ends by default).
 */
export function endsIteration(err: unknown): boolean {
  const code = closeStatus(err);
  return code === StatusCode.NormalClosure || code === StatusCode.GoingAway || code === StatusCode.NoStatusReceived;
}
