/**
 * permessage-deflate between two wsconn Conns over loopback: dial() → a
 * WireTap → a node:http server that accept()s, for every pair of
 * compression modes and in both directions. The tap shows what crossed the
 * wire (the negotiated headers, and RSV1 on each frame), so the tests check
 * not only that messages come back intact but that they were compressed
 * when, and only when, they should have been.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { after, afterEach, before, describe, it } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import zlib from 'node:zlib';
import { accept, type AcceptOptions } from '../src/accept.js';
import { closeStatus } from '../src/close.js';
import type { CompressionMode } from '../src/compress.js';
import { MessageType, type Conn, type ConnOptions } from '../src/conn.js';
import { dial, type DialOptions } from '../src/dial.js';
import { deferred, type Deferred } from '../src/internal/deferred.js';
import { leakCheck } from './helpers/leak.js';
import { describeSeed, prng, type Prng } from './helpers/prng.js';
import {
  encodeFrame,
  headerOf,
  readHttpHead,
  upgradeRequest,
  WireTap,
  withHeaders,
  type TapConnection,
  type TapStream,
} from './helpers/raw.js';

const checkLeaks = leakCheck();

const KiB = 1024;
const MiB = 1024 * KiB;
type Mode = Exclude<CompressionMode, 'disabled'>;
type Side = 'client' | 'server';
const modes: readonly Mode[] = ['context-takeover', 'no-context-takeover'];
const sides: readonly Side[] = ['client', 'server'];
const other = (side: Side): Side => (side === 'client' ? 'server' : 'client');

/** Both ends of one connection, and what the tap saw of it. */
interface Link {
  client: Conn;
  server: Conn;
  wire: TapConnection;
}

let server: Server;
let tap: WireTap;
let nextId = 0;
const waiting = new Map<string, { options: AcceptOptions; conn: Deferred<Conn> }>();
const opened = new Set<Conn>();
/** The server-side socket under each accepted Conn. */
const serverSockets = new WeakMap<Conn, Duplex>();
const rawSockets = new Set<Socket>();

function onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
  const entry = waiting.get(req.url ?? '');
  waiting.delete(req.url ?? '');
  if (entry === undefined) return void socket.destroy();
  accept(req, socket, head, entry.options).then((conn) => {
    serverSockets.set(conn, socket);
    entry.conn.resolve(conn);
  }, entry.conn.reject);
}

before(async () => {
  server = createServer((_req, res) => res.writeHead(426).end());
  server.on('upgrade', onUpgrade);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  tap = await new WireTap((server.address() as AddressInfo).port).listen();
});

afterEach(async () => {
  const conns = [...opened];
  opened.clear();
  for (const conn of conns) conn.closeNow();
  await Promise.all(conns.map((conn) => conn.closed));
  for (const socket of rawSockets) socket.destroy();
  rawSockets.clear();
});

after(async () => {
  await tap.close();
  server.closeAllConnections();
  server.close();
  await once(server, 'close');
  await checkLeaks();
});

/** Opens a connection through the tap: `client` options go to dial(), `serverOptions` to accept(). */
async function link(client: DialOptions, serverOptions: AcceptOptions): Promise<Link> {
  const path = `/deflate/${++nextId}`;
  const accepted = deferred<Conn>();
  waiting.set(path, { options: serverOptions, conn: accepted });
  const clientConn = await dial(`ws://127.0.0.1:${tap.port}${path}`, { ...client, signal: AbortSignal.timeout(5000) });
  opened.add(clientConn);
  const serverConn = await accepted.promise;
  opened.add(serverConn);
  return { client: clientConn, server: serverConn, wire: tap.last() };
}

/** A hand-driven client (straight to the server, no tap) that offers `offer`; resolves with the accepted Conn. */
async function rawClient(offer: string, options: AcceptOptions): Promise<{ conn: Conn; raw: Socket; serverSocket: Duplex; response: string }> {
  const path = `/raw/${++nextId}`;
  const accepted = deferred<Conn>();
  waiting.set(path, { options, conn: accepted });
  const port = (server.address() as AddressInfo).port;
  const raw = connect(port, '127.0.0.1');
  rawSockets.add(raw);
  raw.on('error', () => {});
  await once(raw, 'connect');
  raw.write(withHeaders(upgradeRequest(`127.0.0.1:${port}`).replace('GET /chat ', `GET ${path} `), [`Sec-WebSocket-Extensions: ${offer}`]));
  const { head } = await readHttpHead(raw);
  const conn = await accepted.promise;
  opened.add(conn);
  return { conn, raw, serverSocket: serverSockets.get(conn)!, response: head };
}

