/**
 * Behind a reverse proxy. This file runs both sides: the application (on a
 * private port) and a tiny node:http reverse proxy in front of it (the
 * public port), standing in for nginx, Caddy or a cloud load balancer.
 *
 *   PORT=8080 node --import tsx examples/frameworks/proxy.ts
 *
 * Two things change for the application behind a proxy:
 *
 * - The same-origin check compares the page's Origin with the Host header
 *   the application receives. This proxy, like nginx by default
 *   (`proxy_set_header Host $proxy_host`), replaces Host with the
 *   upstream's address, so a page from the public origin no longer looks
 *   same-origin and would get 403. Either make the proxy keep the client's
 *   Host (nginx: `proxy_set_header Host $host`), or name the public origin
 *   in `originPatterns`, as below. Do not trust X-Forwarded-Host for this
 *   unless nothing but the proxy can reach the application.
 * - The socket's remote address is the proxy's. The client's address is
 *   the last X-Forwarded-For entry, appended by the proxy; believe it only
 *   when the connection comes from the proxy.
 */
import { once } from 'node:events';
import { createServer, request, type IncomingMessage } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { MessageType, createUpgradeListener } from 'wsconn';
import { authenticate, onShutdown, port } from './shared.js';

// --- the application ---------------------------------------------------------

const trustedProxies = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

/** The client's address: the one the proxy saw, if the connection comes from the proxy. */
function clientAddress(req: IncomingMessage): string {
  const peer = req.socket.remoteAddress ?? '';
  const forwarded = req.headers['x-forwarded-for'];
  if (!trustedProxies.has(peer) || typeof forwarded !== 'string') return peer;
  return forwarded.split(',').at(-1)!.trim(); // the entry our proxy appended; earlier ones are the client's word
}

const app = createServer((_req, res) => {
  res.setHeader('content-type', 'text/plain').end('an application behind a reverse proxy, with a WebSocket endpoint at /ws\n');
});
app.listen(0, '127.0.0.1');
await once(app, 'listening');
const appPort = (app.address() as AddressInfo).port;

// --- the reverse proxy -----------------------------------------------------

const proxy = createServer((req, res) => {
  const upstream = request(
    { host: '127.0.0.1', port: appPort, method: req.method, path: req.url, headers: forwardedHeaders(req) },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    },
  );
  upstream.on('error', () => res.writeHead(502).end('bad gateway\n'));
  req.pipe(upstream);
});
proxy.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
  socket.on('error', () => upstream.destroy());
  const upstream = connect(appPort, '127.0.0.1', () => {
    const lines = Object.entries(forwardedHeaders(req)).map(([name, value]) => `${name}: ${value}\r\n`);
    upstream.write(`${req.method} ${req.url} HTTP/1.1\r\n${lines.join('')}\r\n`);
    upstream.write(head);
    socket.pipe(upstream).pipe(socket); // from here on, bytes both ways: the 101 and every frame
  });
  upstream.on('error', () => socket.destroy());
  upstream.on('close', () => socket.destroy());
  socket.on('close', () => upstream.destroy());
});

/** The request's headers as the proxy passes them on: Host rewritten, X-Forwarded-* added. */
function forwardedHeaders(req: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!.toLowerCase();
    if (name === 'host' || name.startsWith('x-forwarded-')) continue;
    headers[name] = headers[name] === undefined ? req.rawHeaders[i + 1]! : `${headers[name]}, ${req.rawHeaders[i + 1]}`;
  }
  headers.host = `127.0.0.1:${appPort}`;
  const previous = req.headers['x-forwarded-for'];
  headers['x-forwarded-for'] = `${typeof previous === 'string' ? `${previous}, ` : ''}${req.socket.remoteAddress ?? ''}`;
  headers['x-forwarded-proto'] = 'http';
  headers['x-forwarded-host'] = req.headers.host ?? '';
  return headers;
}

proxy.listen(port, '127.0.0.1');
await once(proxy, 'listening');
const publicOrigin = process.env.PUBLIC_ORIGIN ?? `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;

// --- the WebSocket endpoint, configured for the proxied deployment ----------

const listener = createUpgradeListener(
  {
    path: '/ws',
    authenticate,
    // Host is the proxy's upstream address now: name the public origin.
    originPatterns: [publicOrigin],
  },
  async (conn, { user, req }) => {
    await conn.write(MessageType.Text, `hello ${user.name} at ${clientAddress(req)}`);
    for await (const { type, data } of conn) await conn.write(type, data);
  },
);
app.on('upgrade', listener);
console.log(`listening on http://127.0.0.1:${(proxy.address() as AddressInfo).port} (application on 127.0.0.1:${appPort})`);
console.log(`allowed origin: ${publicOrigin}`);

onShutdown(async () => {
  proxy.close();
  app.close();
  await listener.close({ signal: AbortSignal.timeout(5000) });
});
