import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net';
import type { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { Agent, Dispatcher } from 'undici';
import { WebSocketServer } from 'ws';
import { MessageType, type Conn } from '../src/conn.js';
import { dial, type DialOptions } from '../src/dial.js';
import { HandshakeError } from '../src/errors.js';
import { deferred } from '../src/internal/deferred.js';
import { runScript } from './helpers/script.js';
import { leakCheck } from './helpers/leak.js';
import { tlsCert, tlsKey } from './helpers/tls-cert.js';
import { acceptFor, encodeFrame, text } from './helpers/raw.js';

const checkLeaks = leakCheck();

// --- servers -------------------------------------------------------------
// `raw` (http) and `rawTls` (https) answer upgrades with whatever the route
// registered for the request's path writes on the socket; `wss` is a real
// peer (npm ws) that echoes, choosing subprotocol "b" on /proto.

type Route = (req: IncomingMessage, socket: Duplex) => void;
const routes = new Map<string, Route>();
const serverSockets = new Set<Duplex>();
let nextRoute = 0;
let raw: Server;
let rawTls: NetServer;
let rawPort = 0;
let tlsPort = 0;
let wss: WebSocketServer;
let wsPort = 0;
let agent: Agent;
let tlsAgent: Agent;

/** Registers `handler` for a fresh path and returns the path. */
function route(handler: Route): string {
  const path = `/r${++nextRoute}`;
  routes.set(path, handler);
  return path;
}

function onUpgrade(req: IncomingMessage, socket: Duplex): void {
  serverSockets.add(socket);
  socket.on('error', () => {});
  socket.on('end', () => socket.destroy());
  socket.on('close', () => serverSockets.delete(socket));
  const handler = routes.get(new URL(req.url ?? '/', 'http://x').pathname);
  if (handler === undefined) socket.destroy();
  else handler(req, socket);
}

/** Resolves when `socket` has closed: the client dropped the connection. */
function gone(socket: Duplex): Promise<void> {
  if (socket.destroyed) return Promise.resolve();
  return new Promise((resolve) => socket.once('close', () => resolve()));
}

/** The server side of the next TCP connection to the raw server, whether or not a request arrives on it. */
function nextConnection(): Promise<Duplex> {
  return new Promise((resolve) => raw.once('connection', resolve));
}

/** A 101 response head that answers `req` correctly, plus `extra` header lines. */
function switching(req: IncomingMessage, extra: string[] = []): string {
  const accept = acceptFor(req.headers['sec-websocket-key'] as string);
  const lines = ['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade'];
  return [...lines, `Sec-WebSocket-Accept: ${accept}`, ...extra, '', ''].join('\r\n');
}

/** A route answering with a valid 101 and `extra` headers; resolves with the request's headers. */
function acceptingRoute(extra: string[] = []): { path: string; request: Promise<IncomingMessage> } {
  const request = deferred<IncomingMessage>();
  const path = route((req, socket) => {
    socket.write(switching(req, extra));
    request.resolve(req);
  });
  return { path, request: request.promise };
}

/** A route that answers nothing; resolves with the server side of the connection. */
function silentRoute(): { path: string; socket: Promise<Duplex> } {
  const socket = deferred<Duplex>();
  return { path: route((_req, s) => socket.resolve(s)), socket: socket.promise };
}

async function listen(server: NetServer): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

before(async () => {
  raw = createServer((_req, res) => res.writeHead(426).end());
  raw.on('upgrade', onUpgrade);
  rawPort = await listen(raw);
  rawTls = createHttpsServer({ key: tlsKey, cert: tlsCert });
  rawTls.on('upgrade', onUpgrade);
  tlsPort = await listen(rawTls);
  wss = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    handleProtocols: (offered, req) => (req.url === '/proto' && offered.has('b') ? 'b' : false),
  });
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  await once(wss, 'listening');
  wsPort = (wss.address() as AddressInfo).port;
  agent = new Agent();
  tlsAgent = new Agent({ connect: { ca: tlsCert } });
});

after(async () => {
  for (const socket of serverSockets) socket.destroy();
  for (const client of wss.clients) client.terminate();
  await new Promise<void>((resolve) => wss.close(() => resolve()));
  raw.close();
  rawTls.close();
  await Promise.all([once(raw, 'close'), once(rawTls, 'close'), agent.close(), tlsAgent.close()]);
  await checkLeaks();
});

