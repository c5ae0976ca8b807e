/**
 * Counts the bytes on the wire of a server: what its accepted TCP sockets
 * have read and written, the same way for every implementation.
 * @module
 */
import type net from 'node:net';
import type { WireBytes } from './types.js';

/**
 * Watches `server`'s connections and returns a function that sums their
 * `bytesRead` / `bytesWritten` (closed sockets keep counting with their
 * final values). These are TCP payload bytes: HTTP handshake, frame headers,
 * masking keys and (compressed) payloads; no TCP/IP headers. `bytesWritten`
 * includes bytes still queued in the socket, so read it when the
 * connection is quiet.
 */
export function wireMeter(server: net.Server): () => WireBytes {
  const live = new Set<net.Socket>();
  let read = 0;
  let written = 0;
  server.on('connection', (socket: net.Socket) => {
    live.add(socket);
    socket.once('close', () => {
      live.delete(socket);
      read += socket.bytesRead;
      written += socket.bytesWritten;
    });
  });
  return () => {
    let r = read;
    let w = written;
    for (const socket of live) {
      r += socket.bytesRead;
      w += socket.bytesWritten;
    }
    return { read: r, written: w };
  };
}
