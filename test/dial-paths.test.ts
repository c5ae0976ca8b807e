// dial()'s two paths: its own connection (no dispatcher configured) and an
// undici dispatcher. Every case runs through both and expects the same
// outcome; the rest checks which path is taken when.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { Agent, Dispatcher, getGlobalDispatcher, setGlobalDispatcher } from 'undici';
import { dial, type DialOptions } from '../src/dial.js';
import { HandshakeError } from '../src/errors.js';
import { deferred } from '../src/internal/deferred.js';
import { runScript } from './helpers/script.js';
import { leakCheck } from './helpers/leak.js';
import { tlsCert, tlsKey } from './helpers/tls-cert.js';
import { acceptFor, encodeFrame, text } from './helpers/raw.js';

const checkLeaks = leakCheck();

type Route = (req: IncomingMessage, socket: Duplex) => void;
const routes = new Map<string, Route>();
const serverSockets = new Set<Duplex>();
let nextRoute = 0;
let raw: Server;
let rawTls: NetServer;
let rawPort = 0;
let tlsPort = 0;
let agent: Agent;

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

function switching(req: IncomingMessage, extra: string[] = []): string {
  const accept = acceptFor(req.headers['sec-websocket-key'] as string);
  const lines = ['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade'];
  return [...lines, `Sec-WebSocket-Accept: ${accept}`, ...extra, '', ''].join('\r\n');
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
  agent = new Agent();
});

after(async () => {
  for (const socket of serverSockets) socket.destroy();
  raw.close();
  rawTls.close();
  await Promise.all([once(raw, 'close'), once(rawTls, 'close'), agent.close()]);
  await checkLeaks();
});

const rawUrl = (path: string): string => `ws://127.0.0.1:${rawPort}${path}`;

/** The two paths: dial's own connection (nothing configured) and undici's. */
const paths: Array<[string, () => DialOptions]> = [
  ['direct', () => ({})],
  ['undici', () => ({ dispatcher: agent })],
];

/** Dials `url` through each path; returns what each rejected with. */
async function failures(url: string, opts: DialOptions = {}): Promise<Map<string, unknown>> {
  const out = new Map<string, unknown>();
  for (const [name, options] of paths) {
    try {
      const conn = await dial(url, { ...options(), ...opts });
      conn.closeNow();
      assert.fail(`${name}: dial() resolved`);
    } catch (err) {
      out.set(name, err);
    }
  }
  return out;
}

/** What a user sees of a HandshakeError. */
function visible(err: unknown): object {
  assert.ok(err instanceof HandshakeError, `expected a HandshakeError, got ${String(err)}`);
  const headers = err.headers === undefined ? undefined : [...err.headers];
  return { message: err.message, status: err.status, headers, body: err.body };
}

/** Asserts both paths failed with HandshakeErrors that look the same; returns the direct one. */
async function sameFailure(url: string, opts: DialOptions = {}): Promise<HandshakeError> {
  const errors = await failures(url, opts);
  assert.deepEqual(visible(errors.get('direct')), visible(errors.get('undici')));
  return errors.get('direct') as HandshakeError;
}

