import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { ProtocolError } from '../src/errors.js';
import { decodeHeader, encodeHeader, headerLength, isControl, maxHeaderLength, Opcode, type FrameHeader } from '../src/frame.js';
import { hex, toHex } from './helpers/hex.js';
import { leakCheck } from './helpers/leak.js';
import { describeSeed, prng } from './helpers/prng.js';

const checkLeaks = leakCheck();
after(() => checkLeaks());

function header(fields: Partial<FrameHeader>): FrameHeader {
  return {
    fin: true,
    rsv1: false,
    rsv2: false,
    rsv3: false,
    opcode: Opcode.Binary,
    payloadLength: 0,
    maskKey: undefined,
    ...fields,
  };
}

const key = hex('37 fa 21 3d');

// Each row: a header and its exact bytes on the wire (RFC 6455 §5.2).
const fixtures: Array<{ name: string; header: FrameHeader; bytes: string }> = [
  // RFC 6455 §5.7: a single-frame unmasked text message "Hello".
  { name: 'RFC 5.7 unmasked "Hello"', header: header({ opcode: Opcode.Text, payloadLength: 5 }), bytes: '81 05' },
  // RFC 6455 §5.7: the same, masked with 37 fa 21 3d.
  {
    name: 'RFC 5.7 masked "Hello"',
    header: header({ opcode: Opcode.Text, payloadLength: 5, maskKey: key }),
    bytes: '81 85 37 fa 21 3d',
  },
  // RFC 6455 §5.7: first fragment of "Hel" / "lo".
  { name: 'RFC 5.7 first fragment', header: header({ fin: false, opcode: Opcode.Text, payloadLength: 3 }), bytes: '01 03' },
  { name: 'RFC 5.7 last fragment', header: header({ opcode: Opcode.Continuation, payloadLength: 2 }), bytes: '80 02' },
  // RFC 6455 §5.7: unmasked ping "Hello" and its masked pong.
  { name: 'RFC 5.7 ping', header: header({ opcode: Opcode.Ping, payloadLength: 5 }), bytes: '89 05' },
  {
    name: 'RFC 5.7 masked pong',
    header: header({ opcode: Opcode.Pong, payloadLength: 5, maskKey: key }),
    bytes: '8a 85 37 fa 21 3d',
  },
  // RFC 6455 §5.7: 256 bytes binary in one unmasked frame; 64 KiB likewise.
  { name: 'RFC 5.7 256 bytes', header: header({ payloadLength: 256 }), bytes: '82 7e 01 00' },
  { name: 'RFC 5.7 64 KiB', header: header({ payloadLength: 65536 }), bytes: '82 7f 00 00 00 00 00 01 00 00' },
  // Boundaries of the three length forms.
  { name: 'empty', header: header({ payloadLength: 0 }), bytes: '82 00' },
  { name: '125 (7-bit, largest)', header: header({ payloadLength: 125 }), bytes: '82 7d' },
  { name: '126 (16-bit, smallest)', header: header({ payloadLength: 126 }), bytes: '82 7e 00 7e' },
  { name: '65535 (16-bit, largest)', header: header({ payloadLength: 65535 }), bytes: '82 7e ff ff' },
  { name: '65536 (64-bit, smallest)', header: header({ payloadLength: 65536 }), bytes: '82 7f 00 00 00 00 00 01 00 00' },
  { name: '2^32 - 1', header: header({ payloadLength: 2 ** 32 - 1 }), bytes: '82 7f 00 00 00 00 ff ff ff ff' },
  { name: '2^32', header: header({ payloadLength: 2 ** 32 }), bytes: '82 7f 00 00 00 01 00 00 00 00' },
  { name: '2^32 + 5', header: header({ payloadLength: 2 ** 32 + 5 }), bytes: '82 7f 00 00 00 01 00 00 00 05' },
  { name: '2^53 - 1', header: header({ payloadLength: 2 ** 53 - 1 }), bytes: '82 7f 00 1f ff ff ff ff ff ff' },
  // Each length form masked: the key follows the extended length.
  { name: 'masked 125', header: header({ payloadLength: 125, maskKey: key }), bytes: '82 fd 37 fa 21 3d' },
  { name: 'masked 126', header: header({ payloadLength: 126, maskKey: key }), bytes: '82 fe 00 7e 37 fa 21 3d' },
  {
    name: 'masked 65536',
    header: header({ payloadLength: 65536, maskKey: key }),
    bytes: '82 ff 00 00 00 00 00 01 00 00 37 fa 21 3d',
  },
  // RSV bits, each on its own and all together.
  { name: 'rsv1', header: header({ rsv1: true, opcode: Opcode.Text, payloadLength: 1 }), bytes: 'c1 01' },
  { name: 'rsv2', header: header({ rsv2: true, opcode: Opcode.Text, payloadLength: 1 }), bytes: 'a1 01' },
  { name: 'rsv3', header: header({ rsv3: true, opcode: Opcode.Text, payloadLength: 1 }), bytes: '91 01' },
  {
    name: 'all rsv, no fin',
    header: header({ fin: false, rsv1: true, rsv2: true, rsv3: true, opcode: Opcode.Binary, payloadLength: 1 }),
    bytes: '72 01',
  },
  // Every opcode, including the reserved ones (the codec reports them; read.ts rejects them).
  ...Array.from({ length: 16 }, (_, opcode) => ({
    name: `opcode 0x${opcode.toString(16)}`,
    header: header({ opcode }),
    bytes: `${(0x80 | opcode).toString(16)} 00`,
  })),
  { name: 'close with code 1000', header: header({ opcode: Opcode.Close, payloadLength: 2 }), bytes: '88 02' },
];

