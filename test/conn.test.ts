/**
 * Conn behaviour a user would notice, for both roles (the Conn under test is
 * the client, then the server) over both transports (the in-memory `pipe()`,
 * and loopback TCP from `dial()` to a node:http server that `accept()`s).
 * In each test `local` is the Conn under test and `peer` the other end.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Socket } from 'node:net';
import { after, afterEach, describe, it } from 'node:test';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { closeStatus } from '../src/close.js';
import { MessageType, type CloseInfo, type Message } from '../src/conn.js';
import { ClosedError, CloseError, MessageTooBigError, ProtocolError } from '../src/errors.js';
import { deferred } from '../src/internal/deferred.js';
import { closeAll, setups, stopServers } from './helpers/conns.js';
import { leakCheck } from './helpers/leak.js';
import { describeSeed, prng } from './helpers/prng.js';

const checkLeaks = leakCheck();
after(async () => {
  await closeAll();
  await stopServers();
  await checkLeaks();
});

// No call may end in an unhandled rejection or an uncaught 'error' event.
const escaped: unknown[] = [];
const onEscape = (err: unknown): void => {
  escaped.push(err);
};
process.on('unhandledRejection', onEscape);
process.on('uncaughtExceptionMonitor', onEscape);
after(() => {
  process.off('unhandledRejection', onEscape);
  process.off('uncaughtExceptionMonitor', onEscape);
});

afterEach(async () => {
  await closeAll();
  // Let rejections of promises dropped by the test surface before checking.
  await nextTurn();
  const found = escaped.splice(0);
  assert.deepEqual(found, [], 'unhandled rejections or uncaught errors');
});

const MiB = 1024 * 1024;
const encoder = new TextEncoder();

function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

function str(data: Uint8Array): string {
  return Buffer.from(data).toString('utf8');
}

/** A message as a comparable string: type and text, or type, length and a digest of the bytes. */
function show(message: Message): string {
  const kind = message.type === MessageType.Text ? 'text' : 'binary';
  if (message.data.length <= 64) return `${kind} ${JSON.stringify(str(message.data))}`;
  return `${kind} ${message.data.length} bytes, sum ${checksum(message.data)}`;
}

function checksum(data: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < data.length; i += 997) sum = (sum * 31 + data[i]!) >>> 0;
  return sum;
}

/** `length` bytes of a cheap pattern that differs per `seed`. */
function pattern(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed * 7 + (i >>> 8)) & 0xff;
  return out;
}

/** Marks `p` as handled (its rejection is still seen by whoever awaits it) and returns it. */
function quiet<T>(p: Promise<T>): Promise<T> {
  p.catch(() => {});
  return p;
}

/**
 * The error `p` rejects with; fails if it resolves. Handled from the start,
 * so a test may await it after other steps.
 */
function rejection(p: Promise<unknown>): Promise<unknown> {
  return quiet(
    p.then(
      (value) => {
        throw new assert.AssertionError({ message: `expected a rejection, got ${JSON.stringify(value)}` });
      },
      (err: unknown) => err,
    ),
  );
}

/** `p`, or a rejection naming `what` if it has not settled after `ms`. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Tracks whether `p` has settled. */
function watch(p: Promise<unknown>): { readonly settled: boolean } {
  const state = { settled: false };
  p.then(
    () => (state.settled = true),
    () => (state.settled = true),
  );
  return state;
}

/** Resolves once `signal` has aborted. */
async function aborted(signal: AbortSignal): Promise<void> {
  if (!signal.aborted) await once(signal, 'abort');
}

/**
 * There is no event for "a write is still blocked"; this is how long a
 * blocked write gets to prove it would not resolve on its own.
 */
const blockedWindowMs = 100;

/**
 * How long anything that should happen at once (a close handshake on
 * loopback, a read of a message already sent) may take before the test
 * calls it stuck. Generous next to the few milliseconds these take.
 */
const settleMs = 500;

/** Asserts that `err` is, or was caused by, the peer's close frame with `code`. */
function assertCloseCode(err: unknown, code: number): void {
  assert.equal(closeStatus(err), code, `expected the peer's close ${code}, got ${String(err)}`);
}

/** Asserts that `err` is a ClosedError. */
function assertClosedError(err: unknown): void {
  assert.ok(err instanceof ClosedError, `expected a ClosedError, got ${String(err)}`);
}

