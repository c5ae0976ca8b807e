// UTF-8 handling (RFC 6455 §5.6, §8.1; RFC 3629 §3–§4), in the spirit of
// Autobahn section 6: valid text in any fragmentation is echoed, invalid
// text fails the connection with 1007 — as soon as the bad byte arrives.
import { binary, bytesOf, concat, cont, hex, text, want, type FrameSpec } from '../helpers/raw.js';
import { conformance, echoes, fails, type Case } from './harness.js';

/** `data` as a text message split into two fragments at byte `at`. */
function splitAt(data: Uint8Array, at: number): FrameSpec[] {
  return [text(data.subarray(0, at), { fin: false }), cont(data.subarray(at))];
}

/** `data` as a text message of 1-byte fragments. */
function byteFragments(data: Uint8Array): FrameSpec[] {
  return Array.from(data, (_, i) => (i === 0 ? text(data.subarray(0, 1), { fin: data.length === 1 }) : cont(data.subarray(i, i + 1), { fin: i === data.length - 1 })));
}

/** Every two-fragment split of `data` as consecutive messages, each echoed whole. */
function everySplit(name: string, data: Uint8Array): Case {
  const send: FrameSpec[] = [];
  const echoed: string[] = [];
  for (let at = 1; at < data.length; at++) {
    send.push(...splitAt(data, at));
    echoed.push(want.text(data));
  }
  return echoes(name, send, echoed);
}

const valid: Array<[string, Uint8Array]> = [
  ['ASCII', bytesOf('Hello, world!')],
  ['Latin-1 and two-byte characters: "Hello-µ@ßöäüàá-UTF-8!!"', bytesOf('Hello-µ@ßöäüàá-UTF-8!!')],
  ['Greek "κόσμε" (RFC 3629 examples)', hex('ce ba e1 bd b9 cf 83 ce bc ce b5')],
  ['U+0000 (NUL is a valid character)', hex('00')],
  ['first and last 1-byte code points U+0001, U+007F', hex('01 7f')],
  ['first and last 2-byte code points U+0080, U+07FF', hex('c2 80 df bf')],
  ['first and last 3-byte code points U+0800, U+FFFF', hex('e0 a0 80 ef bf bf')],
  ['first and last 4-byte code points U+10000, U+10FFFF', hex('f0 90 80 80 f4 8f bf bf')],
  ['around the surrogates: U+D7FF, U+E000', hex('ed 9f bf ee 80 80')],
  ['U+FFFD and noncharacters U+FFFE, U+FDD0 (valid in UTF-8)', hex('ef bf bd ef bf be ef b7 90')],
  ['emoji 😀 🎉 and 𝄞 (4-byte characters)', bytesOf('😀🎉𝄞')],
];

/** Invalid sequences, each put inside valid text unless `atEnd`. */
const invalid: Array<[string, string, boolean?]> = [
  ['a lone continuation byte 0x80', '80'],
  ['a lone continuation byte 0xbf', 'bf'],
  ['two continuation bytes', '80 bf'],
  ['a 2-byte lead followed by a space', 'c3 20'],
  ['a 3-byte lead followed by ASCII', 'e2 82 41'],
  ['a 4-byte lead followed by a space', 'f0 20'],
  ['byte 0xfe', 'fe'],
  ['byte 0xff', 'ff'],
  ['bytes fe fe ff ff', 'fe fe ff ff'],
  ['overlong "/" in 2 bytes (c0 af)', 'c0 af'],
  ['overlong "/" in 3 bytes (e0 80 af)', 'e0 80 af'],
  ['overlong "/" in 4 bytes (f0 80 80 af)', 'f0 80 80 af'],
  ['overlong U+007F in 2 bytes (c1 bf)', 'c1 bf'],
  ['overlong U+07FF in 3 bytes (e0 9f bf)', 'e0 9f bf'],
  ['overlong U+FFFF in 4 bytes (f0 8f bf bf)', 'f0 8f bf bf'],
  ['overlong NUL (c0 80)', 'c0 80'],
  ['overlong NUL in 3 bytes (e0 80 80)', 'e0 80 80'],
  ['surrogate U+D800 (ed a0 80)', 'ed a0 80'],
  ['surrogate U+DB7F (ed ad bf)', 'ed ad bf'],
  ['surrogate U+DC00 (ed b0 80)', 'ed b0 80'],
  ['surrogate U+DFFF (ed bf bf)', 'ed bf bf'],
  ['a UTF-16 surrogate pair U+D800 U+DC00 encoded as CESU-8', 'ed a0 80 ed b0 80'],
  ['U+110000, above U+10FFFF (f4 90 80 80)', 'f4 90 80 80'],
  ['lead byte 0xf5 (above U+10FFFF)', 'f5 80 80 80'],
  ['lead byte 0xf7 (f7 bf bf bf)', 'f7 bf bf bf'],
  ['a 5-byte sequence (f8 88 80 80 80)', 'f8 88 80 80 80'],
  ['a 6-byte sequence (fc 84 80 80 80 80)', 'fc 84 80 80 80 80'],
  ['a 2-byte sequence truncated at the end of the message', 'c3', true],
  ['a 3-byte sequence truncated at the end of the message', 'e2 82', true],
  ['a 4-byte sequence truncated at the end of the message', 'f0 9f 98', true],
  ['a 4-byte lead alone at the end of the message', 'f4', true],
];

