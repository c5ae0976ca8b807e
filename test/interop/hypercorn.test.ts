/**
 * Interop with another RFC 8441 implementation: Hypercorn (Debian
 * python3-hypercorn, h2 + wsproto underneath) serving an ASGI WebSocket echo
 * app. wsconn's dial() reaches it as an extended CONNECT over cleartext
 * HTTP/2 (prior knowledge); the app reports the HTTP version of each
 * WebSocket's ASGI scope, so "2" is evidence from the server side.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface, type Interface } from 'node:readline';
import { after, before, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { MessageType, type Conn } from '../../src/conn.js';
import { dial, type DialOptions } from '../../src/dial.js';
import { leakCheck } from '../helpers/leak.js';
import { describeWithPeer, python, requirePeer } from './harness.js';

const checkLeaks = leakCheck();
const script = fileURLToPath(new URL('./py/hypercorn_echo.py', import.meta.url));

function probe(): string | undefined {
  const run = spawnSync(python, ['-c', 'import hypercorn, h2'], { timeout: 10_000 });
  return run.status === 0 ? undefined : 'python3-hypercorn not installed (apt-get install python3-hypercorn)';
}
const missing = probe();

let child: ChildProcess | undefined;
let lines: AsyncIterator<string> | undefined;
let reader: Interface | undefined;
let port = 0;
const conns = new Set<Conn>();

/** The next line the server printed: one per WebSocket it accepted. */
async function accepted(): Promise<{ http_version: string; subprotocols: string[]; path: string }> {
  const next = await lines!.next();
  assert.ok(next.done !== true, 'the Hypercorn server exited');
  return JSON.parse(next.value) as { http_version: string; subprotocols: string[]; path: string };
}

async function open(path: string, options: DialOptions = {}): Promise<Conn> {
  const conn = await dial(`ws://127.0.0.1:${port}${path}`, {
    http2: 'always',
    http2IdleTimeout: 50,
    signal: AbortSignal.timeout(10_000),
    readLimit: -1,
    ...options,
  });
  conns.add(conn);
  return conn;
}

describeWithPeer('interop: Hypercorn over HTTP/2 (RFC 8441)', missing, { timeout: 60_000 }, () => {
  before(async () => {
    requirePeer(missing);
    child = spawn(python, [script], { stdio: ['pipe', 'pipe', 'inherit'] });
    reader = createInterface({ input: child.stdout! });
    lines = reader[Symbol.asyncIterator]();
    const first = await lines.next();
    port = Number(first.value);
    assert.ok(port > 0, `hypercorn_echo.py printed no port: ${String(first.value)}`);
  });

  after(async () => {
    for (const conn of conns) conn.closeNow();
    if (child !== undefined && child.exitCode === null) {
      const exited = once(child, 'exit');
      child.stdin!.end(); // the script stops when its stdin closes
      await exited;
    }
    reader?.close();
    await checkLeaks();
  });

  for (const compression of ['disabled', 'context-takeover'] as const) {
    it(`echoes text and binary and closes cleanly, compression ${compression}`, { timeout: 15_000 }, async () => {
      const conn = await open(`/echo-${compression}`, { subprotocols: ['chat.v1'], compressionMode: compression });
      const seen = await accepted();
      assert.deepEqual(seen, { http_version: '2', subprotocols: ['chat.v1'], path: `/echo-${compression}` });
      assert.equal(conn.subprotocol, 'chat.v1');
      assert.equal(conn.extensions.startsWith('permessage-deflate'), compression !== 'disabled');
      await conn.write(MessageType.Text, 'héllo over h2');
      assert.equal(new TextDecoder().decode((await conn.read()).data), 'héllo over h2');
      const bytes = new Uint8Array(150_000).map((_, i) => (i * 13) & 0xff);
      await conn.write(MessageType.Binary, bytes);
      const back = await conn.read();
      assert.equal(back.type, MessageType.Binary);
      assert.ok(Buffer.from(back.data).equals(bytes), 'the binary message came back intact');
      const info = await conn.close(1000, 'bye');
      assert.equal(info.code, 1000);
      assert.equal(info.wasClean, true);
    });
  }

  it('runs 20 WebSockets on one session', { timeout: 20_000 }, async () => {
    const many = await Promise.all(Array.from({ length: 20 }, (_, i) => open(`/many/${i}`)));
    for (let i = 0; i < many.length; i++) assert.equal((await accepted()).http_version, '2');
    await Promise.all(many.map(async (conn, i) => {
      await conn.write(MessageType.Text, `conn ${i}`);
      assert.equal(new TextDecoder().decode((await conn.read()).data), `conn ${i}`);
    }));
    await Promise.all(many.map((conn) => conn.close()));
  });
});
