/**
 * A strict, single-pass parser for the comma-separated header lists of the
 * opening handshake (`Upgrade`, `Connection`, `Sec-WebSocket-Protocol`) and
 * a checker for `Host`. Each function walks its input once, left to right,
 * looking at every character a bounded number of times: a hostile header
 * costs time linear in its length and no regular expression can backtrack.
 * @module
 */

/** The grammar of one list element. */
export type ListGrammar =
  /** `token` (RFC 9110 §5.6.2): `Connection`, `Sec-WebSocket-Protocol`. */
  | 'token'
  /** `protocol-name ["/" protocol-version]`, both tokens (RFC 9110 §7.8): `Upgrade`. */
  | 'protocol';

/** What {@link parseList} found: the elements, or why the value is malformed. */
export type ListResult = { elements: string[]; error?: undefined } | { elements?: undefined; error: string };

const comma = 0x2c;
const slash = 0x2f;
const colon = 0x3a;
const space = 0x20;
const tab = 0x09;

/** tchar (RFC 9110 §5.6.2), indexed by char code. */
const tchar = new Uint8Array(128);
for (const ch of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
  tchar[ch.charCodeAt(0)] = 1;
}

/** Characters of a reg-name or IPv4 address: unreserved, sub-delims and `%` (RFC 3986 §3.2.2). */
const hostChar = new Uint8Array(128);
for (const ch of "-._~!$&'()*+,;=%0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
  hostChar[ch.charCodeAt(0)] = 1;
}

const isTchar = (code: number): boolean => code < 128 && tchar[code] === 1;
const isDigit = (code: number): boolean => code >= 0x30 && code <= 0x39;

/**
 * Parses a `1#element` header list (RFC 9110 §5.6.1) whose elements are
 * tokens or `Upgrade` protocols. Repeated header lines (an array, or what
 * Node joined with `, `) form one list.
 *
 * Empty elements (`a, , b`, a trailing comma) are skipped, not refused:
 * RFC 7230 §7 says a recipient MUST accept them, and RFC 9110 §5.6.1.2 that
 * it MUST parse and ignore a reasonable number of them (this parser is
 * linear, so any number is reasonable). Because empty elements do not count,
 * a header with no element at all (`""`, `" , "`) breaks the `1#` rule and
 * is malformed. Anything else that is not a token where one belongs (a
 * space inside an element, a quote, a `;`, a non-ASCII character) is
 * malformed too.
 *
 * `undefined` (no such header) gives no elements and no error.
 *
 * @example
 * ```ts
 * parseList('keep-alive, , Upgrade', 'token'); // { elements: ['keep-alive', 'Upgrade'] }
 * parseList('websocket/13 x', 'protocol');     // { error: '…' }
 * ```
 */
export function parseList(value: string | readonly string[] | undefined, grammar: ListGrammar): ListResult {
  if (value === undefined) return { elements: [] };
  const lines = typeof value === 'string' ? [value] : value;
  const elements: string[] = [];
  for (const line of lines) {
    const error = scanLine(line, grammar, elements);
    if (error !== undefined) return { error };
  }
  // RFC 9110 §5.6.1: empty elements do not count towards 1#element's one.
  if (elements.length === 0) return { error: 'lists nothing' };
  return { elements };
}

/** Appends the elements of one header line to `out`; returns an error, or undefined when well formed. */
function scanLine(text: string, grammar: ListGrammar, out: string[]): string | undefined {
  const n = text.length;
  let i = skipSpace(text, 0);
  while (i < n) {
    if (text.charCodeAt(i) === comma) {
      i = skipSpace(text, i + 1); // an empty element (RFC 7230 §7)
      continue;
    }
    const end = grammar === 'token' ? tokenEnd(text, i) : protocolEnd(text, i);
    if (end < 0) return `has ${describe(text, -end - 1)} where a token character belongs`;
    out.push(text.slice(i, end));
    i = skipSpace(text, end);
    if (i < n && text.charCodeAt(i) !== comma) return `has ${describe(text, i)} after an element instead of a comma`;
  }
  return undefined;
}

/** The index just past the token starting at `i`, or `-(i + 1)` when no token starts there. */
function tokenEnd(text: string, i: number): number {
  let j = i;
  while (j < text.length && isTchar(text.charCodeAt(j))) j++;
  return j === i ? -(i + 1) : j;
}

/** Like {@link tokenEnd} for `protocol-name ["/" protocol-version]`. */
function protocolEnd(text: string, i: number): number {
  const name = tokenEnd(text, i);
  if (name < 0 || text.charCodeAt(name) !== slash) return name;
  const version = tokenEnd(text, name + 1);
  return version;
}

/** Skips optional white space (OWS, RFC 9110 §5.6.3): spaces and tabs. */
function skipSpace(text: string, i: number): number {
  let j = i;
  while (j < text.length && (text.charCodeAt(j) === space || text.charCodeAt(j) === tab)) j++;
  return j;
}

/** Names the character at `i` for an error message, without echoing the rest of the input. */
function describe(text: string, i: number): string {
  if (i >= text.length) return 'the end of the value';
  const code = text.charCodeAt(i);
  return code >= 0x21 && code <= 0x7e ? JSON.stringify(text[i]) : `character U+${code.toString(16).padStart(4, '0').toUpperCase()}`;
}

/**
 * Reports whether `value` is a valid `Host` field value: `uri-host [":" port]`
 * (RFC 9110 §7.2, RFC 3986 §3.2.2), where the host is an IP literal in
 * brackets or a non-empty reg-name / IPv4 address and the port is digits.
 * An empty host is refused: a WebSocket request must name its host
 * (RFC 6455 §4.1, item 4). Percent-encodings are not decoded, only allowed.
 *
 * @example
 * ```ts
 * isValidHost('example.com:8080'); // true
 * isValidHost('[::1]:443');        // true
 * isValidHost('a b');              // false
 * ```
 */
export function isValidHost(value: string): boolean {
  let i = 0;
  if (value.charCodeAt(0) === 0x5b /* [ */) {
    i = 1;
    while (i < value.length && isIpLiteralChar(value.charCodeAt(i))) i++;
    if (i === 1 || value.charCodeAt(i) !== 0x5d /* ] */) return false;
    i++;
  } else {
    while (i < value.length && value.charCodeAt(i) < 128 && hostChar[value.charCodeAt(i)] === 1) i++;
    if (i === 0) return false;
  }
  if (i === value.length) return true;
  if (value.charCodeAt(i) !== colon) return false;
  for (i++; i < value.length; i++) {
    if (!isDigit(value.charCodeAt(i))) return false;
  }
  return true;
}

/** Hex digits, `:` and `.` of IPv6 addresses, and the letters and sub-delims of IPvFuture (RFC 3986 §3.2.2). */
function isIpLiteralChar(code: number): boolean {
  return code < 128 && code !== 0x5b && code !== 0x5d && (hostChar[code] === 1 || code === colon);
}
