/**
 * Runs every example the way the README says, as a child process
 * (`node --import tsx examples/…`, from the repository root, importing
 * `wsconn` from dist/: `npm test` builds it first), and checks what a user
 * would see: the output, the exit code, and for the servers what a client
 * connecting to them gets.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer as createHttpServer, get, type IncomingMessage } from 'node:http';
import { connect, createServer as createTcpServer, type AddressInfo, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { accept } from '../src/accept.js';
import { MessageType, type Conn } from '../src/conn.js';
import { dial } from '../src/dial.js';
import { HandshakeError } from '../src/errors.js';
import { deferred } from '../src/internal/deferred.js';
import { ExampleProcess } from './helpers/example-process.js';
import { leakCheck } from './helpers/leak.js';

const checkLeaks = leakCheck();
const processes = new Set<ExampleProcess>();
const conns = new Set<Conn>();
const servers = new Set<Server>();

after(async () => {
  for (const conn of conns) conn.closeNow();
  await Promise.all([...processes].map((p) => p.kill()));
  await Promise.all([...servers].map((s) => new Promise((resolve) => s.close(resolve))));
  await checkLeaks();
});

function start(file: string, args: string[] = [], env: Record<string, string> = {}, input?: string): ExampleProcess {
  const example = new ExampleProcess(file, args, env, input);
  processes.add(example);
  return example;
}

async function connectTo(url: string, options: Parameters<typeof dial>[1] = {}): Promise<Conn> {
  const conn = await dial(url, { signal: AbortSignal.timeout(5000), ...options });
  conns.add(conn);
  return conn;
}

async function listening<T extends Server>(server: T): Promise<number> {
  servers.add(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

const text = (data: Uint8Array): string => Buffer.from(data).toString('utf8');

async function runToEnd(file: string): Promise<string> {
  const example = start(file);
  const { code, signal } = await example.exit(20_000);
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, example.output);
  assert.equal(example.stderr, '', example.output);
  return example.stdout;
}

describe('self-contained demos exit 0 with the output the README describes', { timeout: 60_000 }, () => {
  it('dial-timeout/demo.ts shows a read timing out without killing the connection, and each dial failure', { timeout: 20_000 }, async () => {
    const out = await runToEnd('examples/dial-timeout/demo.ts');
    assert.match(out, /read with a 100 ms deadline: TimeoutError/);
    assert.match(out, /a later read on the same connection: late answer to "hello"/);
    assert.match(out, /closed: code 1000, clean true/);
    assert.match(out, /HandshakeError status=401, body "a valid token is required\\n"/);
    assert.match(out, /www-authenticate: Bearer/);
    assert.match(out, /with signal: AbortSignal\.timeout\(300\): TimeoutError/);
    assert.match(out, /with handshakeTimeout: 300: HandshakeError status=0, cause TimeoutError/);
    assert.match(out, /HandshakeError status=0, cause ECONNREFUSED/);
  });

  it('json/demo.ts matches out-of-order answers to concurrent calls by id', { timeout: 20_000 }, async () => {
    const out = await runToEnd('examples/json/demo.ts');
    // The quick calls are answered before the slow ones, yet each call gets its own result.
    const order = [...out.matchAll(/^ {2}(.+?) -> .* after \d+ ms$/gm)].map((m) => m[1]);
    assert.deepEqual(order, ['add [1,2,3]', 'upper "wsjson"', 'sleep 100', 'sleep 300'], out);
    assert.match(out, /results in call order: \["slept 300 ms",6,"slept 100 ms","WSJSON"\]/);
    assert.match(out, /divide: no method divide \(-32601\)/);
    assert.match(out, /add: add takes numbers \(-32602\)/);
    assert.match(out, /sleep 1000 with a 100 ms deadline: TimeoutError/);
    assert.match(out, /add \[40,2\] afterwards -> 42/);
  });

  it('tunnel/demo.ts carries HTTP through the tunnel, 4 MiB each way intact', { timeout: 20_000 }, async () => {
    const out = await runToEnd('examples/tunnel/demo.ts');
    assert.match(out, /GET \/ through the tunnel: 200 hello from the target/);
    assert.match(out, /POST 4 MiB through the tunnel: 200 received 4194304 bytes/);
    assert.match(out, /upload sha256 matches/);
    assert.match(out, /GET \/blob through the tunnel: 200, 4194304 bytes/);
    assert.match(out, /download sha256 matches/);
    assert.match(out, /3 concurrent GETs, each over its own WebSocket: 200, 200, 200/);
  });
});

describe('tunnel-server.ts and tunnel-client.ts', { timeout: 30_000 }, () => {
  it('forward a TCP echo service, then stop on SIGTERM', { timeout: 20_000 }, async () => {
    const echo = createTcpServer((socket) => socket.pipe(socket));
    const echoPort = await listening(echo);
    const server = start('examples/tunnel/tunnel-server.ts', [`127.0.0.1:${echoPort}`, '--listen', '127.0.0.1:0']);
    const [, url] = (await server.waitFor(/tunnel server on (ws:\/\/\S+)/))!;
    const client = start('examples/tunnel/tunnel-client.ts', [url!, '--listen', '127.0.0.1:0']);
    const [, port] = (await client.waitFor(/tunnel client on 127\.0\.0\.1:(\d+)/))!;

    const socket = connect(Number(port), '127.0.0.1');
    const payload = Buffer.alloc(256 * 1024, 'wsconn tunnel ');
    socket.write(payload);
    const chunks: Buffer[] = [];
    let received = 0;
    for await (const chunk of socket) {
      chunks.push(chunk as Buffer);
      received += (chunk as Buffer).length;
      // A WebSocket has no half-close, so neither has the tunnel: end only
      // once the whole echo is back. Our FIN then closes the tunnel with
      // 1000, the echo service ends, and its FIN comes back to end this loop.
      if (received === payload.length) socket.end();
    }
    assert.ok(Buffer.concat(chunks).equals(payload), 'the echo came back through the tunnel unchanged');

    server.child.kill('SIGTERM');
    client.child.kill('SIGTERM');
    assert.deepEqual(await server.exit(), { code: 0, signal: null }, server.output);
    assert.deepEqual(await client.exit(), { code: 0, signal: null }, client.output);
  });
});

describe('echo/server.ts and echo/client.ts', { timeout: 30_000 }, () => {
  it('the server echoes text and binary messages, then stops on SIGTERM', { timeout: 15_000 }, async () => {
    const server = start('examples/echo/server.ts', [], { PORT: '0' });
    const [, url] = (await server.waitFor(/listening on (ws:\/\/\S+)/))!;
    const conn = await connectTo(url!);
    await conn.write(MessageType.Text, 'héllo');
    const echoed = await conn.read({ signal: AbortSignal.timeout(5000) });
    assert.deepEqual([echoed.type, text(echoed.data)], [MessageType.Text, 'héllo']);
    await conn.write(MessageType.Binary, new Uint8Array([0, 1, 255]));
    const binary = await conn.read({ signal: AbortSignal.timeout(5000) });
    assert.deepEqual([binary.type, [...binary.data]], [MessageType.Binary, [0, 1, 255]]);
    assert.equal((await conn.close(1000)).wasClean, true);
    server.child.kill('SIGTERM');
    assert.deepEqual(await server.exit(), { code: 0, signal: null }, server.output);
  });

  it('the pair the README shows talks: client.ts --interactive sends each stdin line and prints the echo', { timeout: 15_000 }, async () => {
    const server = start('examples/echo/server.ts', [], { PORT: '0' });
    const [, url] = (await server.waitFor(/listening on (ws:\/\/\S+)/))!;
    const client = start('examples/echo/client.ts', [url!, '--interactive'], {}, 'hello\nwörld\n');
    assert.deepEqual(await client.exit(), { code: 0, signal: null }, client.output);
    assert.equal(client.stdout, '< hello\n< wörld\nsent 2 messages; closed with 1000\n', client.output);
    server.child.kill('SIGTERM');
    assert.deepEqual(await server.exit(), { code: 0, signal: null }, server.output);
  });

  it('the client echoes what a server sends and reports the close', { timeout: 15_000 }, async () => {
    const accepted = deferred<Conn>();
    const http = createHttpServer();
    http.on('upgrade', (req, socket, head) => {
      accept(req, socket, head).then(accepted.resolve, accepted.reject);
    });
    const port = await listening(http);
    const client = start('examples/echo/client.ts', [`ws://127.0.0.1:${port}/`]);
    const conn = await accepted.promise;
    conns.add(conn);
    for (const message of ['one', 'two']) {
      await conn.write(MessageType.Text, message);
      assert.equal(text((await conn.read({ signal: AbortSignal.timeout(5000) })).data), message);
    }
    await conn.close(1000, 'enough');
    assert.deepEqual(await client.exit(), { code: 0, signal: null }, client.output);
    assert.match(client.stdout, /echoed 2 messages; closed with 1000/);
  });
});

/** Reads chat events until one matches, skipping the others (joins, leaves…). */
async function nextEvent(conn: Conn, matches: (event: ChatEvent) => boolean): Promise<ChatEvent> {
  for (;;) {
    const event = JSON.parse(text((await conn.read({ signal: AbortSignal.timeout(5000) })).data)) as ChatEvent;
    if (matches(event)) return event;
  }
}

