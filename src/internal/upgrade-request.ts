/**
 * The upgrade request dial sends (RFC 6455 §4.1), independent of the path
 * that carries it, and its HTTP/1.1 serialization for the direct path.
 * @module
 */
import type { TlsOptions } from './h2-pool.js';

/** One upgrade request. */
export interface UpgradeRequest {
  /** The checked `ws:`, `wss:`, `http:` or `https:` URL. */
  target: URL;
  /** Header fields with lower-case names, validated (no CR, LF or NUL; Latin-1 only); `host` only when overridden. */
  headers: Array<[string, string]>;
  /** TLS settings for a connection dial opens itself. */
  tls?: TlsOptions | undefined;
}

/**
 * The request head as undici writes it for an upgrade: request line, `host`,
 * `connection: upgrade`, `upgrade: websocket`, then the given fields. Latin-1.
 */
export function requestHead({ target, headers }: UpgradeRequest): string {
  let host = target.host;
  let text = '';
  for (const [name, value] of headers) {
    if (name === 'host') host = value;
    else text += `${name}: ${value}\r\n`;
  }
  const line = `GET ${target.pathname}${target.search} HTTP/1.1\r\nhost: ${host}\r\n`;
  return `${line}connection: upgrade\r\nupgrade: websocket\r\n${text}\r\n`;
}
