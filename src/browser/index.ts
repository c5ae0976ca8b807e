/**
 * wsconn's browser build: `dial()` and `Conn` over the platform's
 * `WebSocket`, for browsers, workers and any runtime with a WHATWG
 * `WebSocket` global. Bundlers pick it for `import … from 'wsconn'` through
 * the `"browser"` (and `"worker"`, `"workerd"`) export conditions. It has the
 * Node build's types and, where the WebSocket API allows, its semantics;
 * what the platform cannot do throws a clear error or is a documented no-op
 * (see the README's browser section). `wsconn/wsjson` works with it as it is.
 * @module wsconn (browser)
 */
export { dial, type DialOptions } from './dial.js';
export { Conn, policyViolationCode, type BrowserConnOptions } from './conn.js';
export type { PlatformEvent, PlatformWebSocket, PlatformWebSocketConstructor } from './platform.js';
export { MessageType, type Message, type MessageReader, type SignalOptions } from '../message.js';
export { StatusCode, closeStatus, type CloseInfo } from '../status.js';
export { CloseError, ClosedError, HandshakeError, MessageTooBigError, ProtocolError } from '../errors.js';

/**
 * Not available in the browser build: a page cannot accept WebSocket
 * connections. It exists so that code shared with a Node server bundles;
 * calling it throws.
 * @throws DOMException `NotSupportedError`, always.
 */
export function accept(..._args: unknown[]): never {
  throw new DOMException('accept() is not available in the browser build: a page cannot accept WebSocket connections', 'NotSupportedError');
}
