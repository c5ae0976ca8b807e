import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { maskCopy, maskInPlace } from '../src/mask.js';
import { hex, toHex } from './helpers/hex.js';
import { leakCheck } from './helpers/leak.js';
import { describeSeed, prng, type Prng } from './helpers/prng.js';

const checkLeaks = leakCheck();
after(() => checkLeaks());

/** The RFC 6455 §5.3 definition, one byte at a time: j = i MOD 4. */
function referenceMask(data: Uint8Array, maskKey: Uint8Array, keyOffset: number): { out: Uint8Array; next: number } {
  const out = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = data[i]! ^ maskKey[(keyOffset + i) % 4]!;
  return { out, next: (keyOffset + data.length) % 4 };
}

/**
 * `length` random bytes placed at `byteOffset` inside a larger random buffer,
 * so that the word path meets every alignment and the bytes around the view
 * can be checked for stray writes.
 */
function placed(rng: Prng, length: number, byteOffset: number): { whole: Uint8Array; view: Uint8Array } {
  const whole = rng.bytes(byteOffset + length + 8);
  return { whole, view: whole.subarray(byteOffset, byteOffset + length) };
}

describe('maskInPlace (RFC 6455 §5.3)', { timeout: 20_000 }, () => {
  // RFC 6455 §5.7: "Hello" masked with 37 fa 21 3d.
  const rfcKey = hex('37 fa 21 3d');
  const vectors: Array<{ name: string; key: string; offset: number; plain: string; masked: string; next: number }> = [
    { name: 'RFC 5.7 "Hello"', key: '37 fa 21 3d', offset: 0, plain: '48 65 6c 6c 6f', masked: '7f 9f 4d 51 58', next: 1 },
    { name: 'empty payload', key: '37 fa 21 3d', offset: 2, plain: '', masked: '', next: 2 },
    { name: 'zero key is the identity', key: '00 00 00 00', offset: 0, plain: '01 02 03', masked: '01 02 03', next: 3 },
    { name: 'key offset 1', key: '01 02 03 04', offset: 1, plain: '00 00 00 00 00', masked: '02 03 04 01 02', next: 2 },
    { name: 'key offset 3', key: '01 02 03 04', offset: 3, plain: '00 00 00 00 00', masked: '04 01 02 03 04', next: 0 },
    { name: 'key offset 5 counts as 1', key: '01 02 03 04', offset: 5, plain: '00 00', masked: '02 03', next: 3 },
    {
      // 40 bytes: long enough for the word-at-a-time path.
      name: 'word path, ff ⊕ key',
      key: '0f f0 aa 55',
      offset: 2,
      plain: 'ff'.repeat(40),
      masked: '55 aa f0 0f '.repeat(10),
      next: 2,
    },
  ];

  for (const v of vectors) {
    it(v.name, { timeout: 1000 }, () => {
      const buf = hex(v.plain);
      const next = maskInPlace(buf, hex(v.key), v.offset);
      assert.equal(toHex(buf), toHex(hex(v.masked)));
      assert.equal(next, v.next);
    });
  }

  it('the RFC 5.7 "Hello" frame unmasks to "Hello"', { timeout: 1000 }, () => {
    const frame = hex('81 85 37 fa 21 3d 7f 9f 4d 51 58');
    const payload = frame.subarray(6);
    maskInPlace(payload, frame.subarray(2, 6));
    assert.equal(Buffer.from(payload).toString(), 'Hello');
  });

  it('ignores key bytes past the fourth', { timeout: 1000 }, () => {
    const buf = new Uint8Array(64);
    maskInPlace(buf, hex('01 02 03 04 ff ff'));
    assert.equal(toHex(buf), toHex(hex('01 02 03 04'.repeat(16))));
  });

  it('matches the byte-wise definition for random lengths, alignments and key offsets', { timeout: 5000 }, () => {
    const rng = prng();
    for (let round = 0; round < 3000; round++) {
      // Mostly around the word threshold, sometimes larger.
      const length = rng.int(4) === 0 ? rng.int(5000) : rng.int(80);
      const byteOffset = rng.int(16);
      const keyOffset = rng.int(8);
      const maskKey = rng.bytes(4);
      const { whole, view } = placed(rng, length, byteOffset);
      const before = whole.slice();
      const want = referenceMask(view, maskKey, keyOffset);
      const next = maskInPlace(view, maskKey, keyOffset);
      const where = `length ${length}, byteOffset ${byteOffset}, keyOffset ${keyOffset}; ${describeSeed(rng)}`;
      assert.equal(next, want.next, where);
      assert.ok(Buffer.from(view).equals(want.out), `masked bytes differ: ${where}`);
      assert.ok(Buffer.from(whole.subarray(0, byteOffset)).equals(before.subarray(0, byteOffset)), `wrote before the view: ${where}`);
      assert.ok(
        Buffer.from(whole.subarray(byteOffset + length)).equals(before.subarray(byteOffset + length)),
        `wrote after the view: ${where}`,
      );
    }
  });

  it('works on Buffers from the shared pool (odd byteOffset)', { timeout: 1000 }, () => {
    const rng = prng();
    for (let round = 0; round < 200; round++) {
      const data = rng.bytes(33 + rng.int(200));
      Buffer.allocUnsafe(1 + rng.int(7)); // shift the pool's next offset
      const buf = Buffer.from(data);
      const maskKey = rng.bytes(4);
      maskInPlace(buf, maskKey);
      assert.ok(buf.equals(referenceMask(data, maskKey, 0).out), `byteOffset ${buf.byteOffset}; ${describeSeed(rng)}`);
    }
  });

  it('masking in pieces, carrying the returned offset, equals masking at once', { timeout: 5000 }, () => {
    const rng = prng();
    for (let round = 0; round < 500; round++) {
      const data = rng.bytes(rng.int(600));
      const maskKey = rng.bytes(4);
      const startOffset = rng.int(4);
      const atOnce = data.slice();
      const endOffset = maskInPlace(atOnce, maskKey, startOffset);

      // The same bytes, in random pieces, each piece at a different alignment.
      const pieces: Uint8Array[] = [];
      let k = startOffset;
      for (let at = 0; at < data.length; ) {
        const size = Math.min(data.length - at, rng.int(4) === 0 ? rng.int(100) : 1 + rng.int(40));
        const { view } = placed(rng, size, rng.int(8));
        view.set(data.subarray(at, at + size));
        k = maskInPlace(view, maskKey, k);
        pieces.push(view);
        at += size;
      }
      const where = `length ${data.length}, start offset ${startOffset}; ${describeSeed(rng)}`;
      assert.ok(Buffer.concat(pieces).equals(atOnce), where);
      assert.equal(k, endOffset, where);
    }
  });

  it('is an involution: masking twice with the same key and offset restores the bytes', { timeout: 2000 }, () => {
    const rng = prng();
    for (let round = 0; round < 300; round++) {
      const { view } = placed(rng, rng.int(300), rng.int(8));
      const original = view.slice();
      const maskKey = rng.bytes(4);
      const keyOffset = rng.int(4);
      maskInPlace(view, maskKey, keyOffset);
      if (original.length > 0 && maskKey.some((b) => b !== 0)) {
        // A nonzero key changes at least one of four consecutive bytes.
        if (original.length >= 4) assert.ok(!Buffer.from(view).equals(original), describeSeed(rng));
      }
      maskInPlace(view, maskKey, keyOffset);
      assert.ok(Buffer.from(view).equals(original), describeSeed(rng));
    }
  });

  it('leaves the key unchanged', { timeout: 1000 }, () => {
    const maskKey = Uint8Array.from(rfcKey);
    maskInPlace(new Uint8Array(100), maskKey, 3);
    assert.equal(toHex(maskKey), '37 fa 21 3d');
  });
});

