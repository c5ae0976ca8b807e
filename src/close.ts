/**
 * Close status codes, the close payload codec (RFC 6455 §5.5.1, §7.4),
 * `closeStatus`, and the close handshake of a connection (§7).
 * @module
 */
import { isUtf8 } from 'node:buffer';
import type { Duplex } from 'node:stream';
import { ClosedError, CloseError, ProtocolError } from './errors.js';
import { deferred } from './internal/deferred.js';

/**
 * Close status codes (RFC 6455 §7.4.1 and the IANA registry, §11.7).
 * 1005, 1006 and 1015 are never sent: they only report what happened.
 */
export const StatusCode = {
  NormalClosure: 1000,
  GoingAway: 1001,
  ProtocolError: 1002,
  UnsupportedData: 1003,
  NoStatusReceived: 1005,
  AbnormalClosure: 1006,
  InvalidFramePayloadData: 1007,
  PolicyViolation: 1008,
  MessageTooBig: 1009,
  MandatoryExtension: 1010,
  InternalError: 1011,
  ServiceRestart: 1012,
  TryAgainLater: 1013,
  BadGateway: 1014,
  TLSHandshake: 1015,
} as const;

/** The longest reason that fits a control frame: 125 bytes less the 2-byte code. */
export const maxReasonBytes = 123;

/**
 * Whether `code` may travel in a close frame: the defined codes except 1004,
 * 1005, 1006 and 1015 (RFC 6455 §7.4.1, §7.4.2), and 3000–4999 for libraries
 * and applications.
 */
