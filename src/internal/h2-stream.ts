/**
 * An HTTP/2 stream as a WebSocket transport (RFC 8441 §5): ending and
 * dropping it the way a TCP connection is ended and dropped.
 * @module
 */
import { constants, type Http2Stream } from 'node:http2';
import type { Transport } from '../options.js';

/**
 * The close handshake's view of an HTTP/2 stream. RFC 8441 §5: END_STREAM
 * stands for TCP's FIN and RST_STREAM with CANCEL for its RST. On the
 * server, after our END_STREAM the stream is also closed once the data is
 * out: a client that never sends its own END_STREAM (Chromium does not)
 * must not keep it open until the close timeout. A client only ends its
 * side and lets the server close: resetting a stream the server is still
 * ending makes some servers (Hypercorn) drop the whole session.
 */
export function streamTransport(stream: Http2Stream, server: boolean): Transport {
  return {
    get writable(): boolean {
      return stream.writable;
    },
    end(): void {
      if (stream.destroyed || stream.writableEnded) return;
      if (!server) {
        stream.end();
        return;
      }
      stream.end(() => {
        if (!stream.destroyed) stream.close(constants.NGHTTP2_NO_ERROR);
      });
    },
    destroy(): void {
      if (!stream.destroyed) stream.close(constants.NGHTTP2_CANCEL);
    },
    failure: () => resetError(stream),
    // Peers such as Hypercorn never end their side after the close handshake.
    endsEitherWay: true,
  };
}

/** HTTP/2 error codes by value (RFC 9113 §7). */
const errorNames = [
  'NO_ERROR', 'PROTOCOL_ERROR', 'INTERNAL_ERROR', 'FLOW_CONTROL_ERROR', 'SETTINGS_TIMEOUT', 'STREAM_CLOSED',
  'FRAME_SIZE_ERROR', 'REFUSED_STREAM', 'CANCEL', 'COMPRESSION_ERROR', 'CONNECT_ERROR', 'ENHANCE_YOUR_CALM',
  'INADEQUATE_SECURITY', 'HTTP_1_1_REQUIRED',
];

/**
 * The error for a stream that was reset: Node reports the end of a reset
 * stream before (or instead of) its 'error', so the Conn asks for the reason
 * when its input ends without a close frame. Shaped like Node's own
 * (`code` `'ERR_HTTP2_STREAM_ERROR'`), plus the numeric `rstCode`.
 */
function resetError(stream: Http2Stream): Error | undefined {
  const code = stream.rstCode;
  if (code === undefined || code === constants.NGHTTP2_NO_ERROR) return undefined;
  const name = errorNames[code] ?? `0x${code.toString(16)}`;
  return Object.assign(new Error(`the HTTP/2 stream was reset with ${name} (RFC 8441 §5: a TCP reset)`), {
    code: 'ERR_HTTP2_STREAM_ERROR',
    rstCode: code,
  });
}

/** The connection-specific fields of RFC 9113 §8.2.2, and those Node's http2 refuses alike. */
const connectionSpecific = new Set(['connection', 'upgrade', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'http2-settings', 'te']);

/**
 * Headers that HTTP/2 forbids in a response (RFC 9113 §8.2.2): an HTTP/1.1
 * refusal's `Connection` and `Upgrade` fields, and the others Node's
 * `respond()` would throw for (`TE` is allowed only in requests, and only
 * as `trailers`), have no place in a stream's response.
 */
export function isConnectionSpecific(name: string): boolean {
  return connectionSpecific.has(name.toLowerCase());
}
