// The pure protocol engine (src/protocol/engine.ts): bytes in, events and
// bytes out, no I/O. Tables of wire bytes grouped by RFC section, each run
// with the engine as the server (it receives masked frames) and as the
// client (it receives unmasked frames and masks its own with a fixed key).
// Frames the peer sends are built by test/helpers/raw.ts, which shares no
// code with wsconn.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { constants as zlibConstants, deflateRawSync } from 'node:zlib';
import { after, describe, it } from 'node:test';
import type { DeflateParams } from '../src/compress.js';
import { ClosedError, MessageTooBigError, ProtocolError } from '../src/errors.js';
import { Protocol, type ProtocolEvent, type ProtocolOptions } from '../src/protocol/engine.js';
import { hex, toHex } from './helpers/hex.js';
import { leakCheck } from './helpers/leak.js';
import { describeSeed, prng } from './helpers/prng.js';
import {
  binary,
  bytesOf,
  close,
  closeBody,
  concat,
  cont,
  encodeAll,
  FrameParser,
  Op,
  ping,
  pong,
  testMaskKey,
  text,
  type FrameSpec,
  type RawFrame,
  type Sendable,
} from './helpers/raw.js';

const checkLeaks = leakCheck();
after(() => checkLeaks());

type Role = 'server' | 'client';
const roles: readonly Role[] = ['server', 'client'];

/** The engine in `role`; as a client it masks every frame with 37 fa 21 3d (RFC 6455 §5.7). */
function engine(role: Role, options: Omit<ProtocolOptions, 'client'> = {}): Protocol {
  return new Protocol({ client: role === 'client', maskKey: () => testMaskKey, ...options });
}

/** What the peer of an engine in `role` puts on the wire for `items`: masked when the engine is the server. */
function fromPeer(role: Role, items: readonly Sendable[]): Uint8Array {
  return encodeAll(items, role === 'server');
}

/** An event as plain data, for deepEqual and readable failures. */
type Seen =
  | { kind: 'data'; type: 1 | 2; data: string; start: boolean; fin: boolean }
  | { kind: 'ping' | 'pong'; payload: string }
  | { kind: 'close'; code: number; reason: string }
  | { kind: 'fail'; code: number; error: string };

function seen(event: ProtocolEvent): Seen {
  switch (event.kind) {
    case 'data':
      return { kind: 'data', type: event.type, data: toHex(event.data), start: event.start, fin: event.fin };
    case 'ping':
    case 'pong':
      return { kind: event.kind, payload: toHex(event.payload) };
    case 'close':
      return { kind: 'close', code: event.code, reason: event.reason };
    case 'fail':
      return { kind: 'fail', code: event.error.code, error: event.error.name };
  }
}

/** Feeds `pieces` one after the other (copies: the engine unmasks in place) and returns every event they made. */
function events(p: Protocol, ...pieces: Uint8Array[]): ProtocolEvent[] {
  const out: ProtocolEvent[] = [];
  for (const piece of pieces) {
    p.receive(piece.slice());
    for (let event = p.next(); event !== undefined; event = p.next()) out.push(event);
  }
  return out;
}

/** The events `pieces` make, as plain data. */
function feed(p: Protocol, ...pieces: Uint8Array[]): Seen[] {
  return events(p, ...pieces).map(seen);
}

const data = (type: 1 | 2, payload: Uint8Array | string, start = true, fin = true): Seen => ({
  kind: 'data',
  type,
  data: toHex(bytesOf(payload)),
  start,
  fin,
});
const failure = (code: number, error = code === 1009 ? 'MessageTooBigError' : 'ProtocolError'): Seen => ({ kind: 'fail', code, error });

/** Byte-for-byte equality that prints short buffers as hex and does not care whether either is a Buffer. */
function sameBytes(actual: Uint8Array | undefined, expected: Uint8Array, message?: string): void {
  assert.ok(actual !== undefined, message ?? 'expected bytes, got undefined');
  if (actual.length <= 256 && expected.length <= 256) return assert.equal(toHex(actual), toHex(expected), message);
  assert.equal(actual.length, expected.length, message);
  assert.ok(Buffer.from(actual.buffer, actual.byteOffset, actual.length).equals(expected), message ?? 'the bytes differ');
}

/** A message's bytes in a few words: hex when short, length and digest when long. */
function describeBytes(bytes: Uint8Array): string {
  if (bytes.length <= 64) return toHex(bytes);
  return `${bytes.length} bytes sha1:${createHash('sha1').update(bytes).digest('hex').slice(0, 12)}`;
}

/**
 * Events reduced to what does not depend on how the input was split:
 * data pieces joined into whole messages, other events as plain data.
 */
function messages(list: readonly ProtocolEvent[]): string[] {
  const out: string[] = [];
  let parts: Uint8Array[] | undefined;
  for (const e of list) {
    if (e.kind !== 'data') {
      out.push(JSON.stringify(seen(e)));
      continue;
    }
    if (e.start) parts = [];
    assert.ok(parts !== undefined, 'a data piece without a start before it');
    parts.push(e.data);
    if (e.fin) {
      out.push(`${e.type === 1 ? 'text' : 'binary'} ${describeBytes(concat(parts))}`);
      parts = undefined;
    }
  }
  return out;
}

/** The one frame in `bytes` (a close reply, say), parsed by the independent parser. */
function oneFrame(bytes: Uint8Array | undefined): RawFrame {
  assert.ok(bytes !== undefined, 'expected a frame, got none');
  const frames = new FrameParser().push(bytes);
  assert.equal(frames.length, 1, `expected one frame in ${toHex(bytes)}`);
  return frames[0]!;
}

