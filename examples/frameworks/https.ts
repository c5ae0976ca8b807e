/**
 * A node:https server: TLS is the server's business, so the listener is the
 * same as on plain http and clients connect with wss://. The same-origin
 * check compares the page's origin with the Host header, so
 * https://example.com pages may connect to wss://example.com as they are.
 *
 *   TLS_CERT=cert.pem TLS_KEY=key.pem PORT=8443 node --import tsx examples/frameworks/https.ts
 *
 * For a local try, a throwaway self-signed pair (never for production):
 *
 *   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
 *     -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
 *     -keyout key.pem -out cert.pem
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createUpgradeListener } from 'wsconn';
import { authenticate, greetAndEcho, onShutdown, port } from './shared.js';

const { TLS_CERT, TLS_KEY } = process.env;
if (TLS_CERT === undefined || TLS_KEY === undefined) {
  console.error('set TLS_CERT and TLS_KEY to PEM files (see the comment at the top of this file)');
  process.exit(2);
}

const server = createServer({ cert: readFileSync(TLS_CERT), key: readFileSync(TLS_KEY) }, (_req, res) => {
  res.setHeader('content-type', 'text/plain').end('an https server with a WebSocket endpoint at /ws\n');
});
const listener = createUpgradeListener({ path: '/ws', authenticate }, greetAndEcho);
server.on('upgrade', listener);
server.listen(port, '127.0.0.1', () => {
  console.log(`listening on https://127.0.0.1:${(server.address() as AddressInfo).port}`);
});

onShutdown(async () => {
  server.close();
  await listener.close({ signal: AbortSignal.timeout(5000) });
});
