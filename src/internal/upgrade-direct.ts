/**
 * dial's direct path: its own TCP (or TLS) connection, the upgrade request
 * written by hand and the response read by a bounded parser. Used when the
 * application has configured no undici dispatcher (see `dial()`); it skips
 * undici's per-request machinery (a pool and client per origin, request
 * objects, an error built for every upgrade), which made the handshake cost
 * about twice the client CPU of `ws`'s.
 * @module
 */
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import type { Attempt } from './upgrade-attempt.js';
import { requestHead, type UpgradeRequest } from './upgrade-request.js';
import { ResponseParser } from './upgrade-response.js';
import { tlsKey } from './tls-key.js';

/** TLS sessions kept for resumption, by server name, address and TLS options (see `connect()`). */
const sessions = new Map<string, Buffer>();
const maxSessions = 100;

/** Connects, sends the upgrade request and reports the response into `attempt`. */
export function upgradeDirect(request: UpgradeRequest, attempt: Attempt): void {
  const socket = connect(request);
  attempt.started(() => socket.destroy());
  const parser = new ResponseParser(
    {
      response(status, headers, rest) {
        if (status !== 101) return attempt.response(status, headers);
        // The WebSocket stream starts after the 101: the Conn takes the socket over.
        socket.pause();
        detach();
        attempt.upgraded(status, headers, socket, rest);
      },
      data: (chunk) => attempt.data(chunk),
      end() {
        attempt.end();
        socket.destroy();
      },
      error(err) {
        attempt.error(err);
        socket.destroy();
      },
    },
    http.maxHeaderSize,
  );
  const onData = (chunk: Buffer): void => parser.push(chunk);
  const onEnd = (): void => {
    if (!parser.finish()) attempt.error(new Error('the server closed the connection before the response was complete'));
    socket.destroy();
  };
  const onError = (err: Error): void => attempt.error(err);
  const onClose = (): void => attempt.error(new Error('the connection closed before a response'));
  const detach = (): void => {
    socket.off('data', onData);
    socket.off('end', onEnd);
    socket.off('error', onError);
    socket.off('close', onClose);
  };
  socket.on('data', onData);
  socket.on('end', onEnd);
  socket.on('error', onError);
  socket.on('close', onClose);
  socket.setNoDelay(true);
  socket.write(requestHead(request), 'latin1');
}

/** Opens the connection; writes before it is up are queued by the socket. */
function connect(request: UpgradeRequest): net.Socket {
  const { target, headers } = request;
  const secure = target.protocol === 'wss:' || target.protocol === 'https:';
  // URL keeps IPv6 literals in brackets; sockets want them bare.
  const host = target.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = target.port === '' ? (secure ? 443 : 80) : Number(target.port);
  if (!secure) return net.connect({ host, port });
  const name = request.tls?.servername ?? serverName(headers.find(([n]) => n === 'host')?.[1] ?? target.host);
  // A session resumes only for the same server, name and TLS options: another client certificate or
  // `ca` must not ride on what an earlier dial's options established.
  const key = `${name === '' ? host : name} ${host}:${port}${tlsKey(request.tls)}`;
  const session = sessions.get(key);
  const socket = tls.connect({ ...request.tls, host, port, ALPNProtocols: ['http/1.1'], servername: name, ...(session && { session }) });
  socket.on('session', (fresh: Buffer) => {
    sessions.delete(key);
    sessions.set(key, fresh);
    if (sessions.size > maxSessions) sessions.delete(sessions.keys().next().value as string);
  });
  return socket;
}

/** The TLS server name (SNI) for a `Host` value: its host name, '' for an IP address (RFC 6066 §3). */
function serverName(host: string): string {
  const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d*$/, '');
  return net.isIP(name) === 0 ? name : '';
}