describe('dial paths: refusals fail alike', { timeout: 30_000 }, () => {
  it('a 403 with a body: status, headers, body and message', { timeout: 5000 }, async () => {
    const path = route((_req, socket) => {
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 10\r\nX-Why: origin\r\nX-Why: again\r\n\r\nforbidden\n');
    });
    const err = await sameFailure(rawUrl(path));
    assert.equal(err.status, 403);
    assert.equal(err.body, 'forbidden\n');
    assert.equal(err.headers?.get('x-why'), 'origin, again');
  });

  it('a chunked body, de-chunked and cut at 1 KiB', { timeout: 5000 }, async () => {
    const chunks = ['hello ', 'é'.repeat(300), 'x'.repeat(2000)];
    const path = route((_req, socket) => {
      socket.write('HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n\r\n');
      for (const c of chunks) socket.write(`${Buffer.byteLength(c).toString(16)};ext=1\r\n${c}\r\n`);
      socket.end('0\r\n\r\n');
    });
    const err = await sameFailure(rawUrl(path));
    assert.equal(err.body, ('hello ' + 'é'.repeat(300) + 'x'.repeat(2000)).slice(0, 1024 - 300), 'the first KiB of bytes');
    const short = route((_req, socket) => socket.end('HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'));
    assert.equal((await sameFailure(rawUrl(short))).body, 'abc');
  });

  it('a body delimited by the end of the connection', { timeout: 5000 }, async () => {
    const path = route((_req, socket) => socket.end('HTTP/1.1 500 Oops\r\n\r\nno length'));
    assert.equal((await sameFailure(rawUrl(path))).body, 'no length');
  });

  it('a body cut short by the server keeps what arrived, with a cause', { timeout: 5000 }, async () => {
    const path = route((_req, socket) => socket.end('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 100\r\n\r\nupstream'));
    const errors = await failures(rawUrl(path));
    assert.deepEqual(visible(errors.get('direct')), visible(errors.get('undici')));
    for (const err of errors.values()) assert.ok((err as HandshakeError).cause instanceof Error);
  });

  it('an interim 1xx is skipped; a response that ends after it has status 0', { timeout: 5000 }, async () => {
    const path = route((_req, socket) => socket.end('HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n'));
    const errors = await failures(rawUrl(path));
    for (const err of errors.values()) assert.equal((err as HandshakeError).status, 0);
  });

  it('an invalid 101 (wrong accept key), with its headers', { timeout: 5000 }, async () => {
    const path = route((_req, socket) => socket.write(switching({ headers: { 'sec-websocket-key': 'AAAA' } } as never)));
    const err = await sameFailure(rawUrl(path));
    assert.equal(err.status, 101);
    assert.match(err.message, /Sec-WebSocket-Accept/);
  });

  it('a response head over the header size limit: status 0', { timeout: 5000 }, async () => {
    const path = route((req, socket) => socket.write(switching(req, [`X-Big: ${'b'.repeat(20_000)}`])));
    const errors = await failures(rawUrl(path));
    for (const err of errors.values()) assert.equal((err as HandshakeError).status, 0);
  });

  it('a self-signed TLS certificate: status 0 with the TLS error as cause', { timeout: 5000 }, async () => {
    const path = route((req, socket) => socket.write(switching(req)));
    const errors = await failures(`wss://localhost:${tlsPort}${path}`);
    for (const [name, err] of errors) {
      assert.equal((err as HandshakeError).status, 0, name);
      assert.match(String(((err as HandshakeError).cause as NodeJS.ErrnoException).code), /SELF_SIGNED/, name);
    }
  });
});

