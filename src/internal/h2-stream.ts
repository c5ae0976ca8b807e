/**
 * An HTTP/2 stream as a WebSocket transport (RFC 8441 §5): ending and
 * dropping it the way a TCP connection is ended and dropped.
 * @module
 */
import { constants, type Http2Stream } from 'node:http2';
import type { Transport } from '../options.js';

/**
 * The close handshake's view of an HTTP/2 stream. RFC 8441 §5: END_STREAM
 * stands for TCP's FIN and RST_STREAM with CANCEL for its RST. After our
 * END_STREAM the stream is closed once the data is out: a peer that never
 * sends its own END_STREAM (Chromium does not) must not keep it open until
 * the close timeout.
 */
export function streamTransport(stream: Http2Stream): Transport {
  return {
    get writable(): boolean {
      return stream.writable;
    },
    end(): void {
      if (stream.destroyed || stream.writableEnded) return;
      stream.end(() => {
        if (!stream.destroyed) stream.close(constants.NGHTTP2_NO_ERROR);
      });
    },
    destroy(): void {
      if (!stream.destroyed) stream.close(constants.NGHTTP2_CANCEL);
    },
  };
}

/**
 * Headers that HTTP/2 forbids (RFC 9113 §8.2.2): an HTTP/1.1 refusal's
 * `Connection` and `Upgrade` fields have no place in a stream's response.
 */
export function isConnectionSpecific(name: string): boolean {
  const lower = name.toLowerCase();
  return lower === 'connection' || lower === 'upgrade' || lower === 'keep-alive' || lower === 'transfer-encoding';
}