/** Opens a connection with both ends in the given modes, plus per-side Conn options. */
function linkModes(clientMode: Mode, serverMode: Mode, options: Partial<Record<Side, ConnOptions>> = {}): Promise<Link> {
  return link({ compressionMode: clientMode, ...options.client }, { compressionMode: serverMode, ...options.server });
}

/** The sending end, the receiving end and the frames the sender put on the wire. */
function direction(l: Link, sender: Side): { from: Conn; to: Conn; frames: TapStream } {
  return { from: l[sender], to: l[other(sender)], frames: sender === 'client' ? l.wire.toServer : l.wire.toClient };
}

/** Whether `sender` keeps its compression window, by the negotiated extension (RFC 7692 §7.1.1). */
function senderKeepsWindow(extensions: string, sender: Side): boolean {
  return !extensions.includes(`${sender}_no_context_takeover`);
}

/** The default compressionThreshold for a sender (DESIGN.md: 128 B with context takeover, 512 B without). */
function defaultThreshold(extensions: string, sender: Side): number {
  return senderKeepsWindow(extensions, sender) ? 128 : 512;
}

/** Exactly `n` bytes of word-like ASCII text: compressible, like real messages. */
function words(rng: Prng, n: number): string {
  const vocabulary = ['alpha', 'beta', 'gamma', 'delta', 'event', 'user', 'id', 'value', 'true', 'null', '{"k":', '},'];
  let out = '';
  while (out.length < n) out += `${vocabulary[rng.int(vocabulary.length)]} `;
  return out.slice(0, n);
}

/** Sends one message and reads it on the other end; returns what arrived. */
async function roundTrip(from: Conn, to: Conn, type: MessageType, data: string | Uint8Array, compress?: boolean): Promise<Uint8Array> {
  const reading = to.read({ signal: AbortSignal.timeout(10_000) });
  await from.write(type, data, compress === undefined ? {} : { compress });
  const message = await reading;
  assert.equal(message.type, type);
  return message.data;
}

function bytes(data: string | Uint8Array): Buffer {
  return typeof data === 'string' ? Buffer.from(data) : Buffer.from(data);
}

const expectedOffer: Record<CompressionMode, string | undefined> = {
  'disabled': undefined,
  'context-takeover': 'permessage-deflate; client_max_window_bits',
  'no-context-takeover': 'permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits',
};

function expectedResponse(clientMode: CompressionMode, serverMode: CompressionMode): string {
  if (clientMode === 'disabled' || serverMode === 'disabled') return '';
  if (clientMode === 'context-takeover' && serverMode === 'context-takeover') return 'permessage-deflate';
  return 'permessage-deflate; server_no_context_takeover; client_no_context_takeover';
}

describe('negotiation between dial() and accept()', { timeout: 20_000 }, () => {
  const all: readonly CompressionMode[] = ['disabled', ...modes];
  for (const clientMode of all) {
    for (const serverMode of all) {
      const response = expectedResponse(clientMode, serverMode);
      it(`client ${clientMode}, server ${serverMode}: extensions ${JSON.stringify(response)} on both sides and on the wire`, { timeout: 5000 }, async () => {
        const l = await link({ compressionMode: clientMode }, { compressionMode: serverMode });
        assert.equal(l.client.extensions, response);
        assert.equal(l.server.extensions, response);
        assert.equal(headerOf(l.wire.toServer.head, 'sec-websocket-extensions'), expectedOffer[clientMode]);
        assert.equal(headerOf(l.wire.toClient.head, 'sec-websocket-extensions'), response === '' ? undefined : response);
        // Compression is used exactly when it was negotiated.
        const data = 'x'.repeat(2000);
        for (const sender of sides) {
          const { from, to, frames } = direction(l, sender);
          assert.deepEqual(bytes(await roundTrip(from, to, MessageType.Text, data)), Buffer.from(data));
          assert.deepEqual(frames.dataFrames.map((f) => f.rsv1), [response !== '']);
        }
      });
    }
  }
});