for (const setup of setups) {
  const { role, transport } = setup;

  describe(setup.name, { timeout: 60_000 }, () => {
    describe('messages', { timeout: 30_000 }, () => {
      it('text and binary messages round-trip both ways', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open();
        await local.write(MessageType.Text, 'héllo ✓ 😀');
        await local.write(MessageType.Binary, Uint8Array.of(0, 1, 2, 0xff));
        await local.write(MessageType.Text, utf8('as bytes'));
        assert.equal(show(await peer.read()), 'text "héllo ✓ 😀"');
        const binary = await peer.read();
        assert.equal(binary.type, MessageType.Binary);
        assert.deepEqual([...binary.data], [0, 1, 2, 0xff]);
        assert.equal(show(await peer.read()), 'text "as bytes"');
        await peer.write(MessageType.Text, 'reply');
        assert.equal(show(await local.read()), 'text "reply"');
      });

      it('messages at each header length boundary round-trip (125, 126, 65535, 65536 bytes)', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open({ peer: { readLimit: -1 } });
        for (const size of [125, 126, 127, 65535, 65536, 65537]) {
          const data = pattern(size, size);
          const received = peer.read();
          await local.write(MessageType.Binary, data);
          assert.ok(Buffer.from((await received).data).equals(data), `size ${size}`);
        }
      });

      it('reports the transport’s addresses, and empty subprotocol and extensions', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open();
        assert.equal(local.subprotocol, '');
        assert.equal(local.extensions, '');
        if (transport === 'pipe') {
          assert.equal(local.remoteAddress, undefined);
          assert.equal(local.localPort, undefined);
        } else {
          assert.equal(local.remoteAddress, '127.0.0.1');
          assert.equal(local.localAddress, '127.0.0.1');
          assert.equal(local.remotePort, peer.localPort);
          assert.equal(local.localPort, peer.remotePort);
        }
      });

      it('empty text and binary messages arrive as empty messages', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open();
        await local.write(MessageType.Text, '');
        await local.write(MessageType.Binary, new Uint8Array(0));
        await local.write(MessageType.Text, 'after');
        const first = await peer.read();
        assert.equal(first.type, MessageType.Text);
        assert.equal(first.data.length, 0);
        const second = await peer.read();
        assert.equal(second.type, MessageType.Binary);
        assert.equal(second.data.length, 0);
        assert.equal(show(await peer.read()), 'text "after"');
      });

      it('a 16 MiB message round-trips intact with a raised read limit', { timeout: 20_000 }, async () => {
        const { local, peer } = await setup.open({ peer: { readLimit: 16 * MiB } });
        const data = pattern(16 * MiB, 3);
        const copy = data.slice();
        const received = peer.read();
        await local.write(MessageType.Binary, data);
        const message = await received;
        assert.equal(message.type, MessageType.Binary);
        assert.equal(message.data.length, data.length);
        assert.ok(Buffer.from(message.data).equals(copy), 'payload differs');
        assert.ok(Buffer.from(data).equals(copy), 'write() modified the caller’s bytes');
      });

      it('write() never modifies the caller’s bytes', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open({ peer: { readLimit: -1 } });
        for (const size of [10, 200, 70_000]) {
          const data = pattern(size, size);
          const copy = data.slice();
          const received = peer.read();
          await local.write(MessageType.Binary, data);
          assert.ok(Buffer.from((await received).data).equals(copy), `size ${size}: payload differs`);
          assert.ok(Buffer.from(data).equals(copy), `size ${size}: caller’s bytes modified`);
        }
      });

      it('write() rejects a bad type or invalid UTF-8 text with TypeError and sends nothing', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open();
        await assert.rejects(local.write(3 as MessageType, 'x'), TypeError);
        await assert.rejects(local.write(MessageType.Text, Uint8Array.of(0xff)), TypeError);
        await local.write(MessageType.Text, 'ok');
        assert.equal(show(await peer.read()), 'text "ok"');
      });
    });

    describe('concurrency', { timeout: 30_000 }, () => {
      it('concurrent write() calls never interleave and arrive in call order', { timeout: 15_000 }, async () => {
        const { local, peer } = await setup.open({ peer: { readLimit: -1 } });
        const rng = prng();
        const sent: Message[] = [];
        for (let i = 0; i < 40; i++) {
          const size = rng.int(4) === 0 ? 100_000 + rng.int(200_000) : rng.int(2000);
          if (i % 2 === 0) sent.push({ type: MessageType.Binary, data: pattern(size, i) });
          else sent.push({ type: MessageType.Text, data: utf8(`${i}:${'é'.repeat(size >> 1)}`) });
        }
        const writes = sent.map((m) => quiet(local.write(m.type, m.type === MessageType.Text ? str(m.data) : m.data)));
        for (let i = 0; i < sent.length; i++) {
          const got = await peer.read();
          assert.equal(show(got), show(sent[i]!), `message ${i}; ${describeSeed(rng)}`);
          assert.ok(Buffer.from(got.data).equals(sent[i]!.data), `message ${i} bytes; ${describeSeed(rng)}`);
        }
        await Promise.all(writes);
      });

      it('concurrent read() calls are served in call order, one message each', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open();
        const reads = Array.from({ length: 5 }, () => local.read());
        for (let i = 0; i < 5; i++) await peer.write(MessageType.Text, `message ${i}`);
        const got = await Promise.all(reads);
        assert.deepEqual(
          got.map((m) => str(m.data)),
          ['message 0', 'message 1', 'message 2', 'message 3', 'message 4'],
        );
      });
    });

    describe('abort', { timeout: 30_000 }, () => {
      it('an aborted read() rejects with the signal’s reason and the next read() gets the whole message', { timeout: 5000 }, async () => {
        // The peer pings after the first half: once `local` has seen the
        // ping, it has consumed every byte of the first half.
        const pinged = deferred<void>();
        const { local, peer } = await setup.open({
          local: { onPingReceived: () => pinged.resolve() },
        });
        const first = pattern(3000, 1);
        const second = pattern(5000, 2);
        const w = (await peer.writer(MessageType.Binary)).getWriter();
        await w.write(first);
        quiet(peer.ping());
        const controller = new AbortController();
        const read = local.read({ signal: controller.signal });
        await within(pinged.promise, settleMs, 'the ping after the first half');
        const reason = new Error('give up');
        controller.abort(reason);
        assert.equal(await rejection(read), reason);

        await w.write(second);
        await w.close();
        const message = await within(local.read(), settleMs, 'the next read');
        assert.equal(message.type, MessageType.Binary);
        assert.ok(Buffer.from(message.data).equals(Buffer.concat([first, second])), 'message not whole');
      });

      it('an aborted read() with nothing received rejects with the reason; the connection stays usable', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open();
        const controller = new AbortController();
        const read = local.read({ signal: controller.signal });
        const reason = { why: 'not an Error' };
        controller.abort(reason);
        assert.equal(await rejection(read), reason);
        const already = AbortSignal.abort('already');
        assert.equal(await rejection(local.read({ signal: already })), 'already');
        await peer.write(MessageType.Text, 'still here');
        assert.equal(show(await local.read()), 'text "still here"');
      });

      it('an aborted read() waiting behind another gives up its turn', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open();
        const firstRead = local.read();
        const controller = new AbortController();
        const queued = local.read({ signal: controller.signal });
        const thirdRead = local.read();
        controller.abort();
        assert.equal(await rejection(queued), controller.signal.reason);
        await peer.write(MessageType.Text, 'one');
        await peer.write(MessageType.Text, 'two');
        assert.equal(str((await firstRead).data), 'one');
        assert.equal(str((await thirdRead).data), 'two');
      });

      it('a write() aborted while another writer holds the lock sends nothing', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open();
        const w = (await local.writer(MessageType.Binary)).getWriter();
        await w.write(utf8('first '));
        const controller = new AbortController();
        const dropped = local.write(MessageType.Text, 'dropped', { signal: controller.signal });
        const reason = new Error('changed my mind');
        controller.abort(reason);
        assert.equal(await rejection(dropped), reason);
        assert.equal(await rejection(local.write(MessageType.Text, 'dropped too', { signal: AbortSignal.abort(reason) })), reason);
        await w.write(utf8('half'));
        await w.close();
        await local.write(MessageType.Text, 'after');
        assert.equal(show(await peer.read()), 'binary "first half"');
        assert.equal(show(await peer.read()), 'text "after"');
      });
    });

    describe('backpressure', { timeout: 30_000 }, () => {
      it('write() stays pending while the peer does not read, and resolves once it does', { timeout: 20_000 }, async () => {
        const { local, peer } = await setup.open({ peer: { readLimit: 16 * MiB } });
        const data = pattern(16 * MiB, 5);
        const write = quiet(local.write(MessageType.Binary, data));
        const state = watch(write);
        await sleep(blockedWindowMs);
        assert.equal(state.settled, false, 'write() resolved although the peer reads nothing');
        const message = await peer.read();
        await within(write, 5000, 'the write once the peer reads');
        assert.equal(message.data.length, data.length);
      });

      it('a write() aborted while waiting for drain rejects, and the message still arrives whole', { timeout: 20_000 }, async () => {
        const { local, peer } = await setup.open({ peer: { readLimit: 16 * MiB } });
        const data = pattern(16 * MiB, 6);
        const controller = new AbortController();
        const write = rejection(local.write(MessageType.Binary, data, { signal: controller.signal }));
        const state = watch(write);
        await sleep(blockedWindowMs);
        assert.equal(state.settled, false, 'write() resolved although the peer reads nothing');
        const reason = new Error('stop waiting');
        controller.abort(reason);
        assert.equal(await within(write, settleMs, 'the aborted write'), reason);
        const after = quiet(local.write(MessageType.Text, 'after'));
        const message = await within(peer.read(), 5000, 'the big message');
        assert.ok(Buffer.from(message.data).equals(data), 'the message was cut');
        assert.equal(show(await within(peer.read(), settleMs, 'the next message')), 'text "after"');
        await after;
      });
    });

    describe('writer()', { timeout: 30_000 }, () => {
      it('streams each chunk as a frame, with ping and pong passing between its frames', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open();
        const localRead = quiet(local.read()); // lets `local` see the pong and the peer's ping
        const w = (await local.writer(MessageType.Text)).getWriter();
        await w.write(utf8('part one, '));

        const { type, stream } = await within(peer.reader(), settleMs, 'peer.reader()');
        assert.equal(type, MessageType.Text);
        const chunks = stream.getReader();
        let received = '';
        while (received.length < 'part one, '.length) {
          const { value, done } = await within(chunks.read(), settleMs, 'the first frame');
          assert.equal(done, false);
          received += str(value!);
        }
        assert.equal(received, 'part one, ');

        // Our ping goes out between the message's frames, and so does our pong to the peer's ping.
        const nextChunk = chunks.read(); // keeps the peer reading
        const rtt = await within(local.ping(), settleMs, 'local.ping() mid-message');
        assert.ok(rtt >= 0, `rtt ${rtt}`);
        await within(peer.ping(), settleMs, 'peer.ping() mid-message');

        await w.write(utf8('part two'));
        await w.close();
        let rest = '';
        for (let next = await nextChunk; !next.done; next = await chunks.read()) rest += str(next.value);
        assert.equal(rest, 'part two');

        await peer.write(MessageType.Text, 'done');
        assert.equal(show(await localRead), 'text "done"');
      });

      it('aborting a writer() mid-message closes the connection with 1011', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open();
        const peerRead = rejection(peer.read());
        const w = (await local.writer(MessageType.Binary)).getWriter();
        await w.write(utf8('half a message'));
        await w.abort(new Error('producer failed'));
        const err = await within(peerRead, settleMs, "the peer's read");
        assert.ok(err instanceof CloseError, `got ${String(err)}`);
        assert.equal(err.code, 1011);
        const info = await within(peer.closed, settleMs, 'peer.closed');
        assert.equal(info.code, 1011);
        await assert.rejects(local.write(MessageType.Text, 'more'), ClosedError);
        await within(local.closed, settleMs, 'local.closed');
      });

      it('aborting a writer() through its signal mid-message closes with 1011', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open();
        const peerRead = rejection(peer.read());
        const controller = new AbortController();
        const w = (await local.writer(MessageType.Binary, { signal: controller.signal })).getWriter();
        await w.write(utf8('half'));
        const reason = new Error('stop');
        controller.abort(reason);
        assert.equal(await rejection(w.write(utf8('more'))), reason);
        assertCloseCode(await within(peerRead, settleMs, "the peer's read"), 1011);
        assert.equal((await within(peer.closed, settleMs, 'peer.closed')).code, 1011);
      });

      it('aborting a writer() before any chunk sends nothing and frees the turn', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open();
        const stream = await local.writer(MessageType.Binary);
        await stream.abort(new Error('never mind'));
        await within(local.write(MessageType.Text, 'next'), settleMs, 'the next write');
        assert.equal(show(await peer.read()), 'text "next"');
      });

      it('a chunk the writer() refuses before any frame frees the turn', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open();
        const w = (await local.writer(MessageType.Binary)).getWriter();
        assert.ok((await rejection(w.write('not bytes' as unknown as Uint8Array))) instanceof TypeError, 'a string chunk');
        await within(local.write(MessageType.Text, 'next'), settleMs, 'the next write');
        assert.equal(show(await within(peer.read(), settleMs, "the peer's read")), 'text "next"');
      });

      it('a chunk the writer() refuses mid-message closes with 1011', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open();
        const peerRead = rejection(peer.read());
        const w = (await local.writer(MessageType.Binary)).getWriter();
        await w.write(utf8('first frame'));
        assert.ok((await rejection(w.write('not bytes' as unknown as Uint8Array))) instanceof TypeError, 'a string chunk');
        assertCloseCode(await within(peerRead, settleMs, "the peer's read"), 1011);
        assertClosedError(await rejection(within(local.write(MessageType.Text, 'next'), settleMs, 'the next write')));
      });

      it('writer(Text) passes characters split across chunks', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open();
        const euro = utf8('€uro 😀');
        const w = (await local.writer(MessageType.Text)).getWriter();
        for (let at = 0; at < euro.length; at += 1) await w.write(euro.subarray(at, at + 1));
        await w.close();
        assert.equal(show(await peer.read()), 'text "€uro 😀"');
      });

      it('writer(Text) refuses a chunk that is not UTF-8 and sends nothing invalid', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open();
        const peerRead = peer.read();
        const w = (await local.writer(MessageType.Text)).getWriter();
        assert.ok((await rejection(w.write(Uint8Array.of(0x6f, 0x6b, 0xff)))) instanceof TypeError, 'an invalid chunk');
        // Nothing invalid reached the peer: it did not fail the connection with 1007.
        await within(local.write(MessageType.Text, 'valid'), settleMs, 'the next write');
        assert.equal(show(await within(peerRead, settleMs, "the peer's read")), 'text "valid"');
      });
    });

    describe('reader()', { timeout: 30_000 }, () => {
      it('streams a message without reading ahead of its consumer', { timeout: 20_000 }, async () => {
        const { local, peer } = await setup.open({ local: { readLimit: 16 * MiB } });
        const data = pattern(16 * MiB, 9);
        // Sent in 64 KiB frames: the in-memory pipe hands each write over whole.
        const sink = (await peer.writer(MessageType.Binary)).getWriter();
        const write = quiet(
          (async () => {
            for (let at = 0; at < data.length; at += 64 * 1024) await sink.write(data.subarray(at, at + 64 * 1024));
            await sink.close();
          })(),
        );
        const state = watch(write);
        const { type, stream } = await within(local.reader(), settleMs, 'reader()');
        assert.equal(type, MessageType.Binary);
        const chunks = stream.getReader();
        const first = await chunks.read();
        assert.equal(first.done, false);
        let length = first.value!.length;
        assert.ok(length <= 64 * 1024, `the first chunk holds ${length} bytes`);
        await sleep(blockedWindowMs);
        assert.equal(state.settled, false, 'the peer’s writer finished: the reader read ahead');
        const parts = [first.value!];
        for (let next = await chunks.read(); !next.done; next = await chunks.read()) {
          parts.push(next.value);
          length += next.value.length;
        }
        assert.equal(length, data.length);
        assert.ok(Buffer.concat(parts).equals(data), 'payload differs');
        await within(write, settleMs, 'the peer’s write');
      });

      it('cancel() discards the rest of the message; the next read() gets the next one', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open({ local: { readLimit: -1 } });
        const w = (await peer.writer(MessageType.Binary)).getWriter();
        const rest = (async () => {
          await w.write(pattern(1000, 1));
          await w.write(pattern(200_000, 2));
          await w.write(pattern(1000, 3));
          await w.close();
          await peer.write(MessageType.Text, 'next message');
        })();
        quiet(rest);
        const { stream } = await local.reader();
        const chunks = stream.getReader();
        const first = await chunks.read();
        assert.equal(first.done, false);
        await chunks.cancel();
        assert.equal(show(await within(local.read(), settleMs, 'the next read')), 'text "next message"');
        await rest;
      });

      it('an abort mid-stream errors the stream with the reason; the next read() gets the rest', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open();
        const w = (await peer.writer(MessageType.Binary)).getWriter();
        await w.write(utf8('streamed, '));
        const controller = new AbortController();
        const { stream } = await local.reader({ signal: controller.signal });
        const chunks = stream.getReader();
        let received = '';
        while (received.length < 'streamed, '.length) received += str((await chunks.read()).value!);
        const pending = rejection(chunks.read());
        const reason = new Error('enough');
        controller.abort(reason);
        assert.equal(await within(pending, settleMs, 'the pending chunk'), reason);
        await w.write(utf8('the rest'));
        await w.close();
        assert.equal(show(await within(local.read(), settleMs, 'the next read')), 'binary "the rest"');
      });

      it('an abort while nobody pulls errors the stream at once and passes the turn on', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open();
        const w = (await peer.writer(MessageType.Binary)).getWriter();
        await w.write(utf8('started, '));
        const controller = new AbortController();
        const { stream } = await local.reader({ signal: controller.signal });
        const chunks = stream.getReader();
        assert.equal(str((await chunks.read()).value!), 'started, ');
        // Nobody pulls now; the abort alone must let the next read() in.
        const reason = new Error('gave up');
        controller.abort(reason);
        const next = local.read();
        await w.write(utf8('finished'));
        await w.close();
        assert.equal(show(await within(next, settleMs, 'the next read')), 'binary "finished"');
        assert.equal(await within(rejection(chunks.read()), settleMs, 'the stream after the abort'), reason);
      });

      it('cancel() resolves at once, before the rest of the message has come', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open();
        const w = (await peer.writer(MessageType.Binary)).getWriter();
        await w.write(utf8('first part'));
        const { stream } = await local.reader();
        const chunks = stream.getReader();
        assert.equal(str((await chunks.read()).value!), 'first part');
        await within(chunks.cancel(), settleMs, 'cancel()');
        const next = local.read();
        await w.write(utf8('discarded'));
        await w.close();
        await peer.write(MessageType.Text, 'after');
        assert.equal(show(await within(next, settleMs, 'the next read')), 'text "after"');
      });
    });

    describe('read limit', { timeout: 30_000 }, () => {
      it('the default limit takes 32 KiB and refuses 32 KiB + 1 with MessageTooBigError; the peer sees 1009', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open();
        const peerRead = rejection(peer.read());
        // Read first: over the in-memory pipe a write over 16 KiB waits for the reader.
        const fits = local.read();
        await peer.write(MessageType.Binary, new Uint8Array(32 * 1024));
        assert.equal((await fits).data.length, 32 * 1024);
        const tooBig = rejection(local.read());
        await peer.write(MessageType.Binary, new Uint8Array(32 * 1024 + 1));
        const err = await tooBig;
        assert.ok(err instanceof MessageTooBigError, `got ${String(err)}`);
        assert.equal(err.code, 1009);
        assert.equal(err.limit, 32 * 1024);
        assertCloseCode(await within(peerRead, settleMs, "the peer's read"), 1009);
        assert.equal((await within(peer.closed, settleMs, 'peer.closed')).code, 1009);
      });

      it('the readLimit option counts every fragment of a message', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open({ local: { readLimit: 1000 } });
        const peerRead = rejection(peer.read());
        const w = (await peer.writer(MessageType.Binary)).getWriter();
        await w.write(new Uint8Array(600));
        await w.write(new Uint8Array(600));
        const err = await rejection(local.read());
        assert.ok(err instanceof MessageTooBigError, `got ${String(err)}`);
        assertCloseCode(await within(peerRead, settleMs, "the peer's read"), 1009);
      });

      it('setReadLimit() applies to later reads; -1 removes the limit', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open();
        local.setReadLimit(-1);
        const big = peer.write(MessageType.Binary, pattern(MiB));
        assert.equal((await local.read()).data.length, MiB);
        await big;
        local.setReadLimit(10);
        await peer.write(MessageType.Text, '0123456789');
        assert.equal(show(await local.read()), 'text "0123456789"');
        await peer.write(MessageType.Text, '0123456789!');
        const err = await rejection(local.read());
        assert.ok(err instanceof MessageTooBigError, `got ${String(err)}`);
      });

      it('setReadLimit() refuses anything but a non-negative integer or -1', { timeout: 5000 }, async () => {
        const { local } = await setup.open();
        for (const bad of [-2, 1.5, Number.NaN, -Infinity]) assert.throws(() => local.setReadLimit(bad), RangeError, String(bad));
      });
    });

    describe('ping and pong', { timeout: 30_000 }, () => {
      it('ping() resolves with the round-trip time while the peer reads', { timeout: 5000 }, async () => {
        const pings: Uint8Array[] = [];
        const pongs: Uint8Array[] = [];
        const { local, peer } = await setup.open({
          local: { onPongReceived: (payload) => void pongs.push(Uint8Array.from(payload)) },
          peer: { onPingReceived: (payload) => void pings.push(Uint8Array.from(payload)) },
        });
        const peerRead = peer.read();
        const localRead = local.read();
        const rtts = await within(Promise.all([local.ping(), local.ping(), local.ping()]), settleMs, 'three pings');
        for (const rtt of rtts) assert.ok(Number.isFinite(rtt) && rtt >= 0, `rtt ${rtt}`);
        assert.equal(pings.length, 3);
        assert.equal(pongs.length, 3);
        // RFC 6455 §5.5.3: a pong carries the ping's payload.
        assert.deepEqual(pongs, pings);
        await peer.write(MessageType.Text, 'to local');
        await local.write(MessageType.Text, 'to peer');
        assert.equal(show(await localRead), 'text "to local"');
        assert.equal(show(await peerRead), 'text "to peer"');
      });

      it('onPingReceived returning false suppresses the pong', { timeout: 5000 }, async () => {
        const seen = deferred<void>();
        const pongs: Uint8Array[] = [];
        const { local, peer } = await setup.open({
          local: { onPongReceived: (payload) => void pongs.push(payload) },
          peer: {
            onPingReceived: () => {
              seen.resolve();
              return false;
            },
          },
        });
        const localRead = local.read();
        const peerRead = quiet(peer.read());
        const controller = new AbortController();
        const ping = local.ping({ signal: controller.signal });
        const state = watch(ping);
        await within(seen.promise, settleMs, 'the ping at the peer');
        // Anything the peer sends now follows the pong it would have sent.
        await peer.write(MessageType.Text, 'after the ping');
        assert.equal(show(await localRead), 'text "after the ping"');
        await nextTurn();
        assert.equal(state.settled, false, 'ping() resolved without a pong');
        assert.equal(pongs.length, 0);
        const reason = new Error('no pong');
        controller.abort(reason);
        assert.equal(await rejection(ping), reason);
        await local.write(MessageType.Text, 'bye');
        assert.equal(show(await peerRead), 'text "bye"');
      });
    });

    describe('close', { timeout: 30_000 }, () => {
      it('close() runs the handshake: both sides’ closed resolve with code, reason and wasClean', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open();
        const peerRead = rejection(peer.read());
        const info = await within(local.close(1000, 'bye'), settleMs, 'close()');
        assert.equal(info.code, 1000);
        assert.equal(info.wasClean, true);
        assert.deepEqual(await within(local.closed, settleMs, 'local.closed'), info);
        const err = await peerRead;
        assert.ok(err instanceof CloseError, `got ${String(err)}`);
        assert.equal(err.code, 1000);
        assert.equal(err.reason, 'bye');
        assert.deepEqual(await within(peer.closed, settleMs, 'peer.closed'), { code: 1000, reason: 'bye', wasClean: true });
      });

      it('the CloseError a read ends with carries no stack trace, only its message', { timeout: 5000 }, async () => {
        const limit = Error.stackTraceLimit;
        const { local, peer } = await setup.open();
        const peerRead = rejection(peer.read());
        await within(local.close(1000, 'bye'), settleMs, 'close()');
        const err = await peerRead;
        assert.ok(err instanceof CloseError, `got ${String(err)}`);
        assert.equal(err.stack, `CloseError: ${err.message}`);
        assert.equal(Error.stackTraceLimit, limit, 'the global limit is restored');
      });

      if (transport === 'loopback') {
        it('each end ends its TCP socket once, also when the peer’s FIN follows its close frame', { timeout: 5000 }, async () => {
          const ends = new Map<object, number>();
          const end = Socket.prototype.end;
          Socket.prototype.end = function (this: Socket, ...args: unknown[]) {
            ends.set(this, (ends.get(this) ?? 0) + 1);
            return (end as (...a: unknown[]) => Socket).apply(this, args);
          } as typeof end;
          try {
            const { local, peer } = await setup.open();
            const peerRead = rejection(peer.read());
            await within(local.close(1000), settleMs, 'close()');
            await peerRead;
            await within(peer.closed, settleMs, 'peer.closed');
          } finally {
            Socket.prototype.end = end;
          }
          assert.ok(ends.size >= 2, `saw ${ends.size} sockets ended`);
          for (const count of ends.values()) assert.equal(count, 1, 'a socket was ended more than once');
        });
      }

      it('close() is idempotent: later calls return the same promise', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open();
        quiet(peer.read());
        const first = local.close(4000, 'first');
        assert.equal(local.close(1001), first);
        assert.equal(local.close(), first);
        const info = await within(first, settleMs, 'close()');
        assert.equal(local.close(), first);
        assert.equal((await peer.closed).code, 4000);
        assert.equal((await peer.closed).reason, 'first');
        assert.equal(info.wasClean, true);
      });

      it('close() with a code or reason that may not be sent rejects with RangeError and sends nothing', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open();
        for (const code of [0, 999, 1004, 1005, 1006, 1015, 2999, 5000, 1000.5]) {
          await assert.rejects(local.close(code), RangeError, `code ${code}`);
        }
        await assert.rejects(local.close(1000, 'x'.repeat(124)), RangeError, 'a 124-byte reason');
        // Nothing went out: the connection still works, and a valid close still runs.
        await local.write(MessageType.Text, 'still open');
        assert.equal(show(await peer.read()), 'text "still open"');
        const peerRead = rejection(peer.read());
        const info = await within(local.close(1000, 'x'.repeat(123)), settleMs, 'a valid close()');
        assert.equal(info.wasClean, true);
        assertCloseCode(await peerRead, 1000);
      });

      it('close() against a peer that never answers resolves after closeTimeout, not clean', { timeout: 5000 }, async () => {
        const { local } = await setup.open({ local: { closeTimeout: 200 } });
        // The peer reads nothing: once its receive buffer and the transport are
        // full, our close frame waits behind the data and is never seen.
        for (let i = 0; i < 256; i++) quiet(local.write(MessageType.Binary, pattern(16 * 1024, i)));
        const start = performance.now();
        const info = await within(local.close(1000), 3000, 'close()');
        const elapsed = performance.now() - start;
        assert.ok(elapsed >= 150, `resolved after ${elapsed} ms, before the timeout`);
        assert.equal(info.wasClean, false);
        assert.equal(info.code, 1006);
      });

      it('closeNow() drops the connection: the peer’s pending read rejects with ClosedError, 1006', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open();
        const peerRead = rejection(peer.read());
        local.closeNow();
        local.closeNow();
        const info = await within(local.closed, settleMs, 'local.closed');
        assert.equal(info.code, 1006);
        assert.equal(info.wasClean, false);
        assertClosedError(await within(peerRead, settleMs, "the peer's read"));
        const peerInfo = await within(peer.closed, settleMs, 'peer.closed');
        assert.equal(peerInfo.code, 1006);
        assert.equal(peerInfo.wasClean, false);
      });

      it('`await using` closes gracefully (1000) at the end of the scope', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open();
        const peerReads = (async () => {
          const got: string[] = [];
          for (;;) {
            try {
              got.push(show(await peer.read()));
            } catch (err) {
              return { got, err };
            }
          }
        })();
        {
          await using conn = local;
          await conn.write(MessageType.Text, 'inside the scope');
        }
        const { got, err } = await within(peerReads, settleMs, "the peer's reads");
        assert.deepEqual(got, ['text "inside the scope"']);
        assertCloseCode(err, 1000);
        const info: CloseInfo = await within(local.closed, settleMs, 'local.closed');
        assert.equal(info.code, 1000);
        assert.equal(info.wasClean, true);
      });

      it('for await … of ends at a normal closure (1000 and 1001)', { timeout: 5000 }, async () => {
        for (const code of [1000, 1001]) {
          const { local, peer } = await setup.open();
          for (const text of ['a', 'b', 'c']) await peer.write(MessageType.Text, text);
          const peerClose = peer.close(code);
          const got: string[] = [];
          await within(
            (async () => {
              for await (const message of local) got.push(str(message.data));
            })(),
            settleMs,
            'the loop',
          );
          assert.deepEqual(got, ['a', 'b', 'c'], `code ${code}`);
          assert.equal((await within(peerClose, settleMs, 'peer.close()')).wasClean, true);
          // Closing after the peer did just reports how it ended.
          const info = await within(local.close(), settleMs, 'local.close() after the peer’s');
          assert.deepEqual(info, { code, reason: '', wasClean: true });
        }
      });

      it('for await … of throws at a 1011 closure', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open();
        await peer.write(MessageType.Text, 'a');
        const peerClose = peer.close(1011, 'boom');
        const got: string[] = [];
        const err = await rejection(
          (async () => {
            for await (const message of local) got.push(str(message.data));
          })(),
        );
        assert.deepEqual(got, ['a']);
        assert.ok(err instanceof CloseError, `got ${String(err)}`);
        assert.equal(err.code, 1011);
        assert.equal(err.reason, 'boom');
        await within(peerClose, settleMs, 'peer.close()');
      });

      it('close() on both sides at once completes cleanly for both', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open();
        const [a, b] = await within(Promise.all([local.close(4001, 'local'), peer.close(4002, 'peer')]), settleMs, 'both close()');
        assert.deepEqual(a, { code: 4002, reason: 'peer', wasClean: true });
        assert.deepEqual(b, { code: 4001, reason: 'local', wasClean: true });
      });

      it('close() while a read() is pending: the read rejects with the peer’s close', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open();
        const localRead = rejection(local.read());
        const peerRead = rejection(peer.read());
        const info = await within(local.close(1001, 'leaving'), settleMs, 'close()');
        assert.equal(info.wasClean, true);
        assertCloseCode(await within(localRead, settleMs, 'the pending read'), 1001);
        const err = await peerRead;
        assert.ok(err instanceof CloseError && err.reason === 'leaving', `got ${String(err)}`);
      });

      it('close() in the middle of a writer() message goes out between its frames', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open();
        const peerRead = rejection(peer.read());
        const w = (await local.writer(MessageType.Binary)).getWriter();
        await w.write(utf8('never finished'));
        const info = await within(local.close(1000), settleMs, 'close()');
        assert.equal(info.wasClean, true);
        assertCloseCode(await peerRead, 1000);
        assertClosedError(await rejection(w.write(utf8('more'))));
      });

      it('writes after close() reject with ClosedError, on both sides', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open();
        const peerRead = rejection(peer.read());
        const closing = local.close();
        await assert.rejects(local.write(MessageType.Text, 'during the handshake'), ClosedError);
        await within(closing, settleMs, 'close()');
        await peerRead;
        await assert.rejects(local.write(MessageType.Text, 'late'), ClosedError);
        await assert.rejects(local.writer(MessageType.Binary), ClosedError);
        await assert.rejects(local.ping(), ClosedError);
        await assert.rejects(peer.write(MessageType.Text, 'late'), ClosedError);
        await assert.rejects(peer.ping(), ClosedError);
        // Reads keep reporting the close frame that ended the connection.
        assertCloseCode(await rejection(local.read()), 1000);
        assertCloseCode(await rejection(peer.read()), 1000);
      });

      it('writes after closeNow() reject with ClosedError', { timeout: 5000 }, async () => {
        const { local } = await setup.open();
        local.closeNow();
        await assert.rejects(local.write(MessageType.Text, 'late'), ClosedError);
        await local.closed;
        await assert.rejects(local.write(MessageType.Text, 'later'), ClosedError);
        await assert.rejects(local.writer(MessageType.Text), ClosedError);
        await assert.rejects(local.ping(), ClosedError);
        await assert.rejects(local.read(), ClosedError);
      });
    });

    describe('closeRead()', { timeout: 30_000 }, () => {
      it('returns a signal that aborts when the peer closes', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open();
        const signal = local.closeRead();
        assert.equal(local.closeRead(), signal);
        assert.equal(signal.aborted, false);
        const info = await within(peer.close(1000, 'done'), settleMs, 'peer.close()');
        assert.equal(info.wasClean, true);
        await within(aborted(signal), settleMs, 'the closeRead() signal');
        assert.equal(closeStatus(signal.reason), 1000);
        assert.deepEqual(await within(local.closed, settleMs, 'local.closed'), { code: 1000, reason: 'done', wasClean: true });
      });

      it('keeps a write-only connection answering: ping() resolves', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open();
        local.closeRead();
        const peerRead = quiet(peer.read());
        assert.ok((await within(local.ping(), settleMs, 'ping()')) >= 0);
        await local.write(MessageType.Text, 'written');
        assert.equal(show(await peerRead), 'text "written"');
        await assert.rejects(local.read());
      });

      it('a data message from the peer closes with 1008', { timeout: 5000 }, async () => {
        const { local, peer } = await setup.open();
        const signal = local.closeRead();
        const peerRead = rejection(peer.read());
        await peer.write(MessageType.Text, 'unexpected');
        assertCloseCode(await within(peerRead, settleMs, "the peer's read"), 1008);
        await within(aborted(signal), settleMs, 'the closeRead() signal');
        assert.ok(signal.reason instanceof ProtocolError, `got ${String(signal.reason)}`);
        assert.equal(signal.reason.code, 1008);
        assert.equal((await within(peer.closed, settleMs, 'peer.closed')).code, 1008);
      });
    });

    describe('a vanishing peer', { timeout: 30_000 }, () => {
      it('a pending read() rejects with ClosedError; closed says 1006', { timeout: 5000 }, async () => {
        const { local, peer, peerSocket } = await setup.open();
        const read = rejection(local.read());
        if (peerSocket !== undefined) peerSocket.destroy();
        else peer.closeNow();
        const err = await within(read, settleMs, 'the read');
        assert.ok(err instanceof ClosedError, `got ${String(err)}`);
        const info: CloseInfo = await within(local.closed, settleMs, 'local.closed');
        assert.equal(info.code, 1006);
        assert.equal(info.wasClean, false);
        assert.ok(info.error instanceof Error, `error: ${String(info.error)}`);
      });

      it('a write() blocked on backpressure rejects with ClosedError', { timeout: 10_000 }, async () => {
        const { local, peer, peerSocket } = await setup.open({ peer: { readLimit: 16 * MiB } });
        const write = rejection(local.write(MessageType.Binary, pattern(16 * MiB)));
        const state = watch(write);
        await sleep(blockedWindowMs);
        assert.equal(state.settled, false, 'the write finished although the peer reads nothing');
        if (peerSocket !== undefined) peerSocket.destroy();
        else peer.closeNow();
        assertClosedError(await within(write, settleMs, 'the blocked write'));
      });

      it('a pending ping() rejects with ClosedError', { timeout: 5000 }, async () => {
        const { local, peer, peerSocket } = await setup.open();
        const ping = rejection(local.ping());
        if (peerSocket !== undefined) peerSocket.destroy();
        else peer.closeNow();
        assertClosedError(await within(ping, settleMs, 'the ping'));
      });

      it('a peer that vanishes mid-message fails the read with ClosedError', { timeout: 5000 }, async () => {
        const pinged = deferred<void>();
        const { local, peer, peerSocket } = await setup.open({ local: { onPingReceived: () => pinged.resolve() } });
        const w = (await peer.writer(MessageType.Binary)).getWriter();
        await w.write(pattern(5000));
        quiet(peer.ping());
        const read = rejection(local.read());
        await within(pinged.promise, settleMs, 'the ping after the first frame');
        if (peerSocket !== undefined) peerSocket.destroy();
        else peer.closeNow();
        assertClosedError(await within(read, settleMs, 'the read'));
        assert.equal((await within(local.closed, settleMs, 'local.closed')).code, 1006);
      });

      if (transport === 'loopback') {
        it('a peer that resets the TCP connection fails the read with ClosedError', { timeout: 5000 }, async () => {
          const { local, peerSocket } = await setup.open({ rawClient: true });
          const read = rejection(local.read());
          assert.ok(peerSocket !== undefined, 'no peer socket');
          peerSocket.resetAndDestroy();
          assertClosedError(await within(read, settleMs, 'the read'));
          const info = await within(local.closed, settleMs, 'local.closed');
          assert.equal(info.code, 1006);
          assert.equal(info.wasClean, false);
        });
      }
    });
  });
}
