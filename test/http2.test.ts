/**
 * WebSocket over HTTP/2 (RFC 8441), both roles against each other: over TLS
 * (a certificate made for this run) and cleartext h2c, with and without
 * compression, many Conns on one session, refusals, resets and GOAWAY, and
 * the fallback to HTTP/1.1.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2, { constants } from 'node:http2';
import { after, before, describe, it } from 'node:test';
import { MessageType, type Conn } from '../src/conn.js';
import { dial, type DialOptions } from '../src/dial.js';
import { ClosedError, HandshakeError } from '../src/errors.js';
import { startH2Server, type H2TestServer } from './helpers/h2-server.js';
import { leakCheck } from './helpers/leak.js';
import { makeTestCert, type TestCert } from './helpers/tls-cert.js';

const checkLeaks = leakCheck();
let cert: TestCert | undefined;
let tlsSkip: string | false = false;
const servers = new Set<H2TestServer>();
const clients = new Set<Conn>();

before(async () => {
  const made = await makeTestCert();
  if (typeof made === 'string') tlsSkip = made;
  else cert = made;
});

after(async () => {
  for (const conn of clients) conn.closeNow();
  for (const server of servers) await server.close();
  await checkLeaks();
});

async function server(options: Parameters<typeof startH2Server>[0] = {}): Promise<H2TestServer> {
  const started = await startH2Server(options);
  servers.add(started);
  return started;
}

/** One `tls` object for the run, so that dials share sessions (the pool keys on it). */
let tlsOptions: NonNullable<DialOptions['tls']> | undefined;
function clientTls(): NonNullable<DialOptions['tls']> {
  tlsOptions ??= { ca: cert!.cert };
  return tlsOptions;
}

async function open(url: string, options: DialOptions = {}): Promise<Conn> {
  const conn = await dial(url, { http2IdleTimeout: 50, signal: AbortSignal.timeout(5000), ...options });
  clients.add(conn);
  return conn;
}

async function echoes(conn: Conn, text: string): Promise<void> {
  await conn.write(MessageType.Text, text);
  const msg = await conn.read({ signal: AbortSignal.timeout(5000) });
  assert.equal(new TextDecoder().decode(msg.data), text);
}

for (const transport of ['tls', 'h2c'] as const) {
  for (const compression of ['disabled', 'context-takeover', 'no-context-takeover'] as const) {
    describe(`RFC 8441 over ${transport}, compression ${compression}`, () => {
      it('echoes text and binary both ways and closes cleanly', { timeout: 15_000 }, async (t) => {
        if (transport === 'tls' && tlsSkip !== false) return t.skip(tlsSkip);
        const srv = await server({ cert: transport === 'tls' ? cert : undefined, accept: { compressionMode: compression, subprotocols: ['b', 'a'], readLimit: -1 } });
        const url = `${transport === 'tls' ? 'wss://localhost' : 'ws://127.0.0.1'}:${srv.port}/echo?x=1`;
        const next = srv.nextConn();
        const conn = await open(url, {
          http2: 'always',
          compressionMode: compression,
          subprotocols: ['a', 'b'],
          ...(transport === 'tls' && { tls: clientTls() }),
        });
        const peer = await next;
        assert.equal(srv.via.get(peer), 'h2', 'the server got it as an HTTP/2 stream');
        assert.equal(conn.subprotocol, 'b');
        // The addresses are the HTTP/2 session's.
        assert.equal(conn.remoteAddress, '127.0.0.1');
        assert.equal(conn.remotePort, srv.port);
        assert.equal(peer.localPort, srv.port);
        assert.equal(peer.remotePort, conn.localPort);
        assert.equal(peer.subprotocol, 'b');
        assert.equal(conn.extensions.startsWith('permessage-deflate'), compression !== 'disabled');
        await echoes(conn, 'hello over h2');
        const big = new Uint8Array(200_000).map((_, i) => i % 7);
        await conn.write(MessageType.Binary, big);
        conn.setReadLimit(-1);
        const back = await conn.read({ signal: AbortSignal.timeout(5000) });
        assert.equal(back.type, MessageType.Binary);
        assert.ok(Buffer.from(back.data).equals(big), "the 200 kB message came back intact");
        const info = await conn.close(1000, 'bye');
        assert.deepEqual(info, { code: 1000, reason: '', wasClean: true });
        assert.deepEqual(await peer.closed, { code: 1000, reason: 'bye', wasClean: true });
      });
    });
  }
}

