/**
 * Interop with npm `ws`: a ws client against wsconn's `accept()`, and
 * wsconn's `dial()` against a ws `WebSocketServer`.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, afterEach, before, describe, it } from 'node:test';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { MessageType, type Conn } from '../../src/conn.js';
import { dial, type DialOptions } from '../../src/dial.js';
import { ClosedError, CloseError, HandshakeError, MessageTooBigError, ProtocolError } from '../../src/errors.js';
import { leakCheck } from '../helpers/leak.js';
import { echo, Inbox, pattern, text, within, WsconnServer } from './harness.js';

const checkLeaks = leakCheck();
after(() => checkLeaks());

const sizes = [0, 125, 126, 65535, 65536, 4 * 1024 * 1024];

interface WsMessage {
  data: Buffer;
  isBinary: boolean;
}

interface WsClose {
  code: number;
  reason: string;
}

/** A ws client with its messages, pongs and close collected so that tests can await them in order. */
interface WsClient {
  ws: WebSocket;
  messages: Inbox<WsMessage>;
  pongs: Inbox<Buffer>;
  closed: Promise<WsClose>;
  errors: Error[];
}

function track(ws: WebSocket): WsClient {
  const messages = new Inbox<WsMessage>();
  const pongs = new Inbox<Buffer>();
  const errors: Error[] = [];
  ws.on('message', (data, isBinary) => messages.push({ data: data as Buffer, isBinary }));
  ws.on('pong', (data) => pongs.push(data));
  ws.on('error', (err) => errors.push(err));
  const closed = new Promise<WsClose>((resolve) => {
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString('utf8') }));
  });
  return { ws, messages, pongs, closed, errors };
}

