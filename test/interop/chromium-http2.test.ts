/**
 * A real Chromium page over HTTP/2: the page comes from a `node:http2`
 * secure server with `allowHTTP1: true` and SETTINGS_ENABLE_CONNECT_PROTOCOL,
 * and its `new WebSocket('wss://…')` arrives as an RFC 8441 extended CONNECT
 * stream (Chromium 156 does this by default, no flag, when an h2 connection
 * to the origin exists). The server records which way each WebSocket came.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { accept, type AcceptOptions } from '../../src/accept.js';
import { acceptHttp2, isWebSocketConnect } from '../../src/accept-http2.js';
import type { Conn } from '../../src/conn.js';
import { chromiumMissing, findChromium } from '../helpers/chromium.js';
import { leakCheck } from '../helpers/leak.js';
import { makeTestCert } from '../helpers/tls-cert.js';

const checkLeaks = leakCheck();
let skip: string | false = chromiumMissing ?? false;
let browser: Browser | undefined;
let server: http2.Http2SecureServer | undefined;
let port = 0;
const arrivals: Array<{ via: 'h2' | 'http/1.1'; conn: Conn; alpn?: string | undefined }> = [];

const page = `<!doctype html><meta charset="utf-8"><title>wsconn h2</title><script>
async function run(url) {
  const ws = new WebSocket(url, ['echo.v1']);
  ws.binaryType = 'arraybuffer';
  const inbox = [];
  let wake;
  ws.onmessage = (e) => { inbox.push(e.data); wake?.(); };
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = () => reject(new Error('error before open')); });
  const next = async () => { while (inbox.length === 0) await new Promise((r) => (wake = r)); return inbox.shift(); };
  ws.send('hello over h2 '.repeat(100));
  const text = await next();
  const bytes = new Uint8Array(70000).map((_, i) => (i * 7) & 255);
  ws.send(bytes);
  const back = new Uint8Array(await next());
  const same = back.length === bytes.length && back.every((b, i) => b === bytes[i]);
  const closed = new Promise((resolve) => (ws.onclose = (e) => resolve({ code: e.code, reason: e.reason, wasClean: e.wasClean })));
  ws.close(1000, 'page done');
  return { protocol: ws.protocol, extensions: ws.extensions, text: text.length, same, closed: await closed };
}
</script>`;

async function echo(conn: Conn): Promise<void> {
  conn.setReadLimit(-1);
  for await (const msg of conn) await conn.write(msg.type, msg.data);
}

before(async () => {
  if (skip !== false) return;
  const cert = await makeTestCert();
  if (typeof cert === 'string') {
    skip = cert;
    return;
  }
  const options: AcceptOptions = { subprotocols: ['echo.v1'], compressionMode: 'context-takeover' };
  server = http2.createSecureServer({ ...cert, allowHTTP1: true, settings: { enableConnectProtocol: true } });
  server.on('session', (session) => session.on('error', () => {}));
  // No 'request' listener: Node's compatibility layer would answer the extended CONNECT itself.
  server.on('stream', (stream, headers) => {
    if (!isWebSocketConnect(headers)) {
      stream.respond({ ':status': 200, 'content-type': 'text/html; charset=utf-8' });
      stream.end(page);
      return;
    }
    acceptHttp2(stream, headers, options).then((conn) => {
      arrivals.push({ via: 'h2', conn, alpn: stream.session?.alpnProtocol });
      return echo(conn);
    }).catch(() => {});
  });
  server.on('upgrade', (req, socket, head) => {
    accept(req, socket, head, options).then((conn) => {
      arrivals.push({ via: 'http/1.1', conn });
      return echo(conn);
    }).catch(() => {});
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  browser = await chromium.launch({
    executablePath: findChromium()!,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--ignore-certificate-errors'],
  });
});

after(async () => {
  await browser?.close();
  for (const { conn } of arrivals) conn.closeNow();
  if (server !== undefined) await new Promise<void>((resolve) => server!.close(() => resolve()));
  await checkLeaks();
});

describe('Chromium over HTTP/2 (RFC 8441)', () => {
  it('opens its WebSocket as an extended CONNECT stream on the page\'s h2 connection', { timeout: 60_000 }, async (t) => {
    if (skip !== false) return t.skip(skip);
    const context = await browser!.newContext({ ignoreHTTPSErrors: true });
    try {
      const tab = await context.newPage();
      const response = await tab.goto(`https://localhost:${port}/`);
      assert.equal(response?.status(), 200);
      const result = await tab.evaluate((url) => (globalThis as unknown as { run(u: string): Promise<unknown> }).run(url),
        `wss://localhost:${port}/ws`);
      assert.deepEqual(result, {
        protocol: 'echo.v1',
        extensions: 'permessage-deflate',
        text: 1400,
        same: true,
        // The server's reply echoes the code, not the reason (RFC 6455 §5.5.1 leaves that open).
        closed: { code: 1000, reason: '', wasClean: true },
      });
      assert.equal(arrivals.length, 1);
      const [arrival] = arrivals;
      assert.equal(arrival!.via, 'h2', 'the WebSocket came through an HTTP/2 stream, not an HTTP/1.1 upgrade');
      assert.equal(arrival!.alpn, 'h2');
      assert.deepEqual(await arrival!.conn.closed, { code: 1000, reason: 'page done', wasClean: true });
    } finally {
      await context.close();
    }
  });
});
