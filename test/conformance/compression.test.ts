// permessage-deflate on the wire (RFC 7692), as raw bytes against a wsconn
// Conn in both roles: the §7.2.3 example byte sequences, the RSV1 rules of
// §6 and RFC 6455 §5.2, bad DEFLATE data and UTF-8 inside it, tiny
// fragments, the compressed-size and decompressed-size limits, decompression
// bombs, and the negotiation itself (§5, §7.1) against hand-written offers
// and answers. In the spirit of Autobahn sections 12 and 13.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import zlib from 'node:zlib';
import { compressedLimit } from '../../src/compress.js';
import type { CompressionMode } from '../../src/compress.js';
import { MessageType } from '../../src/conn.js';
import { dial } from '../../src/dial.js';
import { HandshakeError } from '../../src/errors.js';
import { leakCheck } from '../helpers/leak.js';
import {
  binary,
  close,
  concat,
  cont,
  encodeAll,
  FrameParser,
  headerOf,
  hex,
  Op,
  ping,
  pong,
  readHttpHead,
  switchingProtocols,
  text,
  want,
  withHeaders,
  type FrameSpec,
  type RawFrame,
} from '../helpers/raw.js';
import {
  conformance,
  conformanceRoles,
  echoes,
  endpoint,
  fails,
  type Case,
  type Negotiation,
  type Session,
} from './harness.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const defaultLimit = 32 * KiB;
const { Z_SYNC_FLUSH } = zlib.constants;
/** The empty stored block's LEN/NLEN that a sync flush ends with (RFC 7692 §7.2.1). */
const tail = hex('00 00 ff ff');

// --- compressed payloads built by the test, independently of wsconn's deflater ---

/** One message compressed alone, as a permessage-deflate sender would: sync flush, tail removed (§7.2.1). */
function deflate(data: string | Uint8Array, windowBits = 15): Uint8Array {
  const out = zlib.deflateRawSync(typeof data === 'string' ? Buffer.from(data) : data, { finishFlush: Z_SYNC_FLUSH, windowBits });
  assert.deepEqual(Uint8Array.from(out.subarray(-4)), tail);
  return Uint8Array.from(out.subarray(0, -4));
}

/** Inflates a received message's payload (restoring the tail, §7.2.2), with what the sender may refer back to. */
function inflate(payload: Uint8Array, windowBits = 15, dictionary?: Uint8Array): Buffer {
  const options: zlib.ZlibOptions = { finishFlush: Z_SYNC_FLUSH, windowBits };
  if (dictionary !== undefined && dictionary.length > 0) options.dictionary = dictionary;
  return zlib.inflateRawSync(concat([payload, tail]), options);
}

/**
 * A valid compressed message of exactly `total` bytes that inflates to
 * "Hello" plus up to four "!": one stored block with the text, then empty
 * stored blocks (what a sender that flushes often produces), then the `00`
 * that remains of the last one once its tail is removed.
 */
function paddedHello(total: number): { payload: Uint8Array; text: string } {
  const extra = (((total - 11) % 5) + 5) % 5;
  const body = Buffer.from(`Hello${'!'.repeat(extra)}`);
  const k = body.length;
  const blocks = (total - 6 - k) / 5;
  assert.ok(Number.isInteger(blocks) && blocks >= 0);
  const empty = Buffer.alloc(5 * blocks);
  for (let i = 0; i < blocks; i++) empty.set([0x00, 0x00, 0x00, 0xff, 0xff], 5 * i);
  const stored = Uint8Array.of(0x00, k & 0xff, k >> 8, ~k & 0xff, (~k >> 8) & 0xff);
  const payload = concat([stored, body, empty, Uint8Array.of(0x00)]);
  assert.equal(payload.length, total);
  assert.equal(inflate(payload).toString(), body.toString());
  return { payload, text: body.toString() };
}

/** A message's payload as one compressed frame (RSV1 set) followed by continuation frames of `size` bytes. */
function fragmented(opcode: number, payload: Uint8Array, size: number): FrameSpec[] {
  const frames: FrameSpec[] = [];
  for (let at = 0; at < payload.length; at += size) {
    const first = at === 0;
    const fin = at + size >= payload.length;
    frames.push({ opcode: first ? opcode : Op.Continuation, rsv1: first, fin, payload: payload.subarray(at, at + size) });
  }
  return frames;
}

/** The frames of a byte sequence written as a server sends it (unmasked), as specs: a raw client masks them. */
function framesOf(bytes: string): FrameSpec[] {
  return new FrameParser().push(hex(bytes)).map((f: RawFrame) => ({
    opcode: f.opcode,
    fin: f.fin,
    rsv1: (f.rsv & 0x4) !== 0,
    payload: f.payload,
  }));
}

/**
 * `mebibytes` MiB of zeros as one compressed message: a streaming raw
 * deflate of zeros (run-length strategy, which compresses zeros as well as
 * the default and ~5× faster), sync-flushed, tail removed. ~1 MB per GiB.
 */
