/**
 * The tunnel, end to end, in one process: an HTTP service reached only
 * through a WebSocket.
 *
 *   node --import tsx examples/tunnel/demo.ts
 *
 * It starts a plain HTTP server (the target), the tunnel server forwarding
 * to it, and the tunnel client in front; then it makes HTTP requests to the
 * tunnel client's local port, which travel
 *
 *   HTTP client ─TCP─▶ tunnel client ═WebSocket═▶ tunnel server ─TCP─▶ target
 *
 * and prints what comes back, including 4 MiB each way checked by SHA-256.
 * Everything listens on 127.0.0.1 port 0, and it exits when done.
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, request, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startTunnelClient, startTunnelServer } from './tunnel.js';

const download = randomBytes(4 * 1024 * 1024);

/** The service at the far end: it greets, serves a blob, and hashes what is POSTed. */
const target = createServer(async (req, res) => {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  res.setHeader('connection', 'close');
  if (req.method === 'POST') {
    res.end(`received ${size} bytes, sha256 ${hash.digest('hex')}`);
  } else if (req.url === '/blob') {
    res.end(download);
  } else {
    res.end(`hello from the target; you came from ${req.socket.remoteAddress}:${req.socket.remotePort}`);
  }
});
target.listen(0, '127.0.0.1');
await once(target, 'listening');
const targetPort = (target.address() as AddressInfo).port;

const tunnelServer = await startTunnelServer({ host: '127.0.0.1', port: targetPort }, { host: '127.0.0.1', port: 0 });
const tunnelClient = await startTunnelClient(`ws://127.0.0.1:${tunnelServer.port}/`, { host: '127.0.0.1', port: 0 });
console.log(`target http://127.0.0.1:${targetPort}, tunnel ws://127.0.0.1:${tunnelServer.port}/, local port ${tunnelClient.port}`);

/** One HTTP request to the tunnel's local port, on its own TCP connection. */
async function fetchThroughTunnel(method: string, path: string, body?: Uint8Array): Promise<{ status: number; body: Buffer }> {
  const req = request({ host: '127.0.0.1', port: tunnelClient.port, method, path, agent: false });
  req.end(body);
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  const chunks: Buffer[] = [];
  for await (const chunk of res as AsyncIterable<Buffer>) chunks.push(chunk);
  return { status: res.statusCode ?? 0, body: Buffer.concat(chunks) };
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

try {
  const get = await fetchThroughTunnel('GET', '/');
  console.log(`GET / through the tunnel: ${get.status} ${get.body.toString()}`);

  const upload = randomBytes(4 * 1024 * 1024);
  const post = await fetchThroughTunnel('POST', '/', upload);
  console.log(`POST 4 MiB through the tunnel: ${post.status} ${post.body.toString()}`);
  if (!post.body.toString().endsWith(sha256(upload))) throw new Error('the target received different bytes');
  console.log('upload sha256 matches: the bytes arrived intact');

  const blob = await fetchThroughTunnel('GET', '/blob');
  console.log(`GET /blob through the tunnel: ${blob.status}, ${blob.body.length} bytes, sha256 ${sha256(blob.body)}`);
  if (sha256(blob.body) !== sha256(download)) throw new Error('the client received different bytes');
  console.log('download sha256 matches: the bytes arrived intact');

  const several = await Promise.all([1, 2, 3].map(() => fetchThroughTunnel('GET', '/')));
  console.log(`3 concurrent GETs, each over its own WebSocket: ${several.map((r) => r.status).join(', ')}`);
} finally {
  await tunnelClient.close();
  await tunnelServer.close();
  target.close();
}