/** The status code of a close frame the engine made, checking it is masked exactly when the engine is a client. */
function closeCodeOf(role: Role, bytes: Uint8Array | undefined): number | undefined {
  const frame = oneFrame(bytes);
  assert.equal(frame.opcode, Op.Close);
  assert.equal(frame.masked, role === 'client', 'a client masks its close frame, a server does not');
  return frame.payload.length >= 2 ? (frame.payload[0]! << 8) | frame.payload[1]! : undefined;
}

/** `payload` XORed with 37 fa 21 3d, computed here byte by byte. */
function masked(payload: Uint8Array): Uint8Array {
  return payload.map((byte, i) => byte ^ testMaskKey[i % 4]!);
}

function pattern(n: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 7 + 3) & 0xff);
}

// --- RFC 6455 §5.7: the examples, both ways ---

const payload256 = pattern(256);
const payload64k = pattern(65536);

/** The §5.7 examples: what a server sends (unmasked), what a client sends (masked with 37 fa 21 3d), and the events. */
const examples: Array<{ name: string; fromServer: Uint8Array; fromClient: Uint8Array; events: Seen[] }> = [
  {
    name: 'a single-frame text message "Hello"',
    fromServer: hex('81 05 48 65 6c 6c 6f'),
    fromClient: hex('81 85 37 fa 21 3d 7f 9f 4d 51 58'),
    events: [data(1, 'Hello')],
  },
  {
    name: 'a fragmented text message "Hel" + "lo"',
    fromServer: hex('01 03 48 65 6c 80 02 6c 6f'),
    fromClient: hex('01 83 37 fa 21 3d 7f 9f 4d 80 82 37 fa 21 3d 5b 95'),
    events: [data(1, 'Hel', true, false), data(1, 'lo', false, true)],
  },
  {
    name: 'a ping "Hello"',
    fromServer: hex('89 05 48 65 6c 6c 6f'),
    fromClient: hex('89 85 37 fa 21 3d 7f 9f 4d 51 58'),
    events: [{ kind: 'ping', payload: toHex(bytesOf('Hello')) }],
  },
  {
    name: 'a pong "Hello"',
    fromServer: hex('8a 05 48 65 6c 6c 6f'),
    fromClient: hex('8a 85 37 fa 21 3d 7f 9f 4d 51 58'),
    events: [{ kind: 'pong', payload: toHex(bytesOf('Hello')) }],
  },
  {
    name: 'a 256-byte binary message (16-bit length)',
    fromServer: concat([hex('82 7e 01 00'), payload256]),
    fromClient: concat([hex('82 fe 01 00 37 fa 21 3d'), masked(payload256)]),
    events: [data(2, payload256)],
  },
  {
    name: 'a 64 KiB binary message (64-bit length)',
    fromServer: concat([hex('82 7f 00 00 00 00 00 01 00 00'), payload64k]),
    fromClient: concat([hex('82 ff 00 00 00 00 00 01 00 00 37 fa 21 3d'), masked(payload64k)]),
    events: [data(2, payload64k)],
  },
];

/** The bytes the engine in `role` receives for an example (what its peer sends). */
const receivedBy = (role: Role, e: (typeof examples)[number]): Uint8Array => (role === 'server' ? e.fromClient : e.fromServer);
/** The bytes the engine in `role` must send for an example. */
const sentBy = (role: Role, e: (typeof examples)[number]): Uint8Array => (role === 'server' ? e.fromServer : e.fromClient);

for (const role of roles) {
  describe(`RFC 6455 §5.7 examples, the engine as the ${role}`, { timeout: 10_000 }, () => {
    for (const e of examples) {
      it(`decodes ${e.name}`, { timeout: 2000 }, () => {
        assert.deepEqual(feed(engine(role), receivedBy(role, e)), e.events);
      });
    }

    it('encodes "Hello" byte for byte', { timeout: 1000 }, () => {
      assert.equal(toHex(engine(role).encodeMessage(1, 'Hello')), toHex(sentBy(role, examples[0]!)));
      assert.equal(toHex(engine(role).encodeMessage(1, bytesOf('Hello'))), toHex(sentBy(role, examples[0]!)));
    });

    it('encodes "Hel" + "lo" as two fragments byte for byte', { timeout: 1000 }, () => {
      const p = engine(role);
      const frames = [p.encodeFragment(1, bytesOf('Hel'), false, false), p.encodeFragment(1, bytesOf('lo'), true, false)];
      assert.equal(toHex(concat(frames)), toHex(sentBy(role, examples[1]!)));
      assert.equal(p.sendingFragments, false);
    });

    it('encodes a ping and a pong "Hello" byte for byte', { timeout: 1000 }, () => {
      assert.equal(toHex(engine(role).encodeControl(0x9, 'Hello')), toHex(sentBy(role, examples[2]!)));
      assert.equal(toHex(engine(role).encodeControl(0xa, bytesOf('Hello'))), toHex(sentBy(role, examples[3]!)));
    });

    it('encodes 256 bytes with a 16-bit length and 64 KiB with a 64-bit length, byte for byte', { timeout: 2000 }, () => {
      sameBytes(engine(role).encodeMessage(2, payload256), sentBy(role, examples[4]!));
      sameBytes(engine(role).encodeMessage(2, payload64k), sentBy(role, examples[5]!));
    });

    it('refuses a ping over 125 bytes (RFC 6455 §5.5)', { timeout: 1000 }, () => {
      assert.throws(() => engine(role).encodeControl(0x9, new Uint8Array(126)), RangeError);
      assert.equal(engine(role).encodeControl(0x9, new Uint8Array(125)).length, role === 'client' ? 131 : 127);
    });
  });
}

// --- RFC 6455 §5.2, §5.4, §5.5: a bad header fails as soon as the byte that makes it bad arrives ---