async function zeroBomb(mebibytes: number): Promise<Uint8Array> {
  const deflater = zlib.createDeflateRaw({ strategy: zlib.constants.Z_RLE, chunkSize: 64 * KiB });
  const chunks: Buffer[] = [];
  deflater.on('data', (chunk: Buffer) => chunks.push(chunk));
  const zeros = Buffer.alloc(MiB);
  for (let i = 0; i < mebibytes; i++) if (!deflater.write(zeros)) await once(deflater, 'drain');
  await new Promise<void>((resolve) => deflater.flush(Z_SYNC_FLUSH, () => resolve()));
  deflater.close();
  const all = Buffer.concat(chunks);
  assert.deepEqual(Uint8Array.from(all.subarray(-4)), tail);
  return Uint8Array.from(all.subarray(0, -4));
}

// Generated once for the whole file (about half a second), kept in memory.
const gibBomb = await zeroBomb(1024);
const smallBomb = await zeroBomb(100);

// --- what each group negotiates ---

/** wsconn echoes uncompressed, so the raw peer reads plain bytes whatever wsconn decoded. */
const plainEcho = { compressionThreshold: Number.MAX_SAFE_INTEGER };
/** Compression with both windows kept. */
const takeover: Negotiation = {
  options: { compressionMode: 'context-takeover', ...plainEcho },
  offer: 'permessage-deflate',
  answer: 'permessage-deflate',
};
/** Compression where the raw peer announced that it resets its window after every message. */
const peerResets: Negotiation = {
  options: { compressionMode: 'context-takeover', ...plainEcho },
  offer: 'permessage-deflate; client_no_context_takeover',
  answer: 'permessage-deflate; server_no_context_takeover',
};
/** Compression with the raw peer's window limited to 9 bits. */
const smallWindow: Negotiation = {
  options: { compressionMode: 'context-takeover', ...plainEcho },
  offer: 'permessage-deflate; client_max_window_bits=9',
  answer: 'permessage-deflate; server_max_window_bits=9',
};
/** The raw peer asks for compression, wsconn has it disabled. */
const declined: Negotiation = { options: { compressionMode: 'disabled' }, offer: 'permessage-deflate' };
/** wsconn asks for compression, the raw peer does not take it. */
const unanswered: Negotiation = { options: { compressionMode: 'context-takeover' } };

// --- the RFC 7692 §7.2.3 examples ---

const hello = 'c1 07 f2 48 cd c9 c9 07 00'; // §7.2.3.1
const helloAgain = 'c1 05 f2 00 11 00 00'; // §7.2.3.2: refers to the first "Hello"
const helloInTwo = '41 03 f2 48 cd 80 04 c9 c9 07 00'; // §7.2.3.1, fragmented
const helloStored = 'c1 0b 00 05 00 fa ff 48 65 6c 6c 6f 00'; // §7.2.3.3
const helloBfinal = 'c1 08 f3 48 cd c9 c9 07 00 00'; // §7.2.3.4
const helloTwoBlocks = 'c1 0d f2 48 05 00 00 00 ff ff ca c9 c9 07 00'; // §7.2.3.5
const helloEmptyFragment = '41 0b f2 48 cd c9 c9 07 00 00 00 ff ff 80 01 00'; // §7.2.3.6

const rfcExamples: Case[] = [
  echoes('§7.2.3.1 "Hello" compressed in one frame (c1 07 f2 48 cd c9 c9 07 00) is decoded', framesOf(hello), [want.text('Hello')]),
  echoes('§7.2.3.1 "Hello" compressed in two fragments (41 03 f2 48 cd, 80 04 c9 c9 07 00) is decoded', framesOf(helloInTwo), [want.text('Hello')]),
  echoes('§7.2.3.3 "Hello" in a DEFLATE block with no compression is decoded', framesOf(helloStored), [want.text('Hello')]),
  echoes('§7.2.3.4 "Hello" in a DEFLATE block with BFINAL set is decoded', framesOf(helloBfinal), [want.text('Hello')]),
  echoes('§7.2.3.5 "Hello" in two DEFLATE blocks in one message is decoded', framesOf(helloTwoBlocks), [want.text('Hello')]),
  echoes('§7.2.3.6 "Hello" followed by an empty final fragment (80 01 00) is decoded', framesOf(helloEmptyFragment), [want.text('Hello')]),
  echoes('§7.2.3.1 the same bytes as a binary message (c2) are decoded', framesOf(hello.replace(/^c1/, 'c2')), [want.binary('Hello')]),
  echoes('§7.2.3.6 an empty compressed message (c1 01 00) is decoded as empty text', framesOf('c1 01 00'), [want.text('')]),
  echoes('§7.2.3.1 a ping between the two compressed fragments is answered first', [...framesOf('41 03 f2 48 cd'), ping('between'), ...framesOf('80 04 c9 c9 07 00')], [want.pong('between'), want.text('Hello')]),
  echoes('§7.2.3 every example back to back, arriving one byte at a time', [helloInTwo, helloStored, helloTwoBlocks, helloEmptyFragment, hello].flatMap(framesOf), Array(5).fill(want.text('Hello')), { chop: 1 }),
];

