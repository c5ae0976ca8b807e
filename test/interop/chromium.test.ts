/**
 * Interop with a real browser: a Chromium page (Debian `chromium`, driven
 * by playwright-core) opens `new WebSocket(...)` to wsconn's `accept()` on
 * the node:http server that served the page.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { MessageType, type Conn } from '../../src/conn.js';
import { CloseError, HandshakeError } from '../../src/errors.js';
import { PreparedMessage } from '../../src/protocol/prepared.js';
import { chromiumMissing, launchChromium } from '../helpers/chromium.js';
import { leakCheck } from '../helpers/leak.js';
import { describeWithPeer, pattern, requirePeer, text, within, WsconnServer } from './harness.js';

const checkLeaks = leakCheck();
after(() => checkLeaks());

const missing = chromiumMissing;

/**
 * The page's half of the tests, plain browser JavaScript. Each helper keeps
 * its socket by id; messages are collected as they come so none is missed.
 * Payloads are built on both sides from the same recipe (pattern() and
 * text() in harness.ts) so only verdicts cross the DevTools protocol.
 */
const pageScript = String.raw`
const sockets = new Map();
function pattern(length, seed) {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + seed + (i >>> 8)) & 0xff;
  return bytes;
}
function text(bytes) {
  const unit = 'é€😀a';
  let out = unit.repeat(Math.floor(bytes / 10));
  return out + 'x'.repeat(bytes - new TextEncoder().encode(out).length);
}
function wsOpen(id, url, protocols) {
  const ws = new WebSocket(url, protocols);
  ws.binaryType = 'arraybuffer';
  const entry = { ws, inbox: [], waiters: [] };
  ws.onmessage = (event) => {
    const waiter = entry.waiters.shift();
    if (waiter) waiter(event.data); else entry.inbox.push(event.data);
  };
  entry.closed = new Promise((resolve) => {
    ws.onclose = (event) => resolve({ code: event.code, reason: event.reason, wasClean: event.wasClean });
  });
  sockets.set(id, entry);
  return new Promise((resolve, reject) => {
    ws.onopen = () => resolve({ protocol: ws.protocol, extensions: ws.extensions });
    ws.onerror = () => reject(new Error('WebSocket error before open'));
  });
}
function next(entry) {
  if (entry.inbox.length > 0) return Promise.resolve(entry.inbox.shift());
  return new Promise((resolve) => entry.waiters.push(resolve));
}
/** Sends each message and checks its echo; returns what differed. */
async function wsEcho(id, messages) {
  const entry = sockets.get(id);
  const problems = [];
  for (const [kind, size, seed] of messages) {
    const sent = kind === 'text' ? text(size) : pattern(size, seed);
    entry.ws.send(kind === 'text' ? sent : sent.buffer);
    const got = await next(entry);
    if (kind === 'text') {
      if (got !== sent) problems.push(kind + ' ' + size + ' came back changed');
    } else {
      const bytes = got instanceof ArrayBuffer ? new Uint8Array(got) : null;
      const same = bytes !== null && bytes.length === sent.length && bytes.every((b, i) => b === sent[i]);
      if (!same) problems.push(kind + ' ' + size + ' came back changed');
    }
  }
  return problems;
}
function wsClose(id, code, reason) {
  sockets.get(id).ws.close(code, reason);
  return sockets.get(id).closed;
}
function wsClosed(id) {
  return sockets.get(id).closed;
}
/** The next count messages, as text. */
async function wsCollect(id, count) {
  const entry = sockets.get(id);
  const out = [];
  while (out.length < count) {
    const got = await next(entry);
    out.push(typeof got === 'string' ? got : new TextDecoder().decode(got));
  }
  return out;
}
`;

const html = `<!doctype html><meta charset="utf-8"><title>wsconn interop</title><script>${pageScript}</script>`;

/** Messages each echo test sends: [kind, size, seed]. */
const messages: Array<['text' | 'binary', number, number]> = [
  ['text', 0, 0],
  ['binary', 0, 0],
  ['text', 125, 0],
  ['binary', 126, 1],
  ['text', 65536, 0],
  ['binary', 65536, 2],
  ['binary', 1024 * 1024, 3],
];

/** Echoes each message after checking it is the one the page built. */
async function checkedEcho(conn: Conn): Promise<{ problems: string[]; ended: unknown }> {
  const problems: string[] = [];
  try {
    for (const [kind, size, seed] of messages) {
      const { type, data } = await conn.read();
      const expected = kind === 'text' ? Buffer.from(text(size)) : pattern(size, seed);
      if (type !== (kind === 'text' ? MessageType.Text : MessageType.Binary)) problems.push(`${kind} ${size}: type ${type}`);
      if (!Buffer.from(data).equals(expected)) problems.push(`${kind} ${size}: bytes differ`);
      await conn.write(type, data);
    }
    await conn.read();
  } catch (err) {
    return { problems, ended: err };
  }
  return { problems, ended: undefined };
}

