/**
 * The client's extended CONNECT (RFC 8441 §4, §5) on a pooled HTTP/2
 * session, reporting to the same `Attempt` as the HTTP/1.1 paths.
 * @module
 */
import { constants, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import type { Attempt } from './upgrade-attempt.js';
import { Fields } from './fields.js';
import { isConnectionSpecific, streamTransport } from './h2-stream.js';
import { sessionFor, type Http2Mode, type Session, type TlsOptions } from './h2-pool.js';
import type { UpgradeRequest } from './upgrade-request.js';

/** An upgrade request, plus how to reach the server over HTTP/2. */
export interface Http2Request extends UpgradeRequest {
  mode: Http2Mode;
  tls: TlsOptions | undefined;
  idleTimeout: number;
}

/** RFC 8441 §5: no Sec-WebSocket-Key (the `:protocol` replaces it); `host` becomes `:authority`. */
const notForHttp2 = new Set(['host', 'sec-websocket-key']);

/**
 * Opens the WebSocket as an extended CONNECT stream. `fallback` runs the
 * HTTP/1.1 upgrade instead when the mode is `'auto'` and the server takes
 * no extended CONNECT.
 */
export function upgradeHttp2(request: Http2Request, attempt: Attempt, fallback: () => void, retries = 1): void {
  const authority = request.headers.find(([name]) => name === 'host')?.[1] ?? request.target.host;
  let stream: ClientHttp2Stream | undefined;
  const gaveUp = new AbortController();
  attempt.started((reason) => {
    gaveUp.abort(reason);
    stream?.close(constants.NGHTTP2_CANCEL);
  });
  sessionFor(request.target, authority, request.tls, request.mode, request.idleTimeout, gaveUp.signal).then(
    (result) => {
      if ('fallback' in result) {
        if (attempt.settled) return;
        if (request.mode === 'auto') return fallback();
        return attempt.error(new Error(result.fallback));
      }
      const { session } = result;
      if (attempt.settled) return session.unreserve();
      try {
        stream = openStream(session, request, authority, attempt, retry);
      } catch (err) {
        // request() throws when the session closed since it was found.
        session.unreserve();
        attempt.error(err instanceof Error ? err : new Error(String(err)));
      }
    },
    (err: Error) => {
      if (!attempt.settled) attempt.error(err);
    },
  );
  // RFC 9113 §8.7: a stream refused (REFUSED_STREAM, or past a GOAWAY's last stream) was not
  // processed, so it is safe to try once more, on a new session.
  const retry = (session: Session): boolean => {
    if (retries === 0 || attempt.settled) return false;
    session.retire();
    upgradeHttp2(request, attempt, fallback, retries - 1);
    return true;
  };
}

function openStream(
  session: Session,
  request: Http2Request,
  authority: string,
  attempt: Attempt,
  retry: (session: Session) => boolean,
): ClientHttp2Stream {
  const { target } = request;
  const headers: OutgoingHttpHeaders = {
    ':method': 'CONNECT',
    ':protocol': 'websocket',
    ':scheme': target.protocol === 'wss:' || target.protocol === 'https:' ? 'https' : 'http',
    ':path': `${target.pathname}${target.search}`,
    ':authority': authority,
  };
  for (const [name, value] of request.headers) {
    if (notForHttp2.has(name)) continue;
    // RFC 9113 §8.2.2: connection-specific fields are left out, as an intermediary translating to
    // HTTP/2 must; TE only when it is "trailers". (Node's request() would throw for them.)
    if (isConnectionSpecific(name) && !(name === 'te' && value.toLowerCase() === 'trailers')) continue;
    headers[name] = value;
  }
  attempt.expecting = '200 (RFC 8441 §5)';
  const stream = session.http2.request(headers, { endStream: false });
  session.track(stream);
  const onResponse = (h: IncomingHttpHeaders): void => {
    const status = Number(h[':status']);
    const fields = responseHeaders(h);
    if (status !== 200) return attempt.response(status, fields);
    // The WebSocket starts after the 200: the Conn takes the stream over.
    detach();
    stream.pause();
    attempt.established(fields, stream, streamTransport(stream, false));
  };
  const onData = (chunk: Buffer): void => attempt.data(chunk);
  const onEnd = (): void => {
    attempt.end();
    stream.close(constants.NGHTTP2_NO_ERROR);
  };
  const lost = (err: Error): void => {
    detach();
    if (!(refused(stream) && retry(session))) attempt.error(err);
  };
  const onError = (err: Error): void => lost(err);
  const onClose = (): void => lost(new Error(`the HTTP/2 stream closed before a response (code ${stream.rstCode})`));
  const detach = (): void => {
    stream.off('response', onResponse);
    stream.off('data', onData);
    stream.off('end', onEnd);
    stream.off('error', onError);
    stream.off('close', onClose);
  };
  stream.on('response', onResponse);
  stream.on('data', onData);
  stream.on('end', onEnd);
  stream.on('error', onError);
  stream.on('close', onClose);
  return stream;
}

function refused(stream: ClientHttp2Stream): boolean {
  return stream.rstCode === constants.NGHTTP2_REFUSED_STREAM;
}

function responseHeaders(h: IncomingHttpHeaders): Fields {
  const headers = new Fields();
  for (const [name, value] of Object.entries(h)) {
    if (name.startsWith(':') || value === undefined) continue;
    for (const one of Array.isArray(value) ? value : [value]) headers.append(name, one);
  }
  return headers;
}