/** Frames that are bad from their first byte: [what, first byte]. */
const badFirstByte: Array<[string, number]> = [
  ['RSV1 without a negotiated extension (RFC 6455 §5.2)', 0xc1],
  ['RSV2 (RFC 6455 §5.2)', 0xa1],
  ['RSV3 (RFC 6455 §5.2)', 0x91],
  ['all three RSV bits on a binary frame (RFC 6455 §5.2)', 0xf2],
  ...[3, 4, 5, 6, 7].map((op): [string, number] => [`reserved data opcode ${op} (RFC 6455 §5.2)`, 0x80 | op]),
  ...[0xb, 0xc, 0xd, 0xe, 0xf].map((op): [string, number] => [`reserved control opcode 0x${op.toString(16)} (RFC 6455 §5.2)`, 0x80 | op]),
  ['a fragmented close frame (RFC 6455 §5.5)', 0x08],
  ['a fragmented ping (RFC 6455 §5.5)', 0x09],
  ['a fragmented pong (RFC 6455 §5.5)', 0x0a],
  ['a continuation frame with no message to continue, FIN set (RFC 6455 §5.4)', 0x80],
  ['a continuation frame with no message to continue, FIN clear (RFC 6455 §5.4)', 0x00],
];

/** Frames that turn bad at their first byte only after a fragment started a message: [what, first byte]. */
const badInsideMessage: Array<[string, number]> = [
  ['a new text frame inside a fragmented message (RFC 6455 §5.4)', 0x81],
  ['a new binary frame, FIN clear, inside a fragmented message (RFC 6455 §5.4)', 0x02],
  ['RSV1 on a continuation frame without an extension (RFC 6455 §5.2)', 0xc0],
];

/** Checks that `p` failed with `code`: later input is ignored and `closeReply()` carries the code once. */
function assertFailed(role: Role, p: Protocol, code: number): void {
  assert.equal(p.failure?.code, code);
  assert.equal(p.inputDone, true);
  p.receive(fromPeer(role, [text('ignored'), ping('ignored')]));
  assert.equal(p.next(), undefined, 'input after a failure is ignored');
  assert.equal(p.buffered, 0, 'and not kept');
  assert.equal(closeCodeOf(role, p.closeReply()), code);
  assert.equal(p.closeReply(), undefined, 'one close frame only');
  assert.equal(p.closeSent, true);
}

for (const role of roles) {
  describe(`RFC 6455 §5.2 header checks fail fast, the engine as the ${role}`, { timeout: 10_000 }, () => {
    for (const [what, b0] of badFirstByte) {
      it(`fails with 1002 on the first byte (${b0.toString(16).padStart(2, '0')}) of ${what}`, { timeout: 1000 }, () => {
        const p = engine(role);
        assert.deepEqual(feed(p, Uint8Array.of(b0)), [failure(1002)]);
        assertFailed(role, p, 1002);
      });
    }

    for (const [what, b0] of badInsideMessage) {
      it(`fails with 1002 on the first byte (${b0.toString(16).padStart(2, '0')}) of ${what}`, { timeout: 1000 }, () => {
        const p = engine(role);
        assert.deepEqual(feed(p, fromPeer(role, [text('Hel', { fin: false })])), [data(1, 'Hel', true, false)]);
        assert.equal(p.inMessage, true);
        assert.deepEqual(feed(p, Uint8Array.of(b0)), [failure(1002)]);
        assertFailed(role, p, 1002);
      });
    }

    const wrongMask = role === 'server' ? 0x05 : 0x85;
    it(`fails with 1002 on the second byte (${wrongMask.toString(16)}) when the mask bit is wrong for a ${role} (RFC 6455 §5.1)`, { timeout: 1000 }, () => {
      const p = engine(role);
      assert.deepEqual(feed(p, Uint8Array.of(0x81)), [], 'the first byte alone is fine');
      assert.deepEqual(feed(p, Uint8Array.of(wrongMask)), [failure(1002)]);
      assertFailed(role, p, 1002);
    });

    const maskBit = role === 'server' ? 0x80 : 0;
    for (const [b0, b1] of [[0x89, 126], [0x8a, 127], [0x88, 126]] as const) {
      it(`fails with 1002 on the second byte of a control frame (${b0.toString(16)}) declaring length ${b1} > 125 (RFC 6455 §5.5)`, { timeout: 1000 }, () => {
        const p = engine(role);
        assert.deepEqual(feed(p, Uint8Array.of(b0)), []);
        assert.deepEqual(feed(p, Uint8Array.of(maskBit | b1)), [failure(1002)]);
        assertFailed(role, p, 1002);
      });
    }

    it('fails with 1002 on the garbage ff ff de ad be ef 13 37 00 42 and replies with a close frame carrying 1002', { timeout: 1000 }, () => {
      const p = engine(role);
      assert.deepEqual(feed(p, hex('ff ff de ad be ef 13 37 00 42')), [failure(1002)]);
      assertFailed(role, p, 1002);
    });

    it('fails with 1002 on a 64-bit length with its most significant bit set, before any payload (RFC 6455 §5.2)', { timeout: 1000 }, () => {
      const p = engine(role);
      assert.deepEqual(feed(p, Uint8Array.of(0x82, maskBit | 127, 0x80, 0, 0, 0, 0, 0, 0)), [], 'nine bytes do not hold the length yet');
      assert.deepEqual(feed(p, Uint8Array.of(0x05)), [failure(1002)]);
      assertFailed(role, p, 1002);
    });

    it('fails with 1009 on a 64-bit length past 2^53 - 1 even without a read limit', { timeout: 1000 }, () => {
      const p = engine(role, { readLimit: Infinity });
      assert.deepEqual(feed(p, Uint8Array.of(0x82, maskBit | 127, 0x00, 0x20, 0, 0, 0, 0, 0, 0)), [failure(1009, 'ProtocolError')]);
      assertFailed(role, p, 1009);
    });
  });
}

// --- RFC 6455 §10.4: the read limit, checked against declared lengths ---

