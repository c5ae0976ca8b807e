/**
 * Express: the WebSocket endpoint rides on the http.Server that
 * `app.listen()` returns. Express never sees upgrade requests: Node hands
 * them to the server's 'upgrade' listeners instead of the app.
 *
 *   PORT=8080 node --import tsx examples/frameworks/express.ts
 */
import type { AddressInfo } from 'node:net';
import express from 'express';
import { createUpgradeListener } from 'wsconn';
import { authenticate, greetAndEcho, onShutdown, port } from './shared.js';

const app = express();
app.get('/', (_req, res) => {
  res.type('text/plain').send('an Express app with a WebSocket endpoint at /ws\n');
});

const server = app.listen(port, '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${(server.address() as AddressInfo).port}`);
});

// Same-origin pages may connect; list other origins in originPatterns.
const listener = createUpgradeListener({ path: '/ws', authenticate }, greetAndEcho);
server.on('upgrade', listener);

onShutdown(async () => {
  server.close(); // stop taking connections; idle keep-alive ones are closed too
  await listener.close({ signal: AbortSignal.timeout(5000) }); // 1001 to every WebSocket
});
