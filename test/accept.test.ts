import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { accept, type AcceptOptions } from '../src/accept.js';
import { MessageType, type Conn } from '../src/conn.js';
import { HandshakeError } from '../src/errors.js';
import { deferred, type Deferred } from '../src/internal/deferred.js';
import { runScript } from './helpers/script.js';
import { upgradeText, type HeaderSpec } from './helpers/http-raw.js';
import { leakCheck } from './helpers/leak.js';
import { sampleAccept, sampleKey } from './helpers/raw.js';

const checkLeaks = leakCheck();


// One server for the file. Each test arms `next` with the options for the one
// connection it makes; the handler answers with accept()'s settled result.
interface Expectation {
  opts: AcceptOptions;
  beforeAccept: ((socket: Duplex) => void) | undefined;
  settled: Deferred<PromiseSettledResult<Conn>>;
}
let next: Expectation | undefined;
let server: Server;
let port = 0;

function handle(req: IncomingMessage, socket: Duplex, head: Uint8Array): void {
  const expectation = next;
  next = undefined;
  if (expectation === undefined) {
    socket.destroy();
    return;
  }
  expectation.beforeAccept?.(socket);
  Promise.allSettled([accept(req, socket, head, expectation.opts)]).then(
    ([result]) => expectation.settled.resolve(result!),
    expectation.settled.reject,
  );
}

/** Arms the server for the next connection and returns accept()'s settled result. */
function expectAccept(opts: AcceptOptions = {}, beforeAccept?: (socket: Duplex) => void): Promise<PromiseSettledResult<Conn>> {
  const settled = deferred<PromiseSettledResult<Conn>>();
  next = { opts, beforeAccept, settled };
  return settled.promise;
}

before(async () => {
  server = createServer();
  server.on('upgrade', handle);
  // Requests without both Upgrade and Connection: upgrade never reach 'upgrade'.
  server.on('request', (req: IncomingMessage) => handle(req, req.socket, new Uint8Array(0)));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
});

after(async () => {
  server.closeAllConnections();
  server.close();
  await once(server, 'close');
  await checkLeaks();
});

async function dialRaw(opts: { allowHalfOpen?: boolean } = {}): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: opts.allowHalfOpen ?? false });
  await once(socket, 'connect');
  return socket;
}

/** Everything the server sends until it ends the stream. */
async function readToEnd(socket: Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  await once(socket, 'end');
  return Buffer.concat(chunks);
}

/** Reads up to the end of the response head, leaving later bytes unread. */
async function readHead(socket: Socket): Promise<string> {
  let buffered = Buffer.alloc(0);
  for (;;) {
    const chunk = socket.read() as Buffer | null;
    if (chunk === null) {
      await once(socket, 'readable');
      continue;
    }
    buffered = Buffer.concat([buffered, chunk]);
    const end = buffered.indexOf('\r\n\r\n');
    if (end >= 0) {
      if (end + 4 < buffered.length) socket.unshift(buffered.subarray(end + 4));
      return buffered.subarray(0, end + 4).toString('latin1');
    }
  }
}

interface Response {
  statusLine: string;
  headers: Array<[string, string]>;
  body: string;
}

function parseResponse(raw: string): Response {
  const split = raw.indexOf('\r\n\r\n');
  assert.ok(split >= 0, `no end of head in ${JSON.stringify(raw)}`);
  const [statusLine = '', ...lines] = raw.slice(0, split).split('\r\n');
  const headers = lines.map((line): [string, string] => {
    const colon = line.indexOf(':');
    return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()];
  });
  return { statusLine, headers, body: raw.slice(split + 4) };
}

/** Sends `raw` and returns the complete response together with accept()'s outcome. */
async function exchange(raw: string | Uint8Array, opts: AcceptOptions = {}): Promise<{ response: Response; result: PromiseSettledResult<Conn> }> {
  const accepted = expectAccept(opts);
  const socket = await dialRaw();
  socket.write(raw);
  const [bytes, result] = await Promise.all([readToEnd(socket), accepted]);
  socket.destroy();
  return { response: parseResponse(bytes.toString('utf8')), result };
}