for (const role of roles) {
  describe(`RFC 6455 §10.4 the read limit, the engine as the ${role}`, { timeout: 10_000 }, () => {
    const maskBit = role === 'server' ? 0x80 : 0;

    it('fails with 1009 as soon as the length bytes declare 1001 bytes over a 1000-byte limit, before the mask key or payload', { timeout: 1000 }, () => {
      const p = engine(role, { readLimit: 1000 });
      const got = feed(p, Uint8Array.of(0x82, maskBit | 126, 0x03, 0xe9));
      assert.deepEqual(got, [failure(1009)]);
      assert.ok(p.failure instanceof MessageTooBigError);
      assert.equal(p.failure.limit, 1000);
      assertFailed(role, p, 1009);
    });

    it('admits a message of exactly the limit', { timeout: 1000 }, () => {
      const p = engine(role, { readLimit: 1000 });
      assert.deepEqual(messages(events(p, fromPeer(role, [binary(pattern(1000))]))), [`binary ${describeBytes(pattern(1000))}`]);
    });

    it('fails with 1009 at the header of the fragment that takes the message past the limit', { timeout: 1000 }, () => {
      const p = engine(role, { readLimit: 1000 });
      const first = fromPeer(role, [binary(pattern(600), { fin: false })]);
      const second = fromPeer(role, [cont(new Uint8Array(0), { declaredLength: 401 })]);
      assert.deepEqual(feed(p, first), [data(2, pattern(600), true, false)]);
      // 401 takes the 16-bit form: the fourth byte completes the length, and the check.
      assert.deepEqual(feed(p, second.subarray(0, 3)), []);
      assert.deepEqual(feed(p, second.subarray(3, 4)), [failure(1009)]);
      assertFailed(role, p, 1009);
    });

    it('does not count control frames: a 125-byte ping passes a 10-byte limit', { timeout: 1000 }, () => {
      const p = engine(role, { readLimit: 10 });
      assert.deepEqual(feed(p, fromPeer(role, [ping(pattern(125))])), [{ kind: 'ping', payload: toHex(pattern(125)) }]);
    });
  });
}

// --- RFC 6455 §5.6, §8.1: UTF-8 ---

for (const role of roles) {
  describe(`RFC 6455 §8.1 text must be UTF-8, the engine as the ${role}`, { timeout: 10_000 }, () => {
    it('fails with 1007 on invalid UTF-8 in the first fragment, before the final fragment arrives', { timeout: 1000 }, () => {
      const p = engine(role);
      assert.deepEqual(feed(p, fromPeer(role, [text(hex('48 69 ff'), { fin: false })])), [failure(1007)]);
      assertFailed(role, p, 1007);
    });

    it('fails with 1007 at the bad byte even when the frame is only half in', { timeout: 1000 }, () => {
      const p = engine(role);
      const frame = fromPeer(role, [text(hex('48 69 c0 af 21 21'))]);
      const cut = frame.length - 4; // the header and "Hi" arrive first
      assert.deepEqual(feed(p, frame.subarray(0, cut)), [data(1, 'Hi', true, false)]);
      assert.deepEqual(feed(p, frame.subarray(cut, cut + 1)), [failure(1007)]);
      assertFailed(role, p, 1007);
    });

    it('fails with 1007 on a text message that ends inside a UTF-8 sequence', { timeout: 1000 }, () => {
      const p = engine(role);
      assert.deepEqual(feed(p, fromPeer(role, [text(hex('61 e2 82'))])), [failure(1007)]);
      assertFailed(role, p, 1007);
    });

    it('fails with 1007 on a fragmented text message whose last fragment ends inside a sequence', { timeout: 1000 }, () => {
      const p = engine(role);
      const got = feed(p, fromPeer(role, [text('a', { fin: false }), cont(hex('e2 82'))]));
      assert.deepEqual(got, [data(1, 'a', true, false), failure(1007)]);
    });

    it('accepts a character split across fragments ("€" as e2 | 82 ac)', { timeout: 1000 }, () => {
      const p = engine(role);
      assert.deepEqual(messages(events(p, fromPeer(role, [text(hex('61 e2'), { fin: false }), cont(hex('82 ac'))]))), ['text 61 e2 82 ac']);
    });

    it('does not check binary messages', { timeout: 1000 }, () => {
      const p = engine(role);
      assert.deepEqual(feed(p, fromPeer(role, [binary(hex('ff e2 82'))])), [data(2, hex('ff e2 82'))]);
    });
  });
}

// --- RFC 6455 §5.2: how the input is split does not matter ---

/** A stream touching every header form and event kind, ending in a close frame. */
const stream: FrameSpec[] = [
  text('Hello'),
  text(hex('ce ba e1'), { fin: false }),
  ping('between'),
  cont(hex('bd b9 cf 83'), { fin: false }),
  pong(''),
  cont(hex('ce bc ce b5')),
  binary(pattern(300)),
  text(''),
  binary(pattern(70_000)),
  close(1001, 'bye'),
];

/** A stream that fails: valid frames, then invalid UTF-8 inside a fragmented message. */
const failingStream: FrameSpec[] = [text('ok'), binary(pattern(130), { fin: false }), ping('p'), cont(pattern(5)), text(hex('41 42 f8 88 80 80 80'), { fin: false })];

/** `bytes` fed in the pieces that end at `cuts`. */
function split(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    pieces.push(bytes.subarray(from, cut));
    from = cut;
  }
  return pieces;
}

/**
 * The cut points to try: every byte boundary, except inside the long
 * payload of the 70 000-byte frame (from `longFrom` on, for `longLength`
 * bytes), where every `stride`-th will do.
 */
function cutPoints(length: number, longFrom: number, longLength: number, stride: number): number[] {
  const cuts: number[] = [];
  for (let at = 1; at < length; at += at > longFrom + 16 && at < longFrom + longLength ? stride : 1) cuts.push(at);
  return cuts;
}

