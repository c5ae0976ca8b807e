/**
 * WebSockets over one HTTP/2 session (RFC 8441) against the same number over
 * HTTP/1.1, both over TLS, wsconn on both ends:
 * `node --import tsx --expose-gc bench/http2.ts [connections] [seconds]`
 * (defaults 1000 and 3; `npm run bench:http2`). The servers run in a forked
 * child (`--expose-gc`, pinned to CPU 0 when `taskset` exists), the clients
 * here. For each transport it reports the connection rate (16 dials at a
 * time), the memory each open connection costs on the server (heap +
 * external, and RSS) and on the client, and the echo rate with every
 * connection keeping one 64-byte message in flight. Results also go to
 * `.bench-out/http2-latest.json`.
 * @module
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { accept } from '../src/accept.js';
import { acceptHttp2, isWebSocketConnect } from '../src/accept-http2.js';
import { MessageType, type Conn } from '../src/conn.js';
import { dial } from '../src/dial.js';
import { pin } from './child.js';

type Transport = 'http/1.1' | 'h2';
interface Memory {
  heap: number;
  rss: number;
}

function makeCert(): { key: Buffer; cert: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'wsconn-bench-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    return { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function memory(): Memory {
  globalThis.gc?.();
  globalThis.gc?.();
  const usage = process.memoryUsage();
  return { heap: usage.heapUsed + usage.external, rss: usage.rss };
}

async function echo(conn: Conn): Promise<void> {
  try {
    for (;;) {
      const { type, data } = await conn.read();
      await conn.write(type, data);
    }
  } catch {
    conn.closeNow();
  }
}

/** The child: an HTTPS server (HTTP/1.1 upgrades) and an HTTP/2 server (extended CONNECT), both echoing. */
async function serve(cert: { key: Buffer; cert: Buffer }): Promise<void> {
  const h1 = https.createServer(cert);
  h1.on('upgrade', (req, socket, head) => void accept(req, socket, head).then(echo, () => {}));
  const h2 = http2.createSecureServer({ ...cert, settings: { enableConnectProtocol: true, maxConcurrentStreams: 100_000 } });
  h2.on('stream', (stream, headers) => {
    if (isWebSocketConnect(headers)) void acceptHttp2(stream, headers).then(echo, () => {});
    else stream.close();
  });
  h2.on('session', (session) => session.on('error', () => {}));
  h1.listen(0, '127.0.0.1');
  h2.listen(0, '127.0.0.1');
  await Promise.all([once(h1, 'listening'), once(h2, 'listening')]);
  process.on('message', () => process.send!({ memory: memory() }));
  process.send!({ ports: { 'http/1.1': (h1.address() as AddressInfo).port, h2: (h2.address() as AddressInfo).port } });
  process.on('disconnect', () => process.exit(0));
}

async function ask(child: ChildProcess): Promise<Memory> {
  child.send('memory');
  const [reply] = (await once(child, 'message')) as [{ memory: Memory }];
  return reply.memory;
}

/** Opens `count` connections, `lanes` at a time. */
async function openAll(url: string, transport: Transport, ca: Buffer, count: number, lanes = 16): Promise<Conn[]> {
  const tls = { ca };
  const conns: Conn[] = [];
  const lane = async (): Promise<void> => {
    while (conns.length < count) {
      const slot = conns.length;
      conns.push(undefined as unknown as Conn);
      conns[slot] = await dial(url, { tls, http2: transport === 'h2' ? 'always' : 'never', signal: AbortSignal.timeout(30_000) });
    }
  };
  await Promise.all(Array.from({ length: lanes }, lane));
  return conns;
}

/** Every connection keeps one 64-byte message in flight for `seconds`; returns round-trips per second. */
async function echoRate(conns: Conn[], seconds: number): Promise<number> {
  const payload = new Uint8Array(64).fill(0x61);
  const deadline = performance.now() + seconds * 1000;
  let count = 0;
  const start = performance.now();
  await Promise.all(conns.map(async (conn) => {
    while (performance.now() < deadline) {
      await conn.write(MessageType.Binary, payload);
      await conn.read();
      count++;
    }
  }));
  return count / ((performance.now() - start) / 1000);
}

async function measure(child: ChildProcess, transport: Transport, port: number, ca: Buffer, count: number, seconds: number) {
  const url = `wss://localhost:${port}/`;
  // One warm-up connection (TLS session, JIT), not counted.
  const [warm] = await openAll(url, transport, ca, 1, 1);
  const serverBefore = await ask(child);
  const clientBefore = memory();
  const started = performance.now();
  const conns = await openAll(url, transport, ca, count);
  const connectRate = count / ((performance.now() - started) / 1000);
  const serverAfter = await ask(child);
  const clientAfter = memory();
  const rate = await echoRate(conns, seconds);
  await Promise.all([...conns, warm!].map((conn) => conn.close()));
  return {
    transport,
    connections: count,
    connectPerSecond: Math.round(connectRate),
    serverBytesPerConn: Math.round((serverAfter.heap - serverBefore.heap) / count),
    serverRssPerConn: Math.round((serverAfter.rss - serverBefore.rss) / count),
    clientBytesPerConn: Math.round((clientAfter.heap - clientBefore.heap) / count),
    echoPerSecond: Math.round(rate),
  };
}

async function main(): Promise<void> {
  const count = Number(process.argv[2] ?? 1000);
  const seconds = Number(process.argv[3] ?? 3);
  const cert = makeCert();
  const child = fork(fileURLToPath(import.meta.url), ['server'], {
    execArgv: ['--import', 'tsx', '--expose-gc'],
    serialization: 'advanced',
  });
  child.send({ key: cert.key.toString(), cert: cert.cert.toString() });
  const [ready] = (await once(child, 'message')) as [{ ports: Record<Transport, number> }];
  try {
    if (child.pid !== undefined) pin(child.pid, 0);
  } catch {
    // No taskset: leave placement to the scheduler.
  }
  const results = [];
  for (const transport of ['http/1.1', 'h2'] as const) {
    results.push(await measure(child, transport, ready.ports[transport], cert.cert, count, seconds));
  }
  child.disconnect();
  console.table(results);
  mkdirSync('.bench-out', { recursive: true });
  writeFileSync('.bench-out/http2-latest.json', `${JSON.stringify({ date: new Date().toISOString(), results }, null, 2)}\n`);
}

if (process.argv[2] === 'server') {
  process.once('message', (cert: { key: string; cert: string }) => {
    void serve({ key: Buffer.from(cert.key), cert: Buffer.from(cert.cert) });
  });
} else {
  await main();
}