describe('ws client → wsconn accept()', { timeout: 30_000 }, () => {
  let server: WsconnServer;
  const clients = new Set<WebSocket>();

  before(async () => {
    server = await new WsconnServer().listen();
  });
  afterEach(() => {
    for (const ws of clients) ws.terminate();
    clients.clear();
  });
  after(() => server.close());

  /** Opens a ws client and resolves once both ends have their connection. */
  async function open(
    opts: Parameters<WsconnServer['nextConn']>[0] = {},
    protocols: string[] = [],
  ): Promise<{ client: WsClient; conn: Conn }> {
    const connP = server.nextConn(opts);
    const ws = new WebSocket(server.url, protocols);
    clients.add(ws);
    const client = track(ws);
    await once(ws, 'open');
    return { client, conn: await connP };
  }

  it('echoes text and binary messages of every length class, up to 4 MiB', { timeout: 15_000 }, async () => {
    const { client, conn } = await open({ readLimit: -1 });
    // ws offers permessage-deflate by default; wsconn declines it (compression is off by default).
    assert.equal(client.ws.extensions, '');
    assert.equal(conn.extensions, '');
    const echoed = echo(conn);
    for (const size of sizes) {
      const bytes = pattern(size, size);
      client.ws.send(bytes, { binary: true });
      const got = await client.messages.next();
      assert.equal(got.isBinary, true, `binary ${size}`);
      assert.ok(got.data.equals(bytes), `binary message of ${size} bytes came back changed`);

      const str = text(size);
      client.ws.send(str);
      const back = await client.messages.next();
      assert.equal(back.isBinary, false, `text ${size}`);
      assert.equal(back.data.toString('utf8'), str, `text message of ${size} bytes came back changed`);
    }
    client.ws.close(1000);
    const ended = await echoed;
    assert.ok(ended instanceof CloseError);
    assert.equal(ended.code, 1000);
    assert.deepEqual(await client.closed, { code: 1000, reason: '' });
    assert.deepEqual(await conn.closed, { code: 1000, reason: '', wasClean: true });
  });

  it('reads messages that ws sends in fragments, with a ping between them', { timeout: 10_000 }, async () => {
    const { client, conn } = await open();
    // 'wörld' split inside the two-byte 'ö': each fragment alone is not UTF-8.
    const word = Buffer.from('hello wörld');
    const split = word.indexOf(0xc3) + 1;
    client.ws.send(word.subarray(0, 3), { binary: false, fin: false });
    client.ws.send(word.subarray(3, split), { fin: false });
    client.ws.ping(Buffer.from('mid-message'));
    client.ws.send(word.subarray(split), { fin: true });
    client.ws.send(pattern(10), { binary: true, fin: false });
    client.ws.send(Buffer.alloc(0), { fin: false });
    client.ws.send(pattern(5, 10), { fin: true });

    const first = await conn.read();
    assert.equal(first.type, MessageType.Text);
    assert.equal(Buffer.from(first.data).toString('utf8'), 'hello wörld');
    assert.deepEqual(await client.pongs.next(), Buffer.from('mid-message'));
    const second = await conn.read();
    assert.equal(second.type, MessageType.Binary);
    assert.deepEqual(Buffer.from(second.data), Buffer.concat([pattern(10), pattern(5, 10)]));
    await conn.close(1000);
  });

  it("resolves wsconn's ping() with ws's automatic pong while wsconn reads", { timeout: 10_000 }, async () => {
    const { client, conn } = await open();
    const echoed = echo(conn);
    const rtts = await Promise.all([conn.ping(), conn.ping(), conn.ping()]);
    for (const rtt of rtts) assert.ok(rtt >= 0 && rtt < 5000, `rtt ${rtt}`);
    client.ws.send('still works');
    assert.equal((await client.messages.next()).data.toString(), 'still works');
    client.ws.close(1000);
    assert.ok((await echoed) instanceof CloseError);
  });

  it("answers ws's pings with pongs carrying the same payload while wsconn reads", { timeout: 10_000 }, async () => {
    const seen: string[] = [];
    const { client, conn } = await open({
      onPingReceived: (payload) => {
        seen.push(Buffer.from(payload).toString());
      },
    });
    const echoed = echo(conn);
    client.ws.ping(Buffer.from('one'));
    client.ws.ping(Buffer.alloc(0));
    client.ws.ping(pattern(125));
    assert.deepEqual(await client.pongs.next(), Buffer.from('one'));
    assert.deepEqual(await client.pongs.next(), Buffer.alloc(0));
    assert.deepEqual(await client.pongs.next(), Buffer.from(pattern(125)));
    assert.deepEqual(seen.slice(0, 2), ['one', '']);
    client.ws.close(1000);
    assert.ok((await echoed) instanceof CloseError);
  });

  it("reports ws's close code and reason to wsconn, and ws sees its code echoed", { timeout: 10_000 }, async () => {
    const { client, conn } = await open();
    client.ws.close(4000, 'client bye ✓');
    await assert.rejects(conn.read(), (err: unknown) => {
      assert.ok(err instanceof CloseError);
      assert.equal(err.code, 4000);
      assert.equal(err.reason, 'client bye ✓');
      return true;
    });
    assert.deepEqual(await conn.closed, { code: 4000, reason: 'client bye ✓', wasClean: true });
    assert.equal((await client.closed).code, 4000);
  });

  it('reports 1005 to wsconn when ws closes without a code', { timeout: 10_000 }, async () => {
    const { client, conn } = await open();
    client.ws.close();
    await assert.rejects(conn.read(), (err: unknown) => err instanceof CloseError && err.code === 1005);
    assert.deepEqual(await conn.closed, { code: 1005, reason: '', wasClean: true });
    assert.equal((await client.closed).code, 1005);
  });

  it("delivers wsconn's close code and reason to ws", { timeout: 10_000 }, async () => {
    const { client, conn } = await open();
    const info = await conn.close(4001, 'server bye ✓');
    assert.deepEqual(await client.closed, { code: 4001, reason: 'server bye ✓' });
    // ws echoes the code and the reason.
    assert.deepEqual(info, { code: 4001, reason: 'server bye ✓', wasClean: true });
    assert.deepEqual(await conn.closed, info);
  });

  it('reports 1006 to wsconn when ws drops the TCP connection', { timeout: 10_000 }, async () => {
    const { client, conn } = await open();
    const reading = conn.read();
    client.ws.terminate();
    await assert.rejects(reading);
    const info = await conn.closed;
    assert.equal(info.code, 1006);
    assert.equal(info.wasClean, false);
  });

  it("negotiates the server's preferred subprotocol among ws's offers", { timeout: 10_000 }, async () => {
    const { client, conn } = await open({ subprotocols: ['chat.v2', 'chat.v1'] }, ['chat.v1', 'chat.v2']);
    assert.equal(client.ws.protocol, 'chat.v2');
    assert.equal(conn.subprotocol, 'chat.v2');
    await conn.close(1000);
  });

  it('closes with 1007 when ws sends a text message that is not UTF-8', { timeout: 10_000 }, async () => {
    const { client, conn } = await open();
    client.ws.send(Buffer.from([0x68, 0x69, 0xc0, 0xaf]), { binary: false });
    await assert.rejects(conn.read(), (err: unknown) => err instanceof ProtocolError && err.code === 1007);
    assert.equal((await client.closed).code, 1007);
    // wsconn failed the connection; ws answered at once, so it ends promptly.
    const info = await within(2000, 'conn.closed', conn.closed);
    assert.equal(info.wasClean, false);
  });

  it('closes with 1009 when ws sends more than the read limit', { timeout: 10_000 }, async () => {
    const { client, conn } = await open({ readLimit: 1024 });
    client.ws.send(pattern(1024));
    assert.equal((await conn.read()).data.length, 1024);
    client.ws.send(pattern(1025));
    await assert.rejects(conn.read(), (err: unknown) => err instanceof MessageTooBigError && err.code === 1009);
    assert.equal((await client.closed).code, 1009);
    // wsconn failed the connection; ws answered at once, so it ends promptly.
    const info = await within(2000, 'conn.closed', conn.closed);
    assert.equal(info.wasClean, false);
  });
});

