/**
 * The server end of a TCP-over-WebSocket tunnel: every WebSocket it accepts
 * becomes a TCP connection to TARGET.
 *
 *   node --import tsx examples/tunnel/tunnel-server.ts TARGET_HOST:PORT [--listen HOST:PORT]
 *
 * Listens on 127.0.0.1:8081 unless told otherwise, and prints its URL. Pair
 * it with tunnel-client.ts; demo.ts runs both ends against a local target.
 */
import { parseArgs } from 'node:util';
import { parseHostPort, startTunnelServer } from './tunnel.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { listen: { type: 'string', default: '127.0.0.1:8081' } },
});
if (positionals[0] === undefined) {
  console.error('usage: tunnel-server.ts TARGET_HOST:PORT [--listen HOST:PORT]');
  process.exit(2);
}

const target = parseHostPort(positionals[0]);
const listen = parseHostPort(values.listen);
const server = await startTunnelServer(target, listen);
console.log(`tunnel server on ws://${listen.host}:${server.port}/ forwarding to ${target.host}:${target.port}`);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void server.close());
}
