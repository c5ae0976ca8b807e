/**
 * createUpgradeListener() over HTTP/2 (RFC 8441): one listener serving a
 * `node:http2` server with `allowHTTP1: true` through both its `'upgrade'`
 * and its `'stream'` events, sharing paths, authentication, `conns` and
 * shutdown.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { MessageType, type Conn } from '../src/conn.js';
import { dial, type DialOptions } from '../src/dial.js';
import { HandshakeError } from '../src/errors.js';
import { createUpgradeListener, type UpgradeListener } from '../src/server.js';
import { leakCheck } from './helpers/leak.js';
import { makeTestCert, type TestCert } from './helpers/tls-cert.js';

const checkLeaks = leakCheck();
let cert: TestCert | undefined;
let skip: string | false = false;
let server: http2.Http2SecureServer;
let listener: UpgradeListener;
let port = 0;
let tls: NonNullable<DialOptions['tls']>;
const seen: Array<{ version: string; user: string; url: string }> = [];
const clients = new Set<Conn>();

before(async () => {
  const made = await makeTestCert();
  if (typeof made === 'string') {
    skip = made;
    return;
  }
  cert = made;
  tls = { ca: cert.cert };
  server = http2.createSecureServer({ ...cert, allowHTTP1: true, settings: { enableConnectProtocol: true } });
  listener = createUpgradeListener(
    {
      path: ['/chat'],
      onError: () => {},
      authenticate: (req, { refuse }) => {
        const user = req.headers['x-user'];
        if (typeof user !== 'string') throw refuse(401, { headers: { 'WWW-Authenticate': 'X-User' }, body: 'who are you?\n' });
        if (user === 'crlf') throw refuse(401, { headers: { 'X-Why': 'a\r\nX-Injected: 1' } });
        if (user === 'repeats') {
          const headers: Array<[string, string]> = [
            ['Set-Cookie', 'a=1'],
            ['set-cookie', 'b=2'],
            ['Retry-After', '1'],
            ['retry-after', '2'],
            ['X-Pad', ' v\t'],
            ['constructor', 'x'],
            // Fields HTTP/2 forbids in a response (RFC 9113 §8.2.2): left out, not a reset stream.
            ['TE', 'gzip'],
            ['Proxy-Connection', 'keep-alive'],
            ['HTTP2-Settings', 'AAMAAABkAAQAAP__'],
          ];
          throw refuse(429, { headers });
        }
        return user;
      },
    },
    async (conn, { req, user }) => {
      seen.push({ version: req.httpVersion, user, url: req.url ?? '' });
      for await (const msg of conn) await conn.write(msg.type, msg.data);
    },
  );
  server.on('upgrade', listener);
  server.on('stream', (stream, headers) => {
    if (listener.stream(stream, headers)) return;
    stream.respond({ ':status': 200, 'content-type': 'text/plain' });
    stream.end('a page\n');
  });
  server.on('session', (session) => session.on('error', () => {}));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

after(async () => {
  for (const conn of clients) conn.closeNow();
  if (server !== undefined) {
    await listener.close();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
    });
  }
  await checkLeaks();
});

async function open(path: string, options: DialOptions = {}): Promise<Conn> {
  const conn = await dial(`wss://localhost:${port}${path}`, { tls, http2IdleTimeout: 50, signal: AbortSignal.timeout(5000), ...options });
  clients.add(conn);
  return conn;
}

describe('createUpgradeListener() on an HTTP/2 server with allowHTTP1', () => {
  it('serves HTTP/2 and HTTP/1.1 clients through one listener, authenticate included', { timeout: 15_000 }, async (t) => {
    if (skip !== false) return t.skip(skip);
    const h2 = await open('/chat?room=1', { http2: 'always', headers: { 'x-user': 'ann' } });
    const h1 = await open('/chat', { headers: { 'x-user': 'bob' } });
    for (const [conn, text] of [[h2, 'via h2'], [h1, 'via h1']] as const) {
      await conn.write(MessageType.Text, text);
      assert.equal(new TextDecoder().decode((await conn.read()).data), text);
    }
    assert.deepEqual(
      seen.map(({ version, user, url }) => `${version} ${user} ${url}`).sort(),
      ['1.1 bob /chat', '2.0 ann /chat?room=1'],
    );
    assert.equal(listener.conns.size, 2);
  });

  it('answers 404 and 401 on the HTTP/2 stream, not the session', { timeout: 15_000 }, async (t) => {
    if (skip !== false) return t.skip(skip);
    const notFound = await open('/nope', { http2: 'always', headers: { 'x-user': 'ann' } }).catch((e: unknown) => e);
    assert.ok(notFound instanceof HandshakeError);
    assert.equal(notFound.status, 404);
    const unauthorized = await open('/chat', { http2: 'always' }).catch((e: unknown) => e);
    assert.ok(unauthorized instanceof HandshakeError);
    assert.equal(unauthorized.status, 401);
    assert.equal(unauthorized.headers.get('www-authenticate'), 'X-User');
    assert.equal(unauthorized.body, 'who are you?\n');
    const ok = await open('/chat', { http2: 'always', headers: { 'x-user': 'cy' } });
    await ok.write(MessageType.Text, 'still fine');
    assert.equal(new TextDecoder().decode((await ok.read()).data), 'still fine');
  });

  it('resets the stream when a refusal has a header value HTTP/2 refuses (no header injection)', { timeout: 10_000 }, async (t) => {
    if (skip !== false) return t.skip(skip);
    const err = await open('/chat', { http2: 'always', headers: { 'x-user': 'crlf' } }).catch((e: unknown) => e);
    assert.ok(err instanceof HandshakeError);
    assert.equal(err.status, 0);
    assert.equal(err.headers.get('x-injected'), null);
  });

  it('sends repeated fields of a refusal: Set-Cookie apart, others joined; values trimmed', { timeout: 10_000 }, async (t) => {
    if (skip !== false) return t.skip(skip);
    const err = await open('/chat', { http2: 'always', headers: { 'x-user': 'repeats' } }).catch((e: unknown) => e);
    assert.ok(err instanceof HandshakeError);
    assert.equal(err.status, 429);
    assert.deepEqual(err.headers.getSetCookie(), ['a=1', 'b=2']);
    assert.equal(err.headers.get('retry-after'), '1, 2');
    assert.equal(err.headers.get('x-pad'), 'v');
    assert.equal(err.headers.get('constructor'), 'x');
    for (const name of ['te', 'proxy-connection', 'http2-settings']) assert.equal(err.headers.get(name), null, name);
  });

  it('dials over HTTP/2 with connection-specific headers given: they are left out (RFC 9113 §8.2.2)', { timeout: 10_000 }, async (t) => {
    if (skip !== false) return t.skip(skip);
    const headers = { 'x-user': 'tess', te: 'gzip', 'proxy-connection': 'keep-alive', 'http2-settings': 'AAMAAABkAAQAAP__' };
    const conn = await open('/chat', { http2: 'always', headers });
    await conn.write(MessageType.Text, 'over h2');
    assert.equal(new TextDecoder().decode((await conn.read()).data), 'over h2');
    assert.equal(seen.at(-1)?.user, 'tess');
    assert.equal(seen.at(-1)?.version, '2.0');
  });

  it('leaves other streams to the application', { timeout: 10_000 }, async (t) => {
    if (skip !== false) return t.skip(skip);
    const session = http2.connect(`https://localhost:${port}`, { ca: cert!.cert });
    session.on('error', () => {});
    const req = session.request({ ':path': '/' });
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    await new Promise((resolve) => req.on('end', resolve));
    assert.equal(body, 'a page\n');
    session.close();
  });

  it('close() shuts HTTP/2 conns down with 1001 and refuses new streams with 503', { timeout: 15_000 }, async (t) => {
    if (skip !== false) return t.skip(skip);
    const conn = await open('/chat', { http2: 'always', headers: { 'x-user': 'dee' } });
    const closing = listener.close();
    const info = await conn.closed;
    assert.equal(info.code, 1001);
    await closing;
    const refused = await open('/chat', { http2: 'always', headers: { 'x-user': 'eve' } }).catch((e: unknown) => e);
    assert.ok(refused instanceof HandshakeError);
    assert.equal(refused.status, 503);
  });
});
