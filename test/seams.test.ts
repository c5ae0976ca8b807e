// Regression tests for the defects that lived in the seams between the read,
// write and close paths (issue 7), each over both transports and both roles
// where it applies.
import assert from 'node:assert/strict';
import type { Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Readable, Writable } from 'node:stream';
import { after, afterEach, describe, it } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { closeStatus } from '../src/close.js';
import { MessageType, newConn, type Conn } from '../src/conn.js';
import { ClosedError, ProtocolError } from '../src/errors.js';
import { deferred } from '../src/internal/deferred.js';
import { duplexPair } from '../src/internal/duplex-pair.js';
import { netConn } from '../src/netconn/index.js';
import { closeAll, setups, stopServers } from './helpers/conns.js';
import { leakCheck } from './helpers/leak.js';
import { encodeAll, FrameParser, hex, ping, text } from './helpers/raw.js';

const checkLeaks = leakCheck();
afterEach(closeAll);
after(async () => {
  await stopServers();
  await checkLeaks();
});

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const str = (b: Uint8Array): string => new TextDecoder().decode(b);

/** A server Conn on one end of an in-memory pipe; the test drives the other end by hand. */
function rawServer(): { conn: Conn; peer: Duplex; socket: Duplex } {
  const [peer, socket] = duplexPair();
  const conn = newConn({ socket, client: false, subprotocol: '', extensions: '', options: {} });
  return { conn, peer, socket };
}

/** Collects everything a stream yields until it ends or fails. */
async function collect(stream: Duplex): Promise<{ data: string; error: unknown }> {
  let data = '';
  try {
    for await (const chunk of stream) data += str(chunk as Uint8Array);
  } catch (error) {
    return { data, error };
  }
  return { data, error: undefined };
}

