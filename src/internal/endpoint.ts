/**
 * Where a Conn's transport has its addresses: a TCP or TLS socket has
 * them itself; an HTTP/2 stream (RFC 8441) has its session's socket's.
 * @module
 */
import type { Duplex } from 'node:stream';

/** The addresses of a transport, any of which may be unknown. */
export interface Endpoint {
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
  readonly localAddress?: string | undefined;
  readonly localPort?: number | undefined;
}

/** The object holding `socket`'s addresses: itself, or an HTTP/2 stream's session socket. */
export function endpointOf(socket: Duplex): Endpoint {
  const session = (socket as { session?: { socket?: Endpoint } | undefined }).session;
  return session?.socket ?? (socket as Endpoint);
}
