/**
 * Pure pieces of the opening handshake (RFC 6455 §4): the accept key, header
 * token lists, subprotocol choice, the origin check and the verification of
 * a client's upgrade request. Strings in, strings out: no socket, timer or
 * promise here.
 * @module
 */
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { parseExtensions } from './internal/extensions.js';
import { globMatch } from './internal/glob.js';
import { isValidHost, parseList } from './internal/header-list.js';

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
 * `text` without the optional whitespace around a field value: spaces and
 * tabs only (RFC 9112 §5.1, RFC 9110 §5.5), so that a no-break space or a
 * form feed stays (and fails {@link isFieldValue} where it must). A loop,
 * not a regular expression: a long run of spaces costs linear time.
 */
export function withoutOws(text: string): string {
  return trimEnds(text, isOws);
}

/**
 * `text` without leading and trailing HTTP whitespace as the Fetch
 * standard normalizes a header value (space, tab, CR, LF), as `Headers`
 * does. A loop, not a regular expression, for the same reason as
 * {@link withoutOws}.
 */
export function withoutHttpWhitespace(text: string): string {
  return trimEnds(text, isHttpWhitespace);
}

const isOws = (code: number): boolean => code === 0x20 || code === 0x09;
const isHttpWhitespace = (code: number): boolean => isOws(code) || code === 0x0a || code === 0x0d;

/** `text` without the characters at either end for which `strip` holds. */
function trimEnds(text: string, strip: (code: number) => boolean): string {
  let start = 0;
  let end = text.length;
  while (start < end && strip(text.charCodeAt(start))) start++;
  while (end > start && strip(text.charCodeAt(end - 1))) end--;
  return text.slice(start, end);
}

/**
 * Whether `value` may be written as a header field value (RFC 9110 §5.5):
 * visible characters, obs-text, spaces and tabs, so no CR, LF or NUL to
 * inject a field with and no other control character; and nothing above
 * U+00FF, since heads are written as Latin-1 bytes.
 */
export function isFieldValue(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if ((code < 0x20 && code !== 0x09) || code === 0x7f || code > 0xff) return false;
  }
  return true;
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
      const trimmed = withoutOws(element);
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

/** The parts of a request that {@link verifyUpgradeRequest} reads; an `IncomingMessage` has them all. */
export interface UpgradeRequest {
  method?: string | undefined;
  httpVersionMajor: number;
  httpVersionMinor: number;
  /** The headers as Node joins them: repeated lines become one `, `-separated value. */
  headers: IncomingHttpHeaders;
  /** Names and values as received, alternating, to count repeated fields Node drops. */
  rawHeaders: readonly string[];
}

/** Why a request is refused: the status, a one-line reason for the body, and extra header fields. */
export interface Refusal {
  status: number;
  reason: string;
  headers: ReadonlyArray<[string, string]>;
}

/** The origin options of `accept()` that {@link verifyUpgradeRequest} needs. */
export interface OriginOptions {
  originPatterns?: readonly string[] | undefined;
  insecureSkipVerify?: boolean | undefined;
}

/** A 426 must name the protocol to upgrade to and list `Upgrade` in `Connection` (RFC 9110 §7.8, §15.5.22). */
const upgradeRequired: ReadonlyArray<[string, string]> = [
  ['Connection', 'Upgrade'],
  ['Upgrade', 'websocket'],
];

const badRequest = (reason: string): Refusal => ({ status: 400, reason, headers: [] });

/**
 * Checks a client's opening handshake against RFC 6455 §4.2.1 and the HTTP
 * rules it builds on, and returns the refusal to send, or `undefined` when
 * the request may be answered with `101`. In order: 405 for a method other
 * than GET; 400 for HTTP/1.0, a missing, repeated or malformed `Host`, or a
 * malformed `Upgrade`, `Connection`, `Sec-WebSocket-Key`,
 * `Sec-WebSocket-Protocol` or `Sec-WebSocket-Extensions`; 426 when
 * `Upgrade` lacks `websocket`, `Connection` lacks `Upgrade` or the version
 * is not 13; 403 for an origin that is not allowed. Every list is parsed in
 * one pass, so a hostile header costs time linear in its length.
 *
 * A well-formed permessage-deflate offer with unacceptable parameters is
 * not a reason to refuse: the server declines it (RFC 7692 §5).
 *
 * @see RFC 6455 §4.1, §4.2.1, §9.1; RFC 9110 §5.6.1, §7.2
 * @example
 * ```ts
 * import type { IncomingMessage } from 'node:http';
 * import { verifyUpgradeRequest } from './handshake.js';
 *
 * declare const req: IncomingMessage;
 * const refusal = verifyUpgradeRequest(req, { originPatterns: ['*.example.com'] });
 * if (refusal !== undefined) console.log(refusal.status, refusal.reason);
 * ```
 */
