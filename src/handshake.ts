/**
 * Pure pieces of the opening handshake (RFC 6455 §4): the accept key, header
 * token lists, subprotocol choice and the origin check. Strings in, strings
 * out: no socket, timer or promise here.
 * @module
 */
import { createHash } from 'node:crypto';
import { globMatch } from './internal/glob.js';

/** The GUID that RFC 6455 §1.3 appends to the key before hashing. */
const keyGuid = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/**
 * Computes the `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`: the
 * base64 of the SHA-1 of the key (as sent, not decoded) followed by the
 * RFC's GUID.
 *
 * @see RFC 6455 §1.3, §4.2.2
 * @example
 * ```ts
 * acceptKey('dGhlIHNhbXBsZSBub25jZQ=='); // 's3pPLMBiTxaQ9kYGzzhZRbK+xOo='
 * ```
 */
export function acceptKey(key: string): string {
  return createHash('sha1').update(key + keyGuid).digest('base64');
}

/**
 * Reports whether `key` is a valid `Sec-WebSocket-Key`: the base64 encoding
 * (with padding) of exactly 16 bytes, so 22 base64 characters and `==`.
 * Like most decoders, it does not insist that the unused low bits of the
 * last character are zero (RFC 4648 §3.5 leaves that to the decoder).
 *
 * @see RFC 6455 §4.1 (item 7), §4.2.1 (item 5)
 */
export function isValidKey(key: string): boolean {
  return /^[A-Za-z0-9+/]{22}==$/.test(key);
}

/**
 * Reports whether `name` is an HTTP token (RFC 9110 §5.6.2): one or more
 * visible ASCII characters other than separators. Subprotocol names must be
 * tokens (RFC 6455 §4.1, item 10).
 */
export function isToken(name: string): boolean {
  return /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name);
}

/**
 * Splits HTTP header values holding comma-separated lists (RFC 9110 §5.6.1)
 * into their elements, with surrounding spaces and tabs removed and empty
 * elements dropped. Case is preserved. An array is treated as repeated
 * header lines, which HTTP defines as one list.
 */
export function tokenList(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  const lines = typeof value === 'string' ? [value] : value;
  const out: string[] = [];
  for (const line of lines) {
    for (const element of line.split(',')) {
      const trimmed = element.replace(/^[ \t]+|[ \t]+$/g, '');
      if (trimmed !== '') out.push(trimmed);
    }
  }
  return out;
}

/**
 * Reports whether the comma-separated header `value` lists `token`,
 * comparing without regard to ASCII case (as for the `Upgrade` and
 * `Connection` tokens of RFC 6455 §4.2.1).
 */
export function hasToken(value: string | string[] | undefined, token: string): boolean {
  const wanted = token.toLowerCase();
  return tokenList(value).some((element) => element.toLowerCase() === wanted);
}

/**
 * Chooses the subprotocol to answer with: the first of the server's
 * preferences that the client offered, compared exactly (subprotocol names
 * are case-sensitive). Returns `''` when they share none, in which case the
 * response must carry no `Sec-WebSocket-Protocol` at all.
 *
 * @see RFC 6455 §4.2.2 (item 5, /subprotocol/), §11.3.4
 * @example
 * ```ts
 * selectSubprotocol(['v2', 'v1'], ['v1', 'v2']); // 'v2'
 * ```
 */
export function selectSubprotocol(serverPrefs: readonly string[], offered: readonly string[]): string {
  for (const name of serverPrefs) {
    if (offered.includes(name)) return name;
  }
  return '';
}

/**
 * Decides whether a request's `Origin` may open a WebSocket, the defence
 * against cross-site WebSocket hijacking (RFC 6455 §10.2):
 *
 * - no `Origin` (or an empty one) is allowed: only browsers send it, and a
 *   non-browser client could send any value anyway;
 * - an origin whose host equals the request's `Host`, ignoring case, is
 *   allowed;
 * - otherwise the origin's host (`host[:port]`) must match one of
 *   `patterns` (see `globMatch`); a pattern containing `://` is matched
 *   against `scheme://host[:port]` instead;
 * - an origin that is not an absolute URL with a host, such as the `null`
 *   of sandboxed frames and `file:` pages, is refused.
 *
 * Default ports are dropped from the origin as the WHATWG URL parser does
 * (`https://a.test:443` has host `a.test`).
 *
 * @throws Error for a malformed pattern (validate them up front with
 * `validateGlob`).
 * @example
 * ```ts
 * originAllowed('https://app.example.com', 'api.example.com', ['*.example.com']); // true
 * originAllowed('https://evil.test', 'api.example.com', ['*.example.com']);       // false
 * ```
 */
export function originAllowed(
  origin: string | undefined,
  host: string | undefined,
  patterns: readonly string[],
): boolean {
  if (origin === undefined || origin === '') return true;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  if (url.host === '') return false;
  if (host !== undefined && url.host.toLowerCase() === host.toLowerCase()) return true;
  const withScheme = `${url.protocol}//${url.host}`;
  return patterns.some((pattern) => globMatch(pattern, pattern.includes('://') ? withScheme : url.host));
}