/** Every pairing of modes: [client mode, server mode]. */
const pairings: ReadonlyArray<[Mode, Mode]> = modes.flatMap((c) => modes.map((s): [Mode, Mode] => [c, s]));

for (const [clientMode, serverMode] of pairings) {
  for (const sender of sides) {
    describe(`client ${clientMode}, server ${serverMode}: ${sender} → ${other(sender)}`, { timeout: 30_000 }, () => {
      it('round-trips text and binary around both thresholds, RSV1 set on the wire exactly from the threshold', { timeout: 10_000 }, async () => {
        const rng = prng();
        const l = await linkModes(clientMode, serverMode, { [other(sender)]: { readLimit: MiB } });
        const { from, to, frames } = direction(l, sender);
        const threshold = defaultThreshold(l.client.extensions, sender);
        const sizes = [0, 1, 127, 128, 129, 511, 512, 513, 4096, 65_539];
        const expected: boolean[] = [];
        for (const size of sizes) {
          const textData = words(rng, size);
          assert.deepEqual(bytes(await roundTrip(from, to, MessageType.Text, textData)), Buffer.from(textData), describeSeed(rng));
          const binaryData = rng.bytes(size);
          assert.deepEqual(bytes(await roundTrip(from, to, MessageType.Binary, binaryData)), Buffer.from(binaryData), describeSeed(rng));
          expected.push(size >= threshold, size >= threshold);
        }
        const data = frames.dataFrames;
        assert.deepEqual(data.map((f) => f.rsv1), expected, `RSV1 per message (threshold ${threshold})`);
        assert.ok(data.every((f) => f.fin && f.opcode !== 0), 'each write() is one frame');
      });

      it('honours compress: true and compress: false per message; an empty compressed message is the single byte 00', { timeout: 10_000 }, async () => {
        const l = await linkModes(clientMode, serverMode);
        const { from, to, frames } = direction(l, sender);
        const big = 'y'.repeat(4096);
        assert.equal(bytes(await roundTrip(from, to, MessageType.Text, 'tiny', true)).toString(), 'tiny');
        assert.equal(bytes(await roundTrip(from, to, MessageType.Text, big, false)).toString(), big);
        assert.equal((await roundTrip(from, to, MessageType.Binary, new Uint8Array(0), true)).length, 0);
        assert.equal(bytes(await roundTrip(from, to, MessageType.Text, '', true)).toString(), '');
        const data = frames.dataFrames;
        assert.deepEqual(data.map((f) => f.rsv1), [true, false, true, true]);
        assert.equal(data[1]!.length, 4096, 'compress: false sends the bytes as they are');
        // RFC 7692 §7.2.3.6: an empty message compresses to one 00 byte.
        assert.deepEqual([data[2]!.length, [...data[2]!.start]], [1, [0]]);
        assert.deepEqual([data[3]!.length, [...data[3]!.start]], [1, [0]]);
      });

      it('shrinks a repeated message only when the sender keeps its window', { timeout: 10_000 }, async () => {
        const rng = prng();
        const l = await linkModes(clientMode, serverMode);
        const { from, to, frames } = direction(l, sender);
        const random = rng.bytes(1000);
        for (let i = 0; i < 3; i++) assert.deepEqual(bytes(await roundTrip(from, to, MessageType.Binary, random, true)), Buffer.from(random));
        const lengths = frames.dataFrames.map((f) => f.length);
        assert.ok(lengths[0]! >= 1000, `random bytes do not compress: ${lengths[0]}`);
        if (senderKeepsWindow(l.client.extensions, sender)) {
          assert.ok(lengths[1]! < 20 && lengths[2]! < 20, `with the window kept the repeats refer back: ${lengths.join(', ')}`);
        } else {
          assert.deepEqual([lengths[1], lengths[2]], [lengths[0], lengths[0]], 'without the window every message compresses alone');
        }
      });

      it('streams a fragmented compressed message with writer(): RSV1 on its first frame only', { timeout: 10_000 }, async () => {
        const rng = prng();
        const l = await linkModes(clientMode, serverMode);
        const { from, to, frames } = direction(l, sender);
        const parts = [Buffer.from(words(rng, 300)), Buffer.alloc(0), Buffer.from('!'), Buffer.from(words(rng, 5000))];
        const reading = to.read({ signal: AbortSignal.timeout(5000) });
        const writer = (await from.writer(MessageType.Text)).getWriter();
        for (const part of parts) await writer.write(part);
        await writer.close();
        const message = await reading;
        assert.equal(message.type, MessageType.Text);
        assert.deepEqual(bytes(message.data), Buffer.concat(parts), describeSeed(rng));
        const sent = frames.dataFrames;
        assert.deepEqual(
          sent.map((f) => [f.opcode, f.rsv1, f.fin]),
          [[1, true, false], [0, false, false], [0, false, false], [0, false, true]],
          'one frame per non-empty chunk, then the final frame',
        );
        // The same writer again, uncompressed on request, and an empty compressed one.
        const plain = to.read({ signal: AbortSignal.timeout(5000) });
        const w2 = (await from.writer(MessageType.Binary, { compress: false })).getWriter();
        await w2.write(Uint8Array.of(1, 2, 3));
        await w2.write(Uint8Array.of(4));
        await w2.close();
        assert.deepEqual([...(await plain).data], [1, 2, 3, 4]);
        const empty = to.read({ signal: AbortSignal.timeout(5000) });
        await (await from.writer(MessageType.Text)).close();
        assert.equal((await empty).data.length, 0);
        const later = frames.dataFrames.slice(4);
        assert.deepEqual(later.map((f) => [f.opcode, f.rsv1, f.fin, f.length]), [[2, false, false, 3], [0, false, false, 1], [0, false, true, 0], [1, true, true, 1]]);
        assert.deepEqual([...later[3]!.start], [0], 'RFC 7692 §7.2.3.6: an empty compressed message is 00');
      });

      it('keeps a compressed message whole across an aborted read(), and the window intact for later ones', { timeout: 10_000 }, async () => {
        const rng = prng();
        const pinged: Array<() => void> = [];
        const receiverOptions: ConnOptions = { onPingReceived: () => void pinged.shift()?.() };
        const l = await linkModes(clientMode, serverMode, { [other(sender)]: receiverOptions });
        const { from, to, frames } = direction(l, sender);
        const first = Buffer.from(words(rng, 3000));
        const second = Buffer.from(words(rng, 3000));
        const controller = new AbortController();
        const reading = to.read({ signal: controller.signal });
        const writer = (await from.writer(MessageType.Text)).getWriter();
        await writer.write(first);
        // A ping after the first frame: once the receiver sees it, it has consumed that frame.
        const seen = new Promise<void>((resolve) => pinged.push(resolve));
        from.ping().catch(() => {}); // its pong is never read: the sender does not read
        await seen;
        const reason = new Error('stop reading');
        controller.abort(reason);
        await assert.rejects(reading, (err: unknown) => err === reason);
        await writer.write(second);
        await writer.close();
        const whole = await to.read({ signal: AbortSignal.timeout(5000) });
        assert.deepEqual(bytes(whole.data), Buffer.concat([first, second]), describeSeed(rng));
        // Later messages still decode; with the window kept they refer back to the streamed one.
        for (let i = 0; i < 3; i++) assert.deepEqual(bytes(await roundTrip(from, to, MessageType.Text, second)), second);
        const data = frames.dataFrames;
        assert.deepEqual(data.map((f) => f.rsv1), [true, false, false, true, true, true]);
        if (senderKeepsWindow(l.client.extensions, sender)) assert.ok(data[3]!.length < 100, `${data[3]!.length} B`);
      });
    });
  }
}