export function verifyUpgradeRequest(req: UpgradeRequest, opts: OriginOptions = {}): Refusal | undefined {
  if (req.method !== 'GET') {
    return { status: 405, reason: 'a WebSocket handshake must use the GET method', headers: [['Allow', 'GET']] };
  }
  if (req.httpVersionMajor < 1 || (req.httpVersionMajor === 1 && req.httpVersionMinor < 1)) {
    return badRequest('a WebSocket handshake needs HTTP/1.1 or later');
  }
  return checkHost(req) ?? checkUpgrade(req.headers) ?? checkWebSocketFields(req.headers) ?? checkOrigin(req.headers, opts);
}

/**
 * RFC 6455 §4.2.1 (item 2) and RFC 9112 §3.2: exactly one `Host`, and a
 * valid one. Node keeps only the first of repeated `Host` lines, so they are
 * counted in `rawHeaders`.
 */
function checkHost(req: UpgradeRequest): Refusal | undefined {
  let count = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i]!.length === 4 && req.rawHeaders[i]!.toLowerCase() === 'host') count++;
  }
  const host = req.headers.host;
  if (host === undefined || count === 0) return badRequest('a WebSocket handshake must have a Host header');
  if (count > 1) return badRequest('the request has more than one Host header');
  if (!isValidHost(host)) return badRequest('the Host header is malformed');
  return undefined;
}

/**
 * RFC 6455 §4.2.1 (items 3, 4): `Upgrade` must list `websocket` and
 * `Connection` must list `Upgrade`, ignoring case. A missing header is a
 * 426; a malformed list (RFC 9110 §7.8 `1#protocol`, §7.6.1
 * `1#connection-option`) is a 400.
 */
function checkUpgrade(h: IncomingHttpHeaders): Refusal | undefined {
  const upgrade = parseList(h.upgrade, 'protocol');
  if (upgrade.error !== undefined) return badRequest(`the Upgrade header ${upgrade.error}`);
  if (!upgrade.elements.some((protocol) => protocol.toLowerCase() === 'websocket')) {
    return { status: 426, reason: 'the Upgrade header must list "websocket"', headers: upgradeRequired };
  }
  const connection = parseList(h.connection, 'token');
  if (connection.error !== undefined) return badRequest(`the Connection header ${connection.error}`);
  if (!connection.elements.some((option) => option.toLowerCase() === 'upgrade')) {
    return { status: 426, reason: 'the Connection header must list "Upgrade"', headers: upgradeRequired };
  }
  return undefined;
}

/** The version, key, subprotocol and extension fields of RFC 6455 §4.2.1 (items 5–9). */
function checkWebSocketFields(h: IncomingHttpHeaders): Refusal | undefined {
  const version = checkVersion(h, upgradeRequired);
  if (version !== undefined) return version;
  // A repeated key reaches us joined with ", " and fails this check too (RFC 6455 §11.3.1: at most once).
  const key = h['sec-websocket-key'];
  if (key === undefined || !isValidKey(key)) return badRequest('Sec-WebSocket-Key must be the base64 of 16 bytes');
  return checkOffers(h);
}

/** RFC 6455 §4.4: answer an unknown version with the versions we speak. */
function checkVersion(h: IncomingHttpHeaders, extra: ReadonlyArray<[string, string]>): Refusal | undefined {
  if (h['sec-websocket-version'] === '13') return undefined;
  const headers: Array<[string, string]> = [...extra, ['Sec-WebSocket-Version', '13']];
  return { status: 426, reason: 'Sec-WebSocket-Version must be 13', headers };
}

