/**
 * Fastify: the endpoint listens on `app.server`, and `app.close()` shuts it
 * down from a preClose hook. preClose runs before Fastify closes the HTTP
 * server, whose close waits for every open socket, upgraded ones included:
 * closing the WebSockets there is what lets `app.close()` finish.
 *
 *   PORT=8080 node --import tsx examples/frameworks/fastify.ts
 */
import Fastify from 'fastify';
import { createUpgradeListener } from 'wsconn';
import { authenticate, greetAndEcho, onShutdown, port } from './shared.js';

const app = Fastify();
app.get('/', async () => 'a Fastify app with a WebSocket endpoint at /ws\n');

const listener = createUpgradeListener({ path: '/ws', authenticate }, greetAndEcho);
app.server.on('upgrade', listener);
app.addHook('preClose', async () => {
  await listener.close({ signal: AbortSignal.timeout(5000) }); // 1001 to every WebSocket
});

const address = await app.listen({ port, host: '127.0.0.1' });
console.log(`listening on ${address}`);

onShutdown(() => app.close());