/** Asserts a complete refusal and that accept() rejected with a HandshakeError describing exactly it. */
function assertRefusal(
  { response, result }: { response: Response; result: PromiseSettledResult<Conn> },
  status: number,
  statusText: string,
  extraHeaders: Array<[string, string]>,
  bodyPattern: RegExp,
  connection = 'close',
): void {
  assert.equal(response.statusLine, `HTTP/1.1 ${status} ${statusText}`);
  const expected: Array<[string, string]> = [
    ['connection', connection],
    ['content-type', 'text/plain; charset=utf-8'],
    ['content-length', String(Buffer.byteLength(response.body))],
    ...extraHeaders,
  ];
  assert.deepEqual(sorted(response.headers), sorted(expected));
  assert.match(response.body, bodyPattern);
  assert.equal(result.status, 'rejected');
  const err: unknown = result.reason;
  assert.ok(err instanceof HandshakeError, `expected a HandshakeError, got ${String(err)}`);
  assert.equal(err.status, status);
  assert.equal(err.body, response.body);
  assert.deepEqual(sorted([...err.headers]), sorted(response.headers));
}

function sorted(headers: Array<[string, string]>): Array<[string, string]> {
  return [...headers].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

const upgradeRequired: Array<[string, string]> = [['upgrade', 'websocket']];

describe('accept refuses bad handshakes with a complete response (RFC 6455 §4.2.1)', { timeout: 20_000 }, () => {
  it('405 with Allow: GET for another method', { timeout: 5000 }, async () => {
    const outcome = await exchange(upgradeText({}, 'POST /chat HTTP/1.1').replace('\r\n\r\n', '\r\nContent-Length: 0\r\n\r\n'));
    assertRefusal(outcome, 405, 'Method Not Allowed', [['allow', 'GET']], /GET/);
  });

  it('400 for HTTP/1.0', { timeout: 5000 }, async () => {
    const outcome = await exchange(upgradeText({}, 'GET /chat HTTP/1.0'));
    assertRefusal(outcome, 400, 'Bad Request', [], /HTTP\/1\.1/);
  });

  it('426 naming websocket when Upgrade is another protocol', { timeout: 5000 }, async () => {
    const outcome = await exchange(upgradeText({ Upgrade: 'h2c' }));
    assertRefusal(outcome, 426, 'Upgrade Required', upgradeRequired, /Upgrade/, 'Upgrade, close');
  });

  it('426 when Upgrade is missing', { timeout: 5000 }, async () => {
    const outcome = await exchange(upgradeText({ Upgrade: undefined }));
    assertRefusal(outcome, 426, 'Upgrade Required', upgradeRequired, /Upgrade/, 'Upgrade, close');
  });

  it('426 when Connection does not list Upgrade', { timeout: 5000 }, async () => {
    const outcome = await exchange(upgradeText({ Connection: 'keep-alive' }));
    assertRefusal(outcome, 426, 'Upgrade Required', upgradeRequired, /Connection/, 'Upgrade, close');
  });

  for (const version of ['8', undefined, '13, 8', '']) {
    it(`426 with Sec-WebSocket-Version: 13 for version ${JSON.stringify(version)} (RFC 6455 §4.4)`, { timeout: 5000 }, async () => {
      const outcome = await exchange(upgradeText({ 'Sec-WebSocket-Version': version }));
      const headers: Array<[string, string]> = [...upgradeRequired, ['sec-websocket-version', '13']];
      assertRefusal(outcome, 426, 'Upgrade Required', headers, /Sec-WebSocket-Version/, 'Upgrade, close');
    });
  }

  const badKeys: Array<[string, string | string[] | undefined]> = [
    ['missing', undefined],
    ['empty', ''],
    ['not base64', 'this is not base64 at all'],
    ['15 bytes', Buffer.alloc(15, 1).toString('base64')],
    ['17 bytes', Buffer.alloc(17, 1).toString('base64')],
    ['sent twice', [sampleKey, sampleKey]],
  ];
  for (const [what, key] of badKeys) {
    it(`400 for a Sec-WebSocket-Key that is ${what}`, { timeout: 5000 }, async () => {
      const outcome = await exchange(upgradeText({ 'Sec-WebSocket-Key': key }));
      assertRefusal(outcome, 400, 'Bad Request', [], /Sec-WebSocket-Key/);
    });
  }

  const malformed: Array<[string, HeaderSpec, RegExp]> = [
    ['no Host (RFC 6455 §4.2.1)', { Host: undefined }, /Host/],
    ['two Host lines (RFC 9112 §3.2)', { Host: ['server.example.com', 'evil.test'] }, /more than one Host/],
    ['a Host that is not host[:port]', { Host: 'server.example.com/x' }, /Host header is malformed/],
    ['a subprotocol that is not a token', { 'Sec-WebSocket-Protocol': 'chat v1' }, /Sec-WebSocket-Protocol/],
    ['a subprotocol offered twice (RFC 6455 §4.1)', { 'Sec-WebSocket-Protocol': ['chat', 'chat'] }, /twice/],
    ['an empty Sec-WebSocket-Protocol', { 'Sec-WebSocket-Protocol': '' }, /lists nothing/],
    ['an unclosed quoted string in Sec-WebSocket-Extensions', { 'Sec-WebSocket-Extensions': 'permessage-deflate; a="b' }, /Extensions/],
    ['an Upgrade protocol without its version', { Upgrade: 'websocket/' }, /Upgrade header/],
  ];
  for (const [what, headers, body] of malformed) {
    it(`400 for ${what}`, { timeout: 5000 }, async () => {
      const outcome = await exchange(upgradeText(headers));
      assertRefusal(outcome, 400, 'Bad Request', [], body);
    });
  }

  it('declines, rather than refuses, a well-formed deflate offer it cannot take (RFC 7692 §5)', { timeout: 5000 }, async () => {
    const accepted = expectAccept({ compressionMode: 'context-takeover' });
    const socket = await dialRaw();
    socket.write(upgradeText({ 'Sec-WebSocket-Extensions': 'permessage-deflate; server_max_window_bits=7, permessage-deflate; x=1' }));
    const head = await readHead(socket);
    const result = await accepted;
    assert.match(head, /^HTTP\/1\.1 101 /);
    assert.doesNotMatch(head, /Sec-WebSocket-Extensions/i);
    assert.equal(result.status, 'fulfilled');
    result.value.closeNow();
    socket.destroy();
  });

  it('ends the connection after a refusal: a second request on it gets no answer', { timeout: 5000 }, async () => {
    const accepted = expectAccept();
    const socket = await dialRaw({ allowHalfOpen: true });
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    // Two requests in one packet, as a keep-alive client would pipeline them.
    socket.write(upgradeText({ Host: undefined }) + upgradeText());
    await once(socket, 'end');
    await accepted;
    const received = Buffer.concat(chunks).toString('latin1');
    assert.equal(received.match(/HTTP\/1\.1 /g)?.length, 1, received);
    assert.match(received, /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.match(received, /\r\nConnection: close\r\n/);
    socket.end();
    await once(socket, 'close');
  });

  it('accepts the tokens in any case and inside longer lists', { timeout: 5000 }, async () => {
    const accepted = expectAccept();
    const socket = await dialRaw();
    socket.write(upgradeText({ Upgrade: 'foo/1, WebSocket', Connection: 'keep-alive, UPGRADE' }));
    const head = await readHead(socket);
    const result = await accepted;
    assert.match(head, /^HTTP\/1\.1 101 /);
    assert.equal(result.status, 'fulfilled');
    result.value.closeNow();
    socket.destroy();
  });
});

describe('accept checks the Origin (RFC 6455 §10.2)', { timeout: 20_000 }, () => {
  it('403 for a cross-origin request without patterns', { timeout: 5000 }, async () => {
    const outcome = await exchange(upgradeText({ Origin: 'https://evil.test' }));
    assertRefusal(outcome, 403, 'Forbidden', [], /Origin/);
  });

  it('403 for the opaque origin "null", even with a "*" pattern', { timeout: 5000 }, async () => {
    const outcome = await exchange(upgradeText({ Origin: 'null' }), { originPatterns: ['*'] });
    assertRefusal(outcome, 403, 'Forbidden', [], /Origin/);
  });

  it('403 when no pattern matches', { timeout: 5000 }, async () => {
    const outcome = await exchange(upgradeText({ Origin: 'https://example.com.evil.test' }), { originPatterns: ['*.example.com'] });
    assertRefusal(outcome, 403, 'Forbidden', [], /Origin/);
  });

  const allowed: Array<[string, HeaderSpec, AcceptOptions]> = [
    ['no Origin', {}, {}],
    ['same origin, ignoring case', { Origin: 'https://SERVER.example.com' }, {}],
    ['a matching host pattern', { Origin: 'https://app.example.com' }, { originPatterns: ['*.example.com'] }],
    ['a matching scheme-aware pattern', { Origin: 'http://localhost:5173' }, { originPatterns: ['http://localhost:*'] }],
    ['insecureSkipVerify', { Origin: 'https://evil.test' }, { insecureSkipVerify: true }],
  ];
  for (const [what, headers, opts] of allowed) {
    it(`101 for ${what}`, { timeout: 5000 }, async () => {
      const accepted = expectAccept(opts);
      const socket = await dialRaw();
      socket.write(upgradeText(headers));
      const head = await readHead(socket);
      const result = await accepted;
      assert.match(head, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
      assert.equal(result.status, 'fulfilled');
      result.value.closeNow();
      socket.destroy();
    });
  }
});

describe('accept answers 101 Switching Protocols (RFC 6455 §4.2.2)', { timeout: 20_000 }, () => {
  async function upgrade(headers: HeaderSpec, opts: AcceptOptions): Promise<{ response: Response; conn: Conn; socket: Socket }> {
    const accepted = expectAccept(opts);
    const socket = await dialRaw();
    socket.write(upgradeText(headers));
    const response = parseResponse(await readHead(socket));
    const result = await accepted;
    if (result.status === 'rejected') throw result.reason;
    return { response, conn: result.value, socket };
  }

  it('with the accept key and no subprotocol when none was offered', { timeout: 5000 }, async () => {
    const { response, conn, socket } = await upgrade({}, { subprotocols: ['chat.v1'] });
    assert.equal(response.statusLine, 'HTTP/1.1 101 Switching Protocols');
    assert.deepEqual(sorted(response.headers), [
      ['connection', 'Upgrade'],
      ['sec-websocket-accept', sampleAccept],
      ['upgrade', 'websocket'],
    ]);
    assert.equal(response.body, '');
    assert.equal(conn.subprotocol, '');
    assert.equal(conn.extensions, '');
    conn.closeNow();
    socket.destroy();
  });

  it("with the server's preferred subprotocol among those offered", { timeout: 5000 }, async () => {
    const headers = { 'Sec-WebSocket-Protocol': ['chat.v1, chat.v3', 'chat.v2'] };
    const { response, conn, socket } = await upgrade(headers, { subprotocols: ['chat.v2', 'chat.v1'] });
    assert.deepEqual(
      response.headers.filter(([name]) => name === 'sec-websocket-protocol'),
      [['sec-websocket-protocol', 'chat.v2']],
    );
    assert.equal(conn.subprotocol, 'chat.v2');
    conn.closeNow();
    socket.destroy();
  });

  it('without Sec-WebSocket-Protocol when no offered subprotocol is supported', { timeout: 5000 }, async () => {
    const { response, conn, socket } = await upgrade({ 'Sec-WebSocket-Protocol': 'CHAT.V1' }, { subprotocols: ['chat.v1'] });
    assert.equal(response.headers.find(([name]) => name === 'sec-websocket-protocol'), undefined);
    assert.equal(conn.subprotocol, '');
    conn.closeNow();
    socket.destroy();
  });

  it('ignores an offered permessage-deflate (no extension is negotiated)', { timeout: 5000 }, async () => {
    const { response, conn, socket } = await upgrade({ 'Sec-WebSocket-Extensions': 'permessage-deflate' }, {});
    assert.equal(response.headers.find(([name]) => name === 'sec-websocket-extensions'), undefined);
    assert.equal(conn.extensions, '');
    conn.closeNow();
    socket.destroy();
  });

  it('delivers a frame sent in the same packet as the request first (head)', { timeout: 5000 }, async () => {
    const accepted = expectAccept();
    const socket = await dialRaw();
    socket.write(Buffer.concat([Buffer.from(upgradeText(), 'latin1'), maskedFrame(0x1, 'first'), maskedFrame(0x1, 'second')]));
    await readHead(socket);
    const result = await accepted;
    if (result.status === 'rejected') throw result.reason;
    const conn = result.value;
    const first = await conn.read();
    assert.equal(first.type, MessageType.Text);
    assert.equal(Buffer.from(first.data).toString(), 'first');
    const second = await conn.read();
    assert.equal(Buffer.from(second.data).toString(), 'second');
    conn.closeNow();
    socket.destroy();
  });
});

describe('accept cleans up after itself', { timeout: 20_000 }, () => {
  it('rejects with status 0 and writes nothing when the socket is already destroyed', { timeout: 5000 }, async () => {
    const accepted = expectAccept({}, (socket) => socket.destroy());
    const socket = await dialRaw();
    socket.write(upgradeText());
    const [bytes, result] = await Promise.all([readToEnd(socket), accepted]);
    socket.destroy();
    assert.equal(bytes.length, 0);
    assert.equal(result.status, 'rejected');
    assert.ok(result.reason instanceof HandshakeError);
    assert.equal(result.reason.status, 0);
  });

  const badOptions: Array<[string, AcceptOptions, RegExp]> = [
    ['a malformed origin pattern', { originPatterns: ['*.example.com', '[a-'] }, /originPatterns.*malformed pattern/],
    ['a subprotocol that is not a token', { subprotocols: ['chat v1'] }, /not an HTTP token/],
    ['an unknown compression mode', { compressionMode: 'gzip' as 'disabled' }, /compressionMode/],
    ['a read limit that is not an integer', { readLimit: 1.5 }, /read limit/],
    ['a keepalive interval of 0', { keepalive: { interval: 0, timeout: 10 } }, /keepalive\.interval/],
    ['a negative compression threshold', { compressionThreshold: -1 }, /compressionThreshold/],
  ];
  for (const [what, opts, message] of badOptions) {
    it(`rejects with a plain Error and answers 500 for ${what}`, { timeout: 5000 }, async () => {
      const { response, result } = await exchange(upgradeText(), opts);
      assert.equal(response.statusLine, 'HTTP/1.1 500 Internal Server Error');
      assert.equal(result.status, 'rejected');
      assert.ok(!(result.reason instanceof HandshakeError));
      assert.match((result.reason as Error).message, message);
    });
  }

  it('still delivers the refusal to a client that half-closed after its request', { timeout: 5000 }, async () => {
    const accepted = expectAccept();
    const socket = await dialRaw({ allowHalfOpen: true });
    socket.end(upgradeText({ 'Sec-WebSocket-Version': '7' }));
    const [bytes, result] = await Promise.all([readToEnd(socket), accepted]);
    assert.match(bytes.toString('latin1'), /^HTTP\/1\.1 426 Upgrade Required\r\n/);
    assert.equal(result.status, 'rejected');
    await once(socket, 'close');
  });

  it('drops a refused client that never closes its side after a bounded linger', { timeout: 5000 }, async () => {
    let serverClosed: Promise<unknown> = Promise.resolve();
    const accepted = expectAccept({}, (serverSide) => {
      serverClosed = once(serverSide, 'close');
    });
    const socket = await dialRaw({ allowHalfOpen: true });
    socket.write(upgradeText({ 'Sec-WebSocket-Version': '7' }));
    const [bytes] = await Promise.all([readToEnd(socket), accepted]);
    assert.match(bytes.toString('latin1'), /^HTTP\/1\.1 426 /);
    // Our side stays open, yet the server's socket must go away on its own.
    await serverClosed;
    socket.destroy();
  });
});

/** A masked client frame (RFC 6455 §5.3) carrying `text`, with a fixed mask for reproducibility. */
function maskedFrame(opcode: number, text: string): Buffer {
  const payload = Buffer.from(text);
  assert.ok(payload.length < 126);
  const maskKey = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);
  const masked = payload.map((byte, i) => byte ^ maskKey[i % 4]!);
  return Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | payload.length]), maskKey, masked]);
}

