import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import { after, describe, it } from 'node:test';
import { Utf8Validator } from '../src/internal/utf8.js';
import { hex } from './helpers/hex.js';
import { leakCheck } from './helpers/leak.js';
import { describeSeed, prng, type Prng } from './helpers/prng.js';

const checkLeaks = leakCheck();
after(() => checkLeaks());

function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/**
 * The reference: RFC 3629 §4's table walked one byte at a time. Returns the
 * index of the first byte after which no continuation can be valid (-1 if
 * none) and whether the input ends on a whole character.
 */
function reference(bytes: Uint8Array): { firstBad: number; complete: boolean } {
  let need = 0;
  let lo = 0x80;
  let hi = 0xbf;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (need > 0) {
      if (b < lo || b > hi) return { firstBad: i, complete: false };
      need--;
      lo = 0x80;
      hi = 0xbf;
      continue;
    }
    if (b <= 0x7f) continue;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b === 0xe0) [need, lo] = [2, 0xa0];
    else if (b === 0xed) [need, hi] = [2, 0x9f];
    else if (b >= 0xe1 && b <= 0xef) need = 2;
    else if (b === 0xf0) [need, lo] = [3, 0x90];
    else if (b >= 0xf1 && b <= 0xf3) need = 3;
    else if (b === 0xf4) [need, hi] = [3, 0x8f];
    else return { firstBad: i, complete: false };
  }
  return { firstBad: -1, complete: need === 0 };
}

/** Feeds `pieces` in order; returns the index of the first push that returned false (-1 if none). */
function feed(pieces: Uint8Array[]): { failedAt: number; complete: boolean } {
  const v = new Utf8Validator();
  for (let i = 0; i < pieces.length; i++) {
    if (!v.push(pieces[i]!)) return { failedAt: i, complete: false };
  }
  return { failedAt: -1, complete: v.complete() };
}

// Valid UTF-8, including every boundary of RFC 3629's table.
const valid: Array<[string, Uint8Array]> = [
  ['empty', new Uint8Array(0)],
  ['ASCII', utf8('Hello, world!')],
  ['NUL and DEL', hex('00 7f')],
  ['U+0080, smallest 2-byte', hex('c2 80')],
  ['U+07FF, largest 2-byte', hex('df bf')],
  ['U+0800, smallest 3-byte', hex('e0 a0 80')],
  ['U+D7FF, last before surrogates', hex('ed 9f bf')],
  ['U+E000, first after surrogates', hex('ee 80 80')],
  ['U+FEFF, byte order mark', hex('ef bb bf')],
  ['U+FFFD', hex('ef bf bd')],
  ['U+FFFF, largest 3-byte', hex('ef bf bf')],
  ['U+10000, smallest 4-byte', hex('f0 90 80 80')],
  ['U+10FFFF, largest code point', hex('f4 8f bf bf')],
  // Autobahn 6.2: "Hello-µ@ßöäüàá-UTF-8!!"
  ['Latin-1 supplement', hex('48656c6c6f2dc2b540c39fc3b6c3a4c3bcc3a0c3a12d5554462d382121')],
  // Autobahn 6.5.1: κόσμε
  ['Greek', hex('ce ba e1 bd b9 cf 83 ce bc ce b5')],
  ['CJK', utf8('日本語のテキスト')],
  ['emoji', utf8('👋🏽 ok 😀')],
  ['mixed, 1- to 4-byte', utf8('a é € 𝄞 z'.repeat(20))],
  ['long ASCII then 4-byte at the end', utf8(`${'x'.repeat(300)}😀`)],
];

