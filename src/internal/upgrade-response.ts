/**
 * A bounded parser for the HTTP/1.1 response to a WebSocket upgrade
 * request (RFC 9112), for dial's direct path: it skips interim `1xx`
 * responses, stops at a `101` (the bytes after it belong to the WebSocket
 * stream) and, for any other final response, delivers the body as sent
 * (`Content-Length`, `chunked` or until the connection ends). Pure: bytes
 * in, callbacks out; no socket, timer or promise.
 * @module
 */
import { isToken, withoutOws } from '../handshake.js';
import { Fields } from './fields.js';

/** What the parser reports. Each callback is called at most once, except `data`. */
export interface ResponseEvents {
  /** The final response's head: a `101` (with the bytes that followed it), or a refusal whose body follows. */
  response(status: number, headers: Fields, rest: Buffer): void;
  /** A piece of a refusal's body, de-chunked. */
  data(chunk: Buffer): void;
  /** The refusal's body is complete. */
  end(): void;
  /** The bytes are not a valid response; nothing more will be reported. */
  error(err: Error): void;
}

/** The longest chunk-size line (with extensions) accepted, in bytes. */
const maxChunkLine = 4096;

const statusLine = /^HTTP\/1\.[01] ([1-9]\d\d)(?: [^\r\n]*)?$/;
// RFC 9110 §5.5: field values are visible characters, spaces and tabs (and obs-text).
const fieldValue = /^[\t\x20-\x7e\x80-\xff]*$/;

/** How the body of a refusal is delimited. */
type Body =
  | { kind: 'length'; left: number }
  | { kind: 'chunked'; state: 'size' | 'data' | 'data-end' | 'trailer'; left: number; line: string }
  | { kind: 'close' };

/** Parses one upgrade response; feed it the socket's bytes with `push()`, then `finish()` at EOF. */
export class ResponseParser {
  readonly #events: ResponseEvents;
  readonly #maxHeaderSize: number;
  #head: Buffer[] = [];
  #headSize = 0;
  #body: Body | undefined;
  #done = false;

  constructor(events: ResponseEvents, maxHeaderSize: number) {
    this.#events = events;
    this.#maxHeaderSize = maxHeaderSize;
  }