describe('frame header codec (RFC 6455 §5.2)', { timeout: 10_000 }, () => {
  describe('encodeHeader', { timeout: 5000 }, () => {
    for (const { name, header: h, bytes } of fixtures) {
      it(name, { timeout: 1000 }, () => {
        const want = hex(bytes);
        const out = new Uint8Array(maxHeaderLength).fill(0xee);
        const written = encodeHeader(h, out);
        assert.equal(written, want.length);
        assert.equal(toHex(out.subarray(0, written)), toHex(want));
        assert.equal(headerLength(h.payloadLength, h.maskKey !== undefined), want.length);
      });
    }

    it('writes at an offset and touches nothing else', { timeout: 1000 }, () => {
      const out = new Uint8Array(20).fill(0xee);
      const written = encodeHeader(header({ payloadLength: 300, maskKey: key }), out, 3);
      assert.equal(written, 8);
      assert.equal(toHex(out), toHex(hex('ee ee ee 82 fe 01 2c 37 fa 21 3d ee ee ee ee ee ee ee ee ee')));
    });

    it('uses the minimal length form (RFC 6455 §5.2)', { timeout: 1000 }, () => {
      for (const [length, size] of [
        [0, 2],
        [125, 2],
        [126, 4],
        [65535, 4],
        [65536, 10],
        [2 ** 40, 10],
      ] as const) {
        assert.equal(headerLength(length, false), size, `length ${length}`);
        assert.equal(headerLength(length, true), size + 4, `masked length ${length}`);
      }
    });
  });

  describe('decodeHeader', { timeout: 5000 }, () => {
    for (const { name, header: h, bytes } of fixtures) {
      it(name, { timeout: 1000 }, () => {
        const input = hex(bytes);
        const decoded = decodeHeader(input);
        assert.ok(decoded !== undefined, 'decoded nothing');
        assert.equal(decoded.headerLength, input.length);
        assert.deepEqual(
          { ...decoded.header, maskKey: decoded.header.maskKey && toHex(decoded.header.maskKey) },
          { ...h, maskKey: h.maskKey && toHex(h.maskKey) },
        );
      });
    }

    it('decodes at an offset, ignoring bytes after the header', { timeout: 1000 }, () => {
      const decoded = decodeHeader(hex('ff ff 81 85 37 fa 21 3d 7f 9f 4d 51 58'), 2);
      assert.ok(decoded !== undefined, 'decoded nothing');
      assert.equal(decoded.headerLength, 6);
      assert.equal(decoded.header.payloadLength, 5);
      assert.equal(toHex(decoded.header.maskKey!), '37 fa 21 3d');
    });

    it('returns a mask key that does not alias the input', { timeout: 1000 }, () => {
      const input = hex('81 85 37 fa 21 3d');
      const decoded = decodeHeader(input);
      input.fill(0);
      assert.equal(toHex(decoded!.header.maskKey!), '37 fa 21 3d');
    });

    // Every proper prefix of a header is "not yet": undefined, never a throw or a wrong header.
    const incomplete = [
      '',
      '81',
      '81 85',
      '81 85 37 fa 21',
      '82 7e',
      '82 7e 00',
      '82 fe 00 7e 37 fa 21',
      '82 7f',
      '82 7f 00 00 00 00 00 01 00',
      '82 ff 00 00 00 00 00 01 00 00 37 fa 21',
    ];
    for (const bytes of incomplete) {
      it(`incomplete [${bytes}] returns undefined`, { timeout: 1000 }, () => {
        assert.equal(decodeHeader(hex(bytes)), undefined);
      });
    }

    it('returns undefined for every proper prefix of every fixture', { timeout: 1000 }, () => {
      for (const { name, bytes } of fixtures) {
        const input = hex(bytes);
        for (let n = 0; n < input.length; n++) {
          assert.equal(decodeHeader(input.subarray(0, n)), undefined, `${name}, first ${n} bytes`);
        }
      }
    });

    it('counts available bytes from the offset', { timeout: 1000 }, () => {
      assert.equal(decodeHeader(hex('00 00 00 82 7e 01'), 3), undefined);
      assert.equal(decodeHeader(hex('00 00 00 82 7e 01 00'), 3)?.header.payloadLength, 256);
    });

    // RFC 6455 §5.2: "the most significant bit MUST be 0".
    const msbSet = [
      '82 7f 80 00 00 00 00 00 00 00',
      '82 7f 80 00 00 00 00 00 00 05',
      '82 7f ff ff ff ff ff ff ff ff',
      '82 ff 80 00 00 00 00 00 00 00 37 fa 21 3d',
    ];
    for (const bytes of msbSet) {
      it(`64-bit length with the MSB set [${bytes}] throws ProtocolError 1002`, { timeout: 1000 }, () => {
        assert.throws(
          () => decodeHeader(hex(bytes)),
          (err: unknown) => err instanceof ProtocolError && err.code === 1002,
        );
      });
    }

    it('a 64-bit length JavaScript cannot index (2^53 … 2^63-1) throws ProtocolError 1009', { timeout: 1000 }, () => {
      for (const bytes of ['82 7f 00 20 00 00 00 00 00 00', '82 7f 7f ff ff ff ff ff ff ff']) {
        assert.throws(
          () => decodeHeader(hex(bytes)),
          (err: unknown) => err instanceof ProtocolError && err.code === 1009,
          bytes,
        );
      }
    });

    it('round-trips random headers', { timeout: 2000 }, () => {
      const rng = prng();
      const lengths = [0, 1, 125, 126, 127, 65535, 65536, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1];
      for (let i = 0; i < 2000; i++) {
        const h = header({
          fin: rng.int(2) === 1,
          rsv1: rng.int(2) === 1,
          rsv2: rng.int(2) === 1,
          rsv3: rng.int(2) === 1,
          opcode: rng.int(16),
          payloadLength: rng.int(3) === 0 ? lengths[rng.int(lengths.length)]! : Math.floor(rng.next() * 2 ** 53),
          maskKey: rng.int(2) === 1 ? rng.bytes(4) : undefined,
        });
        const out = new Uint8Array(maxHeaderLength + 3);
        const offset = rng.int(4);
        const written = encodeHeader(h, out, offset);
        const decoded = decodeHeader(out.subarray(0, offset + written), offset);
        assert.ok(decoded !== undefined, describeSeed(rng));
        assert.equal(decoded.headerLength, written, describeSeed(rng));
        assert.deepEqual(decoded.header, h, `${JSON.stringify(h)}; ${describeSeed(rng)}`);
      }
    });
  });

  it('isControl is true exactly for opcodes 0x8–0xf (RFC 6455 §5.5)', { timeout: 1000 }, () => {
    for (let opcode = 0; opcode < 16; opcode++) assert.equal(isControl(opcode), opcode >= 8, `opcode ${opcode}`);
    assert.equal(isControl(Opcode.Close), true);
    assert.equal(isControl(Opcode.Ping), true);
    assert.equal(isControl(Opcode.Pong), true);
    assert.equal(isControl(Opcode.Text), false);
  });
});