describe('cancel-safety with the window kept', { timeout: 30_000 }, () => {
  for (const sender of sides) {
    it(`${sender} → ${other(sender)}: an aborted reader() mid-message leaves the compressed message to the next read()`, { timeout: 10_000 }, async () => {
      const rng = prng();
      const pinged: Array<() => void> = [];
      const l = await linkModes('context-takeover', 'context-takeover', { [other(sender)]: { onPingReceived: () => void pinged.shift()?.() } });
      const { from, to } = direction(l, sender);
      const first = Buffer.from(words(rng, 2000));
      const second = Buffer.from(words(rng, 2000));
      const controller = new AbortController();
      const opening = to.reader({ signal: controller.signal });
      const writer = (await from.writer(MessageType.Binary)).getWriter();
      await writer.write(first);
      const { type, stream } = await opening;
      assert.equal(type, MessageType.Binary);
      const chunk = stream.getReader().read();
      const seen = new Promise<void>((resolve) => pinged.push(resolve));
      from.ping().catch(() => {});
      await seen;
      const reason = new Error('stop streaming');
      controller.abort(reason);
      await assert.rejects(chunk, (err: unknown) => err === reason);
      await writer.write(second);
      await writer.close();
      const whole = await to.read({ signal: AbortSignal.timeout(5000) });
      assert.deepEqual(bytes(whole.data), Buffer.concat([first, second]), describeSeed(rng));
      assert.deepEqual(bytes(await roundTrip(from, to, MessageType.Binary, second)), second);
    });

    it(`${sender} → ${other(sender)}: an aborted write() sends nothing and leaves the compression window consistent`, { timeout: 10_000 }, async () => {
      const rng = prng();
      const l = await linkModes('context-takeover', 'context-takeover', { [other(sender)]: { readLimit: 32 * MiB } });
      const { from, to, frames } = direction(l, sender);
      const message = words(rng, 2000);
      const reason = new Error('never mind');
      // Aborted before it starts.
      await assert.rejects(from.write(MessageType.Text, message, { signal: AbortSignal.abort(reason) }), (err: unknown) => err === reason);
      // Aborted while queued behind a message that waits for 'drain' (the receiver is not reading yet).
      const big = Buffer.alloc(16 * MiB, 7);
      const blocked = from.write(MessageType.Binary, big, { compress: false });
      const controller = new AbortController();
      const queued = from.write(MessageType.Text, message, { signal: controller.signal });
      controller.abort(reason);
      await assert.rejects(queued, (err: unknown) => err === reason);
      assert.ok(bytes((await to.read({ signal: AbortSignal.timeout(5000) })).data).equals(big));
      await blocked;
      // Had either aborted write() compressed its message, these would refer to bytes the receiver never saw.
      for (let i = 0; i < 2; i++) assert.equal(bytes(await roundTrip(from, to, MessageType.Text, message)).toString(), message, describeSeed(rng));
      const data = frames.dataFrames;
      assert.deepEqual(data.map((f) => f.rsv1), [false, true, true]);
      assert.ok(data[2]!.length < 50, `the repeat refers back to the first: ${data[2]!.length} B`);
    });
  }
});