/** §7.2.3.2 and its neighbours: messages that refer back to earlier ones. */
const sharedWindow: Case[] = [
  echoes('§7.2.3.2 a second "Hello" (c1 05 f2 00 11 00 00) refers to the first one and is decoded', framesOf(hello + helloAgain), [want.text('Hello'), want.text('Hello')]),
  echoes('§7.2.3.2 the window survives a fragmented first message', framesOf(helloInTwo + helloAgain), [want.text('Hello'), want.text('Hello')]),
  echoes('§7.2.3.2/§7.2.3.4 the window survives a message that ended with a BFINAL block', framesOf(helloBfinal + helloAgain), [want.text('Hello'), want.text('Hello')]),
  echoes('§6 an uncompressed message in between does not enter the window', [...framesOf(hello), text('plain in between'), ...framesOf(helloAgain)], [want.text('Hello'), want.text('plain in between'), want.text('Hello')]),
  echoes('§7.2.3.2 the window is kept across ten messages', framesOf(hello + helloAgain.repeat(9)), Array(10).fill(want.text('Hello'))),
];

describe('RFC 7692 §7.2.3 byte sequences', { timeout: 5000 }, () => {
  it('are what the raw server sends byte for byte (the raw client sends the same frames masked)', { timeout: 1000 }, () => {
    for (const bytes of [hello, helloAgain, helloInTwo, helloStored, helloBfinal, helloTwoBlocks, helloEmptyFragment]) {
      assert.deepEqual(encodeAll(framesOf(bytes), false), hex(bytes));
    }
  });
});

conformance('RFC 7692 §7.2.3 examples, windows kept', [...rfcExamples, ...sharedWindow], takeover);

conformance('RFC 7692 §7.2.3 examples, the peer resets its window (client/server_no_context_takeover)', [
  ...rfcExamples.slice(0, 6),
  fails('§7.1.1 a message that refers to an earlier one after the peer agreed to reset its window fails with 1007', framesOf(hello + helloAgain), 1007, [want.text('Hello')]),
], peerResets);

conformance('RFC 7692 §7.2.3 examples, the peer\'s window limited to 9 bits', [
  rfcExamples[0]!,
  sharedWindow[0]!,
  echoes('§7.1.2 a message compressed with a 9-bit window is decoded', [text(deflate('nine bits '.repeat(60), 9), { rsv1: true })], [want.text('nine bits '.repeat(60))]),
], smallWindow);

// --- RSV1 and the data itself ---

const invalidUtf8 = Uint8Array.of(0x48, 0x69, 0xff, 0x21);
const euroText = `price: ${'€'.repeat(100)}`;

conformance('RFC 7692 §6 RSV1 rules and compressed data errors', [
  fails('§6.1 RSV1 on a continuation frame of a compressed message fails with 1002', [text(hex('f2 48 cd'), { rsv1: true, fin: false }), cont(hex('c9 c9 07 00'), { rsv1: true })], 1002),
  fails('§6.1 RSV1 on a continuation frame of an uncompressed message fails with 1002', [text('Hel', { fin: false }), cont('lo', { rsv1: true })], 1002),
  fails('§6 RSV1 on a ping fails with 1002, no pong', [ping('compressed?', { rsv1: true })], 1002),
  fails('§6 RSV1 on a pong fails with 1002', [pong('compressed?', { rsv1: true })], 1002),
  fails('§6 RSV1 on a close frame fails with 1002', [close(1000, '', { rsv1: true })], 1002),
  fails('RFC 6455 §5.2 RSV2 is still reserved with permessage-deflate: 1002', [...framesOf(hello), text(hex('f2 48 cd c9 c9 07 00'), { rsv2: true })], 1002, [want.text('Hello')]),
  fails('RFC 6455 §5.2 RSV3 is still reserved with permessage-deflate: 1002', [binary(hex('f2 48 cd c9 c9 07 00'), { rsv1: true, rsv3: true })], 1002),
  fails('RFC 6455 §5.4 a new compressed message inside a fragmented one fails with 1002', [text(hex('f2 48 cd'), { rsv1: true, fin: false }), text(hex('f2 48 cd c9 c9 07 00'), { rsv1: true })], 1002),
  fails('§7.2.2 invalid DEFLATE data (reserved block type 11) fails with 1007', [text(hex('ff ff ff ff'), { rsv1: true })], 1007),
  fails('§7.2.2 a stored block whose NLEN does not match LEN fails with 1007', [binary(hex('00 05 00 00 00 48 65 6c 6c 6f 00'), { rsv1: true })], 1007),
  fails('§7.2.2 invalid DEFLATE data after a valid message: echo, then 1007', [...framesOf(hello), binary(hex('07 ff'), { rsv1: true })], 1007, [want.text('Hello')]),
  fails('§7.2.2 invalid DEFLATE data split over fragments fails with 1007 when the message ends', [text(hex('ff ff'), { rsv1: true, fin: false }), cont(hex('ff ff'))], 1007),
  fails('RFC 6455 §8.1 compressed text that inflates to invalid UTF-8 fails with 1007', [text(deflate(invalidUtf8), { rsv1: true })], 1007),
  fails('RFC 6455 §8.1 compressed text that inflates to a truncated UTF-8 sequence fails with 1007', [text(deflate(Uint8Array.of(0x61, 0xe2, 0x82)), { rsv1: true })], 1007),
  fails('RFC 6455 §8.1 fragmented compressed text that inflates to invalid UTF-8 fails with 1007', fragmented(Op.Text, deflate(concat([Buffer.from('x'.repeat(300)), invalidUtf8])), 7), 1007),
  echoes('RFC 6455 §8.1 the same bytes as a compressed binary message are fine', [binary(deflate(invalidUtf8), { rsv1: true })], [want.binary(invalidUtf8)]),
  echoes('RFC 6455 §8.1 multi-byte characters split across compressed fragments are fine', fragmented(Op.Text, deflate(euroText), 3), [want.text(euroText)]),
], takeover);

