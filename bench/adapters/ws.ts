/**
 * The `ws` adapter: `WebSocketServer` and `WebSocket` from npm `ws`, with
 * its optional native `bufferutil` addon for masking. `info()` checks that
 * the addon is really what `ws` masks with.
 * @module
 */
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { WebSocket, WebSocketServer } from 'ws';
import { MessageQueue } from './queue.js';
import type { Adapter, BenchClient, BenchServer, ServerCounters, ServerMode } from './types.js';

/** Matches Node's default socket `writableHighWaterMark`. */
const highWaterMark = 16 * 1024;
const require = createRequire(import.meta.url);

/**
 * Sends one message; resolves at once while `ws` buffers less than the
 * high-water mark, otherwise when this message reached the socket.
 */
function sendPaced(socket: WebSocket, data: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.send(data, { binary: true }, (err) => (err ? reject(err) : resolve()));
    if (socket.bufferedAmount < highWaterMark) resolve();
  });
}

/**
 * Reports how `ws` masks frames. `ws` takes `http.websocketMask` when Node
 * has it, otherwise `bufferutil` when it loads, otherwise plain JS.
 */
function maskingInfo(): string {
  const wsRequire = createRequire(require.resolve('ws'));
  const wsBufferUtil = wsRequire('./lib/buffer-util.js') as { mask: () => void };
  const http = require('node:http') as Record<string, unknown>;
  if (typeof http['websocketMask'] === 'function') return 'node:http websocketMask (built in)';
  const nativeFile = Object.keys(require.cache).find(
    (file) => file.includes('bufferutil') && file.endsWith('.node'),
  );
  const delegates = wsBufferUtil.mask.toString().includes('bufferUtil.mask');
  if (nativeFile !== undefined && delegates) return `bufferutil native addon (${nativeFile})`;
  return `NOT native: JS fallback (addon file ${nativeFile ?? 'not loaded'}, ws delegates: ${delegates})`;
}

function serve(socket: WebSocket, mode: ServerMode, counters: ServerCounters): void {
  counters.open++;
  counters.accepted++;
  socket.on('close', () => counters.open--);
  socket.on('error', (err) => {
    counters.errors++;
    counters.lastError = String(err);
  });
  if (mode.kind === 'source') {
    const payload = Buffer.alloc(mode.size, 0x5a);
    const pump = async (): Promise<void> => {
      while (socket.readyState === WebSocket.OPEN) await sendPaced(socket, payload);
    };
    pump().catch(() => socket.terminate());
    return;
  }
  socket.on('message', (data: Buffer, isBinary) => {
    counters.messagesIn++;
    counters.bytesIn += data.length;
    if (mode.kind === 'echo') socket.send(data, { binary: isBinary });
  });
}

async function listen(mode: ServerMode, counters: ServerCounters): Promise<BenchServer> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await once(server, 'listening');
  server.on('connection', (socket) => serve(socket, mode, counters));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the server has no TCP address');
  return {
    port: address.port,
    async close() {
      for (const client of server.clients) client.terminate();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function connect(port: number): Promise<BenchClient> {
  const socket = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false });
  await once(socket, 'open');
  const queue = new MessageQueue(socket);
  socket.on('message', (data: Buffer) => queue.push(data));
  socket.on('error', (err) => queue.fail(err));
  socket.on('close', () => queue.fail(new Error('ws: connection closed')));
  return {
    send: (data) => sendPaced(socket, data),
    receive: () => queue.next(),
    async close() {
      if (socket.readyState === WebSocket.CLOSED) return;
      const closed = once(socket, 'close');
      queue.discard();
      socket.close(1000);
      await closed;
    },
    destroy: () => socket.terminate(),
  };
}

/** The `ws` implementation. */
export const adapter: Adapter = {
  name: 'ws',
  info: () => ({
    version: (require('ws/package.json') as { version: string }).version,
    masking: maskingInfo(),
  }),
  listen,
  connect,
};
