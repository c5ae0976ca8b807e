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
 * What a server does with each connection: echo every message back, count
 * what arrives and discard it, or send `size`-byte messages as fast as the
 * socket takes them until the peer goes away.
 */
export type ServerMode =
  | { kind: 'echo' }
  | { kind: 'sink' }
  | { kind: 'source'; size: number };

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
  /** Stops listening and drops every connection. */
  close(): Promise<void>;
}

/** The client side of one connection, reduced to what the scenarios need. */
export interface BenchClient {
  /**
   * Sends one binary message. Resolves when the implementation is ready for
   * more, i.e. at once unless its send buffer is above its high-water mark.
   */
  send(data: Uint8Array): Promise<void>;
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
  /** Opens one client connection to a server of the same implementation. */
  connect(port: number): Promise<BenchClient>;
}

/** The largest message any scenario sends; read limits are set above it. */
export const maxMessageSize = 1 << 20;
