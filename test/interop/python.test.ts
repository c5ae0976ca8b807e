/**
 * Interop with Python `websockets` (Debian python3-websockets, installed for
 * /usr/bin/python3): its client against wsconn's `accept()`, and wsconn's
 * `dial()` against its server. The Python sides are scripts in py/.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { after, before, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { MessageType, type Conn } from '../../src/conn.js';
import { dial } from '../../src/dial.js';
import { CloseError } from '../../src/errors.js';
import { leakCheck } from '../helpers/leak.js';
import { describeWithPeer, echo, Inbox, pattern, python, requirePeer, text, within, WsconnServer } from './harness.js';

const checkLeaks = leakCheck();
/** Python processes still running; a failed test may leave one behind. */
const children = new Set<ChildProcess>();
after(async () => {
  for (const child of children) child.kill('SIGKILL');
  await Promise.all([...children].map((child) => (child.exitCode === null ? once(child, 'exit') : undefined)));
  await checkLeaks();
});

const scripts = fileURLToPath(new URL('./py/', import.meta.url));

function probe(): { version: string; missing: string | undefined } {
  const run = spawnSync(python, ['-c', 'import websockets; print(websockets.__version__)'], {
    encoding: 'utf8',
    timeout: 10_000,
  });
  if (run.status === 0) return { version: run.stdout.trim(), missing: undefined };
  return { version: '', missing: 'python3-websockets not installed (apt-get install python3-websockets)' };
}
const { version, missing } = probe();

/** One JSON object the Python client prints when it is done. */
interface ClientResult {
  ok: boolean;
  errors: string[];
  subprotocol: string | null;
  close_code: number;
  close_reason: string;
}

/** Runs py/client.py to completion and returns its exit status and its result line. */
async function runClient(args: string[]): Promise<{ status: number | null; result: ClientResult; stderr: string }> {
  const child = spawn(python, [`${scripts}client.py`, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const [status] = (await once(child, 'close')) as [number | null];
  children.delete(child);
  assert.ok(stdout.trim() !== '', `client.py printed nothing (exit ${status}): ${stderr}`);
  return { status, result: JSON.parse(stdout) as ClientResult, stderr };
}

const suite = { timeout: 30_000 };
const peerName = `python websockets ${version || '(missing)'}`;

describeWithPeer(`${peerName} client → wsconn accept()`, missing, suite, () => {
  let server: WsconnServer;

  before(async () => {
    requirePeer(missing);
    server = await new WsconnServer().listen();
  });
  after(() => server?.close());

  it('echoes text and binary up to 1 MiB, answers its ping and reports its close code', { timeout: 15_000 }, async () => {
    const connP = server.nextConn({ readLimit: -1 });
    const client = runClient([server.url, '14', '4000', 'python bye ✓']);
    const conn = await connP;
    const ended = echo(conn);
    const { status, result, stderr } = await client;
    assert.equal(status, 0, `client.py failed: ${result.errors.join('; ')} ${stderr}`);
    assert.equal(result.ok, true);
    // wsconn echoes the code of the client's close frame (RFC 6455 §5.5.1).
    assert.equal(result.close_code, 4000);
    const err = await ended;
    assert.ok(err instanceof CloseError);
    assert.deepEqual(await conn.closed, { code: 4000, reason: 'python bye ✓', wasClean: true });
  });

  it('negotiates the server-preferred subprotocol among the client offers', { timeout: 10_000 }, async () => {
    const connP = server.nextConn({ subprotocols: ['chat.v2', 'chat.v1'] });
    const client = runClient([server.url, '1', '1000', '', 'chat.v1', 'chat.v2']);
    const conn = await connP;
    const ended = echo(conn);
    const { status, result } = await client;
    assert.equal(status, 0);
    assert.equal(result.subprotocol, 'chat.v2');
    assert.equal(conn.subprotocol, 'chat.v2');
    assert.equal(result.close_code, 1000);
    assert.ok((await ended) instanceof CloseError);
    assert.equal((await conn.closed).code, 1000);
  });
});

/** What py/echo_server.py prints, one object a line. */
interface ServerEvent {
  event: 'listening' | 'closed';
  port?: number;
  path?: string;
  code?: number;
  reason?: string;
  subprotocol?: string | null;
}

/** Starts py/echo_server.py and resolves once it listens. */
async function startEchoServer(): Promise<{ child: ChildProcess; port: number; events: Inbox<ServerEvent> }> {
  const child = spawn(python, [`${scripts}echo_server.py`], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.add(child);
  const events = new Inbox<ServerEvent>();
  createInterface({ input: child.stdout! }).on('line', (line) => events.push(JSON.parse(line) as ServerEvent));
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`echo_server.py exited with ${String(code)} before listening`);
  });
  const first = await Promise.race([events.next(), exited]);
  assert.equal(first.event, 'listening');
  return { child, port: first.port!, events };
}

