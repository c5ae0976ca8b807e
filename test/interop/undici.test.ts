/**
 * Interop with undici's `WebSocket` (the WHATWG client, imported from the
 * `undici` package rather than Node's global) against wsconn's `accept()`.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { WebSocket, type CloseEvent, type MessageEvent } from 'undici';
import type { Conn } from '../../src/conn.js';
import { CloseError } from '../../src/errors.js';
import { leakCheck } from '../helpers/leak.js';
import { echo, Inbox, pattern, text, within, WsconnServer } from './harness.js';

const checkLeaks = leakCheck();
after(() => checkLeaks());

interface Client {
  ws: WebSocket;
  messages: Inbox<string | Uint8Array>;
  closed: Promise<{ code: number; reason: string; wasClean: boolean }>;
}

/** Collects an undici WebSocket's messages and close event so that tests can await them in order. */
function track(ws: WebSocket): Client {
  ws.binaryType = 'arraybuffer';
  const messages = new Inbox<string | Uint8Array>();
  ws.addEventListener('message', (event: MessageEvent) => {
    const data: unknown = event.data;
    messages.push(typeof data === 'string' ? data : new Uint8Array(data as ArrayBuffer));
  });
  const closed = new Promise<{ code: number; reason: string; wasClean: boolean }>((resolve) => {
    ws.addEventListener('close', (event: CloseEvent) => {
      resolve({ code: event.code, reason: event.reason, wasClean: event.wasClean });
    });
  });
  return { ws, messages, closed };
}

function opened(ws: WebSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    ws.addEventListener('open', () => resolve(), { once: true });
    ws.addEventListener('error', () => reject(new Error('undici WebSocket failed to open')), { once: true });
  });
}

describe('undici WebSocket → wsconn accept()', { timeout: 30_000 }, () => {
  let server: WsconnServer;
  const clients = new Set<WebSocket>();

  before(async () => {
    server = await new WsconnServer().listen();
  });
  afterEach(async () => {
    // A test that failed half-way may leave its client open.
    for (const ws of clients) if (ws.readyState !== WebSocket.CLOSED) ws.close();
    clients.clear();
  });
  after(() => server.close());

  async function open(
    opts: Parameters<WsconnServer['nextConn']>[0] = {},
    protocols: string[] = [],
  ): Promise<{ client: Client; conn: Conn }> {
    const connP = server.nextConn(opts);
    const ws = new WebSocket(server.url, protocols);
    clients.add(ws);
    const client = track(ws);
    await opened(ws);
    return { client, conn: await connP };
  }

  it('opens and echoes text and binary messages', { timeout: 10_000 }, async () => {
    const { client, conn } = await open();
    assert.equal(client.ws.readyState, WebSocket.OPEN);
    assert.equal(client.ws.protocol, '');
    assert.equal(conn.subprotocol, '');
    const echoed = echo(conn);
    for (const size of [0, 1, 125, 126, 65535, 65536].filter((n) => n <= 32 * 1024)) {
      const bytes = pattern(size, 7);
      client.ws.send(bytes);
      assert.deepEqual(await client.messages.next(), bytes);
      const str = text(size);
      client.ws.send(str);
      assert.equal(await client.messages.next(), str);
    }
    client.ws.close(1000, 'done');
    const ended = await echoed;
    assert.ok(ended instanceof CloseError);
    assert.equal(ended.reason, 'done');
    assert.deepEqual(await client.closed, { code: 1000, reason: '', wasClean: true });
  });

  it('echoes 4 MiB binary and text messages', { timeout: 15_000 }, async () => {
    const { client, conn } = await open({ readLimit: -1 });
    const echoed = echo(conn);
    const bytes = pattern(4 * 1024 * 1024, 3);
    client.ws.send(bytes);
    const back = await client.messages.next();
    assert.ok(back instanceof Uint8Array && Buffer.from(bytes).equals(back), '4 MiB binary message came back changed');
    const str = text(4 * 1024 * 1024);
    client.ws.send(str);
    assert.equal(await client.messages.next(), str);
    client.ws.close();
    assert.ok((await echoed) instanceof CloseError);
  });

  it("negotiates a subprotocol offered through undici's protocols argument", { timeout: 10_000 }, async () => {
    const { client, conn } = await open({ subprotocols: ['chat.v2'] }, ['chat.v1', 'chat.v2']);
    assert.equal(client.ws.protocol, 'chat.v2');
    assert.equal(conn.subprotocol, 'chat.v2');
    const reading = conn.read();
    client.ws.close(1000);
    await assert.rejects(reading, CloseError);
  });

  it('is failed by undici when the server speaks none of the offered subprotocols', { timeout: 10_000 }, async () => {
    // WHATWG WebSocket "establish a WebSocket connection", step 2: a client
    // that offered subprotocols fails a response that selects none.
    const connP = server.nextConn({ subprotocols: ['chat.v3'] });
    const ws = new WebSocket(server.url, ['chat.v1']);
    clients.add(ws);
    const client = track(ws);
    await assert.rejects(opened(ws));
    assert.equal((await client.closed).code, 1006);
    const conn = await connP;
    assert.equal(conn.subprotocol, '');
    // undici 7 leaves the TCP connection open after failing the handshake,
    // so the server has to drop it (a read would wait until a timeout).
    conn.closeNow();
    assert.equal((await conn.closed).code, 1006);
  });

  it("shows wsconn's close code and reason in undici's CloseEvent", { timeout: 10_000 }, async () => {
    const { client, conn } = await open();
    // The client waits for the server to close TCP first (RFC 6455 §7.1.1).
    const info = await within(2000, 'conn.close()', conn.close(4002, 'server going ✓'));
    assert.deepEqual(await client.closed, { code: 4002, reason: 'server going ✓', wasClean: true });
    assert.equal(info.code, 4002);
    assert.equal(info.wasClean, true);
  });

  it("reports undici's close code and reason in wsconn's closed", { timeout: 10_000 }, async () => {
    const { client, conn } = await open();
    const reading = conn.read();
    client.ws.close(4003, 'client going ✓');
    await assert.rejects(reading, (err: unknown) => err instanceof CloseError && err.code === 4003);
    assert.deepEqual(await within(2000, 'conn.closed', conn.closed), {
      code: 4003,
      reason: 'client going ✓',
      wasClean: true,
    });
    const event = await client.closed;
    assert.equal(event.code, 4003);
    assert.equal(event.wasClean, true);
  });

  it('reports 1005 when undici closes without a code', { timeout: 10_000 }, async () => {
    const { client, conn } = await open();
    const reading = conn.read();
    client.ws.close();
    await assert.rejects(reading, (err: unknown) => err instanceof CloseError && err.code === 1005);
    assert.deepEqual(await conn.closed, { code: 1005, reason: '', wasClean: true });
    assert.equal((await client.closed).wasClean, true);
  });
});