describe('cancel-safety inside a compressed frame', { timeout: 20_000 }, () => {
  it('an aborted read() with half of a compressed frame consumed continues with the rest (raw client → accept())', { timeout: 10_000 }, async () => {
    const rng = prng();
    const { conn, raw, serverSocket, response } = await rawClient('permessage-deflate', { compressionMode: 'context-takeover', readLimit: MiB });
    assert.equal(headerOf(response, 'sec-websocket-extensions'), 'permessage-deflate');
    const message = Buffer.from(words(rng, 100_000));
    const compressed = zlib.deflateRawSync(message, { finishFlush: zlib.constants.Z_SYNC_FLUSH }).subarray(0, -4);
    const frame = encodeFrame({ opcode: 2, rsv1: true, payload: compressed }, true);
    const half = Math.floor(frame.length / 2);
    raw.write(frame.subarray(0, half));
    await once(serverSocket, 'readable');
    const controller = new AbortController();
    const reading = conn.read({ signal: controller.signal });
    await nextTurn(); // the read takes what arrived and waits for more
    assert.equal(serverSocket.readableLength, 0, 'the Conn has taken the first half of the frame');
    const reason = new Error('abort inside the frame');
    controller.abort(reason);
    await assert.rejects(reading, (err: unknown) => err === reason);
    raw.write(frame.subarray(half));
    const whole = await conn.read({ signal: AbortSignal.timeout(5000) });
    assert.ok(bytes(whole.data).equals(message), describeSeed(rng));
  });
});

describe('compressionThreshold', { timeout: 20_000 }, () => {
  for (const sender of sides) {
    for (const [threshold, want] of [[0, [true, true, true]], [1000, [false, false, true]]] as const) {
      it(`${sender}: a threshold of ${threshold} compresses messages of 0, 999 and 1000 bytes as ${JSON.stringify(want)}`, { timeout: 5000 }, async () => {
        const l = await linkModes('context-takeover', 'context-takeover', { [sender]: { compressionThreshold: threshold } });
        const { from, to, frames } = direction(l, sender);
        for (const size of [0, 999, 1000]) {
          assert.equal(bytes(await roundTrip(from, to, MessageType.Text, 'z'.repeat(size))).toString(), 'z'.repeat(size));
        }
        assert.deepEqual(frames.dataFrames.map((f) => f.rsv1), want);
      });
    }
  }
});