// Invalid UTF-8: `bad` is the index of the byte that makes it invalid.
const invalid: Array<{ name: string; bytes: Uint8Array; bad: number }> = [
  { name: 'lone continuation 0x80', bytes: hex('80'), bad: 0 },
  { name: 'lone continuation 0xbf after ASCII', bytes: hex('41 42 bf'), bad: 2 },
  { name: '0xfe', bytes: hex('fe'), bad: 0 },
  { name: '0xff', bytes: hex('41 ff 41'), bad: 1 },
  { name: 'overlong 2-byte c0 80', bytes: hex('c0 80'), bad: 0 },
  { name: 'overlong 2-byte c1 bf', bytes: hex('c1 bf'), bad: 0 },
  { name: 'overlong 3-byte e0 80 80', bytes: hex('e0 80 80'), bad: 1 },
  { name: 'overlong 3-byte e0 9f bf', bytes: hex('e0 9f bf'), bad: 1 },
  { name: 'overlong 4-byte f0 80 80 80', bytes: hex('f0 80 80 80'), bad: 1 },
  { name: 'overlong 4-byte f0 8f bf bf', bytes: hex('f0 8f bf bf'), bad: 1 },
  { name: 'high surrogate U+D800', bytes: hex('ed a0 80'), bad: 1 },
  { name: 'low surrogate U+DFFF', bytes: hex('ed bf bf'), bad: 1 },
  { name: 'surrogate pair', bytes: hex('ed a0 80 ed b0 80'), bad: 1 },
  { name: 'above U+10FFFF: f4 90', bytes: hex('f4 90 80 80'), bad: 1 },
  { name: 'lead byte f5', bytes: hex('f5 80 80 80'), bad: 0 },
  { name: 'lead byte f8 (5-byte form)', bytes: hex('f8 88 80 80 80'), bad: 0 },
  { name: 'lead byte fc (6-byte form)', bytes: hex('fc 84 80 80 80 80'), bad: 0 },
  { name: '2-byte lead then ASCII', bytes: hex('c2 41'), bad: 1 },
  { name: '3-byte lead, one continuation, then ASCII', bytes: hex('e2 82 41'), bad: 2 },
  { name: '4-byte lead, two continuations, then a lead', bytes: hex('f0 9f 98 c2 80'), bad: 3 },
  { name: 'too many continuations', bytes: hex('c3 a9 80'), bad: 2 },
  // Autobahn 6.4.1: κόσμε, then a code point above U+10FFFF, then "edited".
  { name: 'Autobahn 6.4.1', bytes: hex('cebae1bdb9cf83cebcceb5f4908080656469746564'), bad: 12 },
  // Autobahn 6.4.3-like: bad bytes after a long valid prefix.
  { name: 'long valid prefix then 0xff', bytes: Buffer.concat([utf8('ok '.repeat(100)), hex('ff')]), bad: 300 },
  { name: 'long valid prefix then a surrogate', bytes: Buffer.concat([utf8('é'.repeat(100)), hex('ed a0 80 41')]), bad: 201 },
];

// Valid so far but cut inside a character: push accepts, complete() says no.
const truncated: Array<[string, Uint8Array]> = [
  ['2-byte lead only', hex('c2')],
  ['3-byte, two of three', hex('e2 82')],
  ['4-byte, three of four', hex('f0 9f 98')],
  ['text then a lead byte', hex('41 42 f4')],
];