const rawUrl = (path: string): string => `ws://127.0.0.1:${rawPort}${path}`;
const wsUrl = (path: string): string => `ws://127.0.0.1:${wsPort}${path}`;

/** dial() through the file's agent, expected to fail; returns what it rejected with. */
async function dialFails(url: string, opts: DialOptions = {}): Promise<unknown> {
  try {
    const conn = await dial(url, { dispatcher: agent, ...opts });
    conn.closeNow();
  } catch (err) {
    return err;
  }
  assert.fail('dial() resolved');
}

/** dialFails() narrowed to a HandshakeError. */
async function handshakeFails(url: string, opts: DialOptions = {}): Promise<HandshakeError> {
  const err = await dialFails(url, opts);
  assert.ok(err instanceof HandshakeError, `expected a HandshakeError, got ${String(err)}`);
  return err;
}

async function echo(conn: Conn, message: string): Promise<string> {
  await conn.write(MessageType.Text, message);
  const { type, data } = await conn.read({ signal: AbortSignal.timeout(3000) });
  assert.equal(type, MessageType.Text);
  return new TextDecoder().decode(data);
}

// --- tests -----------------------------------------------------------------

describe('dial: with a real peer (npm ws)', { timeout: 20_000 }, () => {
  it('opens a connection that echoes, then closes cleanly', { timeout: 5000 }, async () => {
    const conn = await dial(wsUrl('/echo'), { dispatcher: agent });
    assert.equal(conn.subprotocol, '');
    assert.equal(conn.extensions, '');
    assert.equal(await echo(conn, 'hello'), 'hello');
    const info = await conn.close(1000, 'bye');
    assert.equal(info.wasClean, true);
  });

  it("uses undici's global dispatcher when none is given", { timeout: 5000 }, async () => {
    const conn = await dial(wsUrl('/echo'));
    assert.equal(await echo(conn, 'global'), 'global');
    await conn.close(1000);
  });

  it('negotiates the subprotocol the server picks', { timeout: 5000 }, async () => {
    const conn = await dial(wsUrl('/proto'), { dispatcher: agent, subprotocols: ['a', 'b'] });
    assert.equal(conn.subprotocol, 'b');
    assert.equal(await echo(conn, 'x'), 'x');
    await conn.close(1000);
  });

  it("proceeds with '' when the server ignores the offered subprotocols", { timeout: 5000 }, async () => {
    const conn = await dial(wsUrl('/echo'), { dispatcher: agent, subprotocols: ['a', 'b'] });
    assert.equal(conn.subprotocol, '');
    assert.equal(await echo(conn, 'y'), 'y');
    await conn.close(1000);
  });

  it('accepts the http: form of the URL', { timeout: 5000 }, async () => {
    const conn = await dial(`http://127.0.0.1:${wsPort}/echo`, { dispatcher: agent });
    assert.equal(await echo(conn, 'over http:'), 'over http:');
    await conn.close(1000);
  });

  it('accepts a URL object', { timeout: 5000 }, async () => {
    const conn = await dial(new URL(wsUrl('/echo')), { dispatcher: agent });
    assert.equal(await echo(conn, 'url'), 'url');
    await conn.close(1000);
  });
});

describe('dial: bytes after the 101', { timeout: 20_000 }, () => {
  it('keeps frames the server sent in the same write as its 101 for the first read', { timeout: 5000 }, async () => {
    const path = route((req, socket) => {
      const frames = [encodeFrame(text('early'), false), encodeFrame(text('bird'), false)];
      socket.write(Buffer.concat([Buffer.from(switching(req), 'latin1'), ...frames]));
    });
    const conn = await dial(rawUrl(path), { dispatcher: agent });
    const first = await conn.read({ signal: AbortSignal.timeout(3000) });
    const second = await conn.read({ signal: AbortSignal.timeout(3000) });
    assert.deepEqual([first, second].map((m) => new TextDecoder().decode(m.data)), ['early', 'bird']);
    conn.closeNow();
    await conn.closed;
  });

  it('works over TLS with the wss: and https: forms', { timeout: 5000 }, async () => {
    const path = route((req, socket) => {
      socket.write(Buffer.concat([Buffer.from(switching(req), 'latin1'), encodeFrame(text('secure'), false)]));
    });
    for (const scheme of ['wss', 'https']) {
      const conn = await dial(`${scheme}://127.0.0.1:${tlsPort}${path}`, { dispatcher: tlsAgent });
      const { data } = await conn.read({ signal: AbortSignal.timeout(3000) });
      assert.equal(new TextDecoder().decode(data), 'secure', scheme);
      conn.closeNow();
      await conn.closed;
    }
  });
});