interface ChatEvent {
  kind: 'welcome' | 'system' | 'message';
  name?: string;
  from?: string;
  text?: string;
}

async function fetchText(url: string): Promise<{ status: number; type: string; body: string }> {
  const req = get(url, { agent: false });
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  let body = '';
  for await (const chunk of res) body += String(chunk);
  return { status: res.statusCode ?? 0, type: res.headers['content-type'] ?? '', body };
}

describe('chat/server.ts', { timeout: 40_000 }, () => {
  let chat: ExampleProcess;
  let pageUrl: string;
  let wsUrl: string;

  before(async () => {
    chat = start('examples/chat/server.ts', [], { PORT: '0', CHAT_QUEUE_LIMIT: '64' });
    [, pageUrl] = (await chat.waitFor(/listening on (http:\/\/\S+)/)) as [string, string];
    wsUrl = `${pageUrl.replace(/^http/, 'ws')}ws`;
  });

  it('serves the chat page', { timeout: 5000 }, async () => {
    const page = await fetchText(pageUrl);
    assert.equal(page.status, 200);
    assert.match(page.type, /^text\/html/);
    assert.match(page.body, /<form id="send">/);
    assert.match(page.body, /new WebSocket\(/);
  });

  it('broadcasts a message from one client to every client', { timeout: 10_000 }, async () => {
    const alice = await connectTo(wsUrl);
    const aliceName = (await nextEvent(alice, (e) => e.kind === 'welcome')).name;
    const bob = await connectTo(wsUrl);
    const bobName = (await nextEvent(bob, (e) => e.kind === 'welcome')).name;
    assert.notEqual(aliceName, bobName);
    // Alice sees Bob join: the server is broadcasting to her.
    await nextEvent(alice, (e) => e.kind === 'system' && e.text === `${bobName} joined`);

    await alice.write(MessageType.Text, 'hello, bob ✓');
    const isHello = (e: ChatEvent): boolean => e.kind === 'message' && e.text === 'hello, bob ✓';
    assert.deepEqual(await nextEvent(bob, isHello), { kind: 'message', from: aliceName, text: 'hello, bob ✓' });
    assert.equal((await nextEvent(alice, isHello)).from, aliceName);

    await alice.close(1000);
    await nextEvent(bob, (e) => e.kind === 'system' && e.text === `${aliceName} left`);
    await bob.close(1000);
  });

  it('keeps the origin check on: a cross-origin page gets 403, the same origin gets in', { timeout: 10_000 }, async () => {
    await assert.rejects(
      dial(wsUrl, { headers: { origin: 'http://evil.example' }, signal: AbortSignal.timeout(5000) }),
      (err: unknown) => err instanceof HandshakeError && err.status === 403,
    );
    const sameOrigin = await connectTo(wsUrl, { headers: { origin: pageUrl.replace(/\/$/, '') } });
    await nextEvent(sameOrigin, (e) => e.kind === 'welcome');
    await sameOrigin.close(1000);
  });

  it('closes with 1009 a client whose message is over the 4 KiB limit', { timeout: 10_000 }, async () => {
    const conn = await connectTo(wsUrl);
    const name = (await nextEvent(conn, (e) => e.kind === 'welcome')).name!;
    await conn.write(MessageType.Text, 'x'.repeat(5000));
    const err = await (async () => {
      for (;;) await conn.read();
    })().catch((e: unknown) => e as { code?: number });
    assert.equal(err.code, 1009, String(err));
    assert.deepEqual(await conn.closed, { code: 1009, reason: 'message exceeds the read limit of 4096 bytes', wasClean: true });
    // The server's own `closed` reports the tab's answer; its log names the code it sent.
    await chat.waitFor(new RegExp(`${name} was closed by the server with 1009 \\(the tab answered \\d+\\)`));
  });

  it('drops a client that stops reading, and the others keep chatting', { timeout: 20_000 }, async () => {
    const sender = await connectTo(wsUrl);
    const listener = await connectTo(wsUrl);
    const stuck = await connectTo(wsUrl);
    const stuckName = (await nextEvent(stuck, (e) => e.kind === 'welcome')).name!;
    await nextEvent(listener, (e) => e.kind === 'system' && e.text === `${stuckName} joined`);
    // From now on `stuck` never reads: its TCP buffers fill up.

    const line = 'x'.repeat(3000);
    let sent = 0;
    let heard = 0;
    let left = false;
    let wake: (() => void) | undefined;
    // The sender's own copies must be read too, or it would be the slow one.
    const drainSender = (async () => {
      for (;;) await sender.read();
    })().catch(() => {});
    // The listener checks that it hears every message, in order, until the stuck client is gone.
    const listening = (async () => {
      try {
        for (;;) {
          const event = await nextEvent(listener, (e) => e.kind === 'message' || e.text === `${stuckName} left`);
          if (event.kind !== 'message') return;
          assert.equal(event.text, `${++heard} ${line}`);
          wake?.();
        }
      } finally {
        left = true;
        wake?.();
      }
    })();
    while (!left && sent < 20_000) {
      await sender.write(MessageType.Text, `${++sent} ${line}`);
      // Stay a little ahead of the listener, so that sending stops soon after the drop.
      if (sent - heard > 50) await new Promise<void>((resolve) => (wake = resolve));
    }
    await listening;
    assert.ok(heard > 0 && heard <= sent, `heard ${heard} of ${sent}`);
    await chat.waitFor(new RegExp(`${stuckName} is not keeping up: dropped`));

    // The stuck client, reading at last, finds the stream cut off: no close frame came.
    const reason = await (async () => {
      for (;;) await stuck.read();
    })().catch((err: unknown) => err as Error);
    assert.equal(reason.name, 'ClosedError', String(reason));
    assert.equal((await stuck.closed).code, 1006);

    await sender.close(1000);
    await drainSender;
    await listener.close(1000);
  });

  it('on SIGTERM closes every connection with 1001 and exits 0', { timeout: 15_000 }, async () => {
    const conn = await connectTo(wsUrl);
    await nextEvent(conn, (e) => e.kind === 'welcome');
    const reading = (async () => {
      for (;;) await conn.read(); // system messages, until the server's close frame
    })().catch((err: unknown) => err);
    chat.child.kill('SIGTERM');
    const err = (await reading) as { code?: number; reason?: string };
    assert.deepEqual({ code: err.code, reason: err.reason }, { code: 1001, reason: 'server shutting down' });
    assert.equal((await conn.closed).wasClean, true);
    assert.deepEqual(await chat.exit(), { code: 0, signal: null }, chat.output);
  });
});
