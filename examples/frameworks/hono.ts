/**
 * Hono on @hono/node-server: the endpoint listens on the server's 'upgrade'
 * event, not in a route. A route must return a Response, and the adapter
 * writes it on the socket after our 101, where the client reads
 * "HTTP/1.1 200 OK…" as a corrupt frame; even a route that returns
 * RESPONSE_ALREADY_SENT leaves the socket to Node's HTTP server, whose
 * request timeout later writes a 408 into the WebSocket and drops it.
 * test/frameworks.test.ts shows both. With an 'upgrade' listener, Node gives
 * upgrade requests to it alone, and Hono only sees ordinary requests.
 *
 *   PORT=8080 node --import tsx examples/frameworks/hono.ts
 */
import type { Server } from 'node:http';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { createUpgradeListener } from 'wsconn';
import { authenticate, greetAndEcho, onShutdown, port } from './shared.js';

const app = new Hono();
app.get('/', (c) => c.text('a Hono app with a WebSocket endpoint at /ws\n'));

// serve() makes a node:http server unless told otherwise (createServer, http2).
const server = serve({ fetch: app.fetch, port, hostname: '127.0.0.1' }, (info) => {
  console.log(`listening on http://127.0.0.1:${info.port}`);
}) as Server;

const listener = createUpgradeListener({ path: '/ws', authenticate }, greetAndEcho);
server.on('upgrade', listener);

onShutdown(async () => {
  server.close();
  await listener.close({ signal: AbortSignal.timeout(5000) });
});
