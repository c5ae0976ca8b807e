/**
 * One dial handshake in flight, whichever path carries it (an undici
 * dispatcher or dial's direct connection): it checks the `101` (RFC 6455
 * §4.1), collects a refusal's status, headers and first KiB of body, and
 * settles the dial exactly once. Both paths report into it, so they fail
 * with the same errors.
 * @module
 */
import type { Duplex } from 'node:stream';
import { CompressionMode, parseClientResponse, type DeflateParams } from '../compress.js';
import { newConn, type Conn, type ConnOptions } from '../conn.js';
import { HandshakeError } from '../errors.js';
import { acceptKey, hasToken } from '../handshake.js';
import type { Transport } from '../options.js';
import type { Deferred } from './deferred.js';
import { Fields } from './fields.js';

/** How much of a refusal's body `HandshakeError.body` keeps, in bytes. */
export const maxBodyBytes = 1024;

/** What the handshake offered, to check the answer against. */
export interface Offer {
  /** The `Sec-WebSocket-Key` sent. */
  key: string;
  /** The subprotocols offered. */
  subprotocols: readonly string[];
  /** What permessage-deflate use was offered. */
  compression: CompressionMode;
  /** The URL without credentials or query, for error messages. */
  where: string;
  /** Options for the Conn. */
  connOptions: ConnOptions;
}

/** A non-101 response being collected. */
interface Refusal {
  status: number;
  headers: Fields;
  body: Buffer[];
  size: number;
}

const noBytes = Buffer.alloc(0);

/**
 * Settles one dial. Whatever a path reports after it has settled is
 * dropped, and a socket handed over late is destroyed.
 */
export class Attempt {
  readonly #offer: Offer;
  readonly #result: Deferred<Conn>;
  readonly #cleanup: () => void;
  #settled = false;
  #abort: ((reason: Error) => void) | undefined;
  #refusal: Refusal | undefined;
  /** What a refusal's message says was expected instead: a 101, or over HTTP/2 a 200. */
  expecting = '101 Switching Protocols';

  constructor(offer: Offer, result: Deferred<Conn>, cleanup: () => void) {
    this.#offer = offer;
    this.#result = result;
    this.#cleanup = cleanup;
  }

  get settled(): boolean {
    return this.#settled;
  }

