// Fragmentation (RFC 6455 §5.4), in the spirit of Autobahn section 5.
import { binary, close, cont, ping, pong, text, want, type FrameSpec } from '../helpers/raw.js';
import { conformance, echoes, fails, type Case } from './harness.js';

/** `data` as a message of `size`-byte fragments: the first with `first`'s opcode, then continuations. */
function fragments(first: (payload: Uint8Array, more: Partial<FrameSpec>) => FrameSpec, data: Uint8Array, size: number): FrameSpec[] {
  const frames: FrameSpec[] = [];
  for (let at = 0; at < data.length; at += size) {
    const piece = data.subarray(at, at + size);
    const fin = at + size >= data.length;
    frames.push(at === 0 ? first(piece, { fin }) : cont(piece, { fin }));
  }
  return frames;
}

const enc = new TextEncoder();
const fragmentMe = enc.encode('fragmented message of forty-one bytes!!!!');
const pattern300 = Uint8Array.from({ length: 300 }, (_, i) => i & 0xff);

const cases: Case[] = [
  echoes('§5.4 a text message in two fragments is echoed whole', [text('fragment1', { fin: false }), cont('fragment2')], [want.text('fragment1fragment2')]),
  echoes('§5.4 a binary message in three fragments is echoed whole', [binary('ab', { fin: false }), cont('cd', { fin: false }), cont('ef')], [want.binary('abcdef')]),
  echoes('§5.4 a text message in 1-byte fragments', fragments(text, fragmentMe, 1), [want.text(fragmentMe)]),
  echoes('§5.4 a binary message in 1-byte fragments', fragments(binary, pattern300.subarray(0, 64), 1), [want.binary(pattern300.subarray(0, 64))]),
  echoes('§5.4 a binary message in 1-byte fragments arriving one byte at a time', fragments(binary, pattern300.subarray(0, 20), 1), [want.binary(pattern300.subarray(0, 20))], { chop: 1 }),
  echoes('§5.4 fragments of 7-bit, 16-bit and 64-bit lengths in one message', [binary(pattern300.subarray(0, 100), { fin: false }), cont(new Uint8Array(1000), { fin: false }), cont(new Uint8Array(70_000))], [want.binary(new Uint8Array([...pattern300.subarray(0, 100), ...new Uint8Array(71_000)]))], { readLimit: 1 << 20 }),
  echoes('§5.4 empty fragments: an empty first, middle and last fragment', [text('', { fin: false }), cont('', { fin: false }), cont('middle', { fin: false }), cont('')], [want.text('middle')]),
  echoes('§5.4 an entirely empty fragmented text message', [text('', { fin: false }), cont('', { fin: false }), cont('')], [want.text('')]),
  echoes('§5.4 two fragmented messages back to back', [text('one-', { fin: false }), cont('a'), binary('two-', { fin: false }), cont('b')], [want.text('one-a'), want.binary('two-b')]),
  echoes('§5.4/§5.5 control frames between every fragment are handled', [text('a', { fin: false }), ping('1'), cont('b', { fin: false }), pong('x'), cont('c', { fin: false }), ping('2'), cont('d')], [want.pong('1'), want.pong('2'), want.text('abcd')]),
  echoes('§5.4 a 300-fragment message arriving in 3-byte pieces', fragments(binary, pattern300, 1), [want.binary(pattern300)], { chop: 3 }),
  fails('§5.4 a continuation frame with no message to continue (FIN set) fails with 1002', [cont('orphan')], 1002),
  fails('§5.4 a continuation frame with no message to continue (FIN clear) fails with 1002', [cont('orphan', { fin: false })], 1002),
  fails('§5.4 orphan continuation frames then a valid text: 1002 before the text', [cont('a', { fin: false }), cont('b'), text('valid')], 1002),
  fails('§5.4 a continuation frame after a finished message fails with 1002', [text('done'), cont('more')], 1002, [want.text('done')]),
  fails('§5.4 a continuation after a finished fragmented message fails with 1002', [text('a', { fin: false }), cont('b'), cont('c')], 1002, [want.text('ab')]),
  fails('§5.4 a new text frame inside a fragmented text message fails with 1002', [text('start', { fin: false }), text('intruder'), cont('end')], 1002),
  fails('§5.4 a new binary frame inside a fragmented text message fails with 1002', [text('start', { fin: false }), binary('intruder', { fin: false }), cont('end')], 1002),
  fails('§5.4 a new text frame inside a fragmented binary message, after a ping, fails with 1002', [binary('start', { fin: false }), ping('p'), text('intruder')], 1002, [want.pong('p')]),
  fails('§5.4/§5.5 a fragmented close frame fails with 1002', [close(1000, '', { fin: false }), cont('')], 1002),
  {
    name: '§5.4/§5.5.1 a close frame between fragments closes cleanly; the message is dropped',
    send: [text('never', { fin: false }), close(1000), cont('finished')],
    want: [want.close(1000)],
    closed: { code: 1000, wasClean: true },
  },
];

conformance('fragmentation (RFC 6455 §5.4)', cases);
