/**
 * permessage-deflate negotiation (RFC 7692 §5, §7.1), both roles. Pure:
 * parsed header elements in, agreed parameters and header strings out.
 * @module
 */
import { parseExtensions, type ExtensionOffer } from './extensions.js';

/**
 * How a Conn uses permessage-deflate (RFC 7692): not at all, keeping each
 * direction's LZ77 window across messages (best ratio, about 50 KiB per
 * connection), or resetting it after every message (no memory between
 * messages, worse ratio on small messages).
 */
export const CompressionMode = {
  /** No permessage-deflate: none offered (client), every offer declined (server). The default. */
  Disabled: 'disabled',
  /** permessage-deflate keeping each direction's window across messages: the best ratio, about 50 KiB per connection. */
  ContextTakeover: 'context-takeover',
  /** permessage-deflate with the window reset after every message: no memory held between messages. */
  NoContextTakeover: 'no-context-takeover',
} as const;
/** One of the `CompressionMode` values. */
export type CompressionMode = (typeof CompressionMode)[keyof typeof CompressionMode];

/**
 * The parameters both ends agreed on in the handshake. "Server" and
 * "client" name the compressing side: `serverMaxWindowBits` bounds the
 * window the server compresses with and the client inflates with.
 * @see RFC 7692 §7.1
 */
export interface DeflateParams {
  /** The server resets its compression window after every message (§7.1.1.1). */
  serverNoContextTakeover: boolean;
  /** The client resets its compression window after every message (§7.1.1.2). */
  clientNoContextTakeover: boolean;
  /** Base-2 log of the server's LZ77 window, 8..15 (§7.1.2.1); 15 when not negotiated. */
  serverMaxWindowBits: number;
  /** Base-2 log of the client's LZ77 window, 8..15 (§7.1.2.2); 15 when not negotiated. */
  clientMaxWindowBits: number;
}

/** The extension's registered name (RFC 7692 §7). */
const extensionName = 'permessage-deflate';

/** One permessage-deflate element whose parameters passed the checks. */
interface DeflateElement {
  serverNoContextTakeover: boolean;
  clientNoContextTakeover: boolean;
  serverMaxWindowBits?: number;
  /** `true` when given without a value (allowed in an offer only). */
  clientMaxWindowBits?: number | true;
}

/**
 * Parses a window-bits value. RFC 7692 §7.1.2.1: a decimal integer from 8
 * to 15 without leading zeros. Returns undefined for anything else.
 */
function windowBits(value: string | undefined): number | undefined {
  return value !== undefined && /^(?:[89]|1[0-5])$/.test(value) ? Number(value) : undefined;
}

/**
 * Checks the parameters of one permessage-deflate element, an offer or a
 * response. Returns the problem as a string, so a server can skip the offer
 * and a client can fail with it (RFC 7692 §5: unknown parameter, duplicate
 * parameter, invalid value).
 */
function checkElement(element: ExtensionOffer, isOffer: boolean): DeflateElement | string {
  if (!element.valid) return 'the header does not follow the RFC 6455 §9.1 syntax';
  const out: DeflateElement = { serverNoContextTakeover: false, clientNoContextTakeover: false };
  const seen = new Set<string>();
  for (const { name, value } of element.params) {
    if (seen.has(name)) return `duplicate parameter ${name}`;
    seen.add(name);
    if (name === 'server_no_context_takeover' || name === 'client_no_context_takeover') {
      // RFC 7692 §7.1.1.1, §7.1.1.2: these parameters have no value.
      if (value !== undefined) return `${name} must not have a value`;
      if (name === 'server_no_context_takeover') out.serverNoContextTakeover = true;
      else out.clientNoContextTakeover = true;
    } else if (name === 'server_max_window_bits') {
      const bits = windowBits(value);
      if (bits === undefined) return `${name} needs a value from 8 to 15, got ${value ?? 'none'}`;
      out.serverMaxWindowBits = bits;
    } else if (name === 'client_max_window_bits') {
      const bits = windowBits(value);
      // RFC 7692 §7.1.2.2: only an offer may carry this parameter without a value.
      if (bits === undefined && (value !== undefined || !isOffer)) {
        return `${name} needs a value from 8 to 15, got ${value ?? 'none'}`;
      }
      out.clientMaxWindowBits = bits ?? true;
    } else {
      return `unknown parameter ${name}`;
    }
  }
  return out;
}

/** The response header value that accepts `element` with `params` (RFC 7692 §7.1). */
function responseFor(element: DeflateElement, params: DeflateParams): string {
  let response = extensionName;
  if (params.serverNoContextTakeover) response += '; server_no_context_takeover';
  if (params.clientNoContextTakeover) response += '; client_no_context_takeover';
  // §7.1.2.1: accepting a window limit means answering it (same or smaller value).
  if (element.serverMaxWindowBits !== undefined) response += `; server_max_window_bits=${params.serverMaxWindowBits}`;
  // §7.1.2.2: the client's own limit, echoed so that it is agreed explicitly.
  if (typeof element.clientMaxWindowBits === 'number') response += `; client_max_window_bits=${params.clientMaxWindowBits}`;
  return response;
}

