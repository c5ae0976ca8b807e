/**
 * The browser build's Conn in Node: undici's `WebSocket` (the WHATWG API
 * that Node 22 exposes as a global) stands in for the browser's, injected
 * through `dial()`'s `webSocket` option, against wsconn's `accept()`. The
 * same behaviours run in a real Chromium in test/interop/browser-build.test.ts.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { WebSocket as UndiciWebSocket } from 'undici';
import * as browser from '../src/browser/index.js';
import type { Conn as NodeConn } from '../src/conn.js';
import { closeStatus } from '../src/close.js';
import { CloseError, HandshakeError, ProtocolError } from '../src/errors.js';
import { MessageType } from '../src/message.js';
import * as wsjson from '../src/wsjson/index.js';
import { leakCheck } from './helpers/leak.js';
import { echo, pattern, within, WsconnServer } from './interop/harness.js';

const webSocket = UndiciWebSocket as unknown as browser.PlatformWebSocketConstructor;
const checkLeaks = leakCheck();
let server: WsconnServer;
const open: browser.Conn[] = [];

before(async () => {
  server = await new WsconnServer().listen();
});
afterEach(async () => {
  for (const conn of open.splice(0)) {
    conn.closeNow();
    await within(5000, 'closed after closeNow()', conn.closed);
  }
});
after(async () => {
  await server.close();
  await checkLeaks();
});

/** Dials the test server with the browser build; resolves with both ends. */
async function connect(options: browser.DialOptions = {}): Promise<{ conn: browser.Conn; peer: NodeConn }> {
  const peer = server.nextConn({ subprotocols: ['chat.v1'], readLimit: 1024 * 1024 });
  const conn = await browser.dial(server.url, { webSocket, signal: AbortSignal.timeout(5000), ...options });
  open.push(conn);
  return { conn, peer: await peer };
}

