/**
 * The close frame's payload (RFC 6455 §5.5.1, §7.4): status codes, and the
 * pure codec of code and reason.
 * @module
 */
import { isUtf8 } from 'node:buffer';
import { ProtocolError } from '../errors.js';
import { StatusCode } from '../status.js';

export { StatusCode } from '../status.js';

/** The longest reason that fits a control frame: 125 bytes less the 2-byte code. */
export const maxReasonBytes = 123;

/**
 * Whether `code` may travel in a close frame: the defined codes except 1004,
 * 1005, 1006 and 1015 (RFC 6455 §7.4.1, §7.4.2), and 3000–4999 for libraries
 * and applications.
 */
export function isValidCloseCode(code: number): boolean {
  if (!Number.isInteger(code)) return false;
  if (code >= 3000 && code <= 4999) return true;
  return code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Encodes a close frame payload: the code in network byte order, then the
 * reason as UTF-8. Code 1005 encodes as an empty payload (a close frame
 * without a status).
 * @throws RangeError for a code that may not be sent or a reason over 123 bytes.
 */
export function encodeClosePayload(code: number, reason = ''): Uint8Array {
  if (code === StatusCode.NoStatusReceived && reason === '') return new Uint8Array(0);
  if (!isValidCloseCode(code)) throw new RangeError(`invalid close code ${code}`);
  const reasonBytes = encoder.encode(reason);
  if (reasonBytes.length > maxReasonBytes) {
    throw new RangeError(`close reason is ${reasonBytes.length} bytes; at most ${maxReasonBytes} fit`);
  }
  const out = new Uint8Array(2 + reasonBytes.length);
  out[0] = code >>> 8;
  out[1] = code & 0xff;
  out.set(reasonBytes, 2);
  return out;
}

/** A close reason made from an error message, cut on a character boundary to fit a close frame. */
export function closeReason(message: string): string {
  let reason = message;
  while (Buffer.byteLength(reason) > maxReasonBytes) reason = reason.slice(0, -1);
  return reason;
}

/** A close frame's status code and reason. */
export interface ClosePayload {
  /** The status code (1005 for a payload without one). */
  code: number;
  /** The reason, UTF-8 decoded ('' when none). */
  reason: string;
}

/**
 * Decodes a received close frame payload. An empty payload means "no status"
 * and decodes as code 1005.
 * @throws ProtocolError 1002 for a 1-byte payload or a code that may not be
 * sent (RFC 6455 §7.4); 1007 for a reason that is not UTF-8 (§5.5.1).
 */
export function decodeClosePayload(payload: Uint8Array): ClosePayload {
  if (payload.length === 0) return { code: StatusCode.NoStatusReceived, reason: '' };
  if (payload.length === 1) throw new ProtocolError(1002, 'close frame payload of 1 byte');
  const code = (payload[0]! << 8) | payload[1]!;
  if (!isValidCloseCode(code)) throw new ProtocolError(1002, `peer sent invalid close code ${code}`);
  const reasonBytes = payload.subarray(2);
  if (!isUtf8(reasonBytes)) throw new ProtocolError(1007, 'close reason is not valid UTF-8');
  return { code, reason: decoder.decode(reasonBytes) };
}