/**
 * Chooses, as the server, the first acceptable permessage-deflate offer and
 * returns the agreed parameters with the `Sec-WebSocket-Extensions` value to
 * answer; undefined when compression is disabled or no offer is acceptable,
 * in which case the handshake goes on without compression.
 *
 * An offer is declined (skipped, never fatal) when it is malformed or has an
 * unknown, duplicate or out-of-range parameter (RFC 7692 §5). Offered
 * `server_no_context_takeover` and window limits are honoured (§7.1.1.1,
 * §7.1.2.1); a `client_no_context_takeover` hint is confirmed (§7.1.1.2).
 * In `'no-context-takeover'` mode the server asks for both
 * `*_no_context_takeover`, which §7.1.1 lets it add unasked. A window limit of
 * 8 is accepted: wsconn then compresses with zlib's 9-bit window, whose
 * matches never reach back more than 250 bytes, so the output fits a 256-byte
 * window.
 *
 * @see RFC 7692 §5, §7.1
 * @example
 * ```ts
 * negotiateServer(parseExtensions('permessage-deflate; client_max_window_bits'), 'context-takeover');
 * // { params: { serverNoContextTakeover: false, clientNoContextTakeover: false,
 * //             serverMaxWindowBits: 15, clientMaxWindowBits: 15 },
 * //   response: 'permessage-deflate' }
 * ```
 */
export function negotiateServer(
  offers: readonly ExtensionOffer[],
  mode: CompressionMode,
): { params: DeflateParams; response: string } | undefined {
  if (mode !== CompressionMode.ContextTakeover && mode !== CompressionMode.NoContextTakeover) return undefined;
  const noTakeover = mode === CompressionMode.NoContextTakeover;
  for (const offer of offers) {
    if (offer.name !== extensionName) continue;
    const element = checkElement(offer, true);
    if (typeof element === 'string') continue;
    const params: DeflateParams = {
      serverNoContextTakeover: element.serverNoContextTakeover || noTakeover,
      clientNoContextTakeover: element.clientNoContextTakeover || noTakeover,
      serverMaxWindowBits: element.serverMaxWindowBits ?? 15,
      clientMaxWindowBits: typeof element.clientMaxWindowBits === 'number' ? element.clientMaxWindowBits : 15,
    };
    return { params, response: responseFor(element, params) };
  }
  return undefined;
}

/**
 * The `Sec-WebSocket-Extensions` value a client sends for `mode` (`''` for
 * `'disabled'`: send no header). Both offers include a bare
 * `client_max_window_bits` so the server may shrink the client's window
 * (§7.1.2.2); `'no-context-takeover'` also asks the server to reset its
 * window (§7.1.1.1) and announces that the client resets its own (§7.1.1.2).
 *
 * @see RFC 7692 §7.1
 */
export function clientOffer(mode: CompressionMode): string {
  if (mode === CompressionMode.ContextTakeover) return `${extensionName}; client_max_window_bits`;
  if (mode === CompressionMode.NoContextTakeover) {
    return `${extensionName}; server_no_context_takeover; client_no_context_takeover; client_max_window_bits`;
  }
  return '';
}

/**
 * Validates, as the client, the server's `Sec-WebSocket-Extensions` answer
 * to `clientOffer(mode)` and returns the agreed parameters, or undefined
 * when the server accepted no extension (compression stays off).
 *
 * The answer must name at most one extension, permessage-deflate, and only
 * when one was offered (RFC 6455 §4.1, item 6); its parameters must be known,
 * unique and in range, and `client_max_window_bits` must carry a value
 * (RFC 7692 §5, §7.1). A server that leaves out a requested
 * `server_no_context_takeover` keeps its window, which wsconn can inflate, so
 * that is accepted.
 *
 * @throws Error describing the first problem; dial() should fail the
 * handshake with it and close the socket.
 * @see RFC 7692 §5, §7.1
 */
export function parseClientResponse(
  header: string | readonly string[] | undefined,
  mode: CompressionMode,
): DeflateParams | undefined {
  const elements = parseExtensions(header);
  if (elements.length === 0) return undefined;
  const names = elements.map((element) => element.name || '(malformed)').join(', ');
  if (mode !== CompressionMode.ContextTakeover && mode !== CompressionMode.NoContextTakeover) {
    throw new Error(`server answered with extensions that were not offered: ${names}`);
  }
  const [element] = elements;
  if (elements.length > 1 || element === undefined) {
    throw new Error(`server answered with more than one extension (${names}); only permessage-deflate was offered`);
  }
  if (element.valid && element.name !== extensionName) {
    throw new Error(`server answered with extension ${element.name}, which was not offered`);
  }
  const checked = checkElement(element, false);
  if (typeof checked === 'string') throw new Error(`invalid permessage-deflate response from the server: ${checked}`);
  return {
    serverNoContextTakeover: checked.serverNoContextTakeover,
    clientNoContextTakeover: checked.clientNoContextTakeover,
    serverMaxWindowBits: checked.serverMaxWindowBits ?? 15,
    clientMaxWindowBits: typeof checked.clientMaxWindowBits === 'number' ? checked.clientMaxWindowBits : 15,
  };
}
