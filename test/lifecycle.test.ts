/**
 * Edge cases of a connection's life found in review: each asserts what a
 * user would see, over the in-memory pipe.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Conn, newConn } from '../src/conn.js';
import { duplexPair } from '../src/internal/duplex-pair.js';
import { ClosedError } from '../src/errors.js';
import { MessageType } from '../src/options.js';
import { pipe } from '../src/pipe.js';
import { ConnSet } from '../src/shutdown.js';
import { closeStatus } from '../src/close.js';
import { leakCheck } from './helpers/leak.js';

const checkLeaks = leakCheck();
after(() => checkLeaks());

describe('connection life', { timeout: 20_000 }, () => {
  it('close() after closeRead() is bounded by closeTimeout when the peer never answers', { timeout: 5000 }, async () => {
    // The peer is a bare byte pipe that never answers anything.
    const [silent, socket] = duplexPair();
    const server = newConn({ socket, client: false, subprotocol: '', extensions: '', options: { closeTimeout: 100 } });
    silent.resume();
    server.closeRead();
    const started = Date.now();
    const info = await server.close(1000);
    assert.ok(Date.now() - started < 2000, `close() took ${Date.now() - started} ms`);
    assert.equal(info.wasClean, false);
    silent.destroy();
  });


  it('close() after closeRead() completes cleanly when the peer answers', { timeout: 5000 }, async () => {
    const [client, server] = pipe();
    server.closeRead();
    const peer = client.read().catch((err: unknown) => err);
    const info = await server.close(4001, 'done');
    assert.equal(info.wasClean, true);
    assert.equal(info.code, 4001);
    await peer;
  });

  it('close() in the middle of a writer() message closes cleanly on both sides', { timeout: 5000 }, async () => {
    const [client, server] = pipe();
    const sink = (await client.writer(MessageType.Binary)).getWriter();
    await sink.write(Uint8Array.of(1, 2, 3));
    const serverReads = server.read().catch((err: unknown) => err);
    const closing = client.close(1000, 'bye');
    await assert.rejects(sink.write(Uint8Array.of(4)), ClosedError);
    assert.equal((await closing).wasClean, true);
    const serverSide = await server.closed;
    assert.equal(serverSide.code, 1000);
    assert.equal(serverSide.wasClean, true);
    await serverReads;
  });

  it('a read() after closeNow() rejects even if a message was already buffered', { timeout: 5000 }, async () => {
    const [client, server] = pipe();
    await client.write(MessageType.Text, 'buffered');
    server.closeNow();
    await assert.rejects(server.read(), ClosedError);
    await Promise.all([client.closed, server.closed]);
  });

  it('an abort of an old reader() signal does not strand a later read()', { timeout: 5000 }, async () => {
    const [client, server] = pipe();
    const controller = new AbortController();
    const sink = (await client.writer(MessageType.Binary)).getWriter();
    await sink.write(Uint8Array.of(1, 2, 3));
    const { stream } = await server.reader({ signal: controller.signal });
    const reader = stream.getReader();
    assert.deepEqual([...((await reader.read()).value ?? [])], [1, 2, 3]);
    const pending = reader.read().catch(() => undefined); // waits for more, holding the signal
    const cancelled = reader.cancel();
    await sink.write(Uint8Array.of(4));
    await sink.close();
    await cancelled;
    await pending;
    const next = server.read();
    controller.abort();
    await client.write(MessageType.Text, 'hello');
    assert.equal(new TextDecoder().decode((await next).data), 'hello');
    client.closeNow();
    await server.closed;
  });

  it('a Conn cannot be constructed directly', { timeout: 1000 }, () => {
    const make = Conn as unknown as new (...args: unknown[]) => Conn;
    assert.throws(() => new make(Symbol('wsconn.internal'), {}), TypeError);
  });

  it('ConnSet.closeAll() with a code that may not be sent rejects and changes nothing', { timeout: 5000 }, async () => {
    const conns = new ConnSet();
    const [client, server] = pipe();
    conns.add(server);
    await assert.rejects(conns.closeAll({ code: 1005 }), RangeError);
    await assert.rejects(conns.closeAll({ code: 999 }), RangeError);
    const [client2, server2] = pipe();
    conns.add(server2); // must neither close it nor leave a rejection unhandled
    assert.equal(conns.size, 2);
    await conns.closeAll({ signal: AbortSignal.timeout(100) });
    await Promise.all([client.closed, client2.closed]);
  });
});

describe('what a writer sees when the peer closes', { timeout: 10_000 }, () => {
  it('a write waiting its turn rejects with a ClosedError whose cause carries the peer code', { timeout: 5000 }, async () => {
    const [client, server] = pipe();
    const sink = (await server.writer(MessageType.Binary)).getWriter(); // holds the write turn
    const waiting = server.write(MessageType.Text, 'queued').catch((err: unknown) => err);
    const serverReads = server.read().catch((err: unknown) => err);
    await client.close(4002, 'going');
    const err = await waiting;
    assert.ok(err instanceof ClosedError, `expected ClosedError, got ${String(err)}`);
    assert.equal(closeStatus(err), 4002);
    await serverReads;
    await sink.abort().catch(() => {});
  });
});

describe('nothing follows our close frame', { timeout: 10_000 }, () => {
  it('a write() waiting its turn when close() runs rejects instead of sending after the close frame', { timeout: 5000 }, async () => {
    const [client, server] = pipe({ client: { readLimit: -1 } });
    // The client reads nothing yet, so the first write holds the turn until it does.
    const first = server.write(MessageType.Binary, new Uint8Array(1 << 20));
    const second = server.write(MessageType.Text, 'after').then(
      () => 'sent',
      (err: unknown) => err,
    );
    const closing = server.close(1000);
    const received = await client.read();
    assert.equal(received.data.length, 1 << 20);
    await first;
    assert.ok((await second) instanceof ClosedError, 'a write that lost the race with close() must not claim it was sent');
    await assert.rejects(client.read(), (err: unknown) => closeStatus(err) === 1000);
    await closing;
  });

});