for (const role of roles) {
  describe(`RFC 6455 §5.2 input split anywhere gives the same events, the engine as the ${role}`, { timeout: 60_000 }, () => {
    const streams = [
      { name: 'a valid stream', frames: stream, last: { kind: 'close', code: 1001, reason: 'bye' } as Seen, count: 8 },
      { name: 'a failing stream', frames: failingStream, last: failure(1007), count: 4 },
    ];
    for (const { name, frames, last, count } of streams) {
      const bytes = fromPeer(role, frames);
      const longAt = frames.findIndex((f) => (f.payload?.length ?? 0) > 65_535);
      const longFrom = longAt === -1 ? bytes.length : fromPeer(role, frames.slice(0, longAt)).length;
      const longLength = longAt === -1 ? 0 : 70_000;
      const whole = (): string[] => messages(events(engine(role), bytes));

      it(`${name}: fed whole, it gives the expected events`, { timeout: 1000 }, () => {
        const got = whole();
        assert.equal(got.length, count, got.join('\n'));
        assert.deepEqual(JSON.parse(got.at(-1)!), last);
      });

      it(`${name}: split in two at every byte boundary (every 61st inside the 70 000-byte payload)`, { timeout: 30_000 }, () => {
        const expected = whole();
        for (const cut of cutPoints(bytes.length, longFrom, longLength, 61)) {
          assert.deepEqual(messages(events(engine(role), ...split(bytes, [cut]))), expected, `split at byte ${cut}`);
        }
      });

      it(`${name}: one byte at a time (the 70 000-byte payload in 1 KiB pieces)`, { timeout: 30_000 }, () => {
        assert.deepEqual(messages(events(engine(role), ...split(bytes, cutPoints(bytes.length, longFrom, longLength, 1024)))), whole());
      });

      it(`${name}: split at random points, 200 times`, { timeout: 30_000 }, () => {
        const expected = whole();
        const rng = prng();
        for (let run = 0; run < 200; run++) {
          const cuts = [...new Set(Array.from({ length: 1 + rng.int(40) }, () => 1 + rng.int(bytes.length - 1)))].sort((a, b) => a - b);
          assert.deepEqual(messages(events(engine(role), ...split(bytes, cuts))), expected, `cuts at ${cuts.join(', ')}; ${describeSeed(rng)}`);
        }
      });
    }
  });
}

// --- RFC 6455 §5.4, §5.5: control frames in the middle of a message ---

for (const role of roles) {
  describe(`RFC 6455 §5.4 control frames between fragments, the engine as the ${role}`, { timeout: 10_000 }, () => {
    it('delivers pings and pongs between the fragments in order, and the message whole', { timeout: 1000 }, () => {
      const p = engine(role);
      const got = feed(p, fromPeer(role, [text('Hel', { fin: false }), ping('1'), pong('2'), cont('l', { fin: false }), ping('3'), cont('o')]));
      assert.deepEqual(got, [
        data(1, 'Hel', true, false),
        { kind: 'ping', payload: toHex(bytesOf('1')) },
        { kind: 'pong', payload: toHex(bytesOf('2')) },
        data(1, 'l', false, false),
        { kind: 'ping', payload: toHex(bytesOf('3')) },
        data(1, 'o', false, true),
      ]);
      assert.equal(p.inMessage, false);
    });

    it('a pong can be sent while a message is arriving', { timeout: 1000 }, () => {
      const p = engine(role);
      feed(p, fromPeer(role, [binary('ab', { fin: false }), ping('x')]));
      const pongFrame = oneFrame(p.encodeControl(0xa, bytesOf('x')));
      assert.deepEqual([pongFrame.opcode, Buffer.from(pongFrame.payload).toString()], [Op.Pong, 'x']);
      assert.deepEqual(feed(p, fromPeer(role, [cont('cd')])), [data(2, 'cd', false, true)]);
    });

    it('a close frame between fragments ends the input; the message stays unfinished', { timeout: 1000 }, () => {
      const p = engine(role);
      const got = feed(p, fromPeer(role, [text('never', { fin: false }), close(1000), cont('finished')]));
      assert.deepEqual(got, [data(1, 'never', true, false), { kind: 'close', code: 1000, reason: '' }]);
      assert.equal(closeCodeOf(role, p.closeReply()), 1000);
    });
  });
}

// --- RFC 6455 §5.5.1, §7: the close state machine ---

const invalidCodes = [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535];