describe('dial paths: the direct path', { timeout: 30_000 }, () => {
  it('sends the same request as the undici path', { timeout: 5000 }, async () => {
    const seen: IncomingMessage[] = [];
    const path = route((req, socket) => {
      seen.push(req);
      socket.write(switching(req));
    });
    const opts: DialOptions = { headers: { authorization: 'Bearer t', 'x-a': '1' }, host: 'example.test:1', subprotocols: ['a', 'b'] };
    for (const [, options] of paths) {
      const conn = await dial(`${rawUrl(path)}?q=1`, { ...options(), ...opts, subprotocols: [] });
      conn.closeNow();
      await conn.closed;
      const conn2 = await dial(`${rawUrl(path)}?q=1`, { ...options(), ...opts, compressionMode: 'context-takeover' });
      conn2.closeNow();
      await conn2.closed;
    }
    const strip = (req: IncomingMessage): object => {
      const { 'sec-websocket-key': key, ...rest } = req.headers;
      assert.match(key ?? '', /^[A-Za-z0-9+/]{22}==$/);
      return { url: req.url, method: req.method, version: req.httpVersion, headers: rest };
    };
    assert.deepEqual(strip(seen[0]!), strip(seen[2]!));
    assert.deepEqual(strip(seen[1]!), strip(seen[3]!));
  });

  it('hands the frames that came with the 101 to the Conn', { timeout: 5000 }, async () => {
    const path = route((req, socket) => {
      const frames = [encodeFrame(text('early'), false), encodeFrame(text('bird'), false)];
      socket.write(Buffer.concat([Buffer.from(switching(req), 'latin1'), ...frames]));
    });
    const conn = await dial(rawUrl(path));
    const first = await conn.read({ signal: AbortSignal.timeout(3000) });
    const second = await conn.read({ signal: AbortSignal.timeout(3000) });
    assert.deepEqual([first, second].map((m) => new TextDecoder().decode(m.data)), ['early', 'bird']);
    conn.closeNow();
    await conn.closed;
  });

  it('rejects with signal.reason and drops the connection; handshakeTimeout gives status 0', { timeout: 5000 }, async () => {
    const arrived = deferred<Duplex>();
    const path = route((_req, socket) => arrived.resolve(socket));
    const controller = new AbortController();
    void arrived.promise.then(() => controller.abort('stop'));
    await assert.rejects(dial(rawUrl(path), { signal: controller.signal }), (err) => err === 'stop');
    const socket = await arrived.promise;
    if (!socket.destroyed) await once(socket, 'close');
    const err = await dial(rawUrl(route(() => {})), { handshakeTimeout: 100 }).catch((e: unknown) => e);
    assert.ok(err instanceof HandshakeError);
    assert.equal(err.status, 0);
    assert.equal((err.cause as DOMException).name, 'TimeoutError');
  });

  it('connects over TLS (wss:) with the system CAs plus NODE_EXTRA_CA_CERTS', { timeout: 15_000 }, async () => {
    const path = route((req, socket) => {
      socket.write(Buffer.concat([Buffer.from(switching(req), 'latin1'), encodeFrame(text('secure'), false)]));
    });
    const dir = await mkdtemp(join(tmpdir(), 'wsconn-ca-'));
    try {
      await writeFile(join(dir, 'ca.pem'), tlsCert);
      const script = `
        const { dial } = await import(${JSON.stringify(new URL('../src/dial.ts', import.meta.url).href)});
        const conn = await dial('wss://localhost:${tlsPort}${path}');
        const { data } = await conn.read();
        conn.closeNow();
        console.log(new TextDecoder().decode(data));
      `;
      const output = await runScript(script, { timeoutMs: 10_000, env: { ...process.env, NODE_EXTRA_CA_CERTS: join(dir, 'ca.pem') } });
      assert.equal(output.trim(), 'secure');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('dial paths: which one is taken', { timeout: 30_000 }, () => {
  /** A dispatcher that forwards to the agent and counts what it was given. */
  class Counting extends Dispatcher {
    count = 0;
    override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
      this.count++;
      return agent.dispatch(options, handler);
    }
  }

  it('the dispatcher option is always used (a proxy agent, a mock)', { timeout: 5000 }, async () => {
    const path = route((req, socket) => socket.write(switching(req)));
    const counting = new Counting();
    const conn = await dial(rawUrl(path), { dispatcher: counting });
    conn.closeNow();
    await conn.closed;
    assert.equal(counting.count, 1);
  });

  /** Counts the dispatches of `watched` while `body` runs (patched on the prototype, so it stays a plain Agent). */
  async function countingAgentDispatches(watched: Dispatcher, body: () => Promise<void>): Promise<number> {
    const own = Object.getOwnPropertyDescriptor(Agent.prototype, 'dispatch');
    const inherited = Agent.prototype.dispatch;
    let count = 0;
    Agent.prototype.dispatch = function (this: Agent, ...args: Parameters<Dispatcher['dispatch']>) {
      if (this === watched) count++;
      return inherited.apply(this, args);
    };
    try {
      await body();
    } finally {
      if (own === undefined) delete (Agent.prototype as { dispatch?: unknown }).dispatch;
      else Object.defineProperty(Agent.prototype, 'dispatch', own);
    }
    return count;
  }

  async function dialAndDrop(path: string): Promise<void> {
    const conn = await dial(rawUrl(path));
    conn.closeNow();
    await conn.closed;
  }

  it('a global dispatcher the application installed is used; undici\'s default one is not', { timeout: 5000 }, async () => {
    const path = route((req, socket) => socket.write(switching(req)));
    const original = getGlobalDispatcher();
    assert.ok(original instanceof Agent, "undici's default global dispatcher is an npm undici Agent here");
    const counting = new Counting();
    const defaultUsed = await countingAgentDispatches(original, async () => {
      try {
        await dialAndDrop(path);
        setGlobalDispatcher(counting);
        await dialAndDrop(path);
      } finally {
        setGlobalDispatcher(original);
      }
    });
    assert.equal(defaultUsed, 0, 'the default Agent was not asked');
    assert.equal(counting.count, 1, 'the installed global dispatcher was asked');
  });

  it('a plain Agent installed globally is bypassed whenever it was made; one composed with an interceptor is used', { timeout: 5000 }, async () => {
    const path = route((req, socket) => socket.write(switching(req)));
    const original = getGlobalDispatcher();
    const plain = new Agent();
    let intercepted = 0;
    const composed = agent.compose((dispatch) => (options, handler) => {
      intercepted++;
      return dispatch(options, handler);
    });
    let plainUsed: number;
    try {
      plainUsed = await countingAgentDispatches(plain, async () => {
        try {
          setGlobalDispatcher(plain);
          await dialAndDrop(path);
        } finally {
          setGlobalDispatcher(original);
        }
      });
      try {
        setGlobalDispatcher(composed);
        await dialAndDrop(path);
      } finally {
        setGlobalDispatcher(original);
      }
    } finally {
      await plain.close();
    }
    assert.equal(plainUsed, 0, 'the plain Agent was not asked');
    assert.equal(intercepted, 1, "the composed Agent's interceptor saw the upgrade");
  });

  it("undici 8's layout (its wrapper in the first slot): the dispatcher in the second slot decides", { timeout: 5000 }, async () => {
    const path = route((req, socket) => socket.write(switching(req)));
    const slots = globalThis as unknown as Record<symbol, unknown>;
    const [legacy, current] = [Symbol.for('undici.globalDispatcher.1'), Symbol.for('undici.globalDispatcher.2')];
    const saved = [slots[legacy], slots[current]];
    /** Stands in for undici 8's wrapper of its own dispatcher for undici 6 and 7 readers. */
    class Dispatcher1Wrapper extends Counting {}
    const wrapper = new Dispatcher1Wrapper();
    const counting = new Counting();
    const plain = new Agent();
    try {
      slots[legacy] = wrapper;
      slots[current] = counting;
      await dialAndDrop(path);
      slots[current] = plain;
      const plainUsed = await countingAgentDispatches(plain, () => dialAndDrop(path));
      assert.equal(plainUsed, 0, 'a plain Agent in the second slot is bypassed');
      // undici 8.0.0 off Node 22 filled only the second slot; another undici's default Agent may sit in the first.
      slots[legacy] = undefined;
      slots[current] = counting;
      await dialAndDrop(path);
      slots[legacy] = plain;
      await dialAndDrop(path);
    } finally {
      [slots[legacy], slots[current]] = saved;
      await plain.close();
    }
    assert.equal(wrapper.count, 0, 'the wrapper was not asked');
    assert.equal(counting.count, 3, 'the dispatcher in the second slot was asked each time');
  });

  it("importing wsconn or dialing loads no undici and installs no dispatcher; dial() bypasses Node's built-in Agent", { timeout: 15_000 }, async () => {
    const path = route((req, socket) => socket.write(switching(req)));
    // npm's undici installs its default Agent in the first slot as soon as it loads; fetch()
    // installs Node's built-in one there. Which modules were loaded shows in require.cache
    // (ES module imports of undici, a CommonJS package, land there too).
    const script = `
      import { createRequire } from 'node:module';
      const slot = Symbol.for('undici.globalDispatcher.1');
      const { dial } = await import(${JSON.stringify(new URL('../src/index.ts', import.meta.url).href)});
      const emptyAfterImport = globalThis[slot] === undefined;
      const first = await dial('${rawUrl(path)}');
      first.closeNow();
      await first.closed;
      const emptyAfterDial = globalThis[slot] === undefined;
      await (await fetch('data:,x')).text();
      const builtin = globalThis[slot];
      const proto = Object.getPrototypeOf(builtin);
      const inherited = proto.dispatch;
      let builtinUsed = 0;
      proto.dispatch = function (...args) { builtinUsed++; return inherited.apply(this, args); };
      const conn = await dial('${rawUrl(path)}');
      conn.closeNow();
      await conn.closed;
      const npmUndiciLoaded = Object.keys(createRequire(import.meta.url).cache).some((file) => file.includes('/node_modules/undici/'));
      console.log(JSON.stringify({ emptyAfterImport, emptyAfterDial, builtin: builtin.constructor.name, builtinUsed, npmUndiciLoaded }));
    `;
    const output = await runScript(script);
    assert.deepEqual(JSON.parse(output.trim()), { emptyAfterImport: true, emptyAfterDial: true, builtin: 'Agent', builtinUsed: 0, npmUndiciLoaded: false });
  });

  it('checks the given headers as Headers would, without it: names, values, repeats', { timeout: 5000 }, async () => {
    const seen = deferred<IncomingMessage>();
    const path = route((req, socket) => {
      seen.resolve(req);
      socket.write(switching(req));
    });
    const conn = await dial(rawUrl(path), {
      headers: [
        ['X-Repeat', 'a'],
        ['x-repeat', ' b\t'],
        ['X-Latin', 'caf\u00e9'],
        ['Cookie', 'a=1'],
        ['cookie', 'b=2'],
      ],
    });
    conn.closeNow();
    await conn.closed;
    const req = await seen.promise;
    assert.equal(req.headers['x-repeat'], 'a, b');
    assert.equal(req.headers['x-latin'], 'caf\u00e9', 'sent as one Latin-1 byte, as Headers allows');
    assert.equal(req.headers.cookie, 'a=1; b=2', 'cookies joined as one Cookie field (RFC 6265 §5.4)');
    for (const [i, headers] of [
      { 'x-a': 'one\r\ntwo' },
      { 'x-a': 'nul\0' },
      { 'x-a': 'bell\x07' },
      { 'x-a': 'del\x7f' },
      { 'x-a': '\u2603' },
      [['x-a']],
      { 'a b': 'x' },
      { [Symbol('x')]: 'y' },
      [['x-a', Symbol('y')]],
    ].entries()) {
      await assert.rejects(dial(rawUrl(path), { headers: headers as NonNullable<DialOptions['headers']> }), TypeError, `case ${i}`);
    }
    await assert.rejects(dial(rawUrl(path), { host: 'evil\r\nx-injected: 1' }), TypeError);
  });
});
