/**
 * createUpgradeListener() and refuseUpgrade() over loopback: hostile and
 * refused upgrades are answered on the wire and reported to onError, and
 * nothing escapes as an unhandled rejection or uncaught exception.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { after, afterEach, before, describe, it } from 'node:test';
import { closeStatus } from '../src/close.js';
import { MessageType, type Conn } from '../src/conn.js';
import { dial, type DialOptions } from '../src/dial.js';
import { HandshakeError, ProtocolError } from '../src/errors.js';
import { deferred, type Deferred } from '../src/internal/deferred.js';
import { refuseUpgrade } from '../src/refuse.js';
import { createUpgradeListener, type ConnHandler, type UpgradeListener, type UpgradeListenerOptions } from '../src/server.js';
import { dialRaw, field, parseRawResponse, refusedWith, upgradeText } from './helpers/http-raw.js';
import { leakCheck } from './helpers/leak.js';
import { encodeFrame, readHttpHead } from './helpers/raw.js';

const checkLeaks = leakCheck();
const escaped: unknown[] = [];
const recordEscape = (err: unknown): void => {
  escaped.push(err);
};

let server: Server;
let port = 0;
let current: ((req: IncomingMessage, socket: Duplex, head: Buffer) => void) | undefined;
let listener: UpgradeListener | undefined;
const clients = new Set<Conn>();

before(async () => {
  process.on('unhandledRejection', recordEscape);
  process.on('uncaughtException', recordEscape);
  server = createServer();
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => current?.(req, socket, head));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
});

afterEach(async () => {
  for (const conn of clients) conn.closeNow();
  clients.clear();
  await listener?.close({ signal: AbortSignal.timeout(2000) });
  listener = undefined;
  current = undefined;
});

after(async () => {
  server.closeAllConnections();
  server.close();
  await once(server, 'close');
  process.off('unhandledRejection', recordEscape);
  process.off('uncaughtException', recordEscape);
  assert.deepEqual(escaped, [], 'nothing may escape as an unhandled rejection or uncaught exception');
  await checkLeaks();
});

/** Errors reported to onError, in order, awaitable one at a time. */
class Reports {
  readonly #queue: Error[] = [];
  #waiter: Deferred<void> | undefined;
  readonly onError = (error: Error): void => {
    this.#queue.push(error);
    this.#waiter?.resolve();
  };

  async next(): Promise<Error> {
    while (this.#queue.length === 0) {
      this.#waiter = deferred();
      await this.#waiter.promise;
    }
    return this.#queue.shift()!;
  }

  get pending(): number {
    return this.#queue.length;
  }
}

/** Installs a fresh listener for the current test; returns what it reports. */
function serve<T = undefined>(options: UpgradeListenerOptions<T>, handler: ConnHandler<T> = () => {}): Reports {
  const reports = new Reports();
  listener = createUpgradeListener({ onError: reports.onError, ...options }, handler);
  current = listener;
  return reports;
}