for (const setup of setups) {
  describe(`seams: ${setup.name}`, { timeout: 60_000 }, () => {
    it('1. netConn: what the peer sent before our end() is all read, in order', { timeout: 10_000 }, async () => {
      const { local, peer } = await setup.open();
      const stream = netConn(local, MessageType.Binary);
      for (let i = 0; i < 10; i++) await peer.write(MessageType.Binary, `m${i};`);
      const reading = collect(stream);
      stream.end();
      const { data, error } = await reading;
      assert.equal(error, undefined);
      assert.equal(data, 'm0;m1;m2;m3;m4;m5;m6;m7;m8;m9;');
      assert.equal((await local.closed).code, 1000);
    });

    it('1. netConn with two pipeline()s side by side loses nothing either', { timeout: 10_000 }, async () => {
      const { local, peer } = await setup.open();
      const stream = netConn(local, MessageType.Binary);
      for (let i = 0; i < 10; i++) await peer.write(MessageType.Binary, `m${i};`);
      let received = '';
      const sink = new Writable({
        write(chunk: Buffer, _encoding, callback) {
          received += str(chunk);
          callback();
        },
      });
      await Promise.all([pipeline(Readable.from([utf8('a'), utf8('b')]), stream), pipeline(stream, sink)]);
      assert.equal(received, 'm0;m1;m2;m3;m4;m5;m6;m7;m8;m9;');
      const echoed = [str((await peer.read()).data), str((await peer.read()).data)];
      assert.deepEqual(echoed, ['a', 'b']);
    });

    it('2. a writer() aborted in the same tick as its first write sends nothing', { timeout: 10_000 }, async () => {
      const { local, peer } = await setup.open();
      const controller = new AbortController();
      const writer = (await local.writer(MessageType.Binary, { signal: controller.signal })).getWriter();
      const first = writer.write(utf8('first piece')).then(
        () => 'written',
        (err: unknown) => err,
      );
      const reason = new Error('changed my mind');
      controller.abort(reason);
      assert.equal(await first, reason);
      await local.write(MessageType.Text, 'after');
      const message = await peer.read();
      assert.equal(str(message.data), 'after', 'the aborted frame went out and corrupted the stream');
      assert.equal(message.type, MessageType.Text);
    });

    it('3. the caller may reuse its buffer once write() resolved (1 MiB)', { timeout: 10_000 }, async () => {
      const { local, peer } = await setup.open({ peer: { readLimit: 4 << 20 } });
      const data = new Uint8Array(1 << 20).map((_, i) => (i * 7) & 0xff);
      const copy = data.slice();
      const reading = peer.read(); // over pipe() the peer must read for a 1 MiB write to complete
      await local.write(MessageType.Binary, data);
      data.fill(0);
      const got = await reading;
      assert.ok(Buffer.from(got.data).equals(copy), 'the bytes on the wire changed after write() resolved');
    });

    it('3. the caller may reuse its buffer once an aborted write() rejected', { timeout: 10_000 }, async () => {
      const { local, peer } = await setup.open({ peer: { readLimit: 64 << 20 } });
      const data = new Uint8Array(16 << 20).map((_, i) => (i * 13) & 0xff);
      const copy = data.slice();
      const controller = new AbortController();
      const write = local.write(MessageType.Binary, data, { signal: controller.signal }).catch((err: unknown) => err);
      controller.abort(new Error('stop'));
      assert.ok((await write) instanceof Error);
      data.fill(0);
      const got = await peer.read();
      assert.ok(Buffer.from(got.data).equals(copy), 'the bytes on the wire changed after write() rejected');
    });

    it('4. close() after an aborted closeRead() still completes the handshake', { timeout: 10_000 }, async () => {
      const { local } = await setup.open({ local: { closeTimeout: 3000 } });
      const controller = new AbortController();
      local.closeRead({ signal: controller.signal });
      controller.abort();
      const info = await local.close(1000, 'bye');
      assert.equal(info.wasClean, true);
      assert.equal(info.code, 1000);
    });

    it('close() loses nothing the application goes on reading (300 × 1 KiB already in flight)', { timeout: 15_000 }, async () => {
      const { local, peer } = await setup.open();
      const count = 300;
      const sent = (async () => {
        for (let i = 0; i < count; i++) await peer.write(MessageType.Binary, new Uint8Array(1024).fill(i & 0xff));
      })();
      const peerReads = peer.read().catch(() => {}); // answers our close in time
      assert.equal((await local.read()).data[0], 0);
      const closing = local.close(1000);
      let got = 1;
      try {
        for (;;) {
          const { data } = await local.read();
          assert.equal(data[0], got & 0xff, `message ${got} out of order`);
          got++;
        }
      } catch (err) {
        assert.equal(closeStatus(err), 1000, String(err));
      }
      await sent.catch(() => {});
      assert.equal(got, count);
      assert.equal((await closing).wasClean, true);
      await peerReads;
    });

    it('netConn end() with a slow consumer: all 300 KiB the peer sent first arrive, in order', { timeout: 20_000 }, async () => {
      const { local, peer } = await setup.open();
      const stream = netConn(local, MessageType.Binary);
      for (let i = 0; i < 300; i++) await peer.write(MessageType.Binary, new Uint8Array(1024).fill(i & 0xff));
      stream.end();
      const chunks: Uint8Array[] = [];
      for await (const chunk of stream) {
        chunks.push(chunk as Uint8Array);
        if (chunks.length % 16 === 0) await nextTurn(); // a consumer slower than the wire
      }
      const all = Buffer.concat(chunks);
      assert.equal(all.length, 300 * 1024);
      for (let i = 0; i < 300; i++) assert.equal(all[i * 1024], i & 0xff, `message ${i}`);
    });

    it('a peer close behind the last messages is answered once they are read, with no further read', { timeout: 10_000 }, async () => {
      const { local, peer } = await setup.open({ peer: { closeTimeout: 3000 } });
      const first = local.read();
      for (const s of ['a', 'b', 'c']) await peer.write(MessageType.Text, s);
      const peerClose = peer.close(1000, 'bye');
      const got = [str((await first).data), str((await local.read()).data), str((await local.read()).data)];
      assert.deepEqual(got, ['a', 'b', 'c']);
      const info = await peerClose;
      assert.equal(info.wasClean, true, `the peer's close ended ${info.code}: ${String(info.error)}`);
      assert.equal((await local.closed).code, 1000);
    });

    it('keepalive pings do not deadlock two ends writing big messages both ways', { timeout: 20_000 }, async () => {
      const { local, peer } = await setup.open({
        local: { readLimit: -1 },
        peer: { readLimit: -1, keepalive: { interval: 20, timeout: 10_000 } },
      });
      const big = new Uint8Array(1 << 20);
      const rounds = 120;
      const echo = (async () => {
        for (;;) await peer.write(MessageType.Binary, (await peer.read()).data);
      })().catch(() => {});
      const reads = (async () => {
        for (let i = 0; i < rounds; i++) await local.read();
      })();
      for (let i = 0; i < rounds; i++) await local.write(MessageType.Binary, big);
      await reads;
      local.closeNow();
      await echo;
    });

    it('5. messages received before the peer dropped the connection are still read', { timeout: 10_000 }, async () => {
      const { local, peer } = await setup.open();
      for (let i = 0; i < 3; i++) await peer.write(MessageType.Text, `before ${i}`);
      const sent = deferred<void>();
      // Wait until the three messages have reached `local`, then drop.
      const pong = local.ping().then(() => sent.resolve(), sent.reject);
      await sent.promise;
      await pong;
      peer.closeNow();
      await local.closed;
      for (let i = 0; i < 3; i++) assert.equal(str((await local.read()).data), `before ${i}`);
      await assert.rejects(local.read(), ClosedError);
    });
  });
}

