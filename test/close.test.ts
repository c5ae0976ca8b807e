import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { closeStatus, decodeClosePayload, encodeClosePayload, isValidCloseCode, StatusCode } from '../src/close.js';
import { ClosedError, CloseError, MessageTooBigError, ProtocolError } from '../src/errors.js';
import { hex, toHex } from './helpers/hex.js';
import { leakCheck } from './helpers/leak.js';

const checkLeaks = leakCheck();
after(() => checkLeaks());

function isProtocolError(code: number): (err: unknown) => boolean {
  return (err) => err instanceof ProtocolError && err.code === code;
}

// RFC 6455 §7.4.1 defines 1000–1011 (1004–1006 and 1015 reserved, never sent);
// the IANA registry (§11.7) adds 1012–1014; 3000–4999 are for libraries and apps.
const validCodes = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999];
const invalidCodes = [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535];

describe('close payload (RFC 6455 §5.5.1, §7.4)', { timeout: 10_000 }, () => {
  describe('isValidCloseCode', { timeout: 2000 }, () => {
    for (const code of validCodes) {
      it(`${code} may be sent`, { timeout: 1000 }, () => assert.equal(isValidCloseCode(code), true));
    }
    for (const code of invalidCodes) {
      it(`${code} may not be sent`, { timeout: 1000 }, () => assert.equal(isValidCloseCode(code), false));
    }
    it('non-integers may not be sent', { timeout: 1000 }, () => {
      for (const code of [1000.5, Number.NaN, Infinity, -1000]) assert.equal(isValidCloseCode(code), false, String(code));
    });
  });

  describe('encodeClosePayload', { timeout: 2000 }, () => {
    const fixtures: Array<{ code: number; reason?: string; bytes: string }> = [
      { code: 1000, bytes: '03 e8' },
      { code: 1000, reason: 'bye', bytes: '03 e8 62 79 65' },
      { code: 1001, reason: '', bytes: '03 e9' },
      { code: 1011, reason: 'é', bytes: '03 f3 c3 a9' },
      { code: 3000, bytes: '0b b8' },
      { code: 4999, reason: '€', bytes: '13 87 e2 82 ac' },
      // RFC 6455 §7.1.6: 1005 means "no status", sent as an empty payload.
      { code: 1005, bytes: '' },
    ];
    for (const { code, reason, bytes } of fixtures) {
      it(`${code} ${JSON.stringify(reason ?? '')} → [${bytes}]`, { timeout: 1000 }, () => {
        assert.equal(toHex(encodeClosePayload(code, reason)), bytes);
      });
    }

    for (const code of invalidCodes.filter((c) => c !== 1005)) {
      it(`${code} throws RangeError`, { timeout: 1000 }, () => {
        assert.throws(() => encodeClosePayload(code), RangeError);
      });
    }

    it('1005 with a reason throws RangeError (a reason needs a code)', { timeout: 1000 }, () => {
      assert.throws(() => encodeClosePayload(1005, 'x'), RangeError);
    });

    it('a 123-byte reason fits (125-byte control frame limit, RFC 6455 §5.5)', { timeout: 1000 }, () => {
      assert.equal(encodeClosePayload(1000, 'a'.repeat(123)).length, 125);
      // 41 three-byte characters: 123 bytes.
      const euros = '€'.repeat(41);
      const payload = encodeClosePayload(1000, euros);
      assert.equal(payload.length, 125);
      assert.deepEqual(decodeClosePayload(payload), { code: 1000, reason: euros });
    });

    it('a 124-byte reason throws RangeError', { timeout: 1000 }, () => {
      assert.throws(() => encodeClosePayload(1000, 'a'.repeat(124)), RangeError);
      // Counted in UTF-8 bytes, not UTF-16 units: 42 × 3 = 126 bytes in 42 units.
      assert.throws(() => encodeClosePayload(1000, '€'.repeat(42)), RangeError);
      assert.throws(() => encodeClosePayload(1000, `a${'€'.repeat(41)}`), RangeError);
    });
  });

  describe('decodeClosePayload', { timeout: 2000 }, () => {
    it('an empty payload is 1005 with no reason', { timeout: 1000 }, () => {
      assert.deepEqual(decodeClosePayload(new Uint8Array(0)), { code: StatusCode.NoStatusReceived, reason: '' });
    });

    for (const code of validCodes) {
      it(`decodes ${code}`, { timeout: 1000 }, () => {
        assert.deepEqual(decodeClosePayload(Uint8Array.of(code >> 8, code & 0xff)), { code, reason: '' });
      });
    }

    it('decodes the reason as UTF-8', { timeout: 1000 }, () => {
      assert.deepEqual(decodeClosePayload(hex('03 e8 62 79 65')), { code: 1000, reason: 'bye' });
      assert.deepEqual(decodeClosePayload(hex('0f a0 ce ba e1 bd b9 cf 83 ce bc ce b5')), { code: 4000, reason: '\u03ba\u1f79\u03c3\u03bc\u03b5' });
      assert.deepEqual(decodeClosePayload(hex('03 e8 f0 9f 98 80')), { code: 1000, reason: '😀' });
    });

    it('a 1-byte payload is ProtocolError 1002', { timeout: 1000 }, () => {
      assert.throws(() => decodeClosePayload(hex('03')), isProtocolError(1002));
    });

    for (const code of invalidCodes.filter((c) => c <= 0xffff)) {
      it(`code ${code} is ProtocolError 1002`, { timeout: 1000 }, () => {
        assert.throws(() => decodeClosePayload(Uint8Array.of(code >> 8, code & 0xff)), isProtocolError(1002));
      });
    }

    const badReasons = [
      ['a lone continuation byte', '03 e8 80'],
      ['0xff', '03 e8 ff'],
      ['a truncated sequence', '03 e8 e2 82'],
      ['an overlong encoding', '03 e8 c0 af'],
      ['a UTF-16 surrogate', '03 e8 ed a0 80'],
      ['a code point above U+10FFFF', '03 e8 f4 90 80 80'],
      ['good text then a bad byte', '03 e8 6f 6b fe'],
    ] as const;
    for (const [name, bytes] of badReasons) {
      it(`a reason with ${name} is ProtocolError 1007`, { timeout: 1000 }, () => {
        assert.throws(() => decodeClosePayload(hex(bytes)), isProtocolError(1007));
      });
    }

    it('round-trips every valid code with a reason', { timeout: 1000 }, () => {
      for (const code of validCodes) {
        assert.deepEqual(decodeClosePayload(encodeClosePayload(code, `reason ${code} ✓`)), { code, reason: `reason ${code} ✓` });
      }
    });
  });

  describe('closeStatus', { timeout: 2000 }, () => {
    it('is the code of a CloseError', { timeout: 1000 }, () => {
      assert.equal(closeStatus(new CloseError(1000, '')), 1000);
      assert.equal(closeStatus(new CloseError(4001, 'app')), 4001);
      assert.equal(closeStatus(new CloseError(1005, '')), 1005);
    });

    it('follows cause chains', { timeout: 1000 }, () => {
      const close = new CloseError(1001, 'going away');
      assert.equal(closeStatus(new ClosedError('closed', { cause: close })), 1001);
      assert.equal(closeStatus(new Error('outer', { cause: new Error('middle', { cause: close }) })), 1001);
      assert.equal(closeStatus(new TypeError('x', { cause: new ClosedError(undefined, { cause: close }) })), 1001);
    });

    it('is -1 for errors that are not the peer closing', { timeout: 1000 }, () => {
      assert.equal(closeStatus(new ProtocolError(1002, 'bad frame')), -1);
      assert.equal(closeStatus(new MessageTooBigError(10)), -1);
      assert.equal(closeStatus(new ClosedError()), -1);
      assert.equal(closeStatus(new Error('x', { cause: new Error('y') })), -1);
    });

    it('is -1 for non-errors', { timeout: 1000 }, () => {
      for (const value of [undefined, null, 1000, 'CloseError', { code: 1000 }, { name: 'CloseError', code: 1000 }]) {
        assert.equal(closeStatus(value), -1, String(value));
      }
      // A non-error in a cause chain stops the walk.
      assert.equal(closeStatus(new Error('x', { cause: { code: 1000 } })), -1);
    });

    it('terminates on a cause cycle', { timeout: 1000 }, () => {
      const a = new Error('a');
      const b = new Error('b', { cause: a });
      (a as { cause?: unknown }).cause = b;
      assert.equal(closeStatus(a), -1);
      const c = new Error('c');
      (c as { cause?: unknown }).cause = c;
      assert.equal(closeStatus(c), -1);
    });
  });
});
