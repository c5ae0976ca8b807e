/**
 * `wsconn/protocol`: the WebSocket protocol without I/O, for people who
 * bring their own transport (an HTTP/2 stream, a WebTransport stream, a
 * test harness). `Protocol` turns received bytes into events and messages
 * to send into bytes, enforcing RFC 6455 and RFC 7692 as a `Conn` does; the
 * frame header codec, masking and the close payload codec are exported for
 * lower-level work.
 *
 * @example
 * ```ts
 * import { Protocol } from 'wsconn/protocol';
 * const client = new Protocol({ client: true });
 * const bytes = client.encodeMessage(1, 'hello'); // a masked text frame to write
 * client.receive(Uint8Array.of(0x81, 0x02, 0x68, 0x69)); // "hi" from the server
 * const event = client.next(); // { kind: 'data', type: 1, data: <68 69>, start: true, fin: true }
 * console.log(bytes.length, event);
 * ```
 * @see https://www.rfc-editor.org/rfc/rfc6455 RFC 6455
 * @see https://www.rfc-editor.org/rfc/rfc7692 RFC 7692
 * @module wsconn/protocol
 */
export {
  Protocol,
  type CloseEvent,
  type ControlEvent,
  type DataEvent,
  type FailEvent,
  type ProtocolEvent,
  type ProtocolOptions,
} from './engine.js';
export { encodeFrame } from './encode.js';
export { PreparedMessage } from './prepared.js';
export { maskKey } from './mask-key.js';
export { decodeClosePayload, encodeClosePayload, isValidCloseCode, StatusCode, type ClosePayload } from './close-frame.js';
export {
  decodeHeader,
  encodeHeader,
  headerLength,
  isControl,
  maxHeaderLength,
  Opcode,
  type DecodedHeader,
  type FrameHeader,
} from '../frame.js';
export { maskInPlace } from '../mask.js';
export { type DeflateParams } from '../compress.js';