for (const role of roles) {
  describe(`RFC 6455 §5.5.1/§7 the close handshake, the engine as the ${role}`, { timeout: 10_000 }, () => {
    it('reports the peer\'s close frame, and closeReply() echoes its code once', { timeout: 1000 }, () => {
      const p = engine(role);
      assert.deepEqual(feed(p, fromPeer(role, [close(4001, 'done here')])), [{ kind: 'close', code: 4001, reason: 'done here' }]);
      assert.deepEqual(p.closeReceived, { code: 4001, reason: 'done here' });
      assert.equal(p.inputDone, true);
      assert.equal(p.closeSent, false, 'answering is up to the caller');
      const reply = oneFrame(p.closeReply());
      assert.deepEqual([reply.opcode, reply.masked, toHex(reply.payload)], [Op.Close, role === 'client', toHex(closeBody(4001))]);
      assert.equal(p.closeSent, true);
      assert.equal(p.closeReply(), undefined);
      assert.equal(p.failure, undefined);
    });

    it('answers a close frame without a status with one without a status (reported as 1005)', { timeout: 1000 }, () => {
      const p = engine(role);
      assert.deepEqual(feed(p, fromPeer(role, [close()])), [{ kind: 'close', code: 1005, reason: '' }]);
      const expected = role === 'client' ? hex('88 80 37 fa 21 3d') : hex('88 00');
      assert.equal(toHex(p.closeReply()!), toHex(expected));
    });

    it('has no reply when this end sent its close frame first', { timeout: 1000 }, () => {
      const p = engine(role);
      assert.equal(closeCodeOf(role, p.encodeClose(1001, 'going away')), 1001);
      assert.equal(p.closeSent, true);
      assert.deepEqual(feed(p, fromPeer(role, [text('still arriving'), close(1001)])), [data(1, 'still arriving'), { kind: 'close', code: 1001, reason: '' }]);
      assert.equal(p.closeReply(), undefined);
      assert.equal(p.encodeClose(1000, ''), undefined, 'a second close frame is never made');
    });

    it('refuses to encode anything after its close frame (ClosedError)', { timeout: 1000 }, () => {
      const p = engine(role);
      p.encodeClose(1000, '');
      assert.throws(() => p.encodeMessage(1, 'late'), ClosedError);
      assert.throws(() => p.encodeMessage(2, new Uint8Array(3)), ClosedError);
      assert.throws(() => p.encodeControl(0x9, ''), ClosedError);
      assert.throws(() => p.encodeControl(0xa, 'pong'), ClosedError);
      assert.throws(() => p.encodeFragment(1, new Uint8Array(1), true, false), ClosedError);
    });

    it('refuses to encode after the close reply was taken (ClosedError)', { timeout: 1000 }, () => {
      const p = engine(role);
      feed(p, fromPeer(role, [close(1000)]));
      assert.ok(p.closeReply() !== undefined);
      assert.throws(() => p.encodeMessage(1, 'late'), ClosedError);
      assert.throws(() => p.encodeControl(0xa, ''), ClosedError);
    });

    it('ignores everything after the close frame, in the same read and later', { timeout: 1000 }, () => {
      const p = engine(role);
      const after = concat([fromPeer(role, [close(1000), text('after'), ping('after')]), hex('ff ff ff ff')]);
      assert.deepEqual(feed(p, after), [{ kind: 'close', code: 1000, reason: '' }]);
      assert.equal(p.buffered, 0);
      assert.deepEqual(feed(p, fromPeer(role, [close(1001), text('later')]), hex('00 11 22')), []);
      assert.equal(p.buffered, 0);
      assert.deepEqual(p.closeReceived, { code: 1000, reason: '' });
    });

    it('fails with 1002 on a close frame with a 1-byte payload', { timeout: 1000 }, () => {
      const p = engine(role);
      assert.deepEqual(feed(p, fromPeer(role, [{ opcode: Op.Close, payload: hex('03') }])), [failure(1002)]);
      assert.equal(p.closeReceived, undefined);
      assertFailed(role, p, 1002);
    });

    for (const code of invalidCodes) {
      it(`fails with 1002 on close code ${code}, which may not be sent (RFC 6455 §7.4)`, { timeout: 1000 }, () => {
        const p = engine(role);
        assert.deepEqual(feed(p, fromPeer(role, [close(code)])), [failure(1002)]);
        assertFailed(role, p, 1002);
      });
    }

    it('fails with 1007 on a close reason that is not UTF-8', { timeout: 1000 }, () => {
      const p = engine(role);
      assert.deepEqual(feed(p, fromPeer(role, [close(1000, hex('62 79 65 ed a0 80'))])), [failure(1007)]);
      assertFailed(role, p, 1007);
    });

    it('fail() for a reason of its own stops the input and replies with that code', { timeout: 1000 }, () => {
      const p = engine(role);
      p.fail(new ProtocolError(1008, 'policy'));
      assert.equal(p.next(), undefined);
      assertFailed(role, p, 1008);
    });

    it('fail() after this end\'s close frame has no reply', { timeout: 1000 }, () => {
      const p = engine(role);
      p.encodeClose(1000, '');
      p.fail(new ProtocolError(1002, 'late'));
      assert.equal(p.closeReply(), undefined);
      assert.equal(p.inputDone, true);
    });
  });
}

// --- RFC 7692: permessage-deflate ---

const takeover: DeflateParams = { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 };
const noTakeover: DeflateParams = { ...takeover, serverNoContextTakeover: true, clientNoContextTakeover: true };

/** RFC 7692 §7.2.3.1 and §7.2.3.2: the payloads of "Hello" compressed, alone and after a first "Hello". */
const helloDeflated = hex('f2 48 cd c9 c9 07 00');
const helloAgainDeflated = hex('f2 00 11 00 00');