conformance('RFC 6455 §5.2 RSV1 without a negotiated extension (wsconn declined the offer)', [
  fails('RSV1 on a compressed "Hello" fails with 1002 when wsconn declined permessage-deflate', framesOf(hello), 1002),
  echoes('an uncompressed message is echoed', [text('plain')], [want.text('plain')]),
], declined);

conformance('RFC 6455 §5.2 RSV1 without a negotiated extension (the peer did not accept wsconn\'s)', [
  fails('RSV1 on a compressed "Hello" fails with 1002 when the peer ignored the offer', framesOf(hello), 1002),
  fails('RSV1 after a valid uncompressed message: echo, then 1002', [text('plain'), ...framesOf(hello)], 1002, [want.text('plain')]),
], unanswered);

// --- fragments and limits ---

const tinyText = `one byte per fragment: ${'abcabcabd'.repeat(30)}`;
const tinyCompressed = deflate(tinyText);
const jsonText = JSON.stringify(Array.from({ length: 60 }, (_, i) => ({ id: i, name: `item ${i}`, tags: ['a', 'b', String(i % 7)] })));
const readLimit = 1000;
const atCompressedLimit = paddedHello(compressedLimit(readLimit));
const overCompressedLimit = paddedHello(compressedLimit(readLimit) + 1);
const garbage = new Uint8Array(16 * KiB).fill(0xaa);

/** A case sending `frames` with a ping after every 100th, expecting the pongs first and then the message. */
function withPings(name: string, frames: FrameSpec[], message: string): Case {
  const send: FrameSpec[] = [];
  const pongs: string[] = [];
  frames.forEach((frame, i) => {
    send.push(frame);
    if (i % 100 === 99 && !frame.fin) {
      send.push(ping(`after ${i + 1}`));
      pongs.push(want.pong(`after ${i + 1}`));
    }
  });
  assert.ok(pongs.length > 0);
  return echoes(name, send, [...pongs, want.text(message)]);
}

conformance('RFC 7692 §7.2.2 fragments and limits', [
  echoes(`a compressed message in 1-byte fragments (${tinyCompressed.length} frames) is decoded`, fragmented(Op.Text, tinyCompressed, 1), [want.text(tinyText)]),
  echoes('a compressed message in 1-byte fragments arriving one byte at a time is decoded', fragmented(Op.Text, tinyCompressed, 1), [want.text(tinyText)], { chop: 1 }),
  withPings('a compressed JSON message in 1-byte fragments with a ping after every 100th is decoded', fragmented(Op.Text, deflate(jsonText), 1), jsonText),
  echoes('a compressed message whose first frame is empty is decoded', [binary(new Uint8Array(0), { rsv1: true, fin: false }), cont(deflate('after an empty first frame'), { fin: false }), cont(new Uint8Array(0))], [want.binary('after an empty first frame')]),
  echoes(`a compressed message of exactly the compressed-size bound (${atCompressedLimit.payload.length} B for a ${readLimit} B limit) is decoded`, fragmented(Op.Text, atCompressedLimit.payload, 20_000), [want.text(atCompressedLimit.text)], { readLimit }),
  fails('a compressed message one byte over the compressed-size bound fails with 1009', fragmented(Op.Text, overCompressedLimit.payload, 20_000), 1009, [], { readLimit }),
  fails('compressed fragments passing the compressed-size bound fail with 1009 before the message ends (nothing is inflated)', [binary(garbage, { rsv1: true, fin: false }), ...Array.from({ length: 4 }, () => cont(garbage, { fin: false }))], 1009, [], { readLimit }),
  fails('a compressed frame declaring more than the compressed-size bound fails with 1009 before its payload', [text(new Uint8Array(0), { rsv1: true, declaredLength: compressedLimit(defaultLimit) + 1 })], 1009),
  echoes(`a compressed message that inflates to exactly the read limit (${readLimit} B) is decoded`, [text(deflate('x'.repeat(readLimit)), { rsv1: true })], [want.text('x'.repeat(readLimit))], { readLimit }),
  fails('a compressed message that inflates to one byte over the read limit fails with 1009', [text(deflate('x'.repeat(readLimit + 1)), { rsv1: true })], 1009, [], { readLimit }),
  fails(`a bomb of 100 MiB of zeros (${smallBomb.length} B, under the compressed-size bound) fails with 1009 while inflating`, [binary(smallBomb, { rsv1: true })], 1009),
  fails(`a bomb of 1 GiB of zeros (${gibBomb.length} B) in one frame fails with 1009 at the default limit`, [binary(gibBomb, { rsv1: true })], 1009),
  fails('a bomb of 1 GiB of zeros in 64 KiB fragments fails with 1009 at the default limit', fragmented(Op.Binary, gibBomb, 64 * KiB), 1009),
  fails('a bomb of 1 GiB of zeros fails with 1009 while inflating when the read limit (4 MiB) admits its compressed size', [binary(gibBomb, { rsv1: true })], 1009, [], { readLimit: 4 * MiB }),
], takeover);

