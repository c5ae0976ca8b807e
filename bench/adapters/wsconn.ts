/**
 * The wsconn adapter: `accept()` on a `node:http` server's `'upgrade'`
 * event, `dial()` on the client side, and the Conn's `read()`/`write()`.
 * No native addon. With compression, both ends get `compressionMode` and
 * `compressionThreshold: 0` (every message is compressed).
 * @module
 */
import { once } from 'node:events';
import http from 'node:http';
import type { Duplex } from 'node:stream';
// The published build, as users run it: the package's own name resolves to
// dist/ through its "exports". tsx's transform of src/ would add a
// keepNames property array to every named closure and skew both memory and speed.
import {
  accept,
  broadcast,
  closeStatus,
  dial,
  MessageType,
  PreparedMessage,
  StatusCode,
  type CompressionMode,
  type Conn,
  type ConnOptions,
} from 'wsconn';
import { pacer } from './pacer.js';
import type { Adapter, BenchClient, BenchServer, Compression, ServerCounters, ServerMode } from './types.js';
import { checkExtensions, maxMessageSize } from './types.js';
import { wireMeter } from './wire.js';

/** The default read limit (32 KiB) is below the largest message sent. */
const readLimit = 2 * maxMessageSize;

/** The options both ends get for `compression`. */
function options(compression: Compression = 'off'): ConnOptions & { compressionMode?: CompressionMode } {
  if (compression === 'off') return { readLimit };
  return { readLimit, compressionMode: compression, compressionThreshold: 0 };
}

/** The broadcast mode's connections and loop: `broadcast()` of one `PreparedMessage` per message. */
class Room extends Set<Conn> {
  readonly #connections: number;

  constructor(connections: number) {
    super();
    this.#connections = connections;
  }

  join(conn: Conn): void {
    this.add(conn);
    if (this.size < this.#connections) return;
    const send = (message: Buffer): void => void broadcast(this, new PreparedMessage(MessageType.Text, message), { queueLimit: 256 });
    pacer.start(send, () => this.size >= this.#connections);
  }
}

/**
 * Serves one accepted connection in the given mode until it ends, counting
 * how it ended. One async function per connection, as an application's
 * handler would be: each further suspended async frame under it would add
 * a few hundred bytes to every idle connection's memory.
 */
async function serve(conn: Conn, mode: ServerMode, counters: ServerCounters, room: Room | undefined): Promise<void> {
  counters.open++;
  counters.accepted++;
  try {
    checkExtensions('wsconn server', mode.compression ?? 'off', conn.extensions);
    if (room !== undefined) {
      room.join(conn);
      for (;;) await conn.read();
    } else if (mode.kind === 'source') {
      const payload = new Uint8Array(mode.size).fill(0x5a);
      conn.closeRead();
      for (;;) await conn.write(MessageType.Binary, payload);
    } else {
      for (;;) {
        const { type, data } = await conn.read();
        counters.messagesIn++;
        counters.bytesIn += data.length;
        if (mode.kind === 'echo') await conn.write(type, data);
      }
    }
  } catch (err) {
    const code = closeStatus(err);
    if (code !== StatusCode.NormalClosure && code !== StatusCode.GoingAway) {
      counters.errors++;
      counters.lastError = String(err);
    }
  } finally {
    room?.delete(conn);
    counters.open--;
    conn.closeNow();
  }
}

async function listen(mode: ServerMode, counters: ServerCounters): Promise<BenchServer> {
  const server = http.createServer((_req, res) => res.writeHead(426).end());
  const wire = wireMeter(server);
  const room = mode.kind === 'broadcast' ? new Room(mode.connections) : undefined;
  // Not an async function holding `req` across the connection's life: that
  // would charge wsconn for memory the application kept.
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    accept(req, socket, head, options(mode.compression)).then(
      (conn) => serve(conn, mode, counters, room),
      (err: unknown) => {
        counters.errors++;
        counters.lastError = `accept: ${String(err)}`;
      },
    );
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as { port: number }).port,
    wire,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function connect(port: number, compression: Compression = 'off'): Promise<BenchClient> {
  const conn = await dial(`ws://127.0.0.1:${port}/`, options(compression));
  try {
    checkExtensions('wsconn client', compression, conn.extensions);
  } catch (err) {
    conn.closeNow();
    throw err;
  }
  return {
    extensions: conn.extensions,
    send: (data, text) => conn.write(text === true ? MessageType.Text : MessageType.Binary, data),
    receive: async () => (await conn.read()).data,
    async close() {
      await conn.close(StatusCode.NormalClosure);
    },
    destroy: () => conn.closeNow(),
  };
}

/** The wsconn implementation. */
export const adapter: Adapter = {
  name: 'wsconn',
  info: () => ({ masking: 'TypeScript (no native addon)' }),
  listen,
  connect,
};