for (const role of roles) {
  describe(`RFC 7692 permessage-deflate, the engine as the ${role}`, { timeout: 10_000 }, () => {
    const compressed = (payload: Uint8Array, more: Partial<FrameSpec> = {}): FrameSpec => text(payload, { rsv1: true, ...more });

    it('decodes "Hello" compressed in one frame (c1 07 f2 48 cd c9 c9 07 00, §7.2.3.1)', { timeout: 1000 }, () => {
      const p = engine(role, { deflate: takeover });
      if (role === 'client') sameBytes(fromPeer(role, [compressed(helloDeflated)]), hex('c1 07 f2 48 cd c9 c9 07 00'));
      assert.deepEqual(feed(p, fromPeer(role, [compressed(helloDeflated)])), [data(1, 'Hello')]);
    });

    it('decodes the same message twice with the window kept (c1 05 f2 00 11 00 00, §7.2.3.2)', { timeout: 1000 }, () => {
      const p = engine(role, { deflate: takeover });
      const got = feed(p, fromPeer(role, [compressed(helloDeflated), compressed(helloAgainDeflated)]));
      assert.deepEqual(got, [data(1, 'Hello'), data(1, 'Hello')]);
    });

    it('fails with 1007 when the peer refers back after agreeing to reset its window', { timeout: 1000 }, () => {
      const p = engine(role, { deflate: noTakeover });
      const got = feed(p, fromPeer(role, [compressed(helloDeflated), compressed(helloAgainDeflated)]));
      assert.deepEqual(got, [data(1, 'Hello'), failure(1007)]);
    });

    it('decodes a compressed message split over fragments (41 03 f2 48 cd, 80 04 c9 c9 07 00, §7.2.3.1)', { timeout: 1000 }, () => {
      const p = engine(role, { deflate: takeover });
      const frames = [compressed(helloDeflated.subarray(0, 3), { fin: false }), cont(helloDeflated.subarray(3))];
      if (role === 'client') sameBytes(fromPeer(role, frames), hex('41 03 f2 48 cd 80 04 c9 c9 07 00'));
      assert.deepEqual(messages(events(p, fromPeer(role, frames))), [`text ${toHex(bytesOf('Hello'))}`]);
    });

    it('decodes a compressed message in 1-byte fragments with a ping in between', { timeout: 1000 }, () => {
      const p = engine(role, { deflate: takeover });
      const frames: FrameSpec[] = Array.from(helloDeflated, (_, i) =>
        i === 0 ? compressed(helloDeflated.subarray(0, 1), { fin: false }) : cont(helloDeflated.subarray(i, i + 1), { fin: i === helloDeflated.length - 1 }),
      );
      frames.splice(3, 0, ping('mid'));
      assert.deepEqual(messages(events(p, fromPeer(role, frames))), [JSON.stringify({ kind: 'ping', payload: toHex(bytesOf('mid')) }), `text ${toHex(bytesOf('Hello'))}`]);
    });

    it('goes on through a compressed fragment whose payload arrived in several pieces (none of it reported)', { timeout: 1000 }, () => {
      // Regression: next() returned undefined after consuming such a piece, so a
      // caller that stops at undefined stalled with the rest of the input unread.
      const p = engine(role, { deflate: takeover });
      const plain = Uint8Array.from({ length: 20_000 }, (_, i) => (i * 2654435761) >>> 24);
      const deflated = deflateRawSync(plain, { finishFlush: zlibConstants.Z_SYNC_FLUSH });
      const body = deflated.subarray(0, deflated.length - 4); // RFC 7692 §7.2.1: without 00 00 ff ff
      const first = fromPeer(role, [binary(body.subarray(0, 100), { rsv1: true, fin: false })]);
      const rest = fromPeer(role, [cont(body.subarray(100))]);
      const cut = rest.length >> 1;
      p.receive(first.slice());
      p.receive(rest.slice(0, cut));
      p.receive(rest.slice(cut));
      const got: ProtocolEvent[] = [];
      for (let event = p.next(); event !== undefined; event = p.next()) got.push(event);
      const joined = Buffer.concat(got.filter((e) => e.kind === 'data').map((e) => e.data));
      const last = got.at(-1);
      assert.ok(last?.kind === 'data' && last.fin, `the message did not end: ${JSON.stringify(got.map(seen))}`);
      assert.ok(joined.equals(plain), 'the message came out different');
    });

    it('fails with 1002 on the first byte of a continuation frame with RSV1 (§6.1)', { timeout: 1000 }, () => {
      const p = engine(role, { deflate: takeover });
      assert.deepEqual(feed(p, fromPeer(role, [compressed(helloDeflated.subarray(0, 3), { fin: false })])), [data(1, '', true, false)]);
      assert.deepEqual(feed(p, Uint8Array.of(0xc0)), [failure(1002)]);
      assertFailed(role, p, 1002);
    });

    it('fails with 1002 on the first byte of a ping with RSV1 (§6)', { timeout: 1000 }, () => {
      const p = engine(role, { deflate: takeover });
      assert.deepEqual(feed(p, Uint8Array.of(0xc9)), [failure(1002)]);
      assertFailed(role, p, 1002);
    });

    it('fails with 1002 on RSV2 even with permessage-deflate', { timeout: 1000 }, () => {
      const p = engine(role, { deflate: takeover });
      assert.deepEqual(feed(p, Uint8Array.of(0xe1)), [failure(1002)]);
    });

    it('fails with 1009 on a compressed frame declaring more than the compressed-size bound, before its payload', { timeout: 1000 }, () => {
      const p = engine(role, { deflate: takeover, readLimit: 1000 });
      const bound = 2 * 1000 + 64 * 1024;
      const header = fromPeer(role, [compressed(new Uint8Array(0), { declaredLength: bound + 1 })]);
      assert.deepEqual(feed(p, header), [failure(1009)]);
    });

    it('fails with 1009 on a compressed message that inflates past the read limit', { timeout: 1000 }, () => {
      const sender = engine(role === 'server' ? 'client' : 'server', { deflate: takeover });
      const p = engine(role, { deflate: takeover, readLimit: 1000 });
      assert.deepEqual(feed(p, sender.encodeMessage(1, 'x'.repeat(1001), true)), [failure(1009)]);
    });

    it('encodes "Hello" as c1 07 f2 48 cd c9 c9 07 00, then c1 05 f2 00 11 00 00 with the window kept', { timeout: 1000 }, () => {
      const p = engine(role, { deflate: takeover });
      const first = p.encodeMessage(1, 'Hello', true);
      const second = p.encodeMessage(1, bytesOf('Hello'), true);
      assert.equal(toHex(first), toHex(encodeAll([compressed(helloDeflated)], role === 'client')));
      assert.equal(toHex(second), toHex(encodeAll([compressed(helloAgainDeflated)], role === 'client')));
      if (role === 'server') assert.deepEqual([toHex(first), toHex(second)], ['c1 07 f2 48 cd c9 c9 07 00', 'c1 05 f2 00 11 00 00']);
    });

    it('encodes "Hello" the same way twice when its window is reset', { timeout: 1000 }, () => {
      const p = engine(role, { deflate: noTakeover });
      const expected = toHex(encodeAll([compressed(helloDeflated)], role === 'client'));
      assert.deepEqual([toHex(p.encodeMessage(1, 'Hello', true)), toHex(p.encodeMessage(1, 'Hello', true))], [expected, expected]);
    });

    it('leaves short messages uncompressed below the threshold and compresses from it on', { timeout: 1000 }, () => {
      const p = engine(role, { deflate: takeover, compressionThreshold: 6 });
      assert.equal(oneFrame(p.encodeMessage(1, 'Hello')).rsv, 0);
      assert.equal(oneFrame(p.encodeMessage(1, 'Hello!')).rsv, 4);
      assert.equal(oneFrame(p.encodeMessage(1, 'Hello!', false)).rsv, 0);
    });

    it('encodeFragment sets RSV1 on the first frame only and uses continuation opcodes after it', { timeout: 1000 }, () => {
      const p = engine(role, { deflate: takeover });
      const parts = ['Hel', 'lo, ', 'world'].map(bytesOf);
      const frames = parts.map((part, i) => oneFrame(p.encodeFragment(1, part, i === parts.length - 1, true)));
      assert.deepEqual(
        frames.map((f) => [f.fin, f.rsv, f.opcode, f.masked]),
        [
          [false, 4, Op.Text, role === 'client'],
          [false, 0, Op.Continuation, role === 'client'],
          [true, 0, Op.Continuation, role === 'client'],
        ],
      );
      const receiver = engine(role === 'server' ? 'client' : 'server', { deflate: takeover });
      const wire = encodeAll(frames.map((f) => ({ opcode: f.opcode, fin: f.fin, rsv1: f.rsv === 4, payload: f.payload })), role === 'client');
      assert.deepEqual(messages(events(receiver, wire)), [`text ${toHex(bytesOf('Hello, world'))}`]);
    });

    it('encodeFragment without compression never sets RSV1', { timeout: 1000 }, () => {
      const p = engine(role, { deflate: takeover });
      const frames = [p.encodeFragment(2, pattern(3), false, false), p.encodeFragment(2, pattern(3), true, false)].map(oneFrame);
      assert.deepEqual(frames.map((f) => [f.fin, f.rsv, f.opcode]), [[false, 0, Op.Binary], [true, 0, Op.Continuation]]);
    });

    it('what one engine compresses the other decodes, message after message', { timeout: 5000 }, () => {
      const sender = engine(role, { deflate: takeover });
      const receiver = engine(role === 'server' ? 'client' : 'server', { deflate: takeover });
      for (let i = 0; i < 20; i++) {
        const message = `message ${i}: ${'abc'.repeat(i * 10)}`;
        assert.deepEqual(messages(events(receiver, sender.encodeMessage(1, message, true))), [`text ${describeBytes(bytesOf(message))}`]);
      }
    });
  });
}