  /** The path has a connection it can drop with `abort`; drops it now if the dial was cancelled already. */
  started(abort: (reason: Error) => void): void {
    this.#abort = abort;
    if (this.#settled) abort(new Error('WebSocket handshake cancelled'));
  }

  /** Rejects the dial with `reason` and drops the connection (at once, or as soon as the path has one). */
  cancel(reason: unknown): void {
    if (this.#settled) return;
    this.#reject(reason);
    this.#abort?.(reason instanceof Error ? reason : new Error('WebSocket handshake cancelled'));
  }

  /** Gives up because `handshakeTimeout` ran out; a refusal being read is reported with what arrived of it. */
  timeOut(ms: number): void {
    const timeout = new DOMException(`the WebSocket handshake took longer than ${ms} ms`, 'TimeoutError');
    const error = this.#refusal !== undefined
      ? this.#refusalError(this.#refusal, timeout)
      : new HandshakeError(`dial ${this.#offer.where}: ${timeout.message}`, { status: 0 }, { cause: timeout });
    this.cancel(error);
  }

  /** A final response that is not an upgrade the path took (interim 1xx responses are not reported). */
  response(status: number, headers: Fields): void {
    if (this.#settled) return;
    if (status === 101) {
      // undici reports a 101 here, not as an upgrade, when it lacks Upgrade or Connection.
      const verdict = verifyUpgrade(status, headers, this.#offer);
      this.#fail(status, headers, typeof verdict === 'string' ? verdict : 'undici did not take the 101 as an upgrade');
      return;
    }
    if (status >= 100 && status < 200) return; // interim (such as 103 Early Hints): the final one follows
    this.#refusal = { status, headers, body: [], size: 0 };
  }

  /** A piece of a refusal's body. */
  data(chunk: Buffer): void {
    const refusal = this.#refusal;
    if (this.#settled || refusal === undefined) return;
    const room = maxBodyBytes - refusal.size;
    refusal.body.push(chunk.subarray(0, room));
    refusal.size += Math.min(room, chunk.length);
    if (refusal.size < maxBodyBytes) return;
    // Enough to explain the refusal; the rest of the body is not worth waiting for.
    this.cancel(this.#refusalError(refusal));
  }

  /** The response is complete. */
  end(): void {
    if (this.#settled) return;
    if (this.#refusal !== undefined) this.#reject(this.#refusalError(this.#refusal));
    else this.#reject(new HandshakeError(`dial ${this.#offer.where}: the response ended without a status`, { status: 0 }));
  }

  /** The connection or the response failed. */
  error(err: Error): void {
    if (this.#settled) return;
    if (this.#refusal !== undefined) {
      this.#reject(this.#refusalError(this.#refusal, err));
      return;
    }
    this.#reject(new HandshakeError(`dial ${this.#offer.where}: ${err.message}`, { status: 0 }, { cause: err }));
  }

  /**
   * A `101` arrived on `socket`, followed by `head` (bytes of the WebSocket
   * stream already read). Checks it and makes the Conn, right away: until
   * the Conn listens, the socket has no 'error' listener at all.
   */
  upgraded(status: number, headers: Fields, socket: Duplex, head: Uint8Array = noBytes): void {
    if (this.#settled) {
      socket.destroy(); // the path has let go of it: it is ours to close
      return;
    }
    const verdict = verifyUpgrade(status, headers, this.#offer);
    if (typeof verdict === 'string') {
      socket.destroy();
      this.#fail(status, headers, verdict);
      return;
    }
    if (typeof (socket as { setNoDelay?: unknown }).setNoDelay === 'function') {
      (socket as Duplex & { setNoDelay(noDelay: boolean): unknown }).setNoDelay(true);
    }
    let conn: Conn;
    try {
      const { subprotocol, extensions, deflate } = verdict;
      const options = this.#offer.connOptions;
      conn = newConn({ socket, head, client: true, subprotocol, extensions, deflate, options });
    } catch (err) {
      socket.destroy();
      this.#reject(err);
      return;
    }
    this.#settle();
    this.#result.resolve(conn);
  }

  /**
   * The extended CONNECT was answered 200 (RFC 8441 §5): check what the
   * server negotiated and hand the stream to a new Conn. There is no
   * `Sec-WebSocket-Accept` to check over HTTP/2.
   */
  established(headers: Fields, stream: Duplex, transport: Transport): void {
    if (this.#settled) {
      transport.destroy();
      return;
    }
    const verdict = verifyNegotiation(headers, this.#offer);
    if (typeof verdict === 'string') {
      transport.destroy();
      this.#fail(200, headers, verdict);
      return;
    }
    let conn: Conn;
    try {
      const { subprotocol, extensions, deflate } = verdict;
      conn = newConn({ socket: stream, client: true, subprotocol, extensions, deflate, options: this.#offer.connOptions, transport });
    } catch (err) {
      transport.destroy();
      this.#reject(err);
      return;
    }
    this.#settle();
    this.#result.resolve(conn);
  }

  #fail(status: number, headers: Fields, why: string): void {
    this.cancel(new HandshakeError(`dial ${this.#offer.where}: ${why}`, { status, headers: headers.pairs() }));
  }

  #refusalError(refusal: Refusal, cause?: unknown): HandshakeError {
    const { status, headers, body, size } = refusal;
    const bytes = Buffer.concat(body, size);
    // A body cut at the limit may end inside a character: decode as a stream to leave that out.
    const text = new TextDecoder().decode(bytes, { stream: size >= maxBodyBytes });
    const message = `dial ${this.#offer.where}: the server answered ${status} instead of ${this.expecting}`;
    return new HandshakeError(message, { status, headers: headers.pairs(), body: text }, cause === undefined ? undefined : { cause });
  }

  #reject(reason: unknown): void {
    this.#settle();
    this.#result.reject(reason);
  }

  #settle(): void {
    this.#settled = true;
    this.#cleanup();
  }
}

/**
 * Checks a `101 Switching Protocols` response (RFC 6455 §4.1, the client's
 * checks of the server's handshake). Returns the chosen subprotocol, or why
 * the connection must fail.
 */
function verifyUpgrade(
  status: number,
  headers: Fields,
  offer: Offer,
): string | { subprotocol: string; extensions: string; deflate: DeflateParams | undefined } {
  if (status !== 101) return `expected 101 Switching Protocols, got ${status}`;
  if (!hasToken(headers.get('upgrade') ?? undefined, 'websocket')) {
    return 'the 101 response lacks "Upgrade: websocket" (RFC 6455 §4.1)';
  }
  if (!hasToken(headers.get('connection') ?? undefined, 'upgrade')) {
    return 'the 101 response lacks "Connection: Upgrade" (RFC 6455 §4.1)';
  }
  if (headers.get('sec-websocket-accept') !== acceptKey(offer.key)) {
    return 'Sec-WebSocket-Accept does not match the Sec-WebSocket-Key sent (RFC 6455 §4.1)';
  }
  return verifyNegotiation(headers, offer);
}

/** The subprotocol and extensions the server chose: only what was offered (RFC 6455 §4.1, RFC 7692 §5). */
function verifyNegotiation(
  headers: Fields,
  offer: Offer,
): string | { subprotocol: string; extensions: string; deflate: DeflateParams | undefined } {
  const subprotocol = headers.get('sec-websocket-protocol');
  if (subprotocol !== null && !offer.subprotocols.includes(subprotocol)) {
    return `the server chose subprotocol ${JSON.stringify(subprotocol)}, which was not offered (RFC 6455 §4.1)`;
  }
  const extensions = headers.get('sec-websocket-extensions')?.trim() ?? '';
  let deflate: DeflateParams | undefined;
  try {
    // RFC 6455 §4.1 item 6 and RFC 7692 §5: only what was offered, valid.
    deflate = parseClientResponse(extensions === '' ? undefined : extensions, offer.compression);
  } catch (err) {
    return `${(err as Error).message} (RFC 7692 §5)`;
  }
  // A compressor may always reset its window; in this mode ours does,
  // whether or not the server acknowledged client_no_context_takeover.
  if (deflate !== undefined && offer.compression === CompressionMode.NoContextTakeover) {
    deflate.clientNoContextTakeover = true;
  }
  return { subprotocol: subprotocol ?? '', extensions: deflate === undefined ? '' : extensions, deflate };
}