const greek = hex('ce ba e1 bd b9 cf 83 ce bc ce b5');

function invalidText(seq: string, atEnd = false): Uint8Array {
  return atEnd ? concat([greek, hex(seq)]) : concat([greek, hex(seq), bytesOf('-edited')]);
}

const cases: Case[] = [
  ...valid.map(([name, data]) => echoes(`§5.6 valid UTF-8 is echoed: ${name}`, [text(data)], [want.text(data)])),
  ...valid.slice(2).map(([name, data]) => echoes(`§5.4/§8.1 valid UTF-8 in 1-byte fragments: ${name}`, byteFragments(data), [want.text(data)])),
  everySplit('§8.1 "a😀b𐍈c" split into two fragments at every byte position', bytesOf('a😀b𐍈c')),
  everySplit('§8.1 "🎉🎉" (two adjacent 4-byte characters) split at every byte position', bytesOf('🎉🎉')),
  everySplit('§8.1 U+10FFFF then U+10000 split at every byte position', hex('f4 8f bf bf f0 90 80 80')),
  everySplit('§8.1 "κόσμε" split at every byte position', greek),
  echoes('§8.1 a 4-byte character split 1+1+1+1 over four frames arriving one byte at a time', byteFragments(bytesOf('x😀y')), [want.text('x😀y')], { chop: 1 }),
  echoes('§5.6 a binary message is not UTF-8 validated', [binary(hex('c0 af ed a0 80 ff fe'))], [want.binary(hex('c0 af ed a0 80 ff fe'))]),

  ...invalid.map(([name, seq, atEnd]) => fails(`§8.1 invalid UTF-8 in a text message fails with 1007: ${name}`, [text(invalidText(seq, atEnd))], 1007)),
  ...invalid.map(([name, seq, atEnd]) =>
    fails(`§8.1 invalid UTF-8 in 1-byte fragments fails with 1007: ${name}`, byteFragments(invalidText(seq, atEnd)), 1007),
  ),
  fails('§8.1 a valid message, then an invalid one: echo, then 1007', [text('valid'), text(hex('ed a0 80'))], 1007, [want.text('valid')]),
  fails('§8.1 a message ending inside a 4-byte character in its last (empty) fragment fails with 1007', [text(hex('41 f0 9f'), { fin: false }), cont('')], 1007),
  fails('§8.1 a surrogate split across two fragments (ed | a0 80) fails with 1007', [text(hex('41 ed'), { fin: false }), cont(hex('a0 80 41'))], 1007),

  // Fail fast: the bad byte is enough; the rest of the message never comes.
  fails('§8.1 fail fast: an invalid first fragment of a message never finished fails with 1007', [text(concat([greek, hex('ed a0 80'), bytesOf('edited')]), { fin: false })], 1007),
  fails('§8.1 fail fast: an overlong in the first fragment of a message never finished fails with 1007', [text(hex('41 c0 af 41'), { fin: false })], 1007),
  fails('§8.1 fail fast: a valid first fragment, an invalid second one, no final fragment: 1007', [text('fine so far', { fin: false }), cont(hex('f4 90 80 80'), { fin: false })], 1007),
  fails('§8.1 fail fast: an invalid sequence split across unfinished fragments (f4 | 90) fails with 1007', [text(hex('41 f4'), { fin: false }), cont(hex('90'), { fin: false })], 1007),
  fails('§8.1 fail fast: a 4-byte character broken by ASCII across fragments (f0 9f | 41) fails with 1007', [text(hex('f0 9f'), { fin: false }), cont(hex('41'), { fin: false })], 1007),
  fails('§8.1 fail fast: a frame declaring 1000 bytes whose first 20 hold a surrogate fails with 1007 without the rest', [text(concat([greek, hex('ed a0 80'), bytesOf('edited')]), { declaredLength: 1000 })], 1007),
  fails('§8.1 fail fast: 0xff in an unfinished frame arriving one byte at a time fails with 1007', [text(hex('41 42 43 ff 44'), { declaredLength: 100 })], 1007, [], { chop: 1 }),
];

conformance('UTF-8 (RFC 6455 §5.6, §8.1)', cases);
