// Base framing (RFC 6455 §5.2, §5.6) and masking (§5.1, §5.3), in the
// spirit of Autobahn sections 1 (framing) and 9 (big messages).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { binary, encodeFrame, hex, Op, text, want } from '../helpers/raw.js';
import { conformance, echoes, fails, type Case } from './harness.js';

/** Deterministic bytes: every byte value, repeated. */
function pattern(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + 7) & 0xff;
  return out;
}

/** ASCII text of `n` bytes. */
function ascii(n: number): string {
  return 'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(Math.ceil(n / 36)).slice(0, n);
}

describe('the frame builder itself', { timeout: 1000 }, () => {
  it('builds the single-frame examples of RFC 6455 §5.7 byte for byte', { timeout: 1000 }, () => {
    assert.deepEqual(encodeFrame(text('Hello'), false), hex('81 05 48 65 6c 6c 6f'));
    assert.deepEqual(encodeFrame(text('Hello'), true), hex('81 85 37 fa 21 3d 7f 9f 4d 51 58'));
    assert.deepEqual(encodeFrame({ opcode: Op.Ping, payload: 'Hello' }, false), hex('89 05 48 65 6c 6c 6f'));
    assert.deepEqual(encodeFrame(text('Hel', { fin: false }), false), hex('01 03 48 65 6c'));
    assert.deepEqual(encodeFrame({ opcode: Op.Continuation, payload: 'lo' }, false), hex('80 02 6c 6f'));
  });

  it('uses the 16-bit and 64-bit length forms of RFC 6455 §5.7', { timeout: 1000 }, () => {
    assert.deepEqual(encodeFrame(binary(new Uint8Array(256)), false).subarray(0, 4), hex('82 7e 01 00'));
    assert.deepEqual(encodeFrame(binary(new Uint8Array(65536)), false).subarray(0, 10), hex('82 7f 00 00 00 00 00 01 00 00'));
  });
});

const lengths = [0, 1, 125, 126, 127, 128, 65535, 65536];

const cases: Case[] = [
  echoes('§5.7 a single unmasked/masked "Hello" text frame is echoed', [text('Hello')], [want.text('Hello')]),
  ...lengths.map((n) =>
    echoes(`§5.2 text message of ${n} bytes (${n < 126 ? '7-bit' : n < 65536 ? '16-bit' : '64-bit'} length)`, [text(ascii(n))], [want.text(ascii(n))], {
      readLimit: 1 << 20,
    }),
  ),
  ...lengths.map((n) =>
    echoes(`§5.2 binary message of ${n} bytes (${n < 126 ? '7-bit' : n < 65536 ? '16-bit' : '64-bit'} length)`, [binary(pattern(n))], [want.binary(pattern(n))], {
      readLimit: 1 << 20,
    }),
  ),
  echoes('§5.2 text message of 1 MiB (64-bit length)', [text(ascii(1 << 20))], [want.text(ascii(1 << 20))], { readLimit: 1 << 21 }),
  echoes('§5.2 binary message of 1 MiB (64-bit length)', [binary(pattern(1 << 20))], [want.binary(pattern(1 << 20))], { readLimit: 1 << 21 }),
  echoes('§5.2 a 16-bit-length frame arriving one byte at a time', [binary(pattern(300))], [want.binary(pattern(300))], { chop: 1 }),
  echoes('§5.2 a 64-bit-length frame arriving in 7001-byte pieces', [binary(pattern(70_000))], [want.binary(pattern(70_000))], {
    chop: 7_001,
    readLimit: 1 << 20,
  }),
  echoes('§5.2 headers split at every byte: three small frames one byte at a time', [text('a'), binary(pattern(3)), text('')], [want.text('a'), want.binary(pattern(3)), want.text('')], {
    chop: 1,
  }),
  echoes(
    '§5.6 many messages in one TCP write are echoed in order',
    Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? text(`message ${i}`) : binary(pattern(i)))),
    Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? want.text(`message ${i}`) : want.binary(pattern(i)))),
  ),
  echoes('§4.2.2/§5 frames sent in the same TCP write as the handshake are read', [text('early'), binary(pattern(5))], [want.text('early'), want.binary(pattern(5))], {
    withHandshake: true,
  }),
  echoes('§5.3 any masking key works, including all-zero and all-ones keys', [text('key one', { maskKey: hex('00000000') }), text('key two', { maskKey: hex('ffffffff') })], [want.text('key one'), want.text('key two')], {
    only: 'server',
  }),
  fails('§5.1 a client frame that is not masked: the server fails the connection with 1002', [text('unmasked', { masked: 'wrong' })], 1002, [], {
    only: 'server',
  }),
  fails('§5.1 a server frame that is masked: the client fails the connection with 1002', [text('masked', { masked: 'wrong' })], 1002, [], {
    only: 'client',
  }),
  fails('§5.1 a wrongly masked frame after a good one: echo, then 1002', [text('good'), binary('bad', { masked: 'wrong' })], 1002, [want.text('good')]),
  fails('§5.1 a wrongly masked ping fails the connection with 1002, no pong', [{ opcode: Op.Ping, payload: 'x', masked: 'wrong' }], 1002),
  fails('§5.2 a 64-bit payload length with its most significant bit set fails with 1002', [binary(new Uint8Array(0), { declaredLength: 1n << 63n, lengthForm: 64 })], 1002),
  fails('§5.2 a 64-bit payload length of 2^63 + 5 fails with 1002 before any payload', [binary('hello', { declaredLength: (1n << 63n) + 5n, lengthForm: 64 })], 1002),
];

conformance('framing (RFC 6455 §5.1–§5.3, §5.6)', cases);