describe('dial: refused upgrades', { timeout: 20_000 }, () => {
  it('rejects a non-101 with its status, headers and the first KiB of its body', { timeout: 5000 }, async () => {
    const body = Array.from({ length: 5 * 1024 }, (_, i) => String.fromCharCode(97 + (i % 26))).join('');
    const path = route((_req, socket) => {
      socket.write(
        `HTTP/1.1 401 Unauthorized\r\nContent-Length: ${body.length}\r\nX-Reason: token expired\r\n` +
          `WWW-Authenticate: Bearer\r\n\r\n${body}`,
      );
    });
    const err = await handshakeFails(rawUrl(path));
    assert.equal(err.status, 401);
    assert.ok(err.headers instanceof Headers);
    assert.equal(err.headers.get('x-reason'), 'token expired');
    assert.equal(err.headers.get('www-authenticate'), 'Bearer');
    assert.equal(err.body, body.slice(0, 1024));
    assert.match(err.message, /401/);
  });

  it('keeps a short body whole', { timeout: 5000 }, async () => {
    const path = route((_req, socket) => {
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 10\r\nConnection: close\r\n\r\nforbidden\n');
    });
    const err = await handshakeFails(rawUrl(path));
    assert.equal(err.status, 403);
    assert.equal(err.body, 'forbidden\n');
  });

  it('stops reading after 1 KiB and drops the connection, without waiting for the rest', { timeout: 5000 }, async () => {
    const { path, socket } = silentRoute();
    const served = socket.then((s) => {
      // 'a' then two-byte characters: the 1024th byte is the first half of one.
      s.write(`HTTP/1.1 500 Oops\r\nContent-Length: 1000000\r\n\r\na${'é'.repeat(1500)}`);
      return s;
    });
    const err = await handshakeFails(rawUrl(path));
    assert.equal(err.status, 500);
    assert.equal(err.body, `a${'é'.repeat(511)}`, 'the half character at the cut is left out');
    await gone(await served);
  });

  it('reports the partial body when the server drops the connection mid-body', { timeout: 5000 }, async () => {
    const path = route((_req, socket) => {
      socket.end('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 100\r\n\r\nupstream');
    });
    const err = await handshakeFails(rawUrl(path));
    assert.equal(err.status, 502);
    assert.equal(err.body, 'upstream');
    assert.ok(err.cause instanceof Error);
  });

  it('waits past interim 1xx responses for the final one', { timeout: 5000 }, async () => {
    const path = route((req, socket) => {
      socket.write(`HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n${switching(req)}`);
    });
    const conn = await dial(rawUrl(path), { dispatcher: agent });
    conn.closeNow();
    await conn.closed;
    const cut = route((_req, socket) => socket.end('HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n'));
    const err = await handshakeFails(rawUrl(cut));
    assert.equal(err.status, 0, 'an interim response is not the answer');
  });
});