// --- tests that need more than a table ---

const checkLeaks = leakCheck();

/** Opens a session, runs `body`, and always drops both ends. */
async function withSession(fixture: ReturnType<typeof endpoint>, options: Parameters<ReturnType<typeof endpoint>['open']>[0], body: (s: Session) => Promise<void>): Promise<void> {
  const session = await fixture.open(options, []);
  try {
    await body(session);
  } finally {
    session.peer.destroy();
    session.conn.closeNow();
  }
}

function payloads(frames: readonly RawFrame[]): string[] {
  return frames.map((f) => `${f.rsv} ${f.opcode} ${Buffer.from(f.payload).toString('hex')}`);
}

for (const role of conformanceRoles) {
  describe(`RFC 7692 §7.2.3: wsconn's own compressed frames, wsconn as the ${role}`, { timeout: 20_000 }, () => {
    const kept = endpoint(role, { options: { compressionMode: 'context-takeover', compressionThreshold: 0 }, offer: 'permessage-deflate', answer: 'permessage-deflate' });
    const reset = endpoint(role, {
      options: { compressionMode: 'context-takeover', compressionThreshold: 0 },
      offer: 'permessage-deflate; server_no_context_takeover',
      answer: 'permessage-deflate; client_no_context_takeover',
    });
    before(() => Promise.all([kept.start(), reset.start()]));
    after(() => Promise.all([kept.stop(), reset.stop()]));

    it('sends "Hello" as f2 48 cd c9 c9 07 00, then f2 00 11 00 00 with its window kept, and an empty message as 00', { timeout: 5000 }, () =>
      withSession(kept, {}, async ({ peer }) => {
        await peer.send([text('Hello'), text('Hello'), text('')]);
        const frames = await peer.receivedAtLeast(3);
        assert.deepEqual(payloads(frames), ['4 1 f248cdc9c90700', '4 1 f200110000', '4 1 00']);
        assert.ok(frames.every((f) => f.fin));
      }));

    it('sends "Hello" as f2 48 cd c9 c9 07 00 both times when it resets its window', { timeout: 5000 }, () =>
      withSession(reset, {}, async ({ peer }) => {
        await peer.send([text('Hello'), text('Hello')]);
        assert.deepEqual(payloads(await peer.receivedAtLeast(2)), ['4 1 f248cdc9c90700', '4 1 f248cdc9c90700']);
      }));
  });

  describe(`a decompression bomb does not disturb other connections, wsconn as the ${role}`, { timeout: 30_000 }, () => {
    const fixture = endpoint(role, { options: { compressionMode: 'context-takeover', ...plainEcho }, offer: 'permessage-deflate', answer: 'permessage-deflate' });
    before(() => fixture.start());
    after(() => fixture.stop());

    // With the default limit the bomb's compressed size alone refuses it; with a 16 MiB limit it is inflated up to the limit.
    for (const readLimit of [undefined, 16 * MiB]) {
      const limitName = readLimit === undefined ? 'the default 32 KiB read limit' : 'a 16 MiB read limit';
      it(`closes the bombed connection (${limitName}) with 1009 within a second, RSS grows < 64 MiB, a neighbour keeps echoing`, { timeout: 10_000 }, async () => {
        const bombed = await fixture.open(readLimit === undefined ? {} : { readLimit }, []);
        const neighbour = await fixture.open({}, []);
        try {
          const bombBytes = encodeAll([binary(gibBomb, { rsv1: true })], bombed.peer.clientSide);
          const helloFrames = framesOf(hello);
          const rssBefore = process.memoryUsage.rss();
          const start = performance.now();
          const sending = bombed.peer.send([bombBytes]);
          // Meanwhile the neighbour's compressed messages keep being decoded and echoed.
          for (let i = 1; i <= 5; i++) {
            await neighbour.peer.send(helloFrames);
            const frames = await neighbour.peer.receivedAtLeast(i);
            assert.equal(Buffer.from(frames[i - 1]!.payload).toString(), 'Hello');
          }
          await sending;
          const transcript = await bombed.peer.transcript(2000);
          const elapsed = performance.now() - start;
          assert.deepEqual(transcript.events, ['close 1009', 'eof']);
          const info = await bombed.conn.closed;
          assert.equal((info.error as { code?: number } | undefined)?.code, 1009);
          const grown = process.memoryUsage.rss() - rssBefore;
          assert.ok(elapsed < 1000, `the bombed connection took ${elapsed.toFixed(0)} ms to close`);
          assert.ok(grown < 64 * MiB, `RSS grew by ${(grown / MiB).toFixed(1)} MiB`);
          // The neighbour is still fine afterwards, and closes normally.
          await neighbour.peer.send([...framesOf(helloAgain), close(1000)]);
          const rest = await neighbour.peer.transcript(2000);
          assert.deepEqual(rest.events, [...Array(6).fill(want.text('Hello')), 'close 1000', 'eof']);
          assert.deepEqual(rest.violations, []);
        } finally {
          for (const s of [bombed, neighbour]) {
            s.peer.destroy();
            s.conn.closeNow();
          }
        }
      });
    }
  });
}