describe('browser build over a WHATWG WebSocket (undici in Node)', { timeout: 60_000 }, () => {
  it('echoes text and binary, reports the subprotocol, and reads through for await', { timeout: 10_000 }, async () => {
    const { conn, peer } = await connect({ subprotocols: ['chat.v1'] });
    void echo(peer);
    assert.equal(conn.subprotocol, 'chat.v1');
    await conn.write(MessageType.Text, 'héllo');
    await conn.write(MessageType.Binary, pattern(70_000));
    await conn.write(MessageType.Text, new TextEncoder().encode('bytes as text'));
    assert.deepEqual(await conn.read(), { type: MessageType.Text, data: new TextEncoder().encode('héllo') });
    assert.deepEqual(await conn.read(), { type: MessageType.Binary, data: pattern(70_000) });
    const { type, stream } = await conn.reader();
    assert.equal(type, MessageType.Text);
    assert.equal(await new Response(stream).text(), 'bytes as text');
    const w = await conn.writer(MessageType.Binary);
    const writer = w.getWriter();
    await writer.write(new Uint8Array([1, 2]));
    await writer.write(new Uint8Array([3]));
    await writer.close();
    assert.deepEqual((await conn.read()).data, new Uint8Array([1, 2, 3]));
    await conn.write(MessageType.Text, 'last');
    const seen: string[] = [];
    const closing = (async () => {
      for await (const message of conn) {
        seen.push(new TextDecoder().decode(message.data));
        await peer.close(1000, 'done');
      }
    })();
    await closing;
    assert.deepEqual(seen, ['last']);
    assert.deepEqual(await conn.closed, { code: 1000, reason: 'done', wasClean: true });
  });

  it('runs wsjson unchanged', { timeout: 10_000 }, async () => {
    const { conn, peer } = await connect();
    void echo(peer);
    await wsjson.write(conn, { id: 7, list: [1, 2] });
    assert.deepEqual(await wsjson.read(conn), { id: 7, list: [1, 2] });
  });

  it("wsjson's 1003 close, which a page cannot send, goes as 4003", { timeout: 10_000 }, async () => {
    const { conn, peer } = await connect();
    const peerSaw = peer.read().catch((err: unknown) => err);
    await peer.write(MessageType.Binary, new Uint8Array([1]));
    await assert.rejects(wsjson.read(conn), (err) => err instanceof ProtocolError && err.code === 1003);
    assert.equal(closeStatus(await peerSaw), 4003);
    assert.equal((await conn.closed).wasClean, true);
  });

  it('sends text bytes as they are, a leading BOM included', { timeout: 10_000 }, async () => {
    const { conn, peer } = await connect();
    await conn.write(MessageType.Text, Uint8Array.of(0xef, 0xbb, 0xbf, 0x41));
    const { data } = await peer.read();
    assert.deepEqual([...data], [0xef, 0xbb, 0xbf, 0x41]);
  });

  it('closeRead(): later reads reject with ClosedError, a second call returns the same signal', { timeout: 10_000 }, async () => {
    const { conn } = await connect();
    const signal = conn.closeRead();
    assert.equal(conn.closeRead(), signal);
    await assert.rejects(conn.read(), (err) => err instanceof Error && err.name === 'ClosedError');
    conn.closeNow();
    await conn.closed;
    assert.equal(signal.aborted, true);
  });

  it('refuses timeouts a timer cannot wait, as the Node build does', { timeout: 10_000 }, async () => {
    await assert.rejects(browser.dial(server.url, { webSocket, handshakeTimeout: 3e9 }), RangeError);
    await assert.rejects(browser.dial(server.url, { webSocket, closeTimeout: 3e9 }), RangeError);
  });

  it('keeps the connection when a read is aborted: the next read gets the message', { timeout: 10_000 }, async () => {
    const { conn, peer } = await connect();
    const controller = new AbortController();
    const reading = conn.read({ signal: controller.signal });
    const reason = new Error('stop');
    controller.abort(reason);
    await assert.rejects(reading, (err) => err === reason);
    await assert.rejects(conn.read({ signal: AbortSignal.abort(reason) }), (err) => err === reason);
    await peer.write(MessageType.Text, 'after the abort');
    assert.equal(new TextDecoder().decode((await conn.read()).data), 'after the abort');
  });

  it('closes both ways with codes and reasons; refuses codes the WebSocket API cannot send', { timeout: 10_000 }, async () => {
    const a = await connect();
    await assert.rejects(a.conn.close(1003), RangeError);
    await assert.rejects(a.conn.close(1000, 'x'.repeat(124)), RangeError);
    const peerRead = a.peer.read().catch((err: unknown) => err);
    const info = await a.conn.close(4001, 'bye');
    assert.equal(closeStatus(await peerRead), 4001);
    // closed reports the peer's close frame: wsconn answers with the code alone.
    assert.deepEqual(info, { code: 4001, reason: '', wasClean: true });
    await assert.rejects(a.conn.write(MessageType.Text, 'late'), browser.ClosedError);

    const b = await connect();
    const reading = assert.rejects(b.conn.read(), (err) => err instanceof CloseError && err.code === 1001 && err.reason === 'going');
    await b.peer.close(1001, 'going');
    await reading;
    assert.equal((await b.conn.closed).code, 1001);
  });

  it('closes with 4008 when the peer floods a page that does not read; queued messages stay readable', { timeout: 20_000 }, async () => {
    const { conn, peer } = await connect({ readQueueLimit: 256 * 1024 });
    const peerSaw = peer.read().catch((err: unknown) => err);
    let sent = 0;
    try {
      for (; sent < 64; sent++) await peer.write(MessageType.Binary, pattern(16 * 1024, sent));
    } catch {
      // the page's close frame came while flooding
    }
    assert.equal(closeStatus(await peerSaw), browser.policyViolationCode);
    let read = 0;
    await assert.rejects(
      (async () => {
        for (;;) {
          assert.deepEqual((await conn.read()).data, pattern(16 * 1024, read));
          read++;
        }
      })(),
      (err) => err instanceof ProtocolError && err.code === browser.policyViolationCode,
    );
    assert.equal(read, 16, 'a 256 KiB queue holds sixteen 16 KiB messages');
    assert.equal((await conn.closed).code, browser.policyViolationCode);
  });

  it('pushes back in write() when the peer stops reading, and sends nothing for an aborted write', { timeout: 30_000 }, async () => {
    const { conn, peer } = await connect({ writeBufferLimit: 64 * 1024 });
    const chunk = pattern(64 * 1024);
    let resolved = 0;
    let stalled: unknown;
    while (resolved < 4096) {
      try {
        await conn.write(MessageType.Binary, chunk, { signal: AbortSignal.timeout(1000) });
        resolved++;
      } catch (err) {
        stalled = err;
        break;
      }
    }
    assert.equal((stalled as Error | undefined)?.name, 'TimeoutError', `${resolved} writes of 64 KiB all resolved`);
    let received = 0;
    const draining = (async () => {
      for (; received < resolved + 1; received++) await peer.read();
    })();
    await conn.write(MessageType.Binary, chunk, { signal: AbortSignal.timeout(10_000) });
    await draining;
    assert.equal(received, resolved + 1, 'the aborted write sent nothing');
  });

  it('keeps call order for concurrent writes; a write waiting behind a writer() rejects when the connection closes', { timeout: 10_000 }, async () => {
    const { conn, peer } = await connect();
    await Promise.all(Array.from({ length: 20 }, (_, i) => conn.write(MessageType.Text, String(i))));
    for (let i = 0; i < 20; i++) assert.equal(new TextDecoder().decode((await peer.read()).data), String(i));
    const stream = await conn.writer(MessageType.Binary);
    const waiting = assert.rejects(conn.write(MessageType.Text, 'behind the writer'), browser.ClosedError);
    await peer.close(1000, '');
    await waiting;
    await assert.rejects(stream.getWriter().close(), browser.ClosedError);
  });

  it('refuses what the platform cannot do, clearly', { timeout: 10_000 }, async () => {
    await assert.rejects(browser.dial(server.url, { webSocket, headers: { a: 'b' } } as browser.DialOptions), /'headers' is not available/);
    await assert.rejects(browser.dial(server.url, { webSocket, compressionMode: 'disabled' } as browser.DialOptions), /'compressionMode'/);
    assert.throws(() => browser.accept(), { name: 'NotSupportedError' });
    const { conn } = await connect();
    await assert.rejects(conn.ping(), { name: 'NotSupportedError' });
    assert.throws(() => conn.setReadLimit(-2), RangeError);
    conn.setReadLimit(1);
  });

  it('rejects a refused handshake with HandshakeError status 0, and an abort with signal.reason', { timeout: 10_000 }, async () => {
    await assert.rejects(browser.dial(`${server.url}/`, { webSocket }), (err) => err instanceof HandshakeError && err.status === 0);
    const reason = new Error('gave up');
    await assert.rejects(browser.dial(server.url, { webSocket, signal: AbortSignal.abort(reason) }), (err) => err === reason);
  });
});