describe('dial: invalid 101 responses (RFC 6455 §4.1)', { timeout: 20_000 }, () => {
  /** A route answering with a 101 built from `lines`; resolves with the server socket. */
  function answering(build: (req: IncomingMessage) => string): { path: string; socket: Promise<Duplex> } {
    const socket = deferred<Duplex>();
    const path = route((req, s) => {
      s.write(build(req));
      socket.resolve(s);
    });
    return { path, socket: socket.promise };
  }

  const cases: Array<{ name: string; build: (req: IncomingMessage) => string; opts?: DialOptions; match: RegExp }> = [
    {
      name: 'a wrong Sec-WebSocket-Accept',
      build: () =>
        'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${acceptFor('dGhlIHNhbXBsZSBub25jZQ==')}\r\n\r\n`,
      match: /Sec-WebSocket-Accept/,
    },
    {
      name: 'no Sec-WebSocket-Accept',
      build: () => 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
      match: /Sec-WebSocket-Accept/,
    },
    {
      name: 'an Upgrade other than websocket',
      build: (req) => switching(req).replace('Upgrade: websocket', 'Upgrade: h2c'),
      match: /Upgrade: websocket/,
    },
    {
      name: 'no Upgrade header',
      build: (req) => switching(req).replace('Upgrade: websocket\r\n', ''),
      match: /Upgrade: websocket/,
    },
    {
      name: 'no Connection header',
      build: (req) => switching(req).replace('Connection: Upgrade\r\n', ''),
      match: /Connection: Upgrade/,
    },
    {
      name: 'a subprotocol that was not offered',
      build: (req) => switching(req, ['Sec-WebSocket-Protocol: c']),
      opts: { subprotocols: ['a', 'b'] },
      match: /subprotocol "c"/,
    },
    {
      name: 'a subprotocol when none was offered',
      build: (req) => switching(req, ['Sec-WebSocket-Protocol: a']),
      match: /subprotocol "a"/,
    },
    {
      name: 'an extension when none was offered',
      build: (req) => switching(req, ['Sec-WebSocket-Extensions: permessage-deflate']),
      match: /permessage-deflate/,
    },
  ];

  for (const { name, build, opts, match } of cases) {
    it(`fails on ${name}, with status 101, and drops the connection`, { timeout: 5000 }, async () => {
      const { path, socket } = answering(build);
      const err = await handshakeFails(rawUrl(path), opts);
      assert.equal(err.status, 101);
      assert.match(err.message, match);
      await gone(await socket);
    });
  }

  it('hands the response headers over with the error', { timeout: 5000 }, async () => {
    const { path } = answering((req) => switching(req, ['Sec-WebSocket-Protocol: zz', 'X-Server: test']));
    const err = await handshakeFails(rawUrl(path));
    assert.equal(err.headers.get('x-server'), 'test');
    assert.equal(err.headers.get('sec-websocket-protocol'), 'zz');
  });
});

describe('dial: abort and timeouts', { timeout: 20_000 }, () => {
  it('rejects with the reason of an AbortSignal.timeout and drops the connection', { timeout: 5000 }, async () => {
    const { path } = silentRoute();
    const socket = nextConnection();
    const signal = AbortSignal.timeout(100);
    const err = await dialFails(rawUrl(path), { signal });
    assert.equal(err, signal.reason);
    assert.ok(err instanceof DOMException);
    assert.equal(err.name, 'TimeoutError');
    await gone(await socket);
  });

  it('rejects with any abort reason as it is, unwrapped', { timeout: 5000 }, async () => {
    const { path, socket } = silentRoute();
    const controller = new AbortController();
    void socket.then(() => controller.abort('not even an Error'));
    const err = await dialFails(rawUrl(path), { signal: controller.signal });
    assert.equal(err, 'not even an Error');
    await gone(await socket);
  });

  it('rejects at once, without connecting, when the signal is already aborted', { timeout: 5000 }, async () => {
    const reason = new Error('already');
    let connections = 0;
    const count = (): void => {
      connections++;
    };
    raw.on('connection', count);
    try {
      const err = await dialFails(rawUrl('/never'), { signal: AbortSignal.abort(reason) });
      assert.equal(err, reason);
    } finally {
      raw.off('connection', count);
    }
    assert.equal(connections, 0);
  });

  it('drops a request that undici starts only after the abort', { timeout: 5000 }, async () => {
    // Hands the request to the agent 50 ms late: the abort lands before undici has a connection.
    class SlowDispatcher extends Dispatcher {
      override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
        setTimeout(() => agent.dispatch(options, handler), 50);
        return true;
      }
    }
    let requested = false;
    const path = route(() => {
      requested = true;
    });
    const socket = nextConnection();
    const controller = new AbortController();
    const pending = dialFails(rawUrl(path), { dispatcher: new SlowDispatcher(), signal: controller.signal });
    controller.abort(new Error('changed my mind'));
    assert.equal(((await pending) as Error).message, 'changed my mind');
    await gone(await socket);
    assert.equal(requested, false);
  });

  it('bounds the handshake by handshakeTimeout when no signal is given', { timeout: 5000 }, async () => {
    const { path } = silentRoute();
    const socket = nextConnection();
    const started = Date.now();
    const err = await handshakeFails(rawUrl(path), { handshakeTimeout: 150 });
    assert.ok(Date.now() - started >= 140);
    assert.equal(err.status, 0);
    assert.ok(err.cause instanceof DOMException);
    assert.equal(err.cause.name, 'TimeoutError');
    await gone(await socket);
  });

  it('removes its abort listener once settled', { timeout: 5000 }, async () => {
    const controller = new AbortController();
    const { path } = acceptingRoute();
    let added = 0;
    let removed = 0;
    const { signal } = controller;
    const add = signal.addEventListener.bind(signal);
    const remove = signal.removeEventListener.bind(signal);
    signal.addEventListener = (...args: Parameters<typeof add>) => {
      added++;
      add(...args);
    };
    signal.removeEventListener = (...args: Parameters<typeof remove>) => {
      removed++;
      remove(...args);
    };
    const conn = await dial(rawUrl(path), { dispatcher: agent, signal });
    assert.deepEqual([added, removed], [1, 1]);
    controller.abort(); // after the handshake: the connection is unaffected
    conn.closeNow();
    await conn.closed;
  });

  it('rejects with status 0 and the network error as cause when the connection is refused', { timeout: 5000 }, async () => {
    const closed = createNetServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const { port } = closed.address() as AddressInfo;
    closed.close();
    await once(closed, 'close');
    const err = await handshakeFails(`ws://127.0.0.1:${port}/`);
    assert.equal(err.status, 0);
    assert.equal((err.cause as NodeJS.ErrnoException).code, 'ECONNREFUSED');
  });
});

