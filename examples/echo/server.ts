/**
 * An echo server: every message comes back with its type.
 *
 *   node --import tsx examples/echo/server.ts [--read-limit BYTES] [--compression MODE]
 *
 * Listens on 127.0.0.1, port $PORT (default 8080). `--read-limit` raises the
 * largest message it takes (default 32 KiB; -1 for none), so a conformance
 * harness can send 16 MiB messages. `--compression` is 'disabled' (default),
 * 'context-takeover' or 'no-context-takeover'.
 */
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { accept, closeStatus, type AcceptOptions, type CompressionMode, type Conn } from 'wsconn';

const { values } = parseArgs({
  options: {
    'read-limit': { type: 'string' },
    compression: { type: 'string', default: 'disabled' },
  },
});

const options: AcceptOptions = {
  readLimit: values['read-limit'] === undefined ? 32 * 1024 : Number(values['read-limit']),
  compressionMode: values.compression as CompressionMode, // accept() rejects an unknown mode
  insecureSkipVerify: true, // a test peer: accept any Origin
};

async function echo(conn: Conn): Promise<void> {
  try {
    for await (const { type, data } of conn) await conn.write(type, data);
    await conn.close(1000);
  } catch (err) {
    // The peer broke the protocol or vanished: wsconn has closed the
    // connection with the right code already. Log anything unexpected.
    if (closeStatus(err) === -1) console.error('echo:', (err as Error).message);
  }
}

const server = createServer((_req, res) => {
  res.writeHead(426, { 'content-type': 'text/plain' }).end('this is a WebSocket echo server\n');
});

server.on('upgrade', (req, socket, head) => {
  accept(req, socket, head, options).then(echo, () => {
    // accept() has already answered the client with an HTTP error.
  });
});

const port = Number(process.env.PORT ?? 8080);
server.listen(port, '127.0.0.1', () => {
  const address = server.address();
  const bound = typeof address === 'object' && address !== null ? address.port : port;
  console.log(`echo server listening on ws://127.0.0.1:${bound}`);
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    server.close();
    server.closeAllConnections();
  });
}