describe('maskCopy (RFC 6455 §5.3)', { timeout: 20_000 }, () => {
  it('writes the masked bytes at the offset, for every alignment of source and destination', { timeout: 5000 }, () => {
    const rng = prng();
    for (let round = 0; round < 3000; round++) {
      const length = rng.int(4) === 0 ? rng.int(5000) : rng.int(80);
      const { whole: source, view: src } = placed(rng, length, rng.int(8));
      const sourceBefore = source.slice();
      const dstOffset = rng.int(16);
      const { whole, view: dst } = placed(rng, dstOffset + length, rng.int(8));
      const dstBefore = whole.slice();
      const maskKey = rng.bytes(4);
      maskCopy(src, dst, dstOffset, maskKey);
      const where = `length ${length}, offsets ${src.byteOffset}/${dst.byteOffset}+${dstOffset}; ${describeSeed(rng)}`;
      const want = referenceMask(src, maskKey, 0).out;
      assert.ok(Buffer.from(dst.subarray(dstOffset, dstOffset + length)).equals(want), `masked bytes differ: ${where}`);
      assert.ok(Buffer.from(source).equals(sourceBefore), `the source changed: ${where}`);
      const outside = dst.byteOffset + dstOffset;
      assert.ok(Buffer.from(whole.subarray(0, outside)).equals(dstBefore.subarray(0, outside)), `wrote before: ${where}`);
      assert.ok(
        Buffer.from(whole.subarray(outside + length)).equals(dstBefore.subarray(outside + length)),
        `wrote after: ${where}`,
      );
    }
  });
});
