/**
 * The interface every implementation under test provides to the benchmark:
 * a server half (run in a child process) and a client half (run in the
 * parent). Both halves of one run use the same implementation.
 * @module
 */

/** The implementations the benchmark knows, in table order. */
export const implNames = ['wsconn', 'ws', 'net'] as const;

/** One of {@link implNames}. */
export type ImplName = (typeof implNames)[number];

/**
 * permessage-deflate (RFC 7692) for a case: off, or on in one of its two
 * modes, with every message compressed whatever its size (threshold 0 on
 * both ends). Client and server are configured alike.
 */
export type Compression = 'off' | 'context-takeover' | 'no-context-takeover';

/**
 * What a server does with each connection: echo every message back (as the
 * type it came as), count what arrives and discard it, or send `size`-byte
 * messages as fast as the socket takes them until the peer goes away, or
 * (once `connections` are open) broadcast to all of them as fast as
 * delivery allows (adapters/pacer.ts), taking acknowledgements; and
 * which compression it insists on (default `'off'`).
 */
export type ServerMode = (
  | { kind: 'echo' }
  | { kind: 'sink' }
  | { kind: 'source'; size: number }
  | { kind: 'broadcast'; connections: number }
) & { compression?: Compression };

/** Counters a server keeps; read by the parent over IPC. */
export interface ServerCounters {
  /** Connections currently open (handshake done, not yet closed). */
  open: number;
  /** Connections accepted since the server started. */
  accepted: number;
  /** Data messages received. */
  messagesIn: number;
  /** Payload bytes received. */
  bytesIn: number;
  /** Connections that ended with an error rather than a normal closure. */
  errors: number;
  /** The text of the last such error ('' when none). */
  lastError: string;
}

/** A listening server. */
export interface BenchServer {
  readonly port: number;
  /** Bytes its TCP sockets have read and written so far (see `wireMeter()`). */
  wire(): WireBytes;
  /** Stops listening and drops every connection. */
  close(): Promise<void>;
}

/** TCP payload bytes counted on the server's sockets, handshakes included. */
export interface WireBytes {
  /** Client → server. */
  read: number;
  /** Server → client. */
  written: number;
}

/** The client side of one connection, reduced to what the scenarios need. */
export interface BenchClient {
  /** The extensions the server agreed to (its `Sec-WebSocket-Extensions` answer), '' when none. */
  readonly extensions: string;
  /**
   * Sends one message, binary unless `text` (the bytes must then be UTF-8).
   * Resolves when the implementation is ready for more, i.e. at once unless
   * its send buffer is above its high-water mark.
   */
  send(data: Uint8Array, text?: boolean): Promise<void>;
  /** Resolves with the next message from the server. */
  receive(): Promise<Uint8Array>;
  /** Orderly close (close handshake where there is one). */
  close(): Promise<void>;
  /** Drops the connection at once; never throws. */
  destroy(): void;
}

/** One implementation. */
export interface Adapter {
  readonly name: ImplName;
  /** Facts worth printing next to the numbers (versions, native addons). */
  info(): Record<string, string>;
  /** Starts a server on 127.0.0.1, port 0. */
  listen(mode: ServerMode, counters: ServerCounters): Promise<BenchServer>;
  /**
   * Opens one client connection to a server of the same implementation,
   * with `compression` (default `'off'`); rejects unless the handshake
   * agreed on exactly that (see `checkExtensions()`).
   */
  connect(port: number, compression?: Compression): Promise<BenchClient>;
}

/** The largest message any scenario sends; read limits are set above it. */
export const maxMessageSize = 1 << 20;

/**
 * Throws unless the `Sec-WebSocket-Extensions` response `header` agrees to
 * `compression`: none for `'off'`; permessage-deflate for the others, with
 * both `*_no_context_takeover` parameters for `'no-context-takeover'` and
 * neither for `'context-takeover'`.
 */
export function checkExtensions(impl: string, compression: Compression, header: string): void {
  const params = header.split(';').map((p) => p.trim().toLowerCase());
  const fail = (why: string): never => {
    throw new Error(`${impl}: ${why} (Sec-WebSocket-Extensions: ${JSON.stringify(header)}; wanted compression ${compression})`);
  };
  if (compression === 'off') {
    if (header.trim() !== '') fail('an extension was negotiated');
    return;
  }
  if (params[0] !== 'permessage-deflate' || header.includes(',')) fail('permessage-deflate was not negotiated');
  const takeoverOff = ['server_no_context_takeover', 'client_no_context_takeover'].filter((p) => params.includes(p));
  if (compression === 'no-context-takeover' && takeoverOff.length !== 2) fail('context takeover was not disabled both ways');
  if (compression === 'context-takeover' && takeoverOff.length !== 0) fail('context takeover was disabled');
}