describe('dial: the request', { timeout: 20_000 }, () => {
  /** Dials, then drops the connection; the route has seen the request. */
  async function dialAndDrop(url: string, opts: DialOptions): Promise<void> {
    const conn = await dial(url, { dispatcher: agent, ...opts });
    conn.closeNow();
    await conn.closed;
  }

  it('sends the handshake headers, custom headers and the Host override', { timeout: 5000 }, async () => {
    const { path, request } = acceptingRoute();
    await dialAndDrop(`${rawUrl(path)}?room=1`, {
      headers: { authorization: 'Bearer t0ken', 'x-custom': 'yes' },
      host: 'example.test:8443',
      subprotocols: ['a', 'b'],
    });
    const req = await request;
    const h: IncomingHttpHeaders = req.headers;
    assert.equal(req.method, 'GET');
    assert.equal(req.url, `${path}?room=1`);
    assert.equal(h.host, 'example.test:8443');
    assert.equal(h.authorization, 'Bearer t0ken');
    assert.equal(h['x-custom'], 'yes');
    assert.equal(h.upgrade, 'websocket');
    assert.match(h.connection ?? '', /upgrade/i);
    assert.equal(h['sec-websocket-version'], '13');
    assert.equal(h['sec-websocket-protocol'], 'a, b');
    assert.equal(h['sec-websocket-extensions'], undefined);
    assert.match(h['sec-websocket-key'] ?? '', /^[A-Za-z0-9+/]{22}==$/);
    assert.equal(Buffer.from(h['sec-websocket-key']!, 'base64').length, 16);
  });

  it('sends a fresh key each time and the URL host by default', { timeout: 5000 }, async () => {
    const first = acceptingRoute();
    const second = acceptingRoute();
    await dialAndDrop(rawUrl(first.path), {});
    await dialAndDrop(rawUrl(second.path), {});
    const [a, b] = await Promise.all([first.request, second.request]);
    assert.notEqual(a.headers['sec-websocket-key'], b.headers['sec-websocket-key']);
    assert.equal(a.headers.host, `127.0.0.1:${rawPort}`);
    assert.equal(a.headers['sec-websocket-protocol'], undefined);
  });

  it('takes headers as a Headers object or as pairs', { timeout: 5000 }, async () => {
    const first = acceptingRoute();
    const second = acceptingRoute();
    await dialAndDrop(rawUrl(first.path), { headers: new Headers({ 'x-one': '1' }) });
    await dialAndDrop(rawUrl(second.path), { headers: [['x-two', '2']] });
    assert.equal((await first.request).headers['x-one'], '1');
    assert.equal((await second.request).headers['x-two'], '2');
  });

  it('sends credentials in the URL as Basic authorization', { timeout: 5000 }, async () => {
    const { path, request } = acceptingRoute();
    await dialAndDrop(`ws://us%40er:p%3Ass@127.0.0.1:${rawPort}${path}`, {});
    const expected = `Basic ${Buffer.from('us@er:p:ss').toString('base64')}`;
    assert.equal((await request).headers.authorization, expected);
  });
});

