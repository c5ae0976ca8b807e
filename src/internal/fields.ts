/**
 * A handshake response's header fields, as dial checks them and reports
 * them. Not the global `Headers`: in Node its first use loads the fetch
 * implementation (about 2 MB of heap), which installs Node's default `Agent`
 * as undici's global dispatcher, and a dial should not change the process.
 * @module
 */
import { isToken, withoutHttpWhitespace } from '../handshake.js';

/**
 * Header fields in arrival order, with `get()` answering as `Headers.get()`
 * does, except that repeated `cookie` fields are joined with ", " too (no
 * handshake check reads them; `HandshakeError.headers` is a real `Headers`).
 */
export class Fields implements Iterable<[string, string]> {
  readonly #pairs: Array<[string, string]> = [];

  /**
   * Adds a field: the name lower-cased, the value without surrounding
   * whitespace. A field `Headers` could not hold (a name that is not a
   * token; a NUL, CR, LF or a character above U+00FF in the value) is
   * left out, as it is not one a handshake needs; returns whether it was added.
   */
  append(name: string, value: string): boolean {
    const trimmed = withoutHttpWhitespace(value);
    if (!isToken(name) || /[\0\r\n\u0100-\uffff]/.test(trimmed)) return false;
    this.#pairs.push([name.toLowerCase(), trimmed]);
    return true;
  }

  /** The value of field `name` (any case), repeated fields joined with ", "; null when absent. */
  get(name: string): string | null {
    const wanted = name.toLowerCase();
    let found: string | null = null;
    for (const [key, value] of this.#pairs) {
      if (key === wanted) found = found === null ? value : `${found}, ${value}`;
    }
    return found;
  }

  [Symbol.iterator](): Iterator<[string, string]> {
    return this.#pairs[Symbol.iterator]();
  }

  /** The fields as name/value pairs (what `new Headers()` takes). */
  pairs(): Array<[string, string]> {
    return this.#pairs.map(([name, value]) => [name, value]);
  }
}
