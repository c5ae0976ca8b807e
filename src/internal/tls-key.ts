/**
 * Keys for caches of TLS state (resumable sessions, HTTP/2 sessions): what
 * one dial's TLS options allowed must not be reused by a dial with others
 * (another client certificate, another `ca`, another `checkServerIdentity`).
 * @module
 */

const ids = new WeakMap<object, number>();
let nextId = 1;

/** '' without TLS options, else ` tls#N`, the same for the same options object. */
export function tlsKey(options: object | undefined): string {
  if (options === undefined) return '';
  let id = ids.get(options);
  if (id === undefined) ids.set(options, (id = nextId++));
  return ` tls#${id}`;
}