describe('seams: the raw protocol', { timeout: 30_000 }, () => {
  it('6. ten garbage bytes fail at once with 1002 (header checked as its bytes arrive)', { timeout: 5000 }, async () => {
    const { conn, peer } = rawServer();
    const frames = new FrameParser();
    const closeFrame = deferred<Uint8Array>();
    peer.on('data', (chunk: Buffer) => {
      for (const frame of frames.push(chunk)) if (frame.opcode === 0x8) closeFrame.resolve(frame.payload);
    });
    const read = conn.read().catch((err: unknown) => err);
    peer.write(hex('ff ff de ad be ef 13 37 00 42'));
    const error = await read;
    assert.ok(error instanceof ProtocolError, `got ${String(error)}`);
    assert.equal(error.code, 1002);
    const payload = await closeFrame.promise;
    assert.equal((payload[0]! << 8) | payload[1]!, 1002);
    peer.destroy();
    await conn.closed;
  });

  it('6. even the first byte alone is enough to fail a reserved opcode', { timeout: 5000 }, async () => {
    const { conn, peer } = rawServer();
    const read = conn.read().catch((err: unknown) => err);
    peer.write(hex('83'));
    const error = await read;
    assert.ok(error instanceof ProtocolError && error.code === 1002, `got ${String(error)}`);
    peer.destroy();
    await conn.closed;
  });

  it('7. 10,000 small frames in one write let the event loop run between slices', { timeout: 10_000 }, async () => {
    const { conn, peer } = rawServer();
    const frames = encodeAll(
      Array.from({ length: 10_000 }, (_, i) => text(`#${i}`)),
      true,
    );
    peer.on('data', () => {});
    peer.write(frames);
    let count = 0;
    let seenAt = -1;
    const first = await conn.read();
    count++;
    setImmediate(() => (seenAt = count));
    assert.equal(str(first.data), '#0');
    while (count < 10_000) {
      const message = await conn.read();
      assert.equal(str(message.data), `#${count}`);
      count++;
    }
    assert.ok(seenAt > 0 && seenAt < 10_000, `the event loop ran only after ${seenAt} of 10,000 messages`);
    peer.destroy();
    await conn.closed;
  });

  it('8. a peer that pings and never reads the pongs cannot grow our send buffer', { timeout: 20_000 }, async () => {
    const { conn, peer, socket } = rawServer();
    let most = 0;
    const write = socket.write.bind(socket);
    socket.write = ((chunk: Uint8Array, ...rest: never[]) => {
      const room = write(chunk, ...rest);
      most = Math.max(most, socket.writableLength);
      return room;
    }) as typeof socket.write;
    const pings = 60_000;
    const payload = (i: number): string => `${i}`.padStart(125, 'x');
    for (let batch = 0; batch < pings / 1000; batch++) {
      peer.write(encodeAll(Array.from({ length: 1000 }, (_, i) => ping(payload(batch * 1000 + i))), true));
    }
    // Wait (by event-loop turns, bounded) until the Conn has filled its send buffer.
    for (let turn = 0; turn < 10_000 && !socket.writableNeedDrain; turn++) await nextTurn();
    assert.ok(socket.writableNeedDrain, 'the Conn never filled its send buffer');
    const bound = socket.writableHighWaterMark + 131;
    assert.ok(most <= bound, `send buffer grew to ${most} B (bound ${bound} B)`);
    // Now read: the latest ping is answered (RFC 6455 §5.5.3 lets a held pong answer only the most recent).
    const frames = new FrameParser();
    let pongs = 0;
    const lastPong = deferred<void>();
    peer.on('data', (chunk: Buffer) => {
      for (const frame of frames.push(chunk)) {
        if (frame.opcode !== 0xa) continue;
        pongs++;
        if (str(frame.payload) === payload(pings - 1)) lastPong.resolve();
      }
    });
    await lastPong.promise;
    assert.ok(pongs < pings, `every one of ${pings} pings got its own pong: they were buffered`);
    assert.ok(most <= bound, `send buffer grew to ${most} B (bound ${bound} B)`);
    peer.destroy();
    await conn.closed;
  });
});
