/**
 * The client end of a TCP-over-WebSocket tunnel: every TCP connection made
 * to the local port is carried over its own WebSocket to URL, where
 * tunnel-server.ts connects it on to its target.
 *
 *   node --import tsx examples/tunnel/tunnel-client.ts ws://HOST:PORT/ [--listen HOST:PORT]
 *
 * Listens on 127.0.0.1:2222 unless told otherwise. For example, to reach a
 * PostgreSQL server that only an HTTP path leads to:
 *
 *   server side: node --import tsx examples/tunnel/tunnel-server.ts db.internal:5432
 *   your side:   node --import tsx examples/tunnel/tunnel-client.ts wss://gateway.example.com/ --listen 5432
 *                psql -h 127.0.0.1 -p 5432
 */
import { parseArgs } from 'node:util';
import { parseHostPort, startTunnelClient } from './tunnel.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { listen: { type: 'string', default: '127.0.0.1:2222' } },
});
if (positionals[0] === undefined) {
  console.error('usage: tunnel-client.ts ws://HOST:PORT/ [--listen HOST:PORT]');
  process.exit(2);
}

const url = positionals[0];
const listen = parseHostPort(values.listen);
const client = await startTunnelClient(url, listen);
console.log(`tunnel client on ${listen.host}:${client.port} forwarding through ${url}`);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void client.close());
}