// --- negotiation with hand-written offers (wsconn as the server) ---

interface OfferCase {
  offer: string;
  mode: CompressionMode;
  /** The Sec-WebSocket-Extensions wsconn must answer, or undefined for none. */
  response: string | undefined;
  why: string;
}

const offers: OfferCase[] = [
  { why: 'skips an offer with an unknown parameter', offer: 'permessage-deflate; foo=1, permessage-deflate; client_max_window_bits=10', mode: 'context-takeover', response: 'permessage-deflate; client_max_window_bits=10' },
  { why: 'skips an offer with server_max_window_bits out of range (16)', offer: 'permessage-deflate; server_max_window_bits=16, permessage-deflate; server_max_window_bits=10', mode: 'context-takeover', response: 'permessage-deflate; server_max_window_bits=10' },
  { why: 'skips an offer with server_max_window_bits out of range (7)', offer: 'permessage-deflate; server_max_window_bits=7, permessage-deflate', mode: 'context-takeover', response: 'permessage-deflate' },
  { why: 'skips an offer with a duplicate parameter', offer: 'permessage-deflate; client_no_context_takeover; client_no_context_takeover, permessage-deflate; client_no_context_takeover', mode: 'context-takeover', response: 'permessage-deflate; client_no_context_takeover' },
  { why: 'skips an offer with server_max_window_bits without a value', offer: 'permessage-deflate; server_max_window_bits, permessage-deflate; server_no_context_takeover', mode: 'context-takeover', response: 'permessage-deflate; server_no_context_takeover' },
  { why: 'skips offers with a valued no_context_takeover and a leading zero', offer: 'permessage-deflate; server_no_context_takeover=1, permessage-deflate; server_max_window_bits=09, permessage-deflate; client_max_window_bits=9', mode: 'context-takeover', response: 'permessage-deflate; client_max_window_bits=9' },
  { why: 'skips other extensions and bad offers in no-context-takeover mode', offer: 'x-webkit-deflate-frame, permessage-deflate; foo, permessage-deflate; server_max_window_bits=8', mode: 'no-context-takeover', response: 'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8' },
  { why: 'declines when every offer is bad', offer: 'permessage-deflate; foo, permessage-deflate; server_max_window_bits=16, permessage-deflate; client_max_window_bits=0, permessage-deflate; client_no_context_takeover=yes', mode: 'context-takeover', response: undefined },
  { why: 'declines a lone offer with an unknown parameter in no-context-takeover mode', offer: 'permessage-deflate; foo', mode: 'no-context-takeover', response: undefined },
];

/** The parameters of one extension in a response, by name. */
function paramsOf(response: string): Map<string, string | true> {
  const params = new Map<string, string | true>();
  for (const part of response.split(';').slice(1)) {
    const [name, value] = part.split('=').map((s) => s.trim());
    params.set(name!.toLowerCase(), value === undefined ? true : value.replace(/^"|"$/g, ''));
  }
  return params;
}

