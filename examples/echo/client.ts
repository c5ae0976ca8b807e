/**
 * An echo client: dials a URL and sends back every message it receives,
 * with its type, until the server closes. Useful as the client side of a
 * conformance harness that drives the test through the messages it sends.
 *
 *   node --import tsx examples/echo/client.ts ws://127.0.0.1:8080/ [--read-limit BYTES] [--compression MODE]
 */
import { parseArgs } from 'node:util';
import { closeStatus, dial, StatusCode, type CompressionMode } from 'wsconn';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    'read-limit': { type: 'string' },
    compression: { type: 'string', default: 'disabled' },
  },
});

const url = positionals[0];
if (url === undefined) {
  console.error('usage: client.ts URL [--read-limit BYTES] [--compression MODE]');
  process.exit(2);
}

const conn = await dial(url, {
  signal: AbortSignal.timeout(10_000),
  readLimit: values['read-limit'] === undefined ? 32 * 1024 : Number(values['read-limit']),
  compressionMode: values.compression as CompressionMode, // dial() rejects an unknown mode
});

let count = 0;
try {
  for await (const { type, data } of conn) {
    await conn.write(type, data);
    count++;
  }
} catch (err) {
  const code = closeStatus(err);
  console.error(`connection ended: ${code === -1 ? (err as Error).message : `close ${code}`}`);
}
const { code, reason } = await conn.close(StatusCode.NormalClosure);
console.log(`echoed ${count} messages; closed with ${code}${reason ? ` (${reason})` : ''}`);