describeWithPeer('Chromium page → wsconn accept()', missing, { timeout: 40_000 }, () => {
  let browser: Browser;
  let page: Page;
  let server: WsconnServer;
  let other: WsconnServer;
  let socketId = 0;

  /** Calls one of the page script's functions with JSON arguments. */
  function call<T>(fn: string, ...args: unknown[]): Promise<T> {
    return page.evaluate(`${fn}(...${JSON.stringify(args)})`) as Promise<T>;
  }

  before(async () => {
    requirePeer(missing);
    server = await new WsconnServer().listen();
    other = await new WsconnServer().listen();
    for (const s of [server, other]) {
      s.onRequest = (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html);
      };
    }
    browser = await launchChromium();
    page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${server.port}/`);
  });
  after(async () => {
    await browser?.close();
    await Promise.all([server?.close(), other?.close()]);
  });

  it('echoes text and ArrayBuffer messages, pings, and sees the page close with a code', { timeout: 15_000 }, async () => {
    const id = ++socketId;
    const connP = server.nextConn({ readLimit: 2 * 1024 * 1024 });
    const opened = await call<{ protocol: string; extensions: string }>('wsOpen', id, server.url, []);
    assert.deepEqual(opened, { protocol: '', extensions: '' });
    const conn = await connP;
    const serving = checkedEcho(conn);
    assert.deepEqual(await call<string[]>('wsEcho', id, messages), []);
    // The last read of checkedEcho is pending: the browser's pong is seen.
    const rtt = await conn.ping();
    assert.ok(rtt >= 0);
    const pageClosed = call<{ code: number; reason: string; wasClean: boolean }>('wsClose', id, 4000, 'page bye ✓');
    const { problems, ended } = await serving;
    assert.deepEqual(problems, []);
    assert.ok(ended instanceof CloseError);
    assert.equal(ended.code, 4000);
    assert.deepEqual(await conn.closed, { code: 4000, reason: 'page bye ✓', wasClean: true });
    const event = await pageClosed;
    assert.equal(event.code, 4000);
    assert.equal(event.wasClean, true);
  });

  for (const compressionMode of ['context-takeover', 'no-context-takeover'] as const) {
    it(`decodes prepared messages between ordinary ones, compressed with ${compressionMode}`, { timeout: 10_000 }, async () => {
      const id = ++socketId;
      const connP = server.nextConn({ compressionMode });
      const opened = await call<{ extensions: string }>('wsOpen', id, server.url, []);
      assert.match(opened.extensions, /^permessage-deflate/);
      const conn = await connP;
      const report = (k: number): string => JSON.stringify({ k, rows: Array.from({ length: 40 }, (_, i) => ({ id: i, label: `row ${i}` })) });
      const expected: string[] = [];
      for (let k = 0; k < 4; k++) {
        // The same prepared message to this page and to no one else still goes through the shared path.
        await conn.writePrepared(new PreparedMessage(MessageType.Text, report(k)));
        await conn.write(MessageType.Text, report(k)); // refers back to the prepared one under context takeover
        expected.push(report(k), report(k));
      }
      assert.deepEqual(await call<string[]>('wsCollect', id, expected.length), expected);
      await conn.close();
    });
  }

  it("shows wsconn's close code and reason in the page's CloseEvent", { timeout: 10_000 }, async () => {
    const id = ++socketId;
    const connP = server.nextConn();
    await call('wsOpen', id, server.url, []);
    const conn = await connP;
    // Chromium waits for the server to close TCP first (RFC 6455 §7.1.1), for up to 2 s.
    const info = await within(1500, 'conn.close()', conn.close(4001, 'server bye ✓'));
    assert.deepEqual(await call('wsClosed', id), { code: 4001, reason: 'server bye ✓', wasClean: true });
    assert.equal(info.code, 4001);
    assert.equal(info.wasClean, true);
  });

  it('negotiates a subprotocol from the page', { timeout: 10_000 }, async () => {
    const id = ++socketId;
    const connP = server.nextConn({ subprotocols: ['chat.v2'] });
    const opened = await call<{ protocol: string }>('wsOpen', id, server.url, ['chat.v1', 'chat.v2']);
    assert.equal(opened.protocol, 'chat.v2');
    const conn = await connP;
    assert.equal(conn.subprotocol, 'chat.v2');
    const reading = assert.rejects(conn.read(), (err: unknown) => err instanceof CloseError && err.code === 1000);
    const event = await call<{ code: number }>('wsClose', id, 1000, '');
    await reading;
    assert.equal(event.code, 1000);
  });

  it('refuses a cross-origin page with 403 unless originPatterns allows it', { timeout: 10_000 }, async () => {
    // A page served by `other` has a different origin (another port).
    const crossPage = await browser.newPage();
    try {
      await crossPage.goto(`http://127.0.0.1:${other.port}/`);
      const refused = assert.rejects(
        server.nextConn(),
        (err: unknown) => err instanceof HandshakeError && err.status === 403,
      );
      const opening = crossPage.evaluate(`wsOpen(1, ${JSON.stringify(server.url)}, [])`);
      await assert.rejects(opening, /WebSocket error before open/);
      await refused;
      assert.equal((await crossPage.evaluate('wsClosed(1)') as { code: number }).code, 1006);

      const allowed = server.nextConn({ originPatterns: ['127.0.0.1:*'] });
      await crossPage.evaluate(`wsOpen(2, ${JSON.stringify(server.url)}, [])`);
      const conn = await allowed;
      conn.closeNow();
      assert.equal((await crossPage.evaluate('wsClosed(2)') as { code: number }).code, 1006);
    } finally {
      await crossPage.close();
    }
  });
});