describe('dial: arguments', { timeout: 20_000 }, () => {
  it('rejects bad URLs with a TypeError before any I/O', { timeout: 5000 }, async () => {
    let connections = 0;
    const count = (): void => {
      connections++;
    };
    raw.on('connection', count);
    try {
      for (const url of ['ftp://127.0.0.1/', 'not a url', `${rawUrl('/x')}#frag`, `${rawUrl('/x')}#`, 'file:///tmp']) {
        const err = await dialFails(url);
        assert.ok(err instanceof TypeError, `${url}: ${String(err)}`);
      }
    } finally {
      raw.off('connection', count);
    }
    assert.equal(connections, 0);
  });

  it('rejects invalid options with a TypeError or RangeError', { timeout: 5000 }, async () => {
    const url = rawUrl('/never');
    assert.ok((await dialFails(url, { subprotocols: ['has space'] })) instanceof TypeError);
    assert.ok((await dialFails(url, { subprotocols: ['a', 'a'] })) instanceof TypeError);
    assert.ok((await dialFails(url, { headers: { 'sec-websocket-key': 'x' } })) instanceof TypeError);
    assert.ok((await dialFails(url, { headers: { Connection: 'close' } })) instanceof TypeError);
    assert.ok((await dialFails(url, { headers: { 'bad name': 'x' } })) instanceof TypeError);
    assert.ok((await dialFails(url, { handshakeTimeout: 0 })) instanceof RangeError);
    assert.ok((await dialFails(url, { handshakeTimeout: Number.NaN })) instanceof RangeError);
    const mode = 'bogus' as NonNullable<DialOptions['compressionMode']>;
    assert.ok((await dialFails(url, { compressionMode: mode })) instanceof TypeError);
  });

  it('refuses an unknown compression mode before any I/O', { timeout: 5000 }, async () => {
    const err = await dialFails(rawUrl('/never'), { compressionMode: 'gzip' as 'disabled' });
    assert.ok(err instanceof TypeError);
    assert.match(err.message, /unknown compressionMode/);
  });
});

describe("dial: through Node's own undici (the callback handler interface)", { timeout: 30_000 }, () => {
  // Node's built-in fetch, used before undici is loaded, installs its own
  // bundled undici (6.x on Node 20, which only knows the callback interface)
  // as the global dispatcher that getGlobalDispatcher() then returns. That
  // must be done in a fresh process.
  it('handshakes, keeps early bytes and reports refusals', { timeout: 25_000 }, async () => {
    const refused = route((_req, socket) => {
      socket.end('HTTP/1.1 418 Teapot\r\nContent-Length: 6\r\nX-Pot: tea\r\n\r\nteapot');
    });
    const early = route((req, socket) => {
      socket.write(Buffer.concat([Buffer.from(switching(req), 'latin1'), encodeFrame(text('early'), false)]));
    });
    const script = `
      await (await fetch('data:,x')).text();
      const undici = await import('undici');
      const { dial } = await import(${JSON.stringify(new URL('../src/dial.ts', import.meta.url).href)});
      const dispatcher = undici.getGlobalDispatcher();
      const foreign = !(dispatcher instanceof undici.Agent);
      const decode = (m) => new TextDecoder().decode(m.data);
      // Passed explicitly: left alone, dial would take its direct path past this default Agent.
      const conn = await dial('${wsUrl('/proto')}', { subprotocols: ['b'], dispatcher });
      await conn.write(1, 'via bundled undici');
      const echo = decode(await conn.read());
      await conn.close(1000);
      const conn2 = await dial('${rawUrl(early)}', { dispatcher });
      const first = decode(await conn2.read());
      conn2.closeNow();
      const e = await dial('${rawUrl(refused)}', { dispatcher }).catch((err) => err);
      const out = { foreign, echo, subprotocol: conn.subprotocol, first, status: e.status, pot: e.headers.get('x-pot'), body: e.body };
      console.log(JSON.stringify(out));
    `;
    const output = await runScript(script, { timeoutMs: 20_000 });
    assert.deepEqual(JSON.parse(output.trim().split('\n').at(-1)!), {
      foreign: true,
      echo: 'via bundled undici',
      subprotocol: 'b',
      first: 'early',
      status: 418,
      pot: 'tea',
      body: 'teapot',
    });
  });
});