describe('a refusal loads nothing it does not need', { timeout: 20_000 }, () => {
  it("does not make Node load its fetch implementation (and install its Agent) until err.headers is read", { timeout: 15_000 }, async () => {
    // The first global Headers of a process loads Node's fetch, which puts its default Agent in this slot.
    const script = `
      import { createServer } from 'node:http';
      import { connect } from 'node:net';
      const { accept } = await import(${JSON.stringify(new URL('../src/index.ts', import.meta.url).href)});
      const slot = Symbol.for('undici.globalDispatcher.1');
      const server = createServer();
      const refused = new Promise((resolve) => server.on('upgrade', (req, socket, head) => accept(req, socket, head).catch(resolve)));
      await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
      const client = connect(server.address().port, '127.0.0.1');
      client.write('GET / HTTP/1.1\\r\\nHost: x\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\nSec-WebSocket-Version: 8\\r\\n\\r\\n');
      client.resume();
      const err = await refused;
      const emptyAfterRefusal = globalThis[slot] === undefined;
      const version = err.headers.get('sec-websocket-version');
      client.destroy();
      server.close();
      console.log(JSON.stringify({ emptyAfterRefusal, status: err.status, version }));
    `;
    const output = await runScript(script);
    assert.deepEqual(JSON.parse(output.trim()), { emptyAfterRefusal: true, status: 426, version: '13' });
  });

  it('nor does an HTTP/2 refusal (acceptHttp2), on either end', { timeout: 15_000 }, async () => {
    const script = `
      import http2 from 'node:http2';
      const { acceptHttp2, dial } = await import(${JSON.stringify(new URL('../src/index.ts', import.meta.url).href)});
      const slot = Symbol.for('undici.globalDispatcher.1');
      const server = http2.createServer({ settings: { enableConnectProtocol: true } });
      const refused = new Promise((resolve) => server.on('stream', (stream, headers) => acceptHttp2(stream, headers).catch(resolve)));
      await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
      // Another origin than the server's own: refused with 403 (RFC 6455 §10.2).
      const failed = await dial('ws://127.0.0.1:' + server.address().port + '/', { http2: 'always', headers: { origin: 'https://elsewhere.example' } }).catch((e) => e);
      const err = await refused;
      const emptyAfterRefusal = globalThis[slot] === undefined;
      console.log(JSON.stringify({ emptyAfterRefusal, status: err.status, clientStatus: failed.status, type: failed.headers.get('content-type') }));
      process.exit(0);
    `;
    const output = await runScript(script);
    assert.deepEqual(JSON.parse(output.trim()), { emptyAfterRefusal: true, status: 403, clientStatus: 403, type: 'text/plain; charset=utf-8' });
  });
});
