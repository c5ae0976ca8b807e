// broadcast() and writePrepared() over real loopback TCP: every reader gets
// every message in order, a client that never reads is handled by the
// slow-consumer policy without delaying the others, and real peers (`ws`)
// decode prepared messages in both compression modes.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import WebSocket from 'ws';
import { accept, type AcceptOptions } from '../src/accept.js';
import { broadcast, type BroadcastOptions } from '../src/broadcast.js';
import { MessageType, type Conn } from '../src/conn.js';
import { dial } from '../src/dial.js';
import { pipe } from '../src/pipe.js';
import { ClosedError } from '../src/errors.js';
import { deferred, type Deferred } from '../src/internal/deferred.js';
import { PreparedMessage } from '../src/protocol/prepared.js';
import { leakCheck } from './helpers/leak.js';
import { FrameParser, Op, readHttpHead, upgradeRequest, type RawFrame } from './helpers/raw.js';

const checkLeaks = leakCheck();
after(() => checkLeaks());

const str = (b: Uint8Array): string => new TextDecoder().decode(b);

/** A loopback server whose accepted Conns are handed out in order. */
class Hub {
  readonly conns: Conn[] = [];
  readonly #server: Server;
  #waiting: Array<Deferred<Conn>> = [];
  #ready: Conn[] = [];