describe('RFC 7692 §5: accept() declines bad offers and takes the next acceptable one', { timeout: 30_000 }, () => {
  const fixtures = new Map<string, ReturnType<typeof endpoint>>();
  for (const c of offers) {
    fixtures.set(c.offer, endpoint('server', { options: { compressionMode: c.mode, compressionThreshold: 0 }, offer: c.offer }));
  }
  before(() => Promise.all([...fixtures.values()].map((f) => f.start())));
  after(() => Promise.all([...fixtures.values()].map((f) => f.stop())));

  for (const c of offers) {
    it(`${c.why}: ${c.offer} → ${c.response ?? '(none)'}`, { timeout: 5000 }, () =>
      withSession(fixtures.get(c.offer)!, {}, async ({ peer, conn, handshake }) => {
        assert.equal(headerOf(handshake, 'sec-websocket-extensions'), c.response, 'the 101 response');
        assert.equal(conn.extensions, c.response ?? '');
        // It repeats "Hello": a compressor that kept its window would refer back to the first message.
        const plain = `Hello, plain text: ${'echo me '.repeat(40)}`;
        if (c.response === undefined) {
          // Not negotiated: messages flow uncompressed even with a threshold of 0, and RSV1 is a protocol error.
          await peer.send([text(plain)]);
          const [echo] = await peer.receivedAtLeast(1);
          assert.deepEqual([echo!.rsv, Buffer.from(echo!.payload).toString()], [0, plain]);
          await peer.send(framesOf(hello));
          const transcript = await peer.transcript(2000);
          assert.deepEqual(transcript.events, [want.text(plain), 'close 1002', 'eof']);
          return;
        }
        // Negotiated: wsconn decodes a compressed message and compresses its echoes with the agreed window.
        const params = paramsOf(c.response);
        const bits = Number(params.get('server_max_window_bits') ?? 15);
        const keeps = !params.has('server_no_context_takeover');
        await peer.send([...framesOf(helloStored), text(plain)]);
        const [first, second] = await peer.receivedAtLeast(2);
        assert.deepEqual([first!.rsv, second!.rsv], [4, 4], 'both echoes are compressed');
        const one = inflate(first!.payload, bits);
        const two = inflate(second!.payload, bits, keeps ? one : undefined);
        assert.deepEqual([one.toString(), two.toString()], ['Hello', plain]);
      }));
  }
});

// --- dial() against hand-written answers ---

/** What an AnsweringServer saw of one connection. */
interface Answered {
  request: string;
  socket: Socket;
  closed: Promise<unknown>;
  /** Resolves with the first `count` frames dial()'s Conn sent (unmasked). */
  frames(count: number): Promise<RawFrame[]>;
}

/** A raw HTTP server that answers each upgrade with a 101 carrying the next queued Sec-WebSocket-Extensions. */
class AnsweringServer {
  readonly #server: Server = createServer((socket) => this.#connection(socket));
  readonly #queue: Array<{ answer: string | undefined; seen: (value: Answered) => void }> = [];
  readonly #sockets = new Set<Socket>();
  port = 0;