describe('wsconn dial() → ws WebSocketServer', { timeout: 30_000 }, () => {
  let wss: WebSocketServer;
  let url = '';
  const accepted = new Inbox<{ client: WsClient; req: IncomingMessage }>();
  const conns = new Set<Conn>();

  before(async () => {
    wss = new WebSocketServer({
      host: '127.0.0.1',
      port: 0,
      // Prefer chat.v2; with none in common ws answers without a subprotocol.
      handleProtocols: (offered) => (offered.has('chat.v2') ? 'chat.v2' : false),
      verifyClient: ({ req }, done) => {
        if (req.headers.authorization === 'Bearer nope') done(false, 401, 'Unauthorized');
        else done(true);
      },
    });
    await once(wss, 'listening');
    url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`;
    wss.on('connection', (ws, req) => accepted.push({ client: track(ws), req }));
  });
  afterEach(() => {
    for (const conn of conns) conn.closeNow();
    conns.clear();
    for (const ws of wss.clients) ws.terminate();
  });
  after(async () => {
    wss.close();
    await once(wss, 'close');
  });

  /** Dials the server; resolves with both ends. */
  async function open(opts: DialOptions = {}, path = '/'): Promise<{ conn: Conn; peer: WsClient; req: IncomingMessage }> {
    const conn = await dial(url + path, { signal: AbortSignal.timeout(5000), ...opts });
    conns.add(conn);
    const { client: peer, req } = await accepted.next();
    return { conn, peer, req };
  }

  /** Makes the ws end echo every message. */
  function echoOn(peer: WsClient): void {
    peer.ws.on('message', (data, isBinary) => peer.ws.send(data as Buffer, { binary: isBinary }));
  }

  it('echoes text and binary messages of every length class, up to 4 MiB', { timeout: 15_000 }, async () => {
    const { conn, peer } = await open({ readLimit: -1 });
    echoOn(peer);
    for (const size of sizes) {
      const bytes = pattern(size, size + 1);
      const reading = conn.read();
      await conn.write(MessageType.Binary, bytes);
      const back = await reading;
      assert.equal(back.type, MessageType.Binary);
      assert.ok(Buffer.from(back.data).equals(bytes), `binary message of ${size} bytes came back changed`);

      const str = text(size);
      const readingText = conn.read();
      await conn.write(MessageType.Text, str);
      const backText = await readingText;
      assert.equal(backText.type, MessageType.Text);
      assert.equal(Buffer.from(backText.data).toString('utf8'), str, `text message of ${size} bytes came back changed`);
    }
    const info = await within(2000, 'conn.close()', conn.close(1000));
    assert.deepEqual(info, { code: 1000, reason: '', wasClean: true });
    assert.deepEqual(await peer.closed, { code: 1000, reason: '' });
  });

  it('reads fragmented messages from ws, answering a ping sent between fragments', { timeout: 10_000 }, async () => {
    const { conn, peer } = await open();
    const word = Buffer.from('hello wörld');
    const split = word.indexOf(0xc3) + 1;
    peer.ws.send(word.subarray(0, split), { binary: false, fin: false });
    peer.ws.ping(Buffer.from('between'));
    peer.ws.send(word.subarray(split), { fin: true });
    peer.ws.send(pattern(3), { binary: true, fin: false });
    peer.ws.send(pattern(4, 3), { fin: true });
    const first = await conn.read();
    assert.equal(first.type, MessageType.Text);
    assert.equal(Buffer.from(first.data).toString(), 'hello wörld');
    assert.deepEqual(await peer.pongs.next(), Buffer.from('between'));
    const second = await conn.read();
    assert.equal(second.type, MessageType.Binary);
    assert.deepEqual(Buffer.from(second.data), Buffer.concat([pattern(3), pattern(4, 3)]));
  });

  it("resolves wsconn's ping() with ws's automatic pong while wsconn reads", { timeout: 10_000 }, async () => {
    const { conn, peer } = await open();
    const reading = conn.read();
    const rtts = await Promise.all([conn.ping(), conn.ping()]);
    for (const rtt of rtts) assert.ok(rtt >= 0 && rtt < 5000, `rtt ${rtt}`);
    peer.ws.send('done');
    assert.equal(Buffer.from((await reading).data).toString(), 'done');
  });

  it("answers ws's pings with the same payload while wsconn reads", { timeout: 10_000 }, async () => {
    const seen: string[] = [];
    const { conn, peer } = await open({ onPingReceived: (payload) => void seen.push(Buffer.from(payload).toString()) });
    const reading = conn.read();
    peer.ws.ping(Buffer.from('from ws'));
    assert.deepEqual(await peer.pongs.next(), Buffer.from('from ws'));
    assert.deepEqual(seen, ['from ws']);
    peer.ws.send('done');
    await reading;
  });

  it("delivers wsconn's close code and reason to ws", { timeout: 10_000 }, async () => {
    const { conn, peer } = await open();
    const info = await within(2000, 'conn.close()', conn.close(4000, 'client bye ✓'));
    assert.deepEqual(await peer.closed, { code: 4000, reason: 'client bye ✓' });
    assert.deepEqual(info, { code: 4000, reason: 'client bye ✓', wasClean: true });
  });

  it("reports ws's close code and reason to wsconn", { timeout: 10_000 }, async () => {
    const { conn, peer } = await open();
    const reading = conn.read();
    peer.ws.close(4001, 'server bye ✓');
    await assert.rejects(reading, (err: unknown) => {
      assert.ok(err instanceof CloseError);
      assert.deepEqual([err.code, err.reason], [4001, 'server bye ✓']);
      return true;
    });
    assert.deepEqual(await within(2000, 'conn.closed', conn.closed), {
      code: 4001,
      reason: 'server bye ✓',
      wasClean: true,
    });
    assert.equal((await peer.closed).code, 4001);
  });

  it('reports 1006 when ws drops the TCP connection', { timeout: 10_000 }, async () => {
    const { conn, peer } = await open();
    const reading = conn.read();
    peer.ws.terminate();
    await assert.rejects(reading, ClosedError);
    const info = await conn.closed;
    assert.equal(info.code, 1006);
    assert.equal(info.wasClean, false);
  });

  it('negotiates the subprotocol ws chooses, and proceeds with none when ws chooses none', { timeout: 10_000 }, async () => {
    const chosen = await open({ subprotocols: ['chat.v1', 'chat.v2'] });
    assert.equal(chosen.req.headers['sec-websocket-protocol'], 'chat.v1, chat.v2');
    assert.equal(chosen.conn.subprotocol, 'chat.v2');
    assert.equal(chosen.peer.ws.protocol, 'chat.v2');
    const none = await open({ subprotocols: ['chat.v9'] });
    assert.equal(none.conn.subprotocol, '');
    assert.equal(none.peer.ws.protocol, '');
  });

  it("sends the caller's headers and path, and rejects a refused upgrade with HandshakeError", { timeout: 10_000 }, async () => {
    const { req } = await open({ headers: { 'x-token': 'abc' } }, '/feed?x=1');
    assert.equal(req.headers['x-token'], 'abc');
    assert.equal(req.url, '/feed?x=1');
    await assert.rejects(
      dial(url, { headers: { authorization: 'Bearer nope' }, signal: AbortSignal.timeout(5000) }),
      (err: unknown) => err instanceof HandshakeError && err.status === 401,
    );
  });

  it('closes with 1007 when ws sends a text message that is not UTF-8', { timeout: 10_000 }, async () => {
    const { conn, peer } = await open();
    peer.ws.send(Buffer.from([0x68, 0x69, 0xc0, 0xaf]), { binary: false });
    await assert.rejects(conn.read(), (err: unknown) => err instanceof ProtocolError && err.code === 1007);
    assert.equal((await peer.closed).code, 1007);
    // wsconn failed the connection; ws answered at once, so it ends promptly.
    const info = await within(2000, 'conn.closed', conn.closed);
    assert.equal(info.wasClean, false);
  });
});
