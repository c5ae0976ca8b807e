/**
 * The client's HTTP/2 sessions, shared by the dials to one origin (RFC 8441
 * §3): one TCP/TLS connection per origin and TLS options, kept open for an
 * idle timeout after its last stream closed.
 * @module
 */
import http2, { type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import net from 'node:net';
import tls, { type ConnectionOptions } from 'node:tls';
import { tlsKey } from './tls-key.js';

/** TLS settings for the connections `dial()` opens itself: node:tls connect options but the address and ALPN, which dial sets. */
export type TlsOptions = Omit<ConnectionOptions, 'host' | 'port' | 'socket' | 'ALPNProtocols' | 'path'>;

/** How a dial wants HTTP/2: `'auto'` may fall back to HTTP/1.1, `'always'` may not. */
export type Http2Mode = 'auto' | 'always';

/** What asking for a session found: one that takes extended CONNECTs, or that HTTP/1.1 is the way in. */
export type SessionResult = { session: Session } | { fallback: string };

/** One pooled HTTP/2 session and the WebSocket streams using it. */
export class Session {
  readonly http2: ClientHttp2Session;
  readonly #key: string;
  /** Streams open or reserved for a dial about to open one. */
  #streams = 0;
  #timer: NodeJS.Timeout | undefined;
  #retired = false;
  idleTimeout: number;

  constructor(key: string, session: ClientHttp2Session, idleTimeout: number) {
    this.#key = key;
    this.http2 = session;
    this.idleTimeout = idleTimeout;
  }

  /** Whether new streams may be opened on it: open, not past a GOAWAY, and under the server's stream limit. */
  get available(): boolean {
    if (this.#retired || this.http2.closed || this.http2.destroyed) return false;
    // RFC 9113 §6.5.2: SETTINGS_MAX_CONCURRENT_STREAMS bounds the streams we may open.
    return this.#streams < (this.http2.remoteSettings.maxConcurrentStreams ?? Infinity);
  }

  /** Holds a stream's place (so that concurrent dials do not overfill the session) and keeps it referenced. */
  reserve(): void {
    this.#streams++;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.http2.ref();
  }

  /** Gives back a place reserved by a dial that opened no stream after all. */
  unreserve(): void {
    if (--this.#streams === 0) this.#idle();
  }

  /** Ties a reserved place to `stream`: it is given back when the stream closes. */
  track(stream: ClientHttp2Stream): void {
    stream.once('close', () => this.unreserve());
  }

  /** No stream is open: let the process exit, and close the session after the idle timeout. */
  #idle(): void {
    if (this.http2.destroyed || this.#timer !== undefined) return;
    this.http2.unref();
    this.#timer = setTimeout(() => this.retire(), this.idleTimeout);
    this.#timer.unref();
  }

  /** Takes the session out of the pool; it closes once its open streams have. */
  retire(): void {
    this.#retired = true;
    const list = pool.get(this.#key);
    const at = list?.indexOf(this) ?? -1;
    if (at >= 0) list!.splice(at, 1);
    if (list?.length === 0) pool.delete(this.#key);
    clearTimeout(this.#timer);
    if (!this.http2.closed) this.http2.close();
  }

  /** Starts the idle clock for a session no dial is using yet. */
  idleIfUnused(): void {
    if (this.#streams === 0) this.#idle();
  }
}

/** How long a new session may take to connect and send its SETTINGS before it is abandoned. */
const startTimeoutMs = 30_000;

const pool = new Map<string, Session[]>();
/** A session still starting, shared by the dials that wait for it. */
interface Start {
  readonly promise: Promise<SessionResult>;
  /** Dials waiting for it; when the last gives up, the start is abandoned. */
  waiters: number;
  /** Abandons the start: its connection is dropped. */
  cancel(): void;
}

/** Sessions still starting (by pool key and mode, since the mode decides the ALPN offer), so that concurrent dials share one. */
const starting = new Map<string, Start>();
/** Origins found to speak no RFC 8441, remembered for an idle timeout so `'auto'` goes straight to HTTP/1.1. */
const noExtendedConnect = new Map<string, string>();

/**
 * The pool key: dials share a session when the origin, the authority (the
 * `host` option: the certificate was checked for it, RFC 9113 §9.1.1) and
 * the TLS options object are the same.
 */
function keyOf(target: URL, authority: string, options: TlsOptions | undefined): string {
  return `${target.origin} ${authority}${tlsKey(options)}`;
}

/**
 * Finds a session for `target` with room for one more stream, or starts
 * one and waits until the server's SETTINGS have said whether it takes
 * extended CONNECTs. A session found is returned with a place reserved:
 * the caller must `track()` a stream or `unreserve()`.
 */
export async function sessionFor(
  target: URL,
  authority: string,
  options: TlsOptions | undefined,
  mode: Http2Mode,
  idleTimeout: number,
  gaveUp: AbortSignal,
): Promise<SessionResult> {
  const key = keyOf(target, authority, options);
  for (;;) {
    const free = pool.get(key)?.find((session) => session.available);
    if (free !== undefined) {
      free.idleTimeout = idleTimeout;
      free.reserve();
      return { session: free };
    }
    const known = noExtendedConnect.get(key);
    if (known !== undefined && mode === 'auto') return { fallback: known };
    const startKey = `${key} ${mode}`;
    let pending = starting.get(startKey);
    if (pending === undefined) {
      pending = start(key, target, authority, options, mode, idleTimeout);
      starting.set(startKey, pending);
      const done = (): void => void starting.delete(startKey);
      pending.promise.then(done, done);
    }
    const result = await waitFor(pending, gaveUp);
    if ('fallback' in result) return result;
    // The new session is in the pool; other dials may have filled it first: look again.
  }
}

/** Waits for a start as one of its dials; when the last of them gives up, the start is abandoned. */
async function waitFor(pending: Start, gaveUp: AbortSignal): Promise<SessionResult> {
  if (gaveUp.aborted) throw gaveUp.reason;
  pending.waiters++;
  const leave = (): void => {
    if (--pending.waiters === 0) pending.cancel();
  };
  gaveUp.addEventListener('abort', leave, { once: true });
  try {
    return await pending.promise;
  } finally {
    if (!gaveUp.aborted) {
      gaveUp.removeEventListener('abort', leave);
      pending.waiters--;
    }
  }
}

function start(
  key: string,
  target: URL,
  authority: string,
  options: TlsOptions | undefined,
  mode: Http2Mode,
  idleTimeout: number,
): Start {
  let socket: net.Socket | undefined;
  // Dials give up by their own signal and timeout; the connection they leave is bounded too.
  const timer = setTimeout(() => {
    socket?.destroy(new Error(`the server sent no HTTP/2 SETTINGS within ${startTimeoutMs} ms`));
  }, startTimeoutMs);
  timer.unref();
  const started = new Promise<SessionResult>((resolve, reject) => {
    const secure = target.protocol === 'wss:' || target.protocol === 'https:';
    const fallback = (why: string): void => {
      noExtendedConnect.set(key, why);
      const forget = setTimeout(() => noExtendedConnect.delete(key), idleTimeout);
      forget.unref();
      resolve({ fallback: why });
    };
    const connected = (socket: net.Socket | tls.TLSSocket): void => {
      // The URL only names the origin (each request sends its own :authority); built from the
      // parsed target, it cannot throw inside this socket listener.
      const session = http2.connect(`${secure ? 'https' : 'http'}://${target.host}`, { createConnection: () => socket });
      settle(key, session, idleTimeout, resolve, reject, fallback);
    };
    if (!secure) {
      // Cleartext HTTP/2 only with prior knowledge (RFC 9113 §3.3): mode 'always'.
      const plain = net.connect(endpoint(target));
      socket = plain;
      plain.on('error', reject);
      plain.once('connect', () => {
        plain.off('error', reject);
        connected(plain);
      });
      return;
    }
    const alpn = mode === 'auto' ? ['h2', 'http/1.1'] : ['h2'];
    const servername = serverName(authority);
    const sni = options?.servername ?? servername;
    const secured = tls.connect({ ...options, ...endpoint(target), ALPNProtocols: alpn, ...(sni && { servername: sni }) });
    socket = secured;
    secured.on('error', reject);
    secured.once('secureConnect', () => {
      secured.off('error', reject);
      if (secured.alpnProtocol === 'h2') return connected(secured);
      secured.destroy();
      // RFC 7301: the server chose HTTP/1.1 (or nothing); only 'auto' may use it.
      if (mode === 'auto') fallback('the server chose HTTP/1.1 in ALPN');
      else reject(new Error(`the server does not speak HTTP/2 (ALPN chose ${secured.alpnProtocol || 'nothing'})`));
    });
  });
  return {
    promise: started.finally(() => clearTimeout(timer)),
    waiters: 0,
    cancel: () => socket?.destroy(new Error('every dial waiting for this HTTP/2 session gave up')),
  };
}

/** Waits for the server's first SETTINGS: RFC 8441 §3 lets us CONNECT only if it sent ENABLE_CONNECT_PROTOCOL=1. */
function settle(
  key: string,
  http2Session: ClientHttp2Session,
  idleTimeout: number,
  resolve: (result: SessionResult) => void,
  reject: (err: Error) => void,
  fallback: (why: string) => void,
): void {
  const session = new Session(key, http2Session, idleTimeout);
  const onError = (err: Error): void => reject(err);
  const onClose = (): void => reject(new Error('the HTTP/2 session closed before its SETTINGS arrived'));
  // Session errors end its streams (and so their Conns); unheard, they would crash the process.
  http2Session.on('error', () => {});
  http2Session.once('error', onError);
  http2Session.once('close', onClose);
  http2Session.once('remoteSettings', (settings) => {
    http2Session.off('error', onError);
    http2Session.off('close', onClose);
    http2Session.once('goaway', () => session.retire());
    http2Session.once('close', () => session.retire());
    if (settings.enableConnectProtocol !== true) {
      http2Session.close();
      fallback('the server does not enable the extended CONNECT (RFC 8441 §3)');
      return;
    }
    if (settings.maxConcurrentStreams === 0) {
      http2Session.close();
      reject(new Error('the server allows no streams on its HTTP/2 session (SETTINGS_MAX_CONCURRENT_STREAMS 0)'));
      return;
    }
    pool.set(key, [...(pool.get(key) ?? []), session]);
    session.idleIfUnused();
    resolve({ session });
  });
}

function endpoint(target: URL): { host: string; port: number } {
  const secure = target.protocol === 'wss:' || target.protocol === 'https:';
  const host = target.hostname.replace(/^\[(.*)\]$/, '$1');
  return { host, port: target.port === '' ? (secure ? 443 : 80) : Number(target.port) };
}

function serverName(authority: string): string {
  const name = authority.startsWith('[') ? authority.slice(1, authority.indexOf(']')) : authority.replace(/:\d*$/, '');
  return net.isIP(name) === 0 ? name : '';
}