  /** Takes the next bytes from the connection. */
  push(chunk: Buffer): void {
    if (this.#done) return;
    if (this.#body !== undefined) {
      this.#bodyBytes(chunk);
      return;
    }
    this.#head.push(chunk);
    this.#headSize += chunk.length;
    this.#heads();
  }

  /** The connection ended (EOF); says whether the response was complete. */
  finish(): boolean {
    if (this.#done) return true;
    if (this.#body?.kind === 'close') {
      this.#complete();
      return true;
    }
    return false;
  }

  /** Parses every complete response head that has arrived. */
  #heads(): void {
    while (!this.#done && this.#body === undefined) {
      const bytes = this.#head.length === 1 ? (this.#head[0] as Buffer) : Buffer.concat(this.#head, this.#headSize);
      this.#head = [bytes];
      const end = bytes.indexOf('\r\n\r\n', 0, 'latin1');
      if ((end < 0 ? bytes.length : end + 4) > this.#maxHeaderSize) {
        return this.#fail(new Error(`the response head exceeds ${this.#maxHeaderSize} bytes`));
      }
      if (end < 0) return;
      const rest = bytes.subarray(end + 4);
      this.#head = [rest];
      this.#headSize = rest.length;
      this.#parseHead(bytes.toString('latin1', 0, end));
    }
  }

  #parseHead(text: string): void {
    const lines = text.split('\r\n');
    const match = statusLine.exec(lines[0] ?? '');
    if (match === null) return this.#fail(new Error(`invalid status line ${JSON.stringify((lines[0] ?? '').slice(0, 64))}`));
    const status = Number(match[1]);
    const headers = new Fields();
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i] as string;
      const colon = line.indexOf(':');
      const name = colon > 0 ? line.slice(0, colon) : '';
      const value = withoutOws(line.slice(colon + 1));
      // RFC 9112 §5.1/§5.2: no whitespace before the colon, no obsolete line folding.
      if (!isToken(name) || !fieldValue.test(value)) {
        return this.#fail(new Error(`invalid response header line ${JSON.stringify(line.slice(0, 64))}`));
      }
      headers.append(name, value);
    }
    if (status >= 100 && status < 200 && status !== 101) return; // interim: the final one follows
    const rest = this.#head[0] as Buffer;
    this.#head = [];
    this.#headSize = 0;
    if (status === 101) {
      this.#done = true;
      this.#events.response(status, headers, rest);
      return;
    }
    const body = bodyOf(status, headers);
    if (typeof body === 'string') return this.#fail(new Error(body));
    this.#body = body;
    this.#events.response(status, headers, Buffer.alloc(0));
    if (body.kind === 'length' && body.left === 0) this.#complete();
    else if (rest.length > 0) this.#bodyBytes(rest);
  }

  #bodyBytes(chunk: Buffer): void {
    const body = this.#body as Body;
    if (body.kind === 'close') this.#events.data(chunk);
    else if (body.kind === 'length') {
      const piece = chunk.subarray(0, body.left);
      body.left -= piece.length;
      if (piece.length > 0) this.#events.data(piece);
      if (body.left === 0) this.#complete();
    } else this.#chunked(body, chunk);
  }

  /** Decodes `Transfer-Encoding: chunked` (RFC 9112 §7.1), a byte range at a time. */
  #chunked(body: Body & { kind: 'chunked' }, chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length && !this.#done) {
      if (body.state === 'data') {
        const piece = chunk.subarray(at, at + body.left);
        at += piece.length;
        body.left -= piece.length;
        this.#events.data(piece);
        if (body.left === 0) body.state = 'data-end';
        continue;
      }
      const newline = chunk.indexOf(0x0a, at);
      const stop = newline < 0 ? chunk.length : newline + 1;
      body.line += chunk.toString('latin1', at, stop);
      at = stop;
      if (body.line.length > maxChunkLine) return this.#fail(new Error('a chunk-size line is too long'));
      if (newline < 0) return;
      const line = body.line;
      body.line = '';
      if (!line.endsWith('\r\n')) return this.#fail(new Error('a chunk line does not end in CRLF'));
      this.#chunkLine(body, line.slice(0, -2));
    }
  }

  #chunkLine(body: Body & { kind: 'chunked' }, line: string): void {
    if (body.state === 'data-end') {
      if (line !== '') return this.#fail(new Error('chunk data does not end in CRLF'));
      body.state = 'size';
    } else if (body.state === 'trailer') {
      if (line === '') this.#complete();
    } else {
      const size = /^([0-9A-Fa-f]{1,8})[\t ]*(?:;.*)?$/.exec(line);
      if (size === null) return this.#fail(new Error(`invalid chunk size ${JSON.stringify(line.slice(0, 32))}`));
      body.left = parseInt(size[1] as string, 16);
      body.state = body.left === 0 ? 'trailer' : 'data';
    }
  }

  #complete(): void {
    this.#done = true;
    this.#events.end();
  }

  #fail(err: Error): void {
    this.#done = true;
    this.#events.error(err);
  }
}

/** How a refusal's body is delimited (RFC 9112 §6.3), or why it cannot be read. */
function bodyOf(status: number, headers: Fields): Body | string {
  if (status === 204 || status === 304) return { kind: 'length', left: 0 };
  const coding = headers.get('transfer-encoding');
  if (coding !== null) {
    const codings = coding.split(',').map((c) => c.trim().toLowerCase());
    if (codings.at(-1) !== 'chunked') return { kind: 'close' };
    return { kind: 'chunked', state: 'size', left: 0, line: '' };
  }
  const length = headers.get('content-length');
  if (length === null) return { kind: 'close' };
  // Repeated identical values arrive joined by ", " (RFC 9110 §8.6 allows them).
  const values = new Set(length.split(',').map((v) => v.trim()));
  const [value] = values;
  if (values.size !== 1 || value === undefined || !/^\d{1,15}$/.test(value)) return `invalid Content-Length ${JSON.stringify(length)}`;
  return { kind: 'length', left: Number(value) };
}
