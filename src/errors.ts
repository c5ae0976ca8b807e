/**
 * The error classes wsconn throws. They are few and flat so that `instanceof`
 * and `name` are enough to tell them apart.
 * @module
 */

/**
 * The peer closed the connection with a close frame. `code` is the status code
 * it sent (1005 when its frame had none) and `reason` its UTF-8 reason.
 *
 * Reads reject with this once the peer's close frame has arrived. When
 * wsconn makes it for a received close frame it carries no stack trace: it
 * reports what the peer sent, not a place in your code, and capturing one
 * cost about 5 µs on every close.
 * @see RFC 6455 §7.1.5
 */
export class CloseError extends Error {
  /** Always `'CloseError'`. */
  override readonly name = 'CloseError';
  /** The status code of the peer's close frame. */
  readonly code: number;
  /** The reason text of the peer's close frame ('' when none). */
  readonly reason: string;

  /**
   * Makes the error for a close frame the peer sent.
   * @param code - the status code of the peer's close frame
   * @param reason - its reason text
   */
  constructor(code: number, reason: string) {
    super(`peer closed the connection: ${code}${reason === '' ? '' : ` ${reason}`}`);
    this.code = code;
    this.reason = reason;
  }
}

/**
 * wsconn failed the connection itself because the peer broke the protocol.
 * `code` is the status code wsconn sent in its close frame: 1002 (protocol
 * error), 1003 (unsupported data), 1007 (invalid payload data, such as bad
 * UTF-8), 1008 (policy violation), 1009 (a frame length beyond what
 * JavaScript can index) or 1011 (internal error).
 * @see RFC 6455 §7.1.7, §7.4.1
 */
export class ProtocolError extends Error {
  /** Always `'ProtocolError'`. */
  override readonly name = 'ProtocolError';
  /** The status code wsconn sent to the peer. */
  readonly code: number;

  /**
   * Makes the error for a protocol violation wsconn closed the connection over.
   * @param code - the status code wsconn sent in its close frame
   * @param message - what the peer did wrong
   * @param options - `cause`, when another error led to this one
   */
  constructor(code: number, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/**
 * A message was larger than the read limit (see `Conn.setReadLimit`). The
 * connection has been closed with 1009 (message too big).
 * @see RFC 6455 §7.4.1
 */
export class MessageTooBigError extends Error {
  /** Always `'MessageTooBigError'`. */
  override readonly name = 'MessageTooBigError';
  /** Always 1009, the status code wsconn sent to the peer. */
  readonly code = 1009;
  /** The read limit in bytes that the message exceeded. */
  readonly limit: number;

  /**
   * Makes the error for a message over the read limit.
   * @param limit - the read limit in bytes that the message exceeded
   */
  constructor(limit: number) {
    super(`message exceeds the read limit of ${limit} bytes`);
    this.limit = limit;
  }
}

/**
 * A call was made on a connection that has already ended, or the connection
 * ended while the call waited. `cause` carries what ended it (a `CloseError`,
 * `ProtocolError`, network error, …) when known.
 */
export class ClosedError extends Error {
  /** Always `'ClosedError'`. */
  override readonly name = 'ClosedError';

  /**
   * Makes the error for a call on an ended connection.
   * @param message - what was attempted, or the default text
   * @param options - `cause`: what ended the connection, when known
   */
  constructor(message = 'use of a closed WebSocket connection', options?: ErrorOptions) {
    super(message, options);
  }
}

/**
 * The opening handshake failed. On the client (`dial`), `status`, `headers`
 * and `body` describe the server's response (`status` is 0 when no valid
 * response arrived). On the server (`accept`), they describe the refusal
 * wsconn already wrote to the client.
 * @see RFC 6455 §4.1, §4.2.2
 */
export class HandshakeError extends Error {
  /** Always `'HandshakeError'`. */
  override readonly name = 'HandshakeError';
  /** The HTTP status of the response (0 if none arrived). */
  readonly status: number;
  /** The first KiB of the response body, decoded as UTF-8. */
  readonly body: string;
  /** The headers as given, until `headers` is first read. */
  #headerInit: HeadersInit | undefined;
  #headers: Headers | undefined;

  /**
   * Makes the error for a failed or refused opening handshake.
   * @param message - why the handshake failed
   * @param init - the response: its status (0 when none), headers (a `Headers`, or
   * anything `new Headers()` takes) and the start of its body
   * @param options - `cause`: the network error or timeout behind a status of 0
   */
  constructor(message: string, init: { status: number; headers?: HeadersInit; body?: string }, options?: ErrorOptions) {
    super(message, options);
    this.status = init.status;
    this.#headerInit = init.headers;
    this.body = init.body ?? '';
  }

  /**
   * The response's headers. Made on first use: in Node, the first `Headers`
   * of a process loads Node's fetch implementation (about 2 MB of heap),
   * which a server that refuses upgrades but never reads this is spared.
   */
  get headers(): Headers {
    if (this.#headers === undefined) {
      const init = this.#headerInit;
      this.#headers = init instanceof Headers ? init : new Headers(init);
      this.#headerInit = undefined;
    }
    return this.#headers;
  }
}

/** What `new Headers()` takes (named here so that no value of the global `Headers` is touched). */
type HeadersInit = ConstructorParameters<typeof Headers>[0];