describe('concurrent writes and multi-byte text', { timeout: 20_000 }, () => {
  for (const sender of sides) {
    it(`${sender}: 50 compressed write()s started at once arrive in order and decode (window order = wire order)`, { timeout: 10_000 }, async () => {
      const rng = prng();
      const l = await linkModes('context-takeover', 'context-takeover');
      const { from, to, frames } = direction(l, sender);
      const messages = Array.from({ length: 50 }, (_, i) => `${i}: ${words(rng, 200 + rng.int(800))}`);
      const writes = messages.map((m) => from.write(MessageType.Text, m));
      for (const m of messages) assert.equal(bytes((await to.read({ signal: AbortSignal.timeout(5000) })).data).toString(), m, describeSeed(rng));
      await Promise.all(writes);
      assert.ok(frames.dataFrames.every((f) => f.rsv1));
    });

    it(`${sender}: the threshold counts UTF-8 bytes, not characters`, { timeout: 5000 }, async () => {
      const l = await linkModes('context-takeover', 'context-takeover');
      const { from, to, frames } = direction(l, sender);
      const euros = '€'.repeat(50); // 50 characters, 150 bytes
      const ascii = 'e'.repeat(127);
      assert.equal(bytes(await roundTrip(from, to, MessageType.Text, euros)).toString(), euros);
      assert.equal(bytes(await roundTrip(from, to, MessageType.Text, ascii)).toString(), ascii);
      assert.deepEqual(frames.dataFrames.map((f) => f.rsv1), [true, false]);
    });
  }
});

describe('16 MiB messages', { timeout: 40_000 }, () => {
  const rng = prng();
  const block = Buffer.from(words(rng, MiB));
  const big = Buffer.concat(Array.from({ length: 16 }, (_, i) => {
    const copy = Buffer.from(block);
    copy.write(`block ${i} `, 0); // no two MiB alike
    return copy;
  }));

  for (const mode of modes) {
    for (const sender of sides) {
      it(`${mode}, ${sender} → ${other(sender)}: one compressed frame, intact, with the read limit raised to 16 MiB`, { timeout: 15_000 }, async () => {
        const l = await linkModes(mode, mode, { [other(sender)]: { readLimit: 16 * MiB } });
        const { from, to, frames } = direction(l, sender);
        const back = await roundTrip(from, to, MessageType.Text, big);
        assert.ok(bytes(back).equals(big), describeSeed(rng));
        const [frame] = frames.dataFrames;
        assert.ok(frame!.rsv1 && frame!.fin);
        assert.ok(frame!.length < big.length / 2, `16 MiB of text went out as ${frame!.length} B`);
      });
    }
  }

  it('context-takeover, client → server: streamed with writer() in 1 MiB chunks', { timeout: 15_000 }, async () => {
    const l = await linkModes('context-takeover', 'context-takeover', { server: { readLimit: 16 * MiB } });
    const reading = l.server.read({ signal: AbortSignal.timeout(10_000) });
    const writer = (await l.client.writer(MessageType.Binary)).getWriter();
    for (let at = 0; at < big.length; at += MiB) await writer.write(big.subarray(at, at + MiB));
    await writer.close();
    assert.ok(bytes((await reading).data).equals(big), describeSeed(rng));
    const sent = l.wire.toServer.dataFrames;
    assert.equal(sent.length, 17);
    assert.deepEqual(sent.map((f) => f.rsv1), [true, ...Array(16).fill(false)]);
  });

  it('one byte over a 16 MiB read limit fails the read with 1009 while inflating', { timeout: 15_000 }, async () => {
    const l = await linkModes('context-takeover', 'context-takeover', { server: { readLimit: 16 * MiB - 1 } });
    const reading = l.server.read({ signal: AbortSignal.timeout(10_000) });
    await l.client.write(MessageType.Binary, big);
    await assert.rejects(reading, (err: unknown) => (err as { code?: number }).code === 1009);
    const [frame] = l.wire.toServer.dataFrames;
    assert.ok(frame!.rsv1 && frame!.length < big.length / 2, 'the message was compressed, so its compressed size passed the first check');
    await assert.rejects(l.client.read({ signal: AbortSignal.timeout(5000) }), (err: unknown) => closeStatus(err) === 1009);
  });
});
