// Reserved bits (RFC 6455 §5.2): with no extension negotiated, any nonzero
// RSV bit fails the connection. In the spirit of Autobahn section 3.
import { binary, close, cont, ping, pong, text, want } from '../helpers/raw.js';
import { conformance, fails, type Case } from './harness.js';

const cases: Case[] = [
  fails('§5.2 RSV1 set on a small text frame fails with 1002, no echo', [text('Hello', { rsv1: true })], 1002),
  fails('§5.2 RSV2 set on a text frame after a valid one: echo, then 1002', [text('valid'), text('Hello', { rsv2: true })], 1002, [want.text('valid')]),
  fails('§5.2 RSV3 set on a text frame between a valid text and a ping: echo, then 1002; the ping is not answered', [text('valid'), text('Hello', { rsv3: true }), ping('after')], 1002, [want.text('valid')]),
  fails('§5.2 RSV1+RSV3 set, frames arriving one byte at a time: echo, then 1002', [text('valid'), text('Hello', { rsv1: true, rsv3: true }), ping('after')], 1002, [want.text('valid')], { chop: 1 }),
  fails('§5.2 RSV1+RSV2+RSV3 set on a binary frame fails with 1002', [binary(Uint8Array.of(0, 1, 2), { rsv1: true, rsv2: true, rsv3: true })], 1002),
  fails('§5.2 RSV2+RSV3 set on a ping fails with 1002, no pong', [ping('Hello', { rsv2: true, rsv3: true })], 1002),
  fails('§5.2 RSV1 set on a pong fails with 1002', [pong('Hello', { rsv1: true })], 1002),
  fails('§5.2 RSV1+RSV2+RSV3 set on a close frame fails with 1002', [close(1000, '', { rsv1: true, rsv2: true, rsv3: true })], 1002),
  fails('§5.2 RSV1 set on a continuation frame fails with 1002', [text('frag', { fin: false }), cont('ment', { rsv1: true })], 1002),
  fails('§5.2 RSV2 set on the first fragment fails with 1002 before the message ends', [binary('frag', { fin: false, rsv2: true })], 1002),
  fails('§5.2 RSV3 set on an empty text frame fails with 1002', [text('', { rsv3: true })], 1002),
];

conformance('reserved bits (RFC 6455 §5.2)', cases);
