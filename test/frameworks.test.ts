/**
 * Runs each framework recipe in examples/frameworks/ as a child process and
 * checks what a client sees: ordinary HTTP still served, authentication
 * before the 101, the origin check, echo, 404 for other paths, and a
 * graceful shutdown with 1001 on SIGTERM. Also shows, in-process, why the
 * Hono recipe does not take the upgrade in a route.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { serve, type HttpBindings } from '@hono/node-server';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { Hono } from 'hono';
import { Agent, request, type Dispatcher } from 'undici';
import { accept } from '../src/accept.js';
import { closeStatus } from '../src/close.js';
import { MessageType, type Conn } from '../src/conn.js';
import { dial, type DialOptions } from '../src/dial.js';
import { HandshakeError, ProtocolError } from '../src/errors.js';
import { ExampleProcess } from './helpers/example-process.js';
import { leakCheck } from './helpers/leak.js';

const checkLeaks = leakCheck();
const processes = new Set<ExampleProcess>();
const conns = new Set<Conn>();
const agents = new Set<Agent>();
let tlsDir: string | undefined;
let tlsSkip: string | false = false;

before(async () => {
  tlsDir = await mkdtemp(join(tmpdir(), 'wsconn-tls-'));
  // A throwaway self-signed pair for this run only, valid for a day.
  const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout', join(tlsDir, 'key.pem'), '-out', join(tlsDir, 'cert.pem')];
  try {
    await promisify(execFile)('openssl', args, { timeout: 10_000 });
  } catch (err) {
    tlsSkip = `openssl could not make a test certificate: ${(err as Error).message.split('\n')[0]}`;
  }
});

after(async () => {
  for (const conn of conns) conn.closeNow();
  await Promise.all([...processes].map((p) => p.kill()));
  await Promise.all([...agents].map((a) => a.close()));
  if (tlsDir !== undefined) await rm(tlsDir, { recursive: true, force: true });
  await checkLeaks();
});

interface Recipe {
  file: string;
  /** Extra environment; runs after `before`, so it can see the certificate. */
  env?: () => Record<string, string>;
  /** An undici dispatcher for https (trusting the test certificate). */
  dispatcher?: () => Promise<Dispatcher>;
  skip?: () => string | false;
  greeting: RegExp;
}

async function trustingAgent(): Promise<Dispatcher> {
  const agent = new Agent({ connect: { ca: await readFile(join(tlsDir!, 'cert.pem')) } });
  agents.add(agent);
  return agent;
}

const recipes: Recipe[] = [
  { file: 'examples/frameworks/express.ts', greeting: /^hello alice$/ },
  { file: 'examples/frameworks/fastify.ts', greeting: /^hello alice$/ },
  { file: 'examples/frameworks/hono.ts', greeting: /^hello alice$/ },
  {
    file: 'examples/frameworks/https.ts',
    env: () => ({ TLS_CERT: join(tlsDir!, 'cert.pem'), TLS_KEY: join(tlsDir!, 'key.pem') }),
    dispatcher: trustingAgent,
    skip: () => tlsSkip,
    greeting: /^hello alice$/,
  },
  // Through the proxy: Host is rewritten, the public origin comes from originPatterns, the address from X-Forwarded-For.
  { file: 'examples/frameworks/proxy.ts', greeting: /^hello alice at 127\.0\.0\.1$/ },
];

const text = (data: Uint8Array): string => Buffer.from(data).toString('utf8');
const token = { authorization: 'Bearer alice-secret' };

