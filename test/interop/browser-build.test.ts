/**
 * wsconn's browser build in a real Chromium (Debian `chromium`, driven by
 * playwright-core): a page bundled from `wsconn` and `wsconn/wsjson` with
 * the `"browser"` condition (test/fixtures/browser-page/page.ts) dials
 * wsconn's `accept()` in this process. Also the isomorphic example, run from
 * Node and from a page against its own server.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, before, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { policyViolationCode } from '../../src/browser/index.js';
import { closeStatus } from '../../src/close.js';
import { MessageType, type Conn } from '../../src/conn.js';
import { bundleForBrowser } from '../helpers/bundle.js';
import { chromiumMissing, launchChromium } from '../helpers/chromium.js';
import { ExampleProcess } from '../helpers/example-process.js';
import { leakCheck } from '../helpers/leak.js';
import { describeWithPeer, echo, requirePeer, within, WsconnServer } from './harness.js';

const checkLeaks = leakCheck();
after(() => checkLeaks());

const html = '<!doctype html><meta charset="utf-8"><title>wsconn browser build</title><script type="module" src="/page.js"></script>';

describeWithPeer('browser build in Chromium → wsconn accept()', chromiumMissing, { timeout: 90_000 }, () => {
  let browser: Browser;
  let page: Page;
  let server: WsconnServer;
  let lastId = 0;

  /** Calls one of the page's steps with JSON arguments. */
  function step<T>(name: string, ...args: unknown[]): Promise<T> {
    return page.evaluate(`steps.${name}(...${JSON.stringify(args)})`) as Promise<T>;
  }

  /** Opens a page Conn to the server; resolves with its id and the server's Conn. */
  async function open(options: object = {}, accept: object = {}): Promise<{ id: number; peer: Conn }> {
    const id = ++lastId;
    const peer = server.nextConn({ readLimit: 1024 * 1024, ...accept });
    await step('open', id, server.url, options);
    return { id, peer: await peer };
  }

  before(async () => {
    requirePeer(chromiumMissing);
    const { code } = await bundleForBrowser('test/fixtures/browser-page/page.ts');
    server = await new WsconnServer().listen();
    server.onRequest = (req: IncomingMessage, res: ServerResponse) => {
      if (req.url === '/page.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(code);
      else res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html);
    };
    browser = await launchChromium();
    page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${server.port}/`);
    await page.waitForFunction('typeof steps === "object"', undefined, { timeout: 10_000 });
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  it('echoes text, binary, JSON through wsjson, and a writer() message; reports the subprotocol', { timeout: 15_000 }, async () => {
    const id = ++lastId;
    const peer = server.nextConn({ subprotocols: ['chat.v1'], readLimit: 1024 * 1024 });
    assert.deepEqual(await step('open', id, server.url, { subprotocols: ['chat.v1'] }), { subprotocol: 'chat.v1', extensions: '' });
    const serving = echo(await peer);
    assert.deepEqual(await step('echo', id), []);
    assert.deepEqual(await step('close', id, 1000, 'done'), { code: 1000, reason: '', wasClean: true });
    assert.equal(closeStatus(await serving), 1000);
  });

  it('keeps the connection when a read is aborted: the next read gets the message', { timeout: 15_000 }, async () => {
    const { id, peer } = await open();
    assert.equal(await step('abortedRead', id), 'stop reading');
    await peer.write(MessageType.Text, 'after the abort');
    assert.equal(await step('readText', id), 'after the abort');
    await step('close', id, 1000, '');
  });

  it('closes both ways: the server sees the page\'s code and reason, the page sees the server\'s as CloseError', { timeout: 15_000 }, async () => {
    const a = await open();
    const peerRead = a.peer.read().catch((err: unknown) => err);
    assert.deepEqual(await step('close', a.id, 1003, ''), { name: 'RangeError', code: -1, message: 'close code 1003 cannot be sent by the WebSocket API: use 1000 or 3000–4999' });
    assert.deepEqual(await step('close', a.id, 4321, 'page bye ✓'), { code: 4321, reason: '', wasClean: true });
    const ended = await peerRead;
    assert.deepEqual([closeStatus(ended), (ended as { reason?: string }).reason], [4321, 'page bye ✓']);

    const b = await open();
    const reading = step<{ name: string; code: number }>('readEnd', b.id);
    await b.peer.close(1001, 'server going');
    assert.deepEqual(await reading, { name: 'CloseError', code: 1001, message: 'peer closed the connection: 1001 server going' });
    assert.deepEqual(await step('closed', b.id), { code: 1001, reason: 'server going', wasClean: true });
  });

  it(`closes with ${policyViolationCode} when the server floods a page that does not read; what was queued stays readable`, { timeout: 30_000 }, async (t) => {
    const { id, peer } = await open({ readQueueLimit: 256 * 1024 });
    const peerSaw = peer.read().catch((err: unknown) => err);
    const started = performance.now();
    let sent = 0;
    try {
      for (; sent < 256; sent++) await peer.write(MessageType.Binary, new Uint8Array(16 * 1024));
    } catch {
      // the page's close frame came while flooding
    }
    assert.equal(closeStatus(await within(10_000, 'the page closing', peerSaw)), policyViolationCode);
    const info = await step<{ code: number }>('closed', id);
    assert.equal(info.code, policyViolationCode);
    const { count, end } = await step<{ count: number; end: { name: string; code: number } }>('drain', id);
    assert.equal(count, 16, 'a 256 KiB queue holds sixteen 16 KiB messages');
    assert.deepEqual([end.name, end.code], ['ProtocolError', policyViolationCode]);
    t.diagnostic(`flood: the server wrote ${sent} messages of 16 KiB; the page closed within ${Math.round(performance.now() - started)} ms`);
  });

  it('pushes back in write() when the server stops reading, and resumes when it reads again', { timeout: 60_000 }, async (t) => {
    const { id, peer } = await open({ writeBufferLimit: 64 * 1024 });
    const size = 64 * 1024;
    const { resolved, stalled } = await step<{ resolved: number; stalled: string }>('writeUntilStalled', id, size, 1000, 2048);
    assert.equal(stalled, 'TimeoutError', `${resolved} writes of 64 KiB all resolved within 1 s each`);
    t.diagnostic(`backpressure: ${resolved} writes of 64 KiB (${((resolved * size) / 2 ** 20).toFixed(1)} MiB) resolved before write() waited`);
    let received = 0;
    const draining = (async () => {
      for (; received < resolved + 1; received++) await peer.read();
    })();
    assert.equal(await step('writeOne', id, size, 20_000), 'written');
    await within(20_000, 'the server reading all', draining);
    assert.equal(received, resolved + 1, 'the aborted write sent nothing');
    await step('close', id, 1000, '');
  });

  it('refuses what the WebSocket API cannot do, and a failed handshake gives a HandshakeError with status 0', { timeout: 15_000 }, async () => {
    const { id } = await open();
    assert.deepEqual(await step('unsupported', id), {
      ping: 'NotSupportedError',
      headers: "dial option 'headers' is not available in the browser build: the WebSocket API cannot set request headers",
    });
    await step('close', id, 1000, '');
    // No upgrade is expected: the server drops the connection.
    const failed = await step<{ name: string }>('dialFails', server.url);
    assert.equal(failed.name, 'HandshakeError');
  });
});

describeWithPeer('the isomorphic example, from Node and from a Chromium page', chromiumMissing, { timeout: 90_000 }, () => {
  let example: ExampleProcess;
  let browser: Browser;

  before(async () => {
    requirePeer(chromiumMissing);
    example = new ExampleProcess('examples/isomorphic/server.ts', ['0']);
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await example?.kill();
  });

  it('adds the same numbers with the same client module in both runtimes', { timeout: 60_000 }, async () => {
    const [, base] = (await example.waitFor(/listening on (http:\/\/\S+)\//, 30_000))!;
    const client = new ExampleProcess('examples/isomorphic/node.ts', [`${base!.replace('http', 'ws')}/sum`, '1', '2', '3.5']);
    assert.deepEqual(await client.exit(30_000), { code: 0, signal: null }, client.output);
    assert.equal(client.stdout, 'sum: 6.5\n');
    const page = await browser.newPage();
    await page.goto(`${base}/?1&2&3.5`);
    await page.waitForFunction('document.body.textContent.startsWith("sum") || document.body.textContent.startsWith("error")', undefined, { timeout: 15_000 });
    assert.equal(await page.evaluate('document.body.textContent'), 'sum: 6.5');
  });
});