async function connect(path = '/chat', options: DialOptions = {}): Promise<Conn> {
  const conn = await dial(`ws://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5000), ...options });
  clients.add(conn);
  return conn;
}

/** The error a read fails with once the server closes. */
async function readFailure(conn: Conn): Promise<unknown> {
  try {
    for (;;) await conn.read({ signal: AbortSignal.timeout(5000) });
  } catch (err) {
    return err;
  }
}

const text = (data: Uint8Array): string => Buffer.from(data).toString('utf8');

describe('createUpgradeListener refuses hostile upgrades on the wire and reports them', { timeout: 30_000 }, () => {
  const cases: Array<[string, string, number]> = [
    ['a POST', upgradeText({ 'Content-Length': '0' }, 'POST /chat HTTP/1.1'), 405],
    ['no Sec-WebSocket-Key', upgradeText({ 'Sec-WebSocket-Key': undefined }), 400],
    ['no Host (RFC 6455 §4.2.1)', upgradeText({ Host: undefined }), 400],
    ['two Host fields', upgradeText({ Host: ['a.test', 'b.test'] }), 400],
    ['a foreign Origin', upgradeText({ Origin: 'https://evil.test' }), 403],
    ['version 8', upgradeText({ 'Sec-WebSocket-Version': '8' }), 426],
    ['a subprotocol with a space', upgradeText({ 'Sec-WebSocket-Protocol': 'chat v1' }), 400],
    ['a subprotocol offered twice', upgradeText({ 'Sec-WebSocket-Protocol': ['chat', 'chat'] }), 400],
    ['an unclosed quoted string', upgradeText({ 'Sec-WebSocket-Extensions': 'permessage-deflate; x="abc' }), 400],
    ['a bad Upgrade token', upgradeText({ Upgrade: 'websocket/' }), 400],
    ['a bad Connection token', upgradeText({ Connection: 'Upgrade, x;y' }), 400],
    ['an unknown path', upgradeText({}, 'GET /elsewhere?chat HTTP/1.1'), 404],
  ];
  for (const [what, raw, status] of cases) {
    it(`${status} for ${what}, then ends the connection; authenticate never runs`, { timeout: 5000 }, async () => {
      let authenticated = false;
      const reports = serve({
        path: ['/chat', '/feed'],
        authenticate: () => {
          authenticated = true;
        },
      });
      const response = await refusedWith(port, raw);
      assert.equal(response.status, status, response.statusLine);
      assert.equal(field(response, 'connection')?.includes('close'), true);
      assert.equal(Number(field(response, 'content-length')), Buffer.byteLength(response.body));
      const reported = await reports.next();
      assert.ok(reported instanceof HandshakeError);
      assert.equal(reported.status, status);
      assert.equal(authenticated, false);
    });
  }

  it('serves every listed path, with the query ignored', { timeout: 5000 }, async () => {
    serve({ path: ['/chat', '/feed'] }, async (conn, { pathname }) => {
      await conn.write(MessageType.Text, pathname);
    });
    for (const path of ['/chat?x=1', '/feed']) {
      const conn = await connect(path);
      assert.equal(text((await conn.read({ signal: AbortSignal.timeout(5000) })).data), path.replace(/\?.*/, ''));
    }
  });

  it('a protocol error after the 101 fails only that connection and reaches onError', { timeout: 5000 }, async () => {
    const reports = serve({}, async (conn) => {
      for await (const _ of conn);
    });
    const socket = await dialRaw(port);
    socket.write(upgradeText());
    const { head } = await readHttpHead(socket);
    assert.match(head, /^HTTP\/1\.1 101 /);
    socket.write(Buffer.from('garbage that is no frame: \xff\xfe\x00', 'latin1'));
    const reported = await reports.next();
    assert.ok(reported instanceof ProtocolError, String(reported));
    assert.equal(reported.code, 1002);
    socket.resume();
    await once(socket, 'close');
  });
});

describe('createUpgradeListener authenticates before the 101', { timeout: 30_000 }, () => {
  const authenticate: UpgradeListenerOptions<{ name: string }>['authenticate'] = (req, { refuse }) => {
    if (req.headers.authorization === undefined) throw refuse(401, { headers: { 'WWW-Authenticate': 'Bearer' } });
    if (req.headers.authorization !== 'Bearer alice') throw refuse(403, { body: 'not you\n' });
    return { name: 'alice' };
  };

  it('passes what authenticate returned to the handler', { timeout: 5000 }, async () => {
    serve({ authenticate }, async (conn, { user }) => {
      await conn.write(MessageType.Text, `hello ${user.name}`);
    });
    const conn = await connect('/chat', { headers: { authorization: 'Bearer alice' } });
    assert.equal(text((await conn.read({ signal: AbortSignal.timeout(5000) })).data), 'hello alice');
  });

  it('401 with the refusal headers, 403 with its body; both reported', { timeout: 5000 }, async () => {
    const reports = serve({ authenticate });
    await assert.rejects(connect(), (err: unknown) => {
      assert.ok(err instanceof HandshakeError);
      assert.equal(err.status, 401);
      assert.equal(err.headers.get('www-authenticate'), 'Bearer');
      return true;
    });
    assert.equal(((await reports.next()) as HandshakeError).status, 401);
    await assert.rejects(connect('/chat', { headers: { authorization: 'Bearer mallory' } }), (err: unknown) => {
      assert.ok(err instanceof HandshakeError);
      assert.deepEqual([err.status, err.body], [403, 'not you\n']);
      return true;
    });
    assert.equal(((await reports.next()) as HandshakeError).status, 403);
  });

  const failures: Array<[string, () => unknown]> = [
    ['rejects', () => Promise.reject(new Error('the user store is down'))],
    ['throws synchronously', () => {
      throw new Error('the user store is down');
    }],
    ['throws a non-Error', () => {
      throw 'the user store is down'; // eslint-disable-line no-throw-literal
    }],
  ];
  for (const [what, hook] of failures) {
    it(`500 when authenticate ${what}, and onError gets the failure`, { timeout: 5000 }, async () => {
      const reports = serve({ authenticate: hook });
      const response = await refusedWith(port, upgradeText());
      assert.equal(response.status, 500);
      const reported = await reports.next();
      assert.match(reported.message, /the user store is down/);
    });
  }

  it('503 when authenticate hangs past authenticateTimeout; its signal aborts with a TimeoutError', { timeout: 5000 }, async () => {
    const aborted = deferred<unknown>();
    const reports = serve({
      authenticateTimeout: 100,
      authenticate: (_req, { signal }) => {
        signal.addEventListener('abort', () => aborted.resolve(signal.reason));
        return new Promise(() => {}); // ignores the signal and never settles
      },
    });
    const response = await refusedWith(port, upgradeText());
    assert.equal(response.status, 503);
    assert.equal(((await aborted.promise) as Error).name, 'TimeoutError');
    assert.equal(((await reports.next()) as HandshakeError).status, 503);
  });

  it('aborts authenticate and reports status 0 when the client goes away mid-authentication', { timeout: 5000 }, async () => {
    const started = deferred<AbortSignal>();
    const reports = serve({
      authenticate: (_req, { signal }) => {
        started.resolve(signal);
        return new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
      },
    });
    const socket = await dialRaw(port);
    socket.write(upgradeText());
    const signal = await started.promise;
    socket.destroy();
    const reported = await reports.next();
    assert.ok(reported instanceof HandshakeError);
    assert.equal(reported.status, 0);
    assert.equal(signal.aborted, true);
  });

  it('keeps frames the client sent while authenticate ran', { timeout: 5000 }, async () => {
    const started = deferred<void>();
    const release = deferred<void>();
    const received = deferred<string>();
    serve(
      {
        authenticate: async () => {
          started.resolve();
          await release.promise;
        },
      },
      async (conn) => received.resolve(text((await conn.read()).data)),
    );
    const socket = await dialRaw(port);
    socket.write(upgradeText());
    await started.promise;
    socket.write(encodeFrame({ opcode: 0x1, payload: Buffer.from('early') }, true));
    release.resolve();
    assert.match((await readHttpHead(socket)).head, /^HTTP\/1\.1 101 /);
    assert.equal(await received.promise, 'early');
    socket.destroy();
  });
});

describe('createUpgradeListener closes what the handler leaves', { timeout: 30_000 }, () => {
  it('with 1000 when the handler returns', { timeout: 5000 }, async () => {
    serve({}, async (conn) => {
      await conn.write(MessageType.Text, 'bye');
    });
    const conn = await connect();
    assert.equal(text((await conn.read({ signal: AbortSignal.timeout(5000) })).data), 'bye');
    assert.equal(closeStatus(await readFailure(conn)), 1000);
    assert.equal((await conn.closed).wasClean, true);
  });

  it('with 1011 when the handler throws, and onError gets the error', { timeout: 5000 }, async () => {
    const reports = serve({}, async (conn) => {
      await conn.read();
      throw new Error('handler bug');
    });
    const conn = await connect();
    await conn.write(MessageType.Text, 'hi');
    assert.equal(closeStatus(await readFailure(conn)), 1011);
    assert.equal((await reports.next()).message, 'handler bug');
  });

  it('contains an onError that throws, and warns by default in one line', { timeout: 5000, concurrency: false }, async (t) => {
    const warned = deferred<string>();
    t.mock.method(console, 'warn', (line: string) => warned.resolve(line));
    listener = createUpgradeListener(
      {
        path: '/chat',
        onError: () => {
          throw new Error('onError is broken');
        },
      },
      () => {},
    );
    current = listener;
    assert.equal((await refusedWith(port, upgradeText({}, 'GET /nope HTTP/1.1'))).status, 404);
    assert.match(await warned.promise, /^wsconn: GET \/nope from 127\.0\.0\.1: Error: onError is broken$/);
  });

  it('warns in one line without onError', { timeout: 5000 }, async (t) => {
    const warned = deferred<string>();
    t.mock.method(console, 'warn', (line: string) => warned.resolve(line));
    listener = createUpgradeListener({ path: '/chat' }, () => {});
    current = listener;
    await refusedWith(port, upgradeText({}, 'GET /nope HTTP/1.1'));
    const line = await warned.promise;
    assert.match(line, /^wsconn: GET \/nope from 127\.0\.0\.1: HandshakeError: .*404 Not Found/);
    assert.doesNotMatch(line, /\n/);
  });

  it('rejects invalid accept() options when it is created', { timeout: 1000 }, () => {
    assert.throws(() => createUpgradeListener({ originPatterns: ['[a-'] }, () => {}), /originPatterns/);
    assert.throws(() => createUpgradeListener({ authenticateTimeout: 0 }, () => {}), RangeError);
  });
});

describe('createUpgradeListener shuts down gracefully', { timeout: 30_000 }, () => {
  it('closes every connection with 1001, aborts handler signals, then answers 503', { timeout: 10_000 }, async () => {
    const signals: AbortSignal[] = [];
    serve({}, async (conn, { signal }) => {
      signals.push(signal);
      for await (const msg of conn) await conn.write(msg.type, msg.data);
    });
    const first = await connect();
    const second = await connect();
    await first.write(MessageType.Text, 'ping');
    await first.read({ signal: AbortSignal.timeout(5000) });
    assert.equal(listener!.conns.size, 2);
    const [failures] = await Promise.all([
      Promise.all([readFailure(first), readFailure(second)]),
      listener!.close({ signal: AbortSignal.timeout(5000) }),
    ]);
    assert.deepEqual(failures.map(closeStatus), [1001, 1001]);
    assert.deepEqual(await first.closed, { code: 1001, reason: 'server shutting down', wasClean: true });
    assert.equal(listener!.conns.size, 0);
    assert.equal(listener!.closing, true);
    assert.deepEqual(signals.map((s) => s.aborted), [true, true]);
    const response = await refusedWith(port, upgradeText());
    assert.equal(response.status, 503);
  });

  it('answers 503 to an upgrade still authenticating', { timeout: 5000 }, async () => {
    const started = deferred<void>();
    const reports = serve({
      authenticate: () => {
        started.resolve();
        return new Promise(() => {});
      },
    });
    const socket = await dialRaw(port);
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.write(upgradeText());
    await started.promise;
    await listener!.close();
    await once(socket, 'end');
    socket.destroy();
    assert.equal(parseRawResponse(Buffer.concat(chunks).toString()).status, 503);
    assert.equal(((await reports.next()) as HandshakeError).status, 503);
  });
});

describe('refuseUpgrade', { timeout: 20_000 }, () => {
  function refuseWith(...args: Parameters<typeof refuseUpgrade> extends [Duplex, ...infer R] ? R : never): Deferred<unknown> {
    const outcome = deferred<unknown>();
    current = (_req, socket) => {
      try {
        outcome.resolve(refuseUpgrade(socket, ...args));
      } catch (err) {
        outcome.resolve(err);
      }
    };
    return outcome;
  }

  it('writes status, headers and body, adds close to Connection, and ends the connection', { timeout: 5000 }, async () => {
    const outcome = refuseWith(401, {
      headers: [['WWW-Authenticate', 'Bearer realm="chat"'], ['Connection', 'Upgrade']],
      body: 'who are you?\n',
    });
    const response = await refusedWith(port, upgradeText());
    assert.equal(response.statusLine, 'HTTP/1.1 401 Unauthorized');
    assert.deepEqual(response.headers, [
      ['connection', 'Upgrade, close'],
      ['content-type', 'text/plain; charset=utf-8'],
      ['content-length', '13'],
      ['www-authenticate', 'Bearer realm="chat"'],
    ]);
    assert.equal(response.body, 'who are you?\n');
    const err = await outcome.promise;
    assert.ok(err instanceof HandshakeError);
    assert.deepEqual([err.status, err.body, err.headers.get('www-authenticate')], [401, 'who are you?\n', 'Bearer realm="chat"']);
  });

  it('defaults the body to the reason phrase and takes a Headers object and a byte body', { timeout: 5000 }, async () => {
    refuseWith(503, { headers: new Headers({ 'retry-after': '30', 'content-type': 'application/json' }), body: Buffer.from('{}') });
    const response = await refusedWith(port, upgradeText());
    assert.equal(response.statusLine, 'HTTP/1.1 503 Service Unavailable');
    assert.equal(field(response, 'retry-after'), '30');
    assert.equal(field(response, 'content-type'), 'application/json');
    assert.equal(response.body, '{}');
    refuseWith(404);
    assert.equal((await refusedWith(port, upgradeText())).body, 'Not Found\n');
  });

  it('adds close to the Connection values given, repeated or empty (RFC 9112 §9.6, RFC 9110 §5.6.1)', { timeout: 5000 }, async () => {
    refuseWith(503, { headers: [['Connection', 'upgrade'], ['connection', ' keep-alive\t']] });
    assert.equal(field(await refusedWith(port, upgradeText()), 'connection'), 'upgrade, keep-alive, close');
    refuseWith(503, { headers: { Connection: ' ' } });
    assert.equal(field(await refusedWith(port, upgradeText()), 'connection'), 'close');
  });

  const invalid: Array<[string, Parameters<typeof refuseUpgrade>[2], number, RegExp]> = [
    ['a header value with CRLF', { headers: { 'X-Name': 'a\r\nSet-Cookie: x=1' } }, 400, /control character/],
    ['a header value above Latin-1 (it would go out mangled)', { headers: { 'WWW-Authenticate': 'Bearer realm="caf\u00e9 \u20ac"' } }, 401, /above U\+00FF/],
    ['a header value with another control character', { headers: { 'X-Name': 'bell\x07' } }, 400, /control character/],
    [
      'a header value that is not a string but prints a CRLF (from JavaScript)',
      { headers: { 'X-Name': { toString: () => 'x\r\nSet-Cookie: evil=1' } as unknown as string } },
      400,
      /control character/,
    ],
    ['a header name that is not a token', { headers: { 'Bad Name': 'x' } }, 400, /not a token/],
    ['Content-Length', { headers: { 'Content-Length': '1' } }, 400, /set by refuseUpgrade/],
    ['status 200', {}, 200, /status 200/],
    ['a header entry that is not a pair', { headers: [['X-A']] as unknown as Array<[string, string]> }, 400, /pair/],
    ['a body that is neither text nor bytes', { body: 42 as unknown as string }, 400, /body must be/],
  ];
  for (const [what, options, status, message] of invalid) {
    it(`throws for ${what} and destroys the socket without a byte sent`, { timeout: 5000 }, async () => {
      const outcome = refuseWith(status, options);
      const socket = await dialRaw(port);
      let received = 0;
      socket.on('data', (chunk: Buffer) => (received += chunk.length));
      socket.write(upgradeText());
      await once(socket, 'close');
      assert.equal(received, 0);
      assert.match(String(await outcome.promise), message);
    });
  }
});
