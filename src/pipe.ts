import { newConn, type Conn, type ConnOptions } from './conn.js';
import { duplexPair } from './internal/duplex-pair.js';
import { checkConnOptions } from './options.js';

/** Options of `pipe()`: the options of each end. */
export interface PipeOptions {
  /** Options of the client end (it masks its frames). */
  client?: ConnOptions;
  /** Options of the server end. */
  server?: ConnOptions;
  /** The subprotocol both ends report ('' by default). */
  subprotocol?: string;
}

/**
 * Two Conns connected in memory, with no network and no handshake, for
 * tests of code that takes a Conn. They behave as a client and a server
 * over TCP do: the client masks, the server does not, backpressure and
 * the close handshake work the same.
 *
 * @example
 * ```ts
 * import { pipe, MessageType } from 'wsconn';
 * const [client, server] = pipe();
 * await client.write(MessageType.Text, 'ping');
 * const { data } = await server.read();
 * console.log(new TextDecoder().decode(data)); // "ping"
 * client.closeNow();
 * ```
 */
export function pipe(options: PipeOptions = {}): [client: Conn, server: Conn] {
  // Check both ends' options before making either, so a bad one leaves nothing behind.
  checkConnOptions(options.client ?? {});
  checkConnOptions(options.server ?? {});
  const [a, b] = duplexPair();
  const subprotocol = options.subprotocol ?? '';
  const client = newConn({ socket: a, client: true, subprotocol, extensions: '', options: options.client ?? {} });
  const server = newConn({ socket: b, client: false, subprotocol, extensions: '', options: options.server ?? {} });
  return [client, server];
}
