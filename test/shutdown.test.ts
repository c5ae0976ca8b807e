import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { closeStatus } from '../src/close.js';
import { newConn, type Conn } from '../src/conn.js';
import { duplexPair } from '../src/internal/duplex-pair.js';
import { pipe } from '../src/pipe.js';
import { ConnSet } from '../src/shutdown.js';
import { leakCheck } from './helpers/leak.js';

const checkLeaks = leakCheck();
after(() => checkLeaks());

/** A client that reads until the server closes, and reports the close code it saw. */
function readUntilClosed(client: Conn): Promise<number> {
  return (async () => {
    try {
      for (;;) await client.read();
    } catch (err) {
      return closeStatus(err);
    }
  })();
}

describe('ConnSet', { timeout: 10_000 }, () => {
  it('closes every connection with 1001 and empties itself', { timeout: 5000 }, async () => {
    const conns = new ConnSet();
    const pairs = [pipe(), pipe(), pipe()];
    for (const [, server] of pairs) conns.add(server);
    assert.equal(conns.size, 3);
    const seen = pairs.map(([client]) => readUntilClosed(client));
    await conns.closeAll();
    assert.deepEqual(await Promise.all(seen), [1001, 1001, 1001]);
    for (const [client, server] of pairs) {
      assert.equal((await server.closed).wasClean, true);
      assert.equal((await client.closed).code, 1001);
    }
    assert.equal(conns.size, 0);
  });

  it('forgets a connection once it closes on its own', { timeout: 5000 }, async () => {
    const conns = new ConnSet();
    const [client, server] = pipe();
    conns.add(server);
    client.closeNow();
    await server.closed;
    assert.equal(conns.size, 0);
    assert.deepEqual([...conns], []);
  });

  it('drops the connections still open when the signal aborts', { timeout: 5000 }, async () => {
    const conns = new ConnSet();
    const [answering, server1] = pipe();
    // A bare byte pipe on the other end: it never answers the close frame.
    const [silent, socket2] = duplexPair();
    const server2 = newConn({ socket: socket2, client: false, subprotocol: '', extensions: '', options: {} });
    silent.resume();
    conns.add(server1);
    conns.add(server2);
    const seen = readUntilClosed(answering);
    const controller = new AbortController();
    const done = conns.closeAll({ code: 4000, reason: 'bye', signal: controller.signal });
    assert.equal(await seen, 4000);
    assert.equal((await server1.closed).wasClean, true);
    controller.abort();
    await done;
    const dropped = await server2.closed;
    assert.equal(dropped.code, 1006);
    assert.equal(dropped.wasClean, false);
  });

  it('closes a connection added after closeAll() began', { timeout: 5000 }, async () => {
    const conns = new ConnSet();
    await conns.closeAll();
    const [client, server] = pipe();
    const seen = readUntilClosed(client);
    conns.add(server);
    assert.equal(await seen, 1001);
    await server.closed;
  });
});