/** The subprotocol and extension offers (RFC 6455 §4.2.1 items 8, 9), the same over HTTP/1.1 and HTTP/2. */
function checkOffers(h: IncomingHttpHeaders): Refusal | undefined {
  // RFC 6455 §4.1 (item 10): 1#token, each one unique.
  const protocols = parseList(h['sec-websocket-protocol'], 'token');
  if (protocols.error !== undefined) return badRequest(`the Sec-WebSocket-Protocol header ${protocols.error}`);
  if (new Set(protocols.elements).size !== protocols.elements.length) {
    return badRequest('the Sec-WebSocket-Protocol header lists a subprotocol twice');
  }
  // RFC 6455 §9.1: 1#extension, each `token *( ";" extension-param )`. Offers that
  // parse but that we cannot accept are declined later, not refused (RFC 7692 §5).
  const extensions = h['sec-websocket-extensions'];
  if (extensions !== undefined) {
    const offers = parseExtensions(extensions);
    if (offers.length === 0) return badRequest('the Sec-WebSocket-Extensions header lists nothing');
    if (offers.some((offer) => !offer.valid)) return badRequest('the Sec-WebSocket-Extensions header is malformed');
  }
  return undefined;
}

/**
 * Checks an HTTP/2 extended CONNECT (RFC 8441 §4, §5) the way
 * {@link verifyUpgradeRequest} checks an HTTP/1.1 upgrade, and returns the
 * refusal to send, or `undefined` when the stream may be answered with
 * `200`. In order: 405 for a method other than CONNECT; 400 for a CONNECT
 * without `:protocol` (a plain tunnel request), a missing `:scheme` or
 * `:path`, or a missing or malformed `:authority`; 501 for a `:protocol`
 * other than `websocket` (as RFC 9220 §3 advises); then the version (426),
 * the subprotocol and extension lists (400) and the origin (403), compared
 * with `:authority`, exactly as over HTTP/1.1. There is no
 * `Sec-WebSocket-Key` to check: `:protocol` replaces it (RFC 8441 §5).
 *
 * @see RFC 8441 §4, §5; RFC 6455 §4.2.1, §10.2
 * @example
 * ```ts
 * import type { IncomingHttpHeaders } from 'node:http2';
 * import { verifyConnectRequest } from './handshake.js';
 *
 * declare const headers: IncomingHttpHeaders;
 * const refusal = verifyConnectRequest(headers, { originPatterns: ['*.example.com'] });
 * if (refusal !== undefined) console.log(refusal.status, refusal.reason);
 * ```
 */
export function verifyConnectRequest(h: IncomingHttpHeaders, opts: OriginOptions = {}): Refusal | undefined {
  if (h[':method'] !== 'CONNECT') {
    return { status: 405, reason: 'a WebSocket over HTTP/2 must use an extended CONNECT', headers: [['Allow', 'CONNECT']] };
  }
  const protocol = h[':protocol'];
  if (protocol === undefined) return badRequest('a CONNECT without :protocol is a tunnel, not a WebSocket (RFC 8441 §4)');
  if (protocol !== 'websocket') return { status: 501, reason: `the :protocol ${JSON.stringify(protocol)} is not supported`, headers: [] };
  // RFC 8441 §4: an extended CONNECT carries :scheme and :path like any request.
  if (typeof h[':scheme'] !== 'string' || typeof h[':path'] !== 'string' || h[':path'] === '') {
    return badRequest('an extended CONNECT must have :scheme and :path (RFC 8441 §4)');
  }
  const authority = h[':authority'];
  if (typeof authority !== 'string' || !isValidHost(authority)) return badRequest('the :authority is missing or malformed');
  // RFC 9113 §8.3.1: a Host field that differs from :authority makes the request malformed.
  if (h.host !== undefined && h.host !== authority) return badRequest('the host header differs from :authority');
  return checkVersion(h, []) ?? checkOffers(h) ?? checkOrigin(h, opts, authority);
}

/** RFC 6455 §10.2: refuse origins the server does not trust. */
function checkOrigin(h: IncomingHttpHeaders, opts: OriginOptions, host = h.host): Refusal | undefined {
  if (opts.insecureSkipVerify === true || originAllowed(h.origin, host, opts.originPatterns ?? [])) return undefined;
  return { status: 403, reason: 'the request Origin is not allowed', headers: [] };
}