// --- RFC 6455 §5.3: the caller's bytes are copied, never masked in place ---

describe('RFC 6455 §5.3 the client masks a copy, never the caller\'s bytes', { timeout: 20_000 }, () => {
  const sizes = [0, 1, 3, 4, 5, 31, 32, 33, 63, 64, 65, 125, 126, 1000, 4099, 70_000];

  it('encodeMessage, encodeFragment and encodeControl leave the payload as it was, at every alignment', { timeout: 10_000 }, () => {
    const p = engine('client');
    for (const size of sizes) {
      for (let offset = 0; offset < 4; offset++) {
        const backing = new Uint8Array(size + 8);
        const payload = backing.subarray(offset, offset + size);
        payload.set(pattern(size));
        const before = payload.slice();
        const calls: Array<[string, () => Uint8Array]> = [
          ['encodeMessage', () => p.encodeMessage(2, payload)],
          ['encodeFragment', () => p.encodeFragment(2, payload, true, false)],
        ];
        if (size <= 125) calls.push(['encodeControl', () => p.encodeControl(0x9, payload)]);
        for (const [what, call] of calls) {
          const frame = oneFrame(call());
          assert.deepEqual(payload, before, `${what} changed a ${size}-byte payload at offset ${offset}`);
          assert.equal(frame.masked, true);
          assert.deepEqual(frame.payload, before, `${what} framed a ${size}-byte payload at offset ${offset} wrongly`);
        }
      }
    }
  });

  it('the compressed path leaves the payload as it was', { timeout: 2000 }, () => {
    const p = engine('client', { deflate: takeover });
    const payload = bytesOf('Hello, Hello, Hello, Hello');
    const before = payload.slice();
    p.encodeMessage(1, payload, true);
    p.encodeFragment(1, payload, false, true);
    p.encodeFragment(1, payload, true, true);
    assert.deepEqual(payload, before);
  });

  it('with a fixed key, the masked bytes are the XOR the RFC defines', { timeout: 1000 }, () => {
    const payload = pattern(1000);
    const frame = engine('client').encodeMessage(2, payload);
    assert.equal(toHex(frame.subarray(0, 8)), '82 fe 03 e8 37 fa 21 3d');
    sameBytes(frame.subarray(8), masked(payload));
  });
});

// --- the engine keeps no hold on what it handed out ---

describe('events stay valid as more input arrives', { timeout: 5000 }, () => {
  for (const role of roles) {
    it(`data and control payloads are unchanged after later reads, the engine as the ${role}`, { timeout: 2000 }, () => {
      const p = engine(role);
      const bytes = fromPeer(role, [text('first', { fin: false }), ping('ping payload'), cont(' second'), binary(pattern(200))]);
      const kept: Array<[Uint8Array, string]> = [];
      for (let at = 0; at < bytes.length; at += 3) {
        p.receive(bytes.slice(at, at + 3));
        for (let e = p.next(); e !== undefined; e = p.next()) {
          if (e.kind === 'data') kept.push([e.data, toHex(e.data)]);
          if (e.kind === 'ping') kept.push([e.payload, toHex(e.payload)]);
        }
      }
      assert.ok(kept.length > 5);
      for (const [view, then] of kept) assert.equal(toHex(view), then);
    });
  }
});