describe('RFC 8441 sessions', () => {
  it('runs many Conns on one HTTP/2 session and closes it after the idle timeout', { timeout: 30_000 }, async (t) => {
    if (tlsSkip !== false) return t.skip(tlsSkip);
    const srv = await server({ cert });
    const url = `wss://localhost:${srv.port}/many`;
    const conns = await Promise.all(Array.from({ length: 50 }, () => open(url, { http2: 'always', tls: clientTls() })));
    assert.equal(srv.sessions.size, 1, 'all 50 WebSockets share one HTTP/2 session');
    await Promise.all(conns.map((conn, i) => echoes(conn, `conn ${i}`)));
    const [session] = srv.sessions;
    const sessionClosed = once(session!, 'close');
    await Promise.all(conns.map((conn) => conn.close()));
    // http2IdleTimeout 50 ms: the client closes the session once it has been idle that long.
    await sessionClosed;
  });

  it("opens another session when the server's SETTINGS_MAX_CONCURRENT_STREAMS is reached", { timeout: 15_000 }, async () => {
    const srv = await server({ maxConcurrentStreams: 2 });
    const url = `ws://127.0.0.1:${srv.port}/limit`;
    const conns = await Promise.all(Array.from({ length: 5 }, () => open(url, { http2: 'always' })));
    assert.equal(srv.sessions.size, 3, '5 WebSockets at 2 streams per session (RFC 9113 §6.5.2)');
    await Promise.all(conns.map((conn, i) => echoes(conn, `limited ${i}`)));
    await Promise.all(conns.map((conn) => conn.close()));
  });

  it('a WebSocket nobody reads pushes back on its own stream only (HTTP/2 flow control)', { timeout: 20_000 }, async () => {
    const stalled = new Set<string>();
    const srv = await server({
      accept: { readLimit: -1 },
      handler: async (conn, headers) => {
        if (headers?.[':path'] === '/stalled') {
          stalled.add('yes');
          await conn.closed; // never reads
          return;
        }
        for await (const msg of conn) await conn.write(msg.type, msg.data);
      },
    });
    const slow = await open(`ws://127.0.0.1:${srv.port}/stalled`, { http2: 'always' });
    const fast = await open(`ws://127.0.0.1:${srv.port}/echo`, { http2: 'always' });
    const chunk = new Uint8Array(64 * 1024);
    let written = 0;
    let blocked = false;
    // The server's Conn stops reading at its 64 KiB buffer, its stream's window closes, and our
    // writes start waiting for 'drain' after a bounded amount.
    while (written < 64 * 1024 * 1024) {
      const done = slow.write(MessageType.Binary, chunk).then(() => true);
      const settled = await Promise.race([done, new Promise<false>((resolve) => setTimeout(resolve, 200, false))]);
      if (!settled) {
        blocked = true;
        done.catch(() => {});
        break;
      }
      written += chunk.length;
    }
    assert.ok(blocked, `64 MiB were accepted without back-pressure (${written} bytes)`);
    assert.ok(written < 16 * 1024 * 1024, `back-pressure came late: ${written} bytes`);
    await echoes(fast, 'the other stream still flows');
    slow.closeNow();
  });

  it('broadcast() sends one prepared message to every HTTP/2 server Conn, compressed or not', { timeout: 15_000 }, async () => {
    const { broadcast } = await import('../src/broadcast.js');
    const { PreparedMessage } = await import('../src/protocol/prepared.js');
    const srv = await server({ accept: { compressionMode: 'context-takeover' }, handler: (conn) => conn.closed.then(() => {}) });
    const url = `ws://127.0.0.1:${srv.port}/room`;
    const accepted = Promise.all([srv.nextConn(), srv.nextConn(), srv.nextConn()]);
    const conns = await Promise.all([
      open(url, { http2: 'always', compressionMode: 'context-takeover' }),
      open(url, { http2: 'always' }),
      open(url, { http2: 'always', compressionMode: 'context-takeover' }),
    ]);
    await accepted;
    const text = '{"tick":1,"pad":"' + 'x'.repeat(500) + '"}';
    const result = broadcast(srv.conns, new PreparedMessage(MessageType.Text, text));
    assert.equal(result.sent + result.queued, conns.length);
    for (const conn of conns) {
      assert.equal(new TextDecoder().decode((await conn.read({ signal: AbortSignal.timeout(5000) })).data), text);
    }
  });

  it('a reset stream ends only its Conn, with 1006 and a ClosedError', { timeout: 15_000 }, async (t) => {
    if (tlsSkip !== false) return t.skip(tlsSkip);
    const srv = await server({ cert });
    const url = `wss://localhost:${srv.port}/rst`;
    const first = srv.nextConn();
    const a = await open(url, { http2: 'always', tls: clientTls() });
    const peerA = await first;
    const b = await open(url, { http2: 'always', tls: clientTls() });
    srv.streams.get(peerA)!.close(constants.NGHTTP2_INTERNAL_ERROR);
    const info = await a.closed;
    assert.equal(info.code, 1006);
    assert.equal(info.wasClean, false);
    assert.ok(info.error instanceof ClosedError);
    await assert.rejects(a.read(), ClosedError);
    await echoes(b, 'still here');
    assert.equal(srv.sessions.size, 1);
  });

  it('closeNow() on one side resets the stream (RST_STREAM CANCEL), not the session', { timeout: 15_000 }, async (t) => {
    if (tlsSkip !== false) return t.skip(tlsSkip);
    const srv = await server({ cert });
    const url = `wss://localhost:${srv.port}/drop`;
    const a = await open(url, { http2: 'always', tls: clientTls() });
    const b = await open(url, { http2: 'always', tls: clientTls() });
    const peers = [...srv.conns];
    a.closeNow();
    assert.equal((await a.closed).code, 1006);
    const peerInfo = await Promise.race(peers.map((peer) => peer.closed));
    assert.equal(peerInfo.code, 1006);
    await echoes(b, 'unaffected');
  });

  it('after a GOAWAY, open streams go on and new dials open a new session', { timeout: 15_000 }, async (t) => {
    if (tlsSkip !== false) return t.skip(tlsSkip);
    const srv = await server({ cert });
    const url = `wss://localhost:${srv.port}/goaway`;
    const a = await open(url, { http2: 'always', tls: clientTls() });
    const [session] = srv.sessions;
    // A graceful GOAWAY: streams up to the last one opened may finish (RFC 9113 §6.8). A dial racing
    // it is refused (REFUSED_STREAM) and retried once on a new session.
    session!.goaway(constants.NGHTTP2_NO_ERROR, 2 ** 31 - 1);
    const b = await open(url, { http2: 'always', tls: clientTls() });
    assert.equal(srv.sessions.size, 2, 'the second dial did not reuse the session that sent GOAWAY');
    await echoes(a, 'old session');
    await echoes(b, 'new session');
  });

  it('a destroyed session ends all of its Conns with 1006, and only those', { timeout: 15_000 }, async (t) => {
    if (tlsSkip !== false) return t.skip(tlsSkip);
    const srv = await server({ cert });
    const url = `wss://localhost:${srv.port}/session`;
    const a = await open(url, { http2: 'always', tls: clientTls() });
    const b = await open(url, { http2: 'always', tls: clientTls() });
    const [session] = srv.sessions;
    session!.destroy();
    for (const conn of [a, b]) {
      const info = await conn.closed;
      assert.equal(info.code, 1006);
      assert.ok(info.error instanceof ClosedError);
    }
    const c = await open(url, { http2: 'always', tls: clientTls() });
    await echoes(c, 'a fresh session');
  });
});

