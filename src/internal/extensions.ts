/**
 * A parser for the `Sec-WebSocket-Extensions` header (RFC 6455 §9.1): a
 * comma-separated list of extensions, each a token followed by
 * `; name[=value]` parameters whose value is a token or a quoted string.
 * Strings in, plain objects out.
 * @module
 */

/** One `name[=value]` parameter of an extension. */
export interface ExtensionParam {
  /** The parameter's name, lower-cased. */
  name: string;
  /** Its value with quotes and escapes removed, or `undefined` when it had none. */
  value: string | undefined;
}

/** One element of a `Sec-WebSocket-Extensions` list: an offer, or a response. */
export interface ExtensionOffer {
  /** The extension's name, lower-cased (`''` if the element did not start with a token). */
  name: string;
  /** The parameters in the order they were given, duplicates kept. */
  params: ExtensionParam[];
  /** False when the element breaks the RFC 6455 §9.1 grammar; `params` then holds what parsed before the error. */
  valid: boolean;
}

const tokenChar = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
const tokenRun = /[!#$%&'*+\-.^_`|~0-9A-Za-z]+/y;
const isToken = (text: string): boolean => /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(text);

/** A cursor over one header value. */
class Cursor {
  readonly text: string;
  pos = 0;

  constructor(text: string) {
    this.text = text;
  }

  get done(): boolean {
    return this.pos >= this.text.length;
  }

  peek(): string {
    return this.text[this.pos] ?? '';
  }

  /** Skips optional white space (RFC 9110 §5.6.3: spaces and tabs). */
  skipSpace(): void {
    while (this.peek() === ' ' || this.peek() === '\t') this.pos++;
  }

  /** Reads a token; '' when none starts here. */
  token(): string {
    tokenRun.lastIndex = this.pos;
    const match = tokenRun.exec(this.text);
    if (match === null) return '';
    this.pos += match[0].length;
    return match[0];
  }

  /** Reads a quoted string (RFC 9110 §5.6.4) and unescapes it; undefined if unterminated. */
  quoted(): string | undefined {
    let out = '';
    for (this.pos++; !this.done; this.pos++) {
      const char = this.peek();
      if (char === '"') {
        this.pos++;
        return out;
      }
      if (char === '\\') this.pos++;
      out += this.text[this.pos] ?? '';
    }
    return undefined;
  }

  /** Moves past the next comma that is outside quotes (or to the end). */
  skipElement(): void {
    let quoted = false;
    for (; !this.done; this.pos++) {
      const char = this.peek();
      if (char === '\\' && quoted) this.pos++;
      else if (char === '"') quoted = !quoted;
      else if (char === ',' && !quoted) return;
    }
  }
}

/**
 * Reads one `name[=value]` parameter at the cursor (after its `;`).
 * Returns undefined on a syntax error. RFC 6455 §9.1: a quoted value must
 * still be a token once unquoted.
 */
function readParam(cursor: Cursor): ExtensionParam | undefined {
  cursor.skipSpace();
  const name = cursor.token();
  if (name === '') return undefined;
  cursor.skipSpace();
  if (cursor.peek() !== '=') return { name: name.toLowerCase(), value: undefined };
  cursor.pos++;
  cursor.skipSpace();
  const value = cursor.peek() === '"' ? cursor.quoted() : cursor.token();
  if (value === undefined || !isToken(value)) return undefined;
  return { name: name.toLowerCase(), value };
}

/** Reads one list element; leaves the cursor on the comma that ends it (or at the end). */
function readElement(cursor: Cursor): ExtensionOffer {
  const offer: ExtensionOffer = { name: cursor.token().toLowerCase(), params: [], valid: true };
  for (;;) {
    cursor.skipSpace();
    const next = cursor.peek();
    if (next === ',' || next === '') return offer;
    if (next !== ';') break;
    cursor.pos++;
    const param = readParam(cursor);
    if (param === undefined) break;
    offer.params.push(param);
  }
  offer.valid = false;
  cursor.skipElement();
  return offer;
}

/**
 * Parses `Sec-WebSocket-Extensions` header values into their elements, in
 * order. Several header lines (an array) form one list, and empty list
 * elements are skipped (RFC 9110 §5.6.1). Extension and parameter names are
 * lower-cased; values are unquoted. An element that breaks the grammar is
 * returned with `valid: false` and parsing resumes after the next comma
 * outside quotes, so a server can decline just that offer; it never throws.
 *
 * @see RFC 6455 §9.1, RFC 7692 §5
 * @example
 * ```ts
 * parseExtensions('permessage-deflate; client_max_window_bits, permessage-deflate');
 * // [{ name: 'permessage-deflate', params: [{ name: 'client_max_window_bits', value: undefined }], valid: true },
 * //  { name: 'permessage-deflate', params: [], valid: true }]
 * ```
 */
export function parseExtensions(header: string | readonly string[] | undefined): ExtensionOffer[] {
  if (header === undefined) return [];
  const cursor = new Cursor(typeof header === 'string' ? header : header.join(','));
  const offers: ExtensionOffer[] = [];
  while (!cursor.done) {
    cursor.skipSpace();
    if (cursor.peek() === ',') {
      cursor.pos++;
      continue;
    }
    if (cursor.done) break;
    if (!tokenChar.test(cursor.peek())) {
      offers.push({ name: '', params: [], valid: false });
      cursor.skipElement();
      continue;
    }
    offers.push(readElement(cursor));
  }
  return offers;
}