  constructor(options: AcceptOptions = {}) {
    this.#server = createServer();
    this.#server.on('upgrade', (req, socket, head) => {
      accept(req, socket, head, options).then(
        (conn) => {
          this.conns.push(conn);
          const waiter = this.#waiting.shift();
          if (waiter === undefined) this.#ready.push(conn);
          else waiter.resolve(conn);
        },
        () => {},
      );
    });
  }

  async listen(): Promise<number> {
    this.#server.listen(0, '127.0.0.1');
    await once(this.#server, 'listening');
    return (this.#server.address() as AddressInfo).port;
  }

  /** The next Conn the server accepts. */
  next(): Promise<Conn> {
    const ready = this.#ready.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    const waiter = deferred<Conn>();
    this.#waiting.push(waiter);
    return waiter.promise;
  }

  async stop(): Promise<void> {
    for (const conn of this.conns) conn.closeNow();
    this.#server.closeAllConnections();
    this.#server.close();
    await once(this.#server, 'close');
  }
}

/** A client that completes the handshake and then reads nothing until it is told to. */
async function stalledClient(port: number): Promise<{ socket: Socket; read: (count?: number) => Promise<RawFrame[]> }> {
  const socket = connect({ host: '127.0.0.1', port });
  await once(socket, 'connect');
  socket.write(upgradeRequest(`127.0.0.1:${port}`));
  const { head, rest } = await readHttpHead(socket);
  assert.match(head, /^HTTP\/1\.1 101/);
  /** Resumes reading; resolves with the frames once `count` data frames came, or at the end of the stream. */
  const read = async (count = Infinity): Promise<RawFrame[]> => {
    const parser = new FrameParser();
    const out = parser.push(rest);
    const enough = (): boolean => out.filter((f) => f.opcode === Op.Text).length >= count;
    const done = deferred<RawFrame[]>();
    socket.on('data', (chunk: Buffer) => {
      out.push(...parser.push(chunk));
      if (enough()) done.resolve(out);
    });
    socket.on('close', () => done.resolve(out));
    socket.resume();
    if (enough()) done.resolve(out);
    return done.promise;
  };
  return { socket, read };
}

const numberOf = (frame: RawFrame): number => Number.parseInt(str(frame.payload.subarray(0, 8)), 10);

/** Broadcasts numbered 16 KiB messages until a stalled client among `conns` meets the policy. */
async function floodUntilPolicy(
  conns: Conn[],
  options: BroadcastOptions,
): Promise<{ sent: number; results: Array<ReturnType<typeof broadcast>> }> {
  const results: Array<ReturnType<typeof broadcast>> = [];
  const filler = 'x'.repeat(16 * 1024);
  let n = 0;
  // Enough to fill the kernel's buffers (about 4 MiB on loopback) and then the queue twice over.
  for (; n < 2000; n++) {
    const result = broadcast(conns, new PreparedMessage(MessageType.Text, `${n} ${filler}`), options);
    results.push(result);
    if (result.closed > 0 || (result.dropped > 0 && results.filter((r) => r.dropped > 0).length > 2 * (options.queueLimit ?? 32))) break;
    // Let the readers and the drained sockets move between messages, as a real feed would.
    await new Promise((resolve) => setImmediate(resolve));
  }
  return { sent: n + 1, results };
}

describe('broadcast()', { timeout: 120_000 }, () => {
  it('1,000 readers get every message in order while one client never reads; the policy closes it', { timeout: 90_000 }, async () => {
    const hub = new Hub({ closeTimeout: 500 });
    const port = await hub.listen();
    try {
      const stalled = await stalledClient(port);
      const stalledConn = await hub.next();
      const readers = await Promise.all(Array.from({ length: 999 }, () => dial(`ws://127.0.0.1:${port}`)));
      const serverConns = [stalledConn, ...(await Promise.all(readers.map(() => hub.next())))];
      const counts = readers.map(() => 0);
      let firstBroken: string | undefined;
      const reading = readers.map(async (conn, i) => {
        for await (const message of conn) {
          const n = Number.parseInt(str(message.data.subarray(0, 8)), 10);
          if (n !== counts[i]) firstBroken ??= `reader ${i} got message ${n} where ${counts[i]} was due`;
          counts[i]!++;
        }
      });
      const full: Conn[] = [];
      const { sent, results } = await floodUntilPolicy(serverConns, { queueLimit: 8, onFull: (conn) => full.push(conn) });
      assert.deepEqual(full, [stalledConn], 'onFull was told about the stalled client, once');
      const closedAt = results.findIndex((r) => r.closed > 0);
      assert.ok(closedAt > 0, 'the stalled client was closed by the policy');
      assert.equal(results[closedAt]!.closed, 1, 'only the stalled client');
      // Nobody else was ever queued beyond the limit or skipped.
      assert.ok(results.every((r) => r.skipped === 0 && r.dropped === 0));
      const info = await stalledConn.closed;
      assert.equal(info.code, 1006, 'it never answered the close frame; the handshake timed out');
      // The stalled client, reading at last, finds the messages that fit in the buffers, in order, then the
      // end of the stream: the 1008 close frame was queued behind what it never read, and dropped with it.
      const frames = await stalled.read();
      const numbers = frames.filter((f) => f.opcode === Op.Text).map(numberOf);
      assert.ok(numbers.length > 0 && numbers.length < sent);
      assert.deepEqual(numbers, numbers.map((_, i) => i), 'in order from the first');
      const closeCodes = frames.filter((f) => f.opcode === Op.Close).map((f) => (f.payload[0]! << 8) | f.payload[1]!);
      assert.ok(closeCodes.every((code) => code === 1008), `close codes ${closeCodes.join(',')}`);
      // The readers get every message, in order.
      await Promise.all(readers.map((conn) => conn.close()));
      await Promise.all(reading);
      assert.equal(firstBroken, undefined, firstBroken);
      assert.deepEqual(new Set(counts), new Set([sent]));
    } finally {
      await hub.stop();
    }
  });

  for (const whenFull of ['drop-newest', 'drop-oldest'] as const) {
    it(`'${whenFull}' keeps a stalled client connected and drops messages for it`, { timeout: 60_000 }, async () => {
      const hub = new Hub();
      const port = await hub.listen();
      try {
        const stalled = await stalledClient(port);
        const stalledConn = await hub.next();
        const reader = await dial(`ws://127.0.0.1:${port}`);
        const readerConn = await hub.next();
        let got = 0;
        const reading = (async () => {
          for await (const _ of reader) got++;
        })();
        const { sent, results } = await floodUntilPolicy([stalledConn, readerConn], { queueLimit: 4, whenFull });
        assert.ok(results.some((r) => r.dropped === 1));
        assert.ok(results.every((r) => r.closed === 0 && r.dropped <= 1));
        // The stalled client catches up: what it gets is in order, with one gap, and ends with the last message when the oldest were dropped.
        const dropped = results.reduce((sum, r) => sum + r.dropped, 0);
        const frames = await stalled.read(sent - dropped);
        const numbers = frames.filter((f) => f.opcode === Op.Text).map(numberOf);
        assert.equal(numbers.length, sent - dropped);
        assert.ok(numbers.every((n, i) => i === 0 || n > numbers[i - 1]!), 'in order, no duplicates');
        const gaps = numbers.filter((n, i) => i > 0 && n !== numbers[i - 1]! + 1);
        if (whenFull === 'drop-oldest') {
          assert.equal(gaps.length, 1, `one gap, before the newest messages: ${numbers.join(',')}`);
          assert.equal(numbers.at(-1), sent - 1, 'the newest message is kept');
        } else {
          assert.equal(gaps.length, 0, `the first messages, then nothing: ${numbers.join(',')}`);
          assert.ok(numbers.at(-1)! < sent - 1, 'the newest messages were dropped');
        }
        stalled.socket.destroy();
        await stalledConn.closed;
        await reader.close();
        await reading;
        assert.equal(got, sent, 'the reader got every message');
      } finally {
        await hub.stop();
      }
    });
  }

  it('queued broadcasts and the connection\'s own writes go out in call order', { timeout: 10_000 }, async () => {
    const [client, server] = pipe({ client: { readLimit: -1 } });
    try {
      const big = server.write(MessageType.Binary, new Uint8Array(4 * 1024 * 1024)); // fills the socket's buffer
      const results = [broadcast([server], new PreparedMessage(MessageType.Text, 'M1')), broadcast([server], new PreparedMessage(MessageType.Text, 'M2'))];
      assert.deepEqual(results.map((r) => r.queued), [1, 1]);
      const own = server.write(MessageType.Text, 'X');
      const third = broadcast([server], new PreparedMessage(MessageType.Text, 'M3'));
      assert.equal(third.queued, 1);
      const got: string[] = [];
      for (let i = 0; i < 5; i++) {
        const { type, data } = await client.read();
        got.push(type === MessageType.Binary ? `binary ${data.length}` : str(data));
      }
      assert.deepEqual(got, [`binary ${4 * 1024 * 1024}`, 'M1', 'M2', 'X', 'M3']);
      await Promise.all([big, own]);
    } finally {
      client.closeNow();
      server.closeNow();
    }
  });

  it('holds exactly queueLimit messages for a busy connection, and skips one that is closing', { timeout: 10_000 }, async () => {
    const [client, server] = pipe({ client: { readLimit: -1 } });
    try {
      const big = server.write(MessageType.Binary, new Uint8Array(4 * 1024 * 1024)).catch((err: unknown) => err);
      const options = { queueLimit: 2, whenFull: 'drop-newest' } as const;
      const counts = ['a', 'b', 'c'].map((text) => broadcast([server], new PreparedMessage(MessageType.Text, text), options));
      assert.deepEqual(counts.map((r) => [r.queued, r.dropped]), [[1, 0], [1, 0], [0, 1]]);
      const closing = server.close();
      assert.deepEqual(broadcast([server], new PreparedMessage(MessageType.Text, 'late')), { sent: 0, queued: 0, dropped: 0, closed: 0, skipped: 1 });
      const got: string[] = [];
      for (;;) {
        try {
          const { type, data } = await client.read();
          got.push(type === MessageType.Binary ? 'binary' : str(data));
        } catch {
          break;
        }
      }
      // close() came after the queued broadcasts: its frame went out at once, before them, and they were refused.
      assert.deepEqual(got, ['binary']);
      await closing;
      await big;
    } finally {
      client.closeNow();
      server.closeNow();
    }
  });

  it('skips connections that are closing or gone, and checks its options', { timeout: 10_000 }, async () => {
    const hub = new Hub();
    const port = await hub.listen();
    try {
      const client = await dial(`ws://127.0.0.1:${port}`);
      const server = await hub.next();
      await client.close();
      const message = new PreparedMessage(MessageType.Text, 'late');
      assert.deepEqual(broadcast([server], message), { sent: 0, queued: 0, dropped: 0, closed: 0, skipped: 1 });
      assert.throws(() => broadcast([server], message, { queueLimit: 0 }), RangeError);
      assert.throws(() => broadcast([server], message, { closeCode: 1005 }), RangeError);
      assert.throws(() => broadcast([server], message, { whenFull: 'wait' as 'close' }), RangeError);
      assert.throws(() => broadcast([server], 'text' as unknown as PreparedMessage), TypeError);
    } finally {
      await hub.stop();
    }
  });
});

describe('writePrepared() with real peers', { timeout: 60_000 }, () => {
  for (const compressionMode of ['disabled', 'context-takeover', 'no-context-takeover'] as const) {
    it(`ws clients decode prepared and ordinary messages in turn (compression ${compressionMode})`, { timeout: 20_000 }, async () => {
      const hub = new Hub({ compressionMode });
      const port = await hub.listen();
      const clients: WebSocket[] = [];
      try {
        const received: string[][] = [];
        for (let i = 0; i < 3; i++) {
          const ws = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: compressionMode !== 'disabled' });
          const got: string[] = [];
          received.push(got);
          ws.on('message', (data) => got.push(String(data)));
          clients.push(ws);
          await once(ws, 'open');
        }
        const conns = await Promise.all(clients.map(() => hub.next()));
        const rows = (k: number): string => JSON.stringify({ k, rows: Array.from({ length: 30 }, (_, i) => ({ id: i, name: `row ${i}` })) });
        const expected: string[] = [];
        for (let k = 0; k < 6; k++) {
          const shared = new PreparedMessage(MessageType.Text, rows(k));
          for (const conn of conns) await conn.writePrepared(shared);
          for (const conn of conns) await conn.write(MessageType.Text, rows(k + 100));
          expected.push(rows(k), rows(k + 100));
        }
        await Promise.all(clients.map((ws, i) => (received[i]!.length >= expected.length ? undefined : waitFor(ws, expected.length, received[i]!))));
        for (const got of received) assert.deepEqual(got, expected);
        await assert.rejects(conns[0]!.writePrepared('x' as unknown as PreparedMessage), TypeError);
        await conns[0]!.close();
        await assert.rejects(conns[0]!.writePrepared(new PreparedMessage(MessageType.Text, 'late')), ClosedError);
      } finally {
        for (const ws of clients) ws.terminate();
        await hub.stop();
      }
    });
  }
});

/** Resolves once `got` holds `count` messages. */
async function waitFor(ws: WebSocket, count: number, got: string[]): Promise<void> {
  while (got.length < count) await once(ws, 'message');
}