describe('RFC 8441 refusals', () => {
  it('a forbidden origin is refused 403 on that stream, with HandshakeError { status, headers, body }', { timeout: 10_000 }, async (t) => {
    if (tlsSkip !== false) return t.skip(tlsSkip);
    const srv = await server({ cert, accept: { originPatterns: ['good.test'] } });
    const url = `wss://localhost:${srv.port}/origin`;
    const err = await open(url, { http2: 'always', tls: clientTls(), headers: { origin: 'https://evil.test' } }).then(
      () => assert.fail('dial should have been refused'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof HandshakeError);
    assert.equal(err.status, 403);
    assert.match(err.body, /Origin is not allowed/);
    assert.equal(err.headers.get('content-type'), 'text/plain; charset=utf-8');
    const ok = await open(url, { http2: 'always', tls: clientTls(), headers: { origin: 'https://good.test' } });
    await echoes(ok, 'allowed');
    assert.equal(srv.sessions.size, 1, 'the refusal did not end the session');
  });

  it('answers a wrong version 426, another :protocol 501 and a plain CONNECT 400', { timeout: 10_000 }, async () => {
    const srv = await server({
      onStream: (stream, headers) => {
        import('../src/accept-http2.js').then(({ acceptHttp2 }) => acceptHttp2(stream, headers)).catch(() => {});
      },
    });
    const session = http2.connect(`http://127.0.0.1:${srv.port}`);
    session.on('error', () => {});
    await once(session, 'remoteSettings');
    const ask = async (headers: http2.OutgoingHttpHeaders): Promise<[number, http2.IncomingHttpHeaders]> => {
      const stream = session.request(headers, { endStream: false });
      const [response] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
      stream.close();
      return [Number(response[':status']), response];
    };
    const base = { ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': 'http', ':path': '/', ':authority': `127.0.0.1:${srv.port}` };
    const [version, versionHeaders] = await ask({ ...base, 'sec-websocket-version': '8' });
    assert.equal(version, 426);
    assert.equal(versionHeaders['sec-websocket-version'], '13');
    assert.equal(versionHeaders.connection, undefined, 'no HTTP/1.1 connection header over HTTP/2');
    assert.equal((await ask({ ...base, ':protocol': 'webtransport', 'sec-websocket-version': '13' }))[0], 501);
    assert.equal((await ask({ ...base, 'sec-websocket-version': '13', 'sec-websocket-protocol': 'a b' }))[0], 400);
    assert.equal((await ask({ ...base, 'sec-websocket-version': '13', 'sec-websocket-extensions': ';;' }))[0], 400);
    session.close();
  });

  it("http2: 'always' fails with HandshakeError status 0 when the server does not enable the extended CONNECT", { timeout: 10_000 }, async () => {
    const srv = await server({ connectProtocol: false });
    const err = await open(`ws://127.0.0.1:${srv.port}/`, { http2: 'always' }).then(
      () => assert.fail('dial should have failed'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof HandshakeError);
    assert.equal(err.status, 0);
    assert.match(err.message, /RFC 8441 §3/);
  });

  it('a connection failure rejects with HandshakeError status 0 and the network error as cause', { timeout: 10_000 }, async () => {
    const srv = await server();
    const port = srv.port;
    await srv.close();
    servers.delete(srv);
    const err = await open(`ws://127.0.0.1:${port}/`, { http2: 'always' }).catch((e: unknown) => e);
    assert.ok(err instanceof HandshakeError);
    assert.equal(err.status, 0);
    assert.equal((err.cause as { code?: string }).code, 'ECONNREFUSED');
  });

  it('handshakeTimeout bounds the wait for a server that never sends its SETTINGS', { timeout: 10_000 }, async () => {
    const { createServer } = await import('node:net');
    const sockets = new Set<import('node:net').Socket>();
    const silent = createServer((socket) => void sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as { port: number };
    try {
      const err = await open(`ws://127.0.0.1:${port}/`, { http2: 'always', handshakeTimeout: 300 }).catch((e: unknown) => e);
      assert.ok(err instanceof HandshakeError);
      assert.equal(err.status, 0);
      assert.equal((err.cause as Error).name, 'TimeoutError');
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('the signal bounds the handshake and rejects with signal.reason itself', { timeout: 10_000 }, async (t) => {
    if (tlsSkip !== false) return t.skip(tlsSkip);
    let streams = 0;
    const srv = await server({ cert, onStream: () => void streams++ }); // never answers
    const controller = new AbortController();
    const reason = new Error('gave up');
    const pending = dial(`wss://localhost:${srv.port}/`, { http2: 'always', tls: clientTls(), signal: controller.signal, http2IdleTimeout: 50 });
    await once(srv.server, 'stream');
    controller.abort(reason);
    await assert.rejects(pending, (err) => err === reason);
    assert.equal(streams, 1);
  });
});

describe("http2: 'auto'", () => {
  it('uses the extended CONNECT when the server enables it', { timeout: 10_000 }, async (t) => {
    if (tlsSkip !== false) return t.skip(tlsSkip);
    const srv = await server({ cert });
    const next = srv.nextConn();
    const conn = await open(`wss://localhost:${srv.port}/auto`, { http2: 'auto', tls: clientTls() });
    assert.equal(srv.via.get(await next), 'h2');
    await echoes(conn, 'auto h2');
  });

  it('falls back to HTTP/1.1 when the server speaks HTTP/2 without RFC 8441', { timeout: 10_000 }, async (t) => {
    if (tlsSkip !== false) return t.skip(tlsSkip);
    const srv = await server({ cert, connectProtocol: false });
    const next = srv.nextConn();
    const conn = await open(`wss://localhost:${srv.port}/fallback`, { http2: 'auto', tls: { ca: cert!.cert } });
    assert.equal(srv.via.get(await next), 'http/1.1');
    await echoes(conn, 'auto fell back');
  });

  it('falls back to HTTP/1.1 when ALPN picks http/1.1, and uses HTTP/1.1 for ws:', { timeout: 10_000 }, async (t) => {
    if (tlsSkip !== false) return t.skip(tlsSkip);
    const { createServer } = await import('node:https');
    const { accept } = await import('../src/accept.js');
    const https = createServer({ ...cert! });
    const accepted: Conn[] = [];
    https.on('upgrade', (req, socket, head) => {
      accept(req, socket, head).then((c) => {
        accepted.push(c);
        void (async () => {
          for await (const m of c) await c.write(m.type, m.data);
        })().catch(() => {});
      }, () => {});
    });
    await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve));
    const port = (https.address() as { port: number }).port;
    try {
      const conn = await open(`wss://localhost:${port}/alpn`, { http2: 'auto', tls: { ca: cert!.cert } });
      await echoes(conn, 'over http/1.1');
      assert.equal(accepted.length, 1);
      await conn.close();
    } finally {
      for (const c of accepted) c.closeNow();
      await new Promise((resolve) => https.close(resolve));
    }
  });
});

describe('TLS and pool keys (review regressions)', () => {
  it('a dial with other tls options does not resume an earlier dial\'s TLS session', { timeout: 15_000 }, async (t) => {
    if (tlsSkip !== false) return t.skip(tlsSkip);
    const srv = await server({ cert });
    const reused: boolean[] = [];
    srv.server.on('secureConnection', (socket: import('node:tls').TLSSocket) => reused.push(socket.isSessionReused()));
    const dialOnce = async (tls: NonNullable<DialOptions['tls']>): Promise<void> => {
      const next = srv.nextConn();
      const conn = await open(`wss://localhost:${srv.port}/`, { http2: 'never', tls });
      await next;
      // TLS 1.3 session tickets come after the handshake: one echo lets the client keep one.
      await echoes(conn, 'x');
      await conn.close();
    };
    const a = { ca: cert!.cert };
    await dialOnce(a);
    await dialOnce(a);
    await dialOnce({ ca: cert!.cert });
    assert.deepEqual(reused, [false, true, false], 'resumed only with the same tls options');
  });

  it('a bad host over HTTP/2 rejects the dial instead of throwing in a socket listener', { timeout: 10_000 }, async () => {
    const srv = await server();
    await assert.rejects(dial(`ws://127.0.0.1:${srv.port}/`, { http2: 'always', host: 'a b', signal: AbortSignal.timeout(5000) }));
  });

  it('sessions are not shared across host values: each authority gets its certificate checked', { timeout: 10_000 }, async (t) => {
    if (tlsSkip !== false) return t.skip(tlsSkip);
    const srv = await server({ cert });
    const tls = clientTls();
    await open(`wss://127.0.0.1:${srv.port}/`, { http2: 'always', tls, host: `localhost:${srv.port}` });
    await assert.rejects(open(`wss://127.0.0.1:${srv.port}/`, { http2: 'always', tls, host: `evil.test:${srv.port}` }));
  });

  it('tls.servername is the SNI sent over HTTP/2 too', { timeout: 10_000 }, async (t) => {
    if (tlsSkip !== false) return t.skip(tlsSkip);
    const srv = await server({ cert });
    const names: string[] = [];
    srv.server.on('secureConnection', (socket: import('node:tls').TLSSocket) => names.push(String((socket as { servername?: unknown }).servername)));
    await open(`wss://localhost:${srv.port}/`, { http2: 'always', tls: { ca: cert!.cert, servername: 'localhost.' } }).catch(() => {});
    assert.deepEqual(names, ['localhost.']);
  });

  it("'auto' still falls back when an 'always' dial to the same HTTP/1.1-only server starts at the same time", { timeout: 10_000 }, async (t) => {
    if (tlsSkip !== false) return t.skip(tlsSkip);
    const https = await import('node:https');
    const { accept } = await import('../src/accept.js');
    const h1 = https.createServer({ ...cert! });
    h1.on('upgrade', (req, socket, head) => void accept(req, socket, head).then((c) => c.closeRead(), () => {}));
    h1.listen(0, '127.0.0.1');
    await once(h1, 'listening');
    try {
      const port = (h1.address() as import('node:net').AddressInfo).port;
      const tls = { ca: cert!.cert };
      const [always, auto] = await Promise.allSettled([
        dial(`wss://localhost:${port}/`, { http2: 'always', tls, signal: AbortSignal.timeout(5000) }),
        dial(`wss://localhost:${port}/`, { http2: 'auto', tls, signal: AbortSignal.timeout(5000) }),
      ]);
      assert.equal(always.status, 'rejected');
      assert.equal(auto.status, 'fulfilled', String((auto as PromiseRejectedResult).reason));
      await (auto as PromiseFulfilledResult<Conn>).value.close();
    } finally {
      h1.closeAllConnections();
      h1.close();
    }
  });

  it('an aborted dial drops a session start nobody waits for any more', { timeout: 10_000 }, async () => {
    const net = await import('node:net');
    let sawClose!: () => void;
    const gone = new Promise<void>((resolve) => (sawClose = resolve));
    // A server that accepts TCP and never sends SETTINGS.
    const silent = net.createServer((socket) => socket.on('close', sawClose).resume());
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    try {
      const port = (silent.address() as import('node:net').AddressInfo).port;
      const controller = new AbortController();
      const connected = once(silent, 'connection');
      const dialing = dial(`ws://127.0.0.1:${port}/`, { http2: 'always', signal: controller.signal });
      await connected;
      const reason = new Error('gave up');
      controller.abort(reason);
      await assert.rejects(dialing, (err) => err === reason);
      // The half-started connection goes with the last dial that wanted it, not 30 s later.
      await gone;
    } finally {
      silent.close();
    }
  });
});