describe('Utf8Validator (RFC 3629, RFC 6455 §8.1)', { timeout: 20_000 }, () => {
  it('the corpora agree with the reference and with Node’s isUtf8', { timeout: 1000 }, () => {
    for (const [name, bytes] of valid) {
      assert.deepEqual(reference(bytes), { firstBad: -1, complete: true }, name);
      assert.ok(isUtf8(bytes), name);
    }
    for (const { name, bytes, bad } of invalid) {
      assert.equal(reference(bytes).firstBad, bad, name);
      assert.ok(!isUtf8(bytes), name);
    }
    for (const [name, bytes] of truncated) {
      assert.deepEqual(reference(bytes), { firstBad: -1, complete: false }, name);
    }
  });

  describe('valid text', { timeout: 5000 }, () => {
    for (const [name, bytes] of valid) {
      it(`${name}: whole, split at every position, and byte by byte`, { timeout: 2000 }, () => {
        assert.deepEqual(feed([bytes]), { failedAt: -1, complete: true }, 'whole');
        for (let at = 0; at <= bytes.length; at++) {
          const result = feed([bytes.subarray(0, at), bytes.subarray(at)]);
          assert.deepEqual(result, { failedAt: -1, complete: true }, `split at ${at}`);
        }
        for (let a = 0; a <= Math.min(bytes.length, 40); a++) {
          for (let b = a; b <= Math.min(bytes.length, 40); b++) {
            const pieces = [bytes.subarray(0, a), bytes.subarray(a, b), bytes.subarray(b)];
            assert.deepEqual(feed(pieces), { failedAt: -1, complete: true }, `split at ${a} and ${b}`);
          }
        }
        const bytewise = Array.from(bytes, (byte) => Uint8Array.of(byte));
        assert.deepEqual(feed(bytewise), { failedAt: -1, complete: true }, 'byte by byte');
      });
    }
  });

  describe('invalid text fails fast', { timeout: 5000 }, () => {
    for (const { name, bytes, bad } of invalid) {
      it(`${name}: rejected by the push that carries byte ${bad}`, { timeout: 2000 }, () => {
        assert.equal(feed([bytes]).failedAt, 0, 'whole');
        // Split at every position: the first piece fails iff it holds the bad byte.
        for (let at = 0; at <= bytes.length; at++) {
          const result = feed([bytes.subarray(0, at), bytes.subarray(at)]);
          assert.equal(result.failedAt, at > bad ? 0 : 1, `split at ${at}`);
        }
        // Byte by byte: every push before the bad byte succeeds; the bad one fails.
        const bytewise = Array.from(bytes, (byte) => Uint8Array.of(byte));
        assert.equal(feed(bytewise).failedAt, bad, 'byte by byte');
        // The bad byte alone after a good prefix pushed whole.
        assert.equal(feed([bytes.subarray(0, bad), bytes.subarray(bad, bad + 1)]).failedAt, 1, 'prefix, then the bad byte');
      });
    }
  });

  describe('text cut inside a character', { timeout: 5000 }, () => {
    for (const [name, bytes] of truncated) {
      it(`${name}: every push accepts, complete() is false`, { timeout: 1000 }, () => {
        for (let at = 0; at <= bytes.length; at++) {
          assert.deepEqual(feed([bytes.subarray(0, at), bytes.subarray(at)]), { failedAt: -1, complete: false }, `split at ${at}`);
        }
      });
    }

    it('complete() is true again once the character is finished', { timeout: 1000 }, () => {
      const v = new Utf8Validator();
      assert.equal(v.push(hex('f0 9f')), true, 'f0 9f');
      assert.equal(v.complete(), false);
      assert.equal(v.push(hex('98')), true, '98');
      assert.equal(v.complete(), false);
      assert.equal(v.push(hex('80')), true, '80');
      assert.equal(v.complete(), true);
    });
  });

  it('reset() forgets a character in progress', { timeout: 1000 }, () => {
    const v = new Utf8Validator();
    assert.equal(v.push(hex('e2 82')), true, 'e2 82');
    v.reset();
    assert.equal(v.complete(), true);
    // Without the reset, 0x41 would end the 3-byte character badly.
    assert.equal(v.push(hex('41')), true, '41');
    assert.equal(v.complete(), true);
    // And a bad byte's state does not leak into the next message either.
    assert.equal(v.push(hex('ed a0')), false);
    v.reset();
    assert.equal(v.push(hex('ed 9f bf')), true, 'ed 9f bf');
    assert.equal(v.complete(), true);
  });

  it('agrees with the reference on random near-UTF-8 split at random places', { timeout: 10_000 }, () => {
    const rng = prng();
    for (let round = 0; round < 3000; round++) {
      const bytes = randomText(rng);
      const want = reference(bytes);
      const pieces = randomSplit(rng, bytes);
      const got = feed(pieces.map((p) => p.piece));
      const where = `bytes ${Buffer.from(bytes).toString('hex')}, cuts ${pieces.map((p) => p.start).join(',')}; ${describeSeed(rng)}`;
      if (want.firstBad === -1) {
        assert.deepEqual(got, { failedAt: -1, complete: want.complete }, where);
        assert.equal(isUtf8(bytes), want.complete, where);
      } else {
        // The failing push is the one holding the first bad byte.
        const holder = pieces.findIndex((p) => p.start <= want.firstBad && want.firstBad < p.start + p.piece.length);
        assert.equal(got.failedAt, holder, where);
      }
    }
  });
});

/** Mostly valid text with, now and then, a byte that breaks it or a character cut short. */
function randomText(rng: Prng): Uint8Array {
  const parts: Uint8Array[] = [];
  const count = rng.int(12);
  const samples = ['a', 'é', '€', '😀', '\u07ff', '\u0800', '\ud7ff', '\ue000', '\uffff', '\u{10ffff}', 'ascii text '];
  for (let i = 0; i < count; i++) {
    const roll = rng.int(20);
    if (roll === 0) parts.push(Uint8Array.of(rng.int(256)));
    else if (roll === 1) parts.push(utf8(samples[rng.int(samples.length)]!).subarray(0, 1));
    else parts.push(utf8(samples[rng.int(samples.length)]!));
  }
  return Buffer.concat(parts);
}

function randomSplit(rng: Prng, bytes: Uint8Array): Array<{ start: number; piece: Uint8Array }> {
  const out: Array<{ start: number; piece: Uint8Array }> = [];
  for (let start = 0; start < bytes.length; ) {
    const size = 1 + rng.int(rng.int(2) === 0 ? 4 : 40);
    out.push({ start, piece: bytes.subarray(start, start + size) });
    start += size;
  }
  if (out.length === 0) out.push({ start: 0, piece: bytes });
  return out;
}