describeWithPeer(`wsconn dial() → ${peerName} server`, missing, suite, () => {
  let server: Awaited<ReturnType<typeof startEchoServer>>;
  let base = '';
  const conns = new Set<Conn>();

  before(async () => {
    requirePeer(missing);
    server = await startEchoServer();
    base = `ws://127.0.0.1:${server.port}`;
  });
  after(async () => {
    for (const conn of conns) conn.closeNow();
    if (server === undefined) return;
    server.child.stdin!.end();
    if (server.child.exitCode === null) await once(server.child, 'exit');
    children.delete(server.child);
  });

  async function open(path: string, subprotocols: string[] = []): Promise<Conn> {
    const conn = await dial(base + path, { signal: AbortSignal.timeout(5000), readLimit: -1, subprotocols });
    conns.add(conn);
    return conn;
  }

  it('echoes text and binary up to 1 MiB, pings, and closes with a code python sees', { timeout: 15_000 }, async () => {
    const conn = await open('/echo');
    for (const size of [0, 125, 126, 65535, 65536, 1024 * 1024]) {
      const reading = conn.read();
      await conn.write(MessageType.Binary, pattern(size, 5));
      const back = await reading;
      assert.equal(back.type, MessageType.Binary);
      assert.ok(Buffer.from(back.data).equals(pattern(size, 5)), `binary message of ${size} bytes came back changed`);
      const readingText = conn.read();
      await conn.write(MessageType.Text, text(size));
      assert.equal(Buffer.from((await readingText).data).toString('utf8'), text(size));
    }
    const reading = conn.read();
    const rtt = await conn.ping();
    assert.ok(rtt >= 0);
    await conn.write(MessageType.Text, 'last');
    await reading;

    const info = await within(2000, 'conn.close()', conn.close(4000, 'dial bye ✓'));
    // websockets echoes the whole close frame.
    assert.deepEqual(info, { code: 4000, reason: 'dial bye ✓', wasClean: true });
    const seen = await server.events.next();
    assert.deepEqual(seen, { event: 'closed', path: '/echo', code: 4000, reason: 'dial bye ✓', subprotocol: null });
  });

  it("reports the python server's close code and reason", { timeout: 10_000 }, async () => {
    const conn = await open(`/close/4002/${encodeURIComponent('server bye ✓')}`);
    const reading = conn.read();
    await conn.write(MessageType.Text, 'hi');
    assert.equal(Buffer.from((await reading).data).toString(), 'hi');
    await assert.rejects(conn.read(), (err: unknown) => {
      assert.ok(err instanceof CloseError);
      assert.deepEqual([err.code, err.reason], [4002, 'server bye ✓']);
      return true;
    });
    assert.deepEqual(await conn.closed, { code: 4002, reason: 'server bye ✓', wasClean: true });
    // wsconn echoes the code (RFC 6455 §5.5.1).
    const seen = await server.events.next();
    assert.equal(seen.code, 4002);
  });

  it('negotiates the subprotocol the python server chooses', { timeout: 10_000 }, async () => {
    const conn = await open('/sub', ['chat.v0', 'chat.v2']);
    assert.equal(conn.subprotocol, 'chat.v2');
    await conn.close(1000);
    const seen = await server.events.next();
    assert.deepEqual([seen.code, seen.subprotocol], [1000, 'chat.v2']);
  });
});