  async start(): Promise<void> {
    this.#server.listen(0, '127.0.0.1');
    await once(this.#server, 'listening');
    this.port = (this.#server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    this.#server.close();
    await once(this.#server, 'close');
  }

  /** Queues the answer for the next connection; resolves with the request it got and its socket. */
  answer(answer: string | undefined): Promise<Answered> {
    return new Promise((seen) => this.#queue.push({ answer, seen }));
  }

  #connection(socket: Socket): void {
    this.#sockets.add(socket);
    const closed = once(socket, 'close');
    socket.once('close', () => this.#sockets.delete(socket));
    socket.on('error', () => {});
    const next = this.#queue.shift();
    if (next === undefined) return void socket.destroy();
    readHttpHead(socket).then(({ head, rest }) => {
      const key = headerOf(head, 'sec-websocket-key')!;
      const lines = next.answer === undefined ? [] : [`Sec-WebSocket-Extensions: ${next.answer}`];
      socket.write(withHeaders(switchingProtocols(key), lines));
      const parser = new FrameParser();
      const received: RawFrame[] = parser.push(rest);
      let wake: (() => void) | undefined;
      socket.on('data', (chunk: Buffer) => {
        received.push(...parser.push(chunk));
        wake?.();
      });
      socket.resume();
      const frames = async (count: number): Promise<RawFrame[]> => {
        while (received.length < count) await new Promise<void>((resolve) => (wake = resolve));
        return received.slice(0, count);
      };
      next.seen({ request: head, socket, closed, frames });
    }, () => socket.destroy());
  }
}

const badAnswers: Array<[string, CompressionMode, string]> = [
  ['an unknown parameter', 'context-takeover', 'permessage-deflate; foo'],
  ['server_max_window_bits out of range (16)', 'context-takeover', 'permessage-deflate; server_max_window_bits=16'],
  ['server_max_window_bits out of range (7)', 'context-takeover', 'permessage-deflate; server_max_window_bits=7'],
  ['a window size with a leading zero', 'context-takeover', 'permessage-deflate; client_max_window_bits=08'],
  ['client_max_window_bits without a value', 'context-takeover', 'permessage-deflate; client_max_window_bits'],
  ['server_max_window_bits without a value', 'context-takeover', 'permessage-deflate; server_max_window_bits'],
  ['a duplicate parameter', 'context-takeover', 'permessage-deflate; server_no_context_takeover; server_no_context_takeover'],
  ['a valued client_no_context_takeover', 'context-takeover', 'permessage-deflate; client_no_context_takeover=1'],
  ['two extensions', 'context-takeover', 'permessage-deflate, permessage-deflate'],
  ['permessage-deflate and an extension never offered', 'context-takeover', 'permessage-deflate; client_max_window_bits=10, x-foo'],
  ['an extension never offered', 'context-takeover', 'x-webkit-deflate-frame'],
  ['a malformed header', 'context-takeover', 'permessage-deflate;; server_no_context_takeover'],
  ['an extension when none was offered', 'disabled', 'permessage-deflate'],
  ['an unknown parameter in no-context-takeover mode', 'no-context-takeover', 'permessage-deflate; foo'],
];

const goodAnswers: Array<[string, CompressionMode, string]> = [
  ['the bare extension', 'context-takeover', 'permessage-deflate'],
  ['a window limit the client did not ask for', 'context-takeover', 'permessage-deflate; server_max_window_bits=10'],
  ['a quoted window limit', 'context-takeover', 'permessage-deflate; server_max_window_bits="10"'],
  ['a limit on the client window it offered to take', 'context-takeover', 'permessage-deflate; client_max_window_bits=9'],
  ['client_no_context_takeover, unasked', 'context-takeover', 'permessage-deflate; client_no_context_takeover'],
  ['names in upper case', 'context-takeover', 'PerMessage-Deflate; Server_No_Context_Takeover'],
  ['a server that keeps its window although asked to reset it', 'no-context-takeover', 'permessage-deflate'],
  ['the full no-context-takeover answer', 'no-context-takeover', 'permessage-deflate; server_no_context_takeover; client_no_context_takeover'],
];

describe('RFC 7692 §5: dial() checks the server\'s permessage-deflate answer', { timeout: 30_000 }, () => {
  const server = new AnsweringServer();
  before(() => server.start());
  after(async () => {
    await server.stop();
    await checkLeaks();
  });

  for (const [what, mode, answer] of badAnswers) {
    it(`fails with HandshakeError (status 101) and closes the socket for ${what}: ${answer}`, { timeout: 5000 }, async () => {
      const seen = server.answer(answer);
      const err: unknown = await dial(`ws://127.0.0.1:${server.port}/`, { compressionMode: mode, signal: AbortSignal.timeout(3000) }).then(
        (conn) => {
          conn.closeNow();
          return new Error(`dial() accepted ${answer}`);
        },
        (e: unknown) => e,
      );
      assert.ok(err instanceof HandshakeError, `expected a HandshakeError, got ${String(err)}`);
      assert.equal(err.status, 101);
      assert.equal(err.headers?.get('sec-websocket-extensions'), answer);
      const { request, closed } = await seen;
      assert.equal(headerOf(request, 'sec-websocket-extensions') === undefined, mode === 'disabled', 'an offer is sent unless disabled');
      await within(2000, closed, 'the raw server\'s socket to close');
    });
  }

  for (const [what, mode, answer] of goodAnswers) {
    it(`accepts ${what} (${mode}): ${answer}`, { timeout: 5000 }, async () => {
      const seen = server.answer(answer);
      const conn = await dial(`ws://127.0.0.1:${server.port}/`, { compressionMode: mode, signal: AbortSignal.timeout(3000) });
      try {
        assert.equal(conn.extensions, answer);
        const { request, socket } = await seen;
        assert.equal(
          headerOf(request, 'sec-websocket-extensions'),
          mode === 'context-takeover'
            ? 'permessage-deflate; client_max_window_bits'
            : 'permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits',
        );
        // A server that keeps its window may refer back (§7.2.3.2) unless it said it would not.
        const resets = /server_no_context_takeover/i.test(answer);
        socket.write(hex(resets ? hello + hello : hello + helloAgain));
        for (let i = 0; i < 2; i++) {
          const message = await conn.read({ signal: AbortSignal.timeout(2000) });
          assert.equal(Buffer.from(message.data).toString(), 'Hello');
        }
        // And wsconn compresses as agreed: it keeps its window unless the answer or its mode says otherwise.
        await conn.write(MessageType.Text, 'Hello', { compress: true });
        await conn.write(MessageType.Text, 'Hello', { compress: true });
        const clientResets = mode === 'no-context-takeover' || /client_no_context_takeover/i.test(answer);
        const sent = await within(2000, (await seen).frames(2), 'two frames from dial()');
        assert.deepEqual(payloads(sent), ['4 1 f248cdc9c90700', clientResets ? '4 1 f248cdc9c90700' : '4 1 f200110000']);
      } finally {
        conn.closeNow();
      }
    });
  }
});

function within<T>(ms: number, promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}