export function isValidCloseCode(code: number): boolean {
  if (!Number.isInteger(code)) return false;
  if (code >= 3000 && code <= 4999) return true;
  return code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Encodes a close frame payload: the code in network byte order, then the
 * reason as UTF-8. Code 1005 encodes as an empty payload (a close frame
 * without a status).
 * @throws RangeError for a code that may not be sent or a reason over 123 bytes.
 */
export function encodeClosePayload(code: number, reason = ''): Uint8Array {
  if (code === StatusCode.NoStatusReceived && reason === '') return new Uint8Array(0);
  if (!isValidCloseCode(code)) throw new RangeError(`invalid close code ${code}`);
  const reasonBytes = encoder.encode(reason);
  if (reasonBytes.length > maxReasonBytes) {
    throw new RangeError(`close reason is ${reasonBytes.length} bytes; at most ${maxReasonBytes} fit`);
  }
  const out = new Uint8Array(2 + reasonBytes.length);
  out[0] = code >>> 8;
  out[1] = code & 0xff;
  out.set(reasonBytes, 2);
  return out;
}

/** A close reason made from an error message, cut on a character boundary to fit a close frame. */
export function closeReason(message: string): string {
  let reason = message;
  while (Buffer.byteLength(reason) > maxReasonBytes) reason = reason.slice(0, -1);
  return reason;
}

/**
 * Decodes a received close frame payload. An empty payload means "no status"
 * and decodes as code 1005.
 * @throws ProtocolError 1002 for a 1-byte payload or a code that may not be
 * sent (RFC 6455 §7.4); 1007 for a reason that is not UTF-8 (§5.5.1).
 */
export function decodeClosePayload(payload: Uint8Array): { code: number; reason: string } {
  if (payload.length === 0) return { code: StatusCode.NoStatusReceived, reason: '' };
  if (payload.length === 1) throw new ProtocolError(1002, 'close frame payload of 1 byte');
  const code = (payload[0]! << 8) | payload[1]!;
  if (!isValidCloseCode(code)) throw new ProtocolError(1002, `peer sent invalid close code ${code}`);
  const reasonBytes = payload.subarray(2);
  if (!isUtf8(reasonBytes)) throw new ProtocolError(1007, 'close reason is not valid UTF-8');
  return { code, reason: decoder.decode(reasonBytes) };
}

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

/** What the close handshake needs from its Conn. */
export interface CloseHost {
  /** Sends a close frame carrying `payload`. */
  sendCloseFrame(payload: Uint8Array): void;
  /** Makes every pending and later read reject with `error`, and writes with a ClosedError. */
  endCalls(error: Error): void;
  /** Stops parsing frames and drops whatever still arrives, so that the peer's FIN is seen. */
  discardInput(): void;
  /** Reads and discards until the peer's close frame, a failure or the end. */
  readUntilClose(): Promise<void>;
  /** Lets go of what the Conn holds, once the TCP connection has closed. */
  released(error: Error): void;
}

/**
 * The close handshake of one connection (RFC 6455 §7): who sent and
 * received a close frame, why the connection is ending, the bounded waits,
 * and the `CloseInfo` it ends with.
 */
export class Closing {
  /** Settles once, when the TCP connection has closed; never rejects. */
  readonly closed: Promise<CloseInfo>;
  readonly #info = deferred<CloseInfo>();
  readonly #socket: Duplex;
  readonly #host: CloseHost;
  /** We are the client: the server closes the TCP connection first (RFC 6455 §7.1.1). */
  readonly #client: boolean;
  /** Each of the two waits of the handshake, in ms. */
  readonly #timeout: number;
  #sent = false;
  #received: { code: number; reason: string } | undefined;
  #ended: Error | undefined;
  #socketError: Error | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** Set while close() waits for the peer's close frame. */
  #peerClosed: (() => void) | undefined;
  #closing: Promise<CloseInfo> | undefined;
  #settled = false;

  constructor(socket: Duplex, host: CloseHost, client: boolean, timeout: number) {
    this.closed = this.#info.promise;
    this.#socket = socket;
    this.#host = host;
    this.#client = client;
    this.#timeout = timeout;
  }

  /** The peer sent its FIN ('end'): once our close frame is out, send ours. */
  peerEnded(): void {
    if (this.#sent) this.#socket.end();
  }

  /** The socket reported an error; the 'close' that follows ends the connection. */
  socketFailed(error: Error): void {
    this.#socketError ??= error;
  }

  /** The TCP connection has closed: settle `closed` and let go of everything. */
  socketClosed(): void {
    this.#teardown();
  }

  /** Why the connection is ending, once it is. */
  get ended(): Error | undefined {
    return this.#ended;
  }

  /** Whether our close frame has gone out. */
  get sent(): boolean {
    return this.#sent;
  }

  /** Whether the TCP connection has closed and `closed` has settled. */
  get settled(): boolean {
    return this.#settled;
  }

  /** `Conn.close()`: see there. */
  close(code: number, reason: string): Promise<CloseInfo> {
    if (this.#closing !== undefined) return this.#closing;
    let payload: Uint8Array;
    try {
      if (code === StatusCode.NoStatusReceived) throw new RangeError('close code 1005 may not be sent');
      payload = encodeClosePayload(code, reason);
    } catch (err) {
      return Promise.reject(err);
    }
    this.#closing = this.#handshake(payload);
    return this.#closing;
  }

  async #handshake(payload: Uint8Array): Promise<CloseInfo> {
    if (this.#ended === undefined && !this.#sent) {
      this.#send(payload);
      const timer = setTimeout(() => this.drop(new ClosedError('the peer did not answer the close frame in time')), this.#timeout);
      const peerClosed = new Promise<void>((resolve) => {
        this.#peerClosed = resolve;
      });
      await Promise.race([peerClosed, this.#host.readUntilClose()]);
      clearTimeout(timer);
    }
    // However the wait ended, the TCP connection gets no longer than this to close.
    this.#armTimer();
    return this.closed;
  }

  /** Handles the peer's close frame and throws the `CloseError` reads reject with. */
  received(payload: Uint8Array): never {
    const { code, reason } = decodeClosePayload(payload);
    this.#received = { code, reason };
    const error = new CloseError(code, reason);
    this.#ended ??= error;
    // RFC 6455 §5.5.1: answer with a close frame, echoing the status code.
    if (!this.#sent) this.#send(encodeClosePayload(code));
    // RFC 6455 §7.1.1: once close frames crossed, the server closes TCP first.
    else if (!this.#client) this.#socket.end();
    this.#peerClosed?.();
    this.#host.endCalls(error);
    this.#host.discardInput();
    this.#armTimer();
    throw error;
  }

  /**
   * Fails the connection (RFC 6455 §7.1.7): sends a close frame with the
   * error's code if none was sent, closes the TCP connection, and makes
   * every pending and later call reject.
   */
  fail(error: Error & { code: number }): void {
    if (this.#ended !== undefined) return;
    this.#ended = error;
    if (!this.#sent) this.#send(encodeClosePayload(error.code, closeReason(error.message)));
    this.#host.endCalls(error);
    this.#socket.end();
    this.#host.discardInput();
    this.#armTimer();
  }

  /** Drops the TCP connection at once; `error` says why, unless the connection was already ending. */
  drop(error: Error): void {
    if (this.#ended === undefined) {
      this.#ended = error;
      this.#host.endCalls(error);
    }
    this.#socket.destroy();
  }

  /** The socket hit its end with no close frame: the connection is lost. */
  lost(): Error {
    if (this.#ended === undefined) {
      const cause = this.#socketError;
      this.drop(new ClosedError('connection closed without a close frame', cause ? { cause } : undefined));
    }
    return this.#ended!;
  }

  #send(payload: Uint8Array): void {
    this.#sent = true;
    if (!this.#socket.writable) return;
    this.#host.sendCloseFrame(payload);
    // RFC 6455 §7.1.1: the server closes the TCP connection first.
    if (this.#received !== undefined && !this.#client) this.#socket.end();
  }

  /** Bounds the time the TCP connection may take to close. */
  #armTimer(): void {
    if (this.#timer !== undefined || this.#settled) return;
    this.#timer = setTimeout(() => this.#socket.destroy(), this.#timeout);
  }

  #teardown(): void {
    if (this.#settled) return;
    this.#settled = true;
    clearTimeout(this.#timer);
    const error = this.lost();
    this.#host.endCalls(error);
    this.#peerClosed?.();
    this.#host.released(error);
    const received = this.#received;
    const wasClean = this.#sent && received !== undefined;
    this.#info.resolve({
      code: received?.code ?? StatusCode.AbnormalClosure,
      reason: received?.reason ?? '',
      wasClean,
      ...(wasClean ? {} : { error }),
    });
  }
}
