/**
 * The `ws` adapter: `WebSocketServer` and `WebSocket` from npm `ws`, with
 * its optional native `bufferutil` addon for masking. `info()` checks that
 * the addon is really what `ws` masks with. The `WebSocketServer` is
 * attached to a `node:http` server of ours (as the wsconn adapter's is), so
 * that its TCP sockets can be metered. With compression, both ends get
 * `perMessageDeflate` with `threshold: 0` (every message is compressed) and
 * otherwise `ws`'s defaults (zlib level 6, memLevel 8, 15-bit windows, at
 * most 10 zlib jobs at once per process).
 * @module
 */
import { once } from 'node:events';
import http from 'node:http';
import { createRequire } from 'node:module';
import { WebSocket, WebSocketServer, type PerMessageDeflateOptions } from 'ws';
import { pacer } from './pacer.js';
import { MessageQueue } from './queue.js';
import type { Adapter, BenchClient, BenchServer, Compression, ServerCounters, ServerMode } from './types.js';
import { checkExtensions } from './types.js';
import { wireMeter } from './wire.js';

/** Matches Node's default socket `writableHighWaterMark`. */
const highWaterMark = 16 * 1024;
const require = createRequire(import.meta.url);

/**
 * Sends one message; resolves at once while `ws` buffers less than the
 * high-water mark, otherwise when this message reached the socket.
 */
function sendPaced(socket: WebSocket, data: Uint8Array, text = false): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.send(data, { binary: !text }, (err) => (err ? reject(err) : resolve()));
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

/** `ws`'s `perMessageDeflate` option for `compression`, the same on both ends. */
function deflateOptions(compression: Compression = 'off'): false | PerMessageDeflateOptions {
  if (compression === 'off') return false;
  const noTakeover = compression === 'no-context-takeover';
  return { threshold: 0, serverNoContextTakeover: noTakeover, clientNoContextTakeover: noTakeover };
}

/** The value of the `Sec-WebSocket-Extensions` line among response header lines ('' when absent). */
function extensionsLine(lines: string[]): string {
  const prefix = 'sec-websocket-extensions:';
  const line = lines.find((l) => l.toLowerCase().startsWith(prefix));
  return line === undefined ? '' : line.slice(prefix.length).trim();
}

/**
 * The broadcast mode's connections and loop: the usual `ws` broadcast,
 * `for (const client of clients) client.send(message)`, given a Buffer
 * (its cheapest input: a string would be converted once per client).
 */
class Room extends Set<WebSocket> {
  readonly #connections: number;

  constructor(connections: number) {
    super();
    this.#connections = connections;
  }

  join(socket: WebSocket): void {
    this.add(socket);
    socket.on('close', () => this.delete(socket));
    if (this.size < this.#connections) return;
    const text = { binary: false };
    const send = (message: Buffer): void => {
      for (const client of this) client.send(message, text);
    };
    pacer.start(send, () => this.size >= this.#connections);
  }
}

function serve(socket: WebSocket, mode: ServerMode, counters: ServerCounters, room?: Room): void {
  counters.open++;
  counters.accepted++;
  socket.on('close', () => counters.open--);
  socket.on('error', (err) => {
    counters.errors++;
    counters.lastError = String(err);
  });
  if (room !== undefined) {
    room.join(socket);
    return;
  }
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
  const compression = mode.compression ?? 'off';
  const httpServer = http.createServer((_req, res) => res.writeHead(426).end());
  const wire = wireMeter(httpServer);
  const server = new WebSocketServer({ server: httpServer, perMessageDeflate: deflateOptions(compression) });
  const room = mode.kind === 'broadcast' ? new Room(mode.connections) : undefined;
  // what the server answered each request: checked before the connection is served
  const answered = new WeakMap<http.IncomingMessage, string>();
  server.on('headers', (lines: string[], req: http.IncomingMessage) => answered.set(req, extensionsLine(lines)));
  server.on('connection', (socket, req) => {
    try {
      checkExtensions('ws server', compression, answered.get(req) ?? '');
    } catch (err) {
      counters.errors++;
      counters.lastError = String(err);
      socket.terminate();
      return;
    }
    serve(socket, mode, counters, room);
  });
  httpServer.listen(0, '127.0.0.1');
  await once(httpServer, 'listening');
  const address = httpServer.address();
  if (address === null || typeof address === 'string') throw new Error('the server has no TCP address');
  return {
    port: address.port,
    wire,
    async close() {
      for (const client of server.clients) client.terminate();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      httpServer.closeAllConnections();
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
    },
  };
}

async function connect(port: number, compression: Compression = 'off'): Promise<BenchClient> {
  const socket = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: deflateOptions(compression) });
  let answer = '';
  socket.once('upgrade', (res: http.IncomingMessage) => {
    const value = res.headers['sec-websocket-extensions'];
    answer = typeof value === 'string' ? value.trim() : '';
  });
  await once(socket, 'open');
  try {
    checkExtensions('ws client', compression, answer);
  } catch (err) {
    socket.terminate();
    throw err;
  }
  const queue = new MessageQueue(socket);
  socket.on('message', (data: Buffer) => queue.push(data));
  socket.on('error', (err) => queue.fail(err));
  socket.on('close', () => queue.fail(new Error('ws: connection closed')));
  return {
    extensions: answer,
    send: (data, text) => sendPaced(socket, data, text === true),
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