for (const recipe of recipes) {
  describe(recipe.file, { timeout: 60_000 }, () => {
    let example: ExampleProcess;
    let base: string;
    let dispatcher: Dispatcher | undefined;

    async function connect(path: string, options: DialOptions = {}): Promise<Conn> {
      const conn = await dial(`${base.replace(/^http/, 'ws')}${path}`, {
        signal: AbortSignal.timeout(5000),
        ...(dispatcher === undefined ? {} : { dispatcher }),
        ...options,
      });
      conns.add(conn);
      return conn;
    }

    before(async () => {
      if (recipe.skip?.()) return; // each test reports the skip
      dispatcher = await recipe.dispatcher?.();
      example = new ExampleProcess(recipe.file, [], { PORT: '0', ...recipe.env?.() });
      processes.add(example);
      [, base] = (await example.waitFor(/listening on (https?:\/\/[\d.:]+)/, 20_000)) as [string, string];
    });

    const it_ = (name: string, fn: () => Promise<void>): void => {
      it(name, { timeout: 15_000 }, async (t) => {
        const skip = recipe.skip?.();
        if (skip) return t.skip(skip);
        await fn();
      });
    };

    it_('still serves ordinary HTTP requests', async () => {
      const res = await request(`${base}/`, dispatcher === undefined ? {} : { dispatcher });
      assert.equal(res.statusCode, 200);
      assert.match(await res.body.text(), /WebSocket endpoint at \/ws/);
    });

    it_('answers 401 without a token, before any 101', async () => {
      await assert.rejects(connect('/ws'), (err: unknown) => {
        assert.ok(err instanceof HandshakeError, String(err));
        assert.equal(err.status, 401);
        assert.equal(err.headers.get('www-authenticate'), 'Bearer');
        return true;
      });
    });

    it_('answers 403 to a foreign origin and 404 to another path', async () => {
      await assert.rejects(connect('/ws', { headers: { ...token, origin: 'https://evil.example' } }), (err: unknown) => {
        return err instanceof HandshakeError && err.status === 403;
      });
      await assert.rejects(connect('/elsewhere', { headers: token }), (err: unknown) => {
        return err instanceof HandshakeError && err.status === 404;
      });
    });

    it_('greets an authenticated same-origin client and echoes', async () => {
      const conn = await connect('/ws', { headers: { ...token, origin: base } });
      assert.match(text((await conn.read({ signal: AbortSignal.timeout(5000) })).data), recipe.greeting);
      await conn.write(MessageType.Text, 'ping');
      assert.equal(text((await conn.read({ signal: AbortSignal.timeout(5000) })).data), 'ping');
      assert.equal((await conn.close(1000)).wasClean, true);
    });

    it_('on SIGTERM closes WebSockets with 1001 and exits 0', async () => {
      const conn = await connect('/ws', { headers: token });
      await conn.read({ signal: AbortSignal.timeout(5000) }); // the greeting: the handler runs
      example.child.kill('SIGTERM');
      const failure = await conn.read({ signal: AbortSignal.timeout(5000) }).catch((err: unknown) => err);
      assert.equal(closeStatus(failure), 1001, String(failure));
      assert.equal((await conn.closed).wasClean, true);
      assert.deepEqual(await example.exit(10_000), { code: 0, signal: null }, example.output);
      assert.match(example.stdout, /shut down/);
      // The only complaints: the default onError's one line per refused upgrade above.
      for (const line of example.stderr.split('\n').filter((l) => l !== '')) {
        assert.match(line, /^wsconn: GET \/\S* from [\d.:a-f]+: HandshakeError: WebSocket handshake refused with 40[134] /, example.output);
      }
    });
  });
}

describe('why the Hono recipe takes upgrades from the server, not from a route', { timeout: 30_000 }, () => {
  /** A Hono app that upgrades inside a route, the way one might try first. */
  async function honoRouteServer(alreadySent: boolean, requestTimeout: number): Promise<{ url: string; stop: () => Promise<void> }> {
    const app = new Hono<{ Bindings: HttpBindings }>();
    app.get('/ws', async (c) => {
      const req = c.env.incoming;
      const conn = await accept(req, req.socket, new Uint8Array(0));
      conns.add(conn);
      void (async () => {
        for await (const { type, data } of conn) await conn.write(type, data);
      })().catch(() => {});
      return alreadySent ? RESPONSE_ALREADY_SENT : c.text('upgraded');
    });
    const server = serve({
      fetch: app.fetch,
      port: 0,
      hostname: '127.0.0.1',
      serverOptions: { requestTimeout, connectionsCheckingInterval: 100 },
    });
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    return {
      url: `ws://127.0.0.1:${port}/ws`,
      stop: () => new Promise((resolve) => server.close(() => resolve())),
    };
  }

  async function readFailure(conn: Conn): Promise<unknown> {
    return conn.read({ signal: AbortSignal.timeout(10_000) }).then(
      (msg) => new Error(`unexpected message ${text(msg.data)}`),
      (err: unknown) => err,
    );
  }

  it("a route's Response is written after the 101 and the client reads it as a corrupt frame", { timeout: 10_000 }, async () => {
    const { url, stop } = await honoRouteServer(false, 300_000);
    const conn = await dial(url, { signal: AbortSignal.timeout(5000) });
    conns.add(conn);
    // "HTTP/1.1 200 OK…": 'H' (0x48) has the RSV1 bit set, so the client fails the connection.
    const failure = await readFailure(conn);
    assert.ok(failure instanceof ProtocolError, String(failure));
    assert.equal(failure.code, 1002);
    await stop();
  });

  it("RESPONSE_ALREADY_SENT avoids that, but Node's request timeout later writes a 408 into the WebSocket", { timeout: 10_000 }, async () => {
    const { url, stop } = await honoRouteServer(true, 1000);
    const conn = await dial(url, { signal: AbortSignal.timeout(5000) });
    conns.add(conn);
    await conn.write(MessageType.Text, 'works at first');
    assert.equal(text((await conn.read({ signal: AbortSignal.timeout(5000) })).data), 'works at first');
    // Node still counts the request as unanswered: after requestTimeout it sends
    // "HTTP/1.1 408 Request Timeout" on the socket and destroys it.
    const failure = await readFailure(conn);
    assert.ok(failure instanceof ProtocolError, String(failure));
    await stop();
  });
});
