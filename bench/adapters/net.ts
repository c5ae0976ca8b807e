/**
 * The raw TCP baseline: `node:net` with a trivial framing (a 4-byte
 * big-endian length, then the payload), Nagle off on both ends. It does the
 * least work any message protocol over TCP can do.
 * @module
 */
import { once } from 'node:events';
import net from 'node:net';
import { MessageQueue } from './queue.js';
import type { Adapter, BenchClient, BenchServer, Compression, ServerCounters, ServerMode } from './types.js';
import { wireMeter } from './wire.js';

/** Raw TCP has no compression; a case asking for it is a mistake. */
function noCompression(compression: Compression | undefined): void {
  if (compression !== undefined && compression !== 'off') throw new Error(`net: no compression (asked for ${compression})`);
}

/** Payloads up to this size are copied behind their header; larger ones are written corked. */
const copyLimit = 16 * 1024;

/** Writes one length-prefixed message; returns `socket.write()`'s verdict. */
function writeMessage(socket: net.Socket, payload: Uint8Array): boolean {
  if (payload.length <= copyLimit) {
    const frame = Buffer.allocUnsafe(4 + payload.length);
    frame.writeUInt32BE(payload.length, 0);
    frame.set(payload, 4);
    return socket.write(frame);
  }
  const header = Buffer.allocUnsafe(4);
  header.writeUInt32BE(payload.length, 0);
  socket.cork();
  socket.write(header);
  const ok = socket.write(payload);
  socket.uncork();
  return ok;
}

/** Resolves on `'drain'`, rejects if the socket closes first. */
function drained(socket: net.Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = (): void => {
      socket.off('close', onClose);
      resolve();
    };
    const onClose = (): void => {
      socket.off('drain', onDrain);
      reject(new Error('net: connection closed'));
    };
    socket.once('drain', onDrain);
    socket.once('close', onClose);
  });
}

/** Writes one message and waits for `'drain'` when the socket is full. */
async function sendMessage(socket: net.Socket, payload: Uint8Array): Promise<void> {
  if (!socket.writable) throw new Error('net: connection closed');
  if (!writeMessage(socket, payload)) await drained(socket);
}

/** Splits a byte stream into length-prefixed messages. */
class MessageParser {
  #chunks: Buffer[] = [];
  #buffered = 0;
  #need = -1;

  /** Adds a chunk and returns every message it completes. */
  push(chunk: Buffer, onMessage: (message: Buffer) => void): void {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    for (;;) {
      if (this.#need < 0) {
        if (this.#buffered < 4) return;
        this.#need = this.#take(4).readUInt32BE(0);
      }
      if (this.#buffered < this.#need) return;
      const message = this.#take(this.#need);
      this.#need = -1;
      onMessage(message);
    }
  }

  #take(n: number): Buffer {
    this.#buffered -= n;
    const first = this.#chunks[0] as Buffer;
    if (first.length === n) return this.#chunks.shift() as Buffer;
    if (first.length > n) {
      this.#chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    for (let offset = 0; offset < n; ) {
      const chunk = this.#chunks[0] as Buffer;
      const k = Math.min(chunk.length, n - offset);
      chunk.copy(out, offset, 0, k);
      if (k === chunk.length) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(k);
      offset += k;
    }
    return out;
  }
}

function serve(socket: net.Socket, mode: ServerMode, counters: ServerCounters): void {
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
      for (;;) await sendMessage(socket, payload);
    };
    pump().catch(() => socket.destroy());
    socket.resume(); // discard input, but see the peer's FIN
    return;
  }
  const parser = new MessageParser();
  const onMessage = (message: Buffer): void => {
    counters.messagesIn++;
    counters.bytesIn += message.length;
    if (mode.kind === 'echo') writeMessage(socket, message);
  };
  socket.on('data', (chunk: Buffer) => parser.push(chunk, onMessage));
}

async function listen(mode: ServerMode, counters: ServerCounters): Promise<BenchServer> {
  noCompression(mode.compression);
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    serve(socket, mode, counters);
  });
  const wire = wireMeter(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    wire,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function connect(port: number, compression?: Compression): Promise<BenchClient> {
  noCompression(compression);
  const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
  await once(socket, 'connect');
  const queue = new MessageQueue(socket);
  const parser = new MessageParser();
  const push = (message: Buffer): void => queue.push(message);
  socket.on('data', (chunk: Buffer) => parser.push(chunk, push));
  socket.on('error', (err) => queue.fail(err));
  socket.on('close', () => queue.fail(new Error('net: connection closed')));
  return {
    extensions: '',
    send: (data) => sendMessage(socket, data),
    receive: () => queue.next(),
    async close() {
      if (socket.destroyed) return;
      const closed = once(socket, 'close');
      queue.discard();
      socket.end();
      await closed;
    },
    destroy: () => socket.destroy(),
  };
}

/** The raw `node:net` baseline. */
export const adapter: Adapter = {
  name: 'net',
  info: () => ({ framing: '4-byte length prefix', noDelay: 'true' }),
  listen,
  connect,
};
