/**
 * wsconn: a WebSocket library for Node.js, promise- and AbortSignal-first.
 * @module wsconn
 */
export { accept, type AcceptOptions } from './accept.js';
export { acceptHttp2, isWebSocketConnect } from './accept-http2.js';
export { dial, type DialOptions } from './dial.js';
export type { TlsOptions } from './internal/h2-pool.js';
export {
  Conn,
  MessageType,
  defaultReadLimit,
  type CloseInfo,
  type CloseReadOptions,
  type ConnOptions,
  type Message,
  type MessageReader,
  type SignalOptions,
  type WriteOptions,
} from './conn.js';
export { CompressionMode } from './compress.js';
export { StatusCode, closeStatus } from './close.js';
export { CloseError, ClosedError, HandshakeError, MessageTooBigError, ProtocolError } from './errors.js';
export { pipe, type PipeOptions } from './pipe.js';
export { broadcast, type BroadcastOptions, type BroadcastResult, type WhenFull } from './broadcast.js';
export { PreparedMessage } from './protocol/prepared.js';
export { ConnSet, type CloseAllOptions } from './shutdown.js';
export { refuseUpgrade, type RefuseUpgradeOptions, type RefusalHeaders } from './refuse.js';
export {
  createUpgradeListener,
  type AuthenticateContext,
  type ConnHandler,
  type UpgradeContext,
  type UpgradeListener,
  type UpgradeListenerOptions,
} from './server.js';
