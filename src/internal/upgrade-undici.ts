/**
 * dial's path through an undici `Dispatcher` (a given one, or a global one
 * the application installed), so that proxies, TLS settings and connection
 * limits configured there apply to WebSockets too.
 *
 * It uses `dispatcher.dispatch()` with its own handler rather than undici's
 * `upgrade()`, which hides the status, headers and body of a refused
 * upgrade. The handler speaks both handler interfaces: the controller-based
 * one of undici 7 and 8 and the older callbacks of undici 6, which Node 20's
 * built-in `fetch` installs as the global dispatcher when it runs first.
 * @module
 */
import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Attempt } from './upgrade-attempt.js';
import { Fields } from './fields.js';
import type { UpgradeRequest } from './upgrade-request.js';

/** Dispatcher origins for the schemes dial accepts (RFC 6455 §3: ws and wss ride on http and https). */
const httpScheme: Record<string, string> = { 'ws:': 'http:', 'wss:': 'https:', 'http:': 'http:', 'https:': 'https:' };

/** Sends the upgrade request through `dispatcher`, reporting into `attempt`. */
export function upgradeThrough(dispatcher: Dispatcher, request: UpgradeRequest, attempt: Attempt): void {
  const { target, headers } = request;
  const options: Dispatcher.DispatchOptions = {
    origin: `${httpScheme[target.protocol]}//${target.host}`,
    path: `${target.pathname}${target.search}`,
    method: 'GET',
    headers: headers.flat(),
    upgrade: 'websocket',
  };
  const handler = new UpgradeHandler(attempt);
  try {
    dispatcher.dispatch(options, handler);
  } catch (err) {
    handler.onError(err instanceof Error ? err : new Error(String(err)));
  }
}

/** Maps both of undici's handler interfaces onto an `Attempt`. */
class UpgradeHandler implements Dispatcher.DispatchHandler {
  readonly #attempt: Attempt;

  constructor(attempt: Attempt) {
    this.#attempt = attempt;
  }

  // undici 7+ (controller) interface

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#attempt.started((reason) => controller.abort(reason));
  }

  onRequestUpgrade(_c: Dispatcher.DispatchController, status: number, headers: HeaderRecord, socket: Duplex): void {
    // undici has put the bytes that followed the 101 back into the socket
    // (socket.unshift), so they are the socket's first read: no `head` here.
    this.#attempt.upgraded(status, headersFromRecord(headers), socket);
  }

  onResponseStart(_c: Dispatcher.DispatchController, status: number, headers: HeaderRecord): void {
    this.#attempt.response(status, headersFromRecord(headers));
  }

  onResponseData(_c: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#attempt.data(chunk);
  }

  onResponseEnd(): void {
    this.#attempt.end();
  }

  onResponseError(_c: Dispatcher.DispatchController | undefined, err: Error): void {
    this.#attempt.error(err);
  }

  // undici 6 (callback) interface

  onConnect(abort: (err?: Error) => void): void {
    this.#attempt.started(abort);
  }

  onUpgrade(status: number, headers: RawHeaders, socket: Duplex): void {
    this.#attempt.upgraded(status, headersFromRaw(headers), socket);
  }

  onHeaders(status: number, headers: Buffer[]): boolean {
    this.#attempt.response(status, headersFromRaw(headers));
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.#attempt.data(chunk);
    return true;
  }

  onComplete(): void {
    this.#attempt.end();
  }

  onError(err: Error): void {
    this.#attempt.error(err);
  }
}

type HeaderRecord = Record<string, string | string[] | undefined>;
type RawHeaders = Array<Buffer | string> | null;

/** Response headers as undici 7+ reports them (lower-case names, repeated ones as arrays). */
function headersFromRecord(record: HeaderRecord): Fields {
  const headers = new Fields();
  for (const [name, value] of Object.entries(record)) {
    if (value === undefined) continue;
    for (const item of typeof value === 'string' ? [value] : value) headers.append(name, item);
  }
  return headers;
}

/** Response headers as undici 6 reports them: alternating raw names and values. */
function headersFromRaw(raw: RawHeaders): Fields {
  const headers = new Fields();
  for (let i = 0; raw !== null && i + 1 < raw.length; i += 2) {
    headers.append(latin1(raw[i]!), latin1(raw[i + 1]!));
  }
  return headers;
}

function latin1(field: Buffer | string): string {
  return typeof field === 'string' ? field : field.toString('latin1');
}

