import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { ClosedError } from '../src/errors.js';
import { MessageType } from '../src/options.js';
import { pipe } from '../src/pipe.js';
import { leakCheck } from './helpers/leak.js';

const checkLeaks = leakCheck();
after(() => checkLeaks());

describe('keepalive', { timeout: 10_000 }, () => {
  it('drops a connection whose peer stops answering pings', { timeout: 5000 }, async () => {
    // The client declines to answer pings (a peer that stopped answering).
    const [client, server] = pipe({ server: { keepalive: { interval: 20, timeout: 50 } }, client: { onPingReceived: () => false } });
    const read = server.read().catch((err: unknown) => err);
    const info = await server.closed;
    assert.equal(info.code, 1006);
    assert.equal(info.wasClean, false);
    assert.ok(info.error instanceof ClosedError, `expected ClosedError, got ${String(info.error)}`);
    assert.match(info.error.message, /keepalive: no pong within 50 ms/);
    assert.ok((await read) instanceof ClosedError);
    await client.closed;
  });

  it('keeps a connection whose peer answers, across many intervals', { timeout: 5000 }, async () => {
    let pongs = 0;
    let fivePongs!: () => void;
    const heardFive = new Promise<void>((resolve) => (fivePongs = resolve));
    const onPongReceived = (): void => {
      if (++pongs === 5) fivePongs();
    };
    const [client, server] = pipe({ server: { keepalive: { interval: 10, timeout: 200 }, onPongReceived } });
    const clientReads = client.read().catch((err: unknown) => err);
    const serverReads = server.read();
    await heardFive;
    await client.write(MessageType.Text, 'still here');
    assert.equal(new TextDecoder().decode((await serverReads).data), 'still here');
    const serverSeesClose = server.read().catch((err: unknown) => err);
    const info = await client.close();
    assert.equal(info.wasClean, true);
    assert.equal((await server.closed).code, 1000);
    await Promise.all([clientReads, serverSeesClose]);
  });

  it('rejects a keepalive with a time that is not a positive number', { timeout: 2000 }, () => {
    assert.throws(() => pipe({ client: { keepalive: { interval: 0, timeout: 10 } } }), RangeError);
    assert.throws(() => pipe({ client: { keepalive: { interval: 10, timeout: Number.NaN } } }), RangeError);
  });
});
