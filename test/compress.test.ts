import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import zlib from 'node:zlib';
import {
  clientOffer,
  CompressionMode,
  compressedLimit,
  MessageDeflater,
  MessageInflater,
  negotiateServer,
  parseClientResponse,
  parseExtensions,
  type DeflateParams,
} from '../src/compress.js';
import { MessageTooBigError, ProtocolError } from '../src/errors.js';
import { leakCheck } from './helpers/leak.js';
import { hex, toHex } from './helpers/hex.js';
import { describeSeed, prng } from './helpers/prng.js';

const checkLeaks = leakCheck();
after(() => checkLeaks());

const KiB = 1024;
const MiB = 1024 * KiB;
const utf8 = (text: string): Uint8Array => Buffer.from(text, 'utf8');

function params(overrides: Partial<DeflateParams> = {}): DeflateParams {
  return { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15, ...overrides };
}
const noTakeover = params({ serverNoContextTakeover: true, clientNoContextTakeover: true });

const p = (name: string, value?: string): { name: string; value: string | undefined } => ({ name, value });
const ok = (name: string, ...list: { name: string; value: string | undefined }[]) => ({ name, params: list, valid: true });

/** [what, header, parsed] */
const headers: [string, string | string[] | undefined, unknown[]][] = [
  ['no header', undefined, []],
  ['an empty header', '  ', []],
  ['a bare offer', 'permessage-deflate', [ok('permessage-deflate')]],
  ['names in any case', 'PerMessage-Deflate; Client_Max_Window_Bits', [ok('permessage-deflate', p('client_max_window_bits'))]],
  ['a token value', 'permessage-deflate; client_max_window_bits=10', [ok('permessage-deflate', p('client_max_window_bits', '10'))]],
  ['a quoted value', 'permessage-deflate; server_max_window_bits="10"', [ok('permessage-deflate', p('server_max_window_bits', '10'))]],
  ['an escaped quoted value', 'permessage-deflate; x="1\\0"', [ok('permessage-deflate', p('x', '10'))]],
  ['white space everywhere', ' permessage-deflate ;\tx = 9 ; y ', [ok('permessage-deflate', p('x', '9'), p('y'))]],
  ['several offers', 'permessage-deflate; a, x-webkit-deflate-frame', [ok('permessage-deflate', p('a')), ok('x-webkit-deflate-frame')]],
  ['several header lines', ['permessage-deflate; a', 'foo'], [ok('permessage-deflate', p('a')), ok('foo')]],
  ['empty list elements', ', a ,, b ,', [ok('a'), ok('b')]],
  ['duplicates kept', 'a; x; x=1', [ok('a', p('x'), p('x', '1'))]],
];

/** [what, header, validity of each element] */
const malformed: [string, string, boolean[]][] = [
  ['a quoted value that is not a token', 'permessage-deflate; x="a b", b', [false, true]],
  ['an empty quoted value', 'permessage-deflate; x=""', [false]],
  ['a missing value', 'permessage-deflate; x=, b', [false, true]],
  ['a missing parameter name', 'permessage-deflate; =1', [false]],
  ['an empty parameter', 'permessage-deflate;; x', [false]],
  ['two tokens without a separator', 'permessage-deflate x, b', [false, true]],
  ['an unterminated quote (it swallows the rest)', 'permessage-deflate; x="1, b', [false]],
  ['a quote where a name belongs', '"a", b', [false, true]],
  ['a quoted comma', 'a; x="1,2" y, b', [false, true]],
];

describe('parseExtensions (RFC 6455 §9.1)', { timeout: 10_000 }, () => {
  for (const [name, header, expected] of headers) {
    it(`parses ${name}`, { timeout: 1000 }, () => assert.deepEqual(parseExtensions(header), expected));
  }
  for (const [name, header, validity] of malformed) {
    it(`marks ${name} invalid and goes on`, { timeout: 1000 }, () => {
      assert.deepEqual(parseExtensions(header).map((offer) => offer.valid), validity);
    });
  }
});

const base = 'permessage-deflate';
/** [offer, response in context-takeover mode (undefined: declined), agreed params] */
const offers: [string, string | undefined, Partial<DeflateParams>?][] = [
  ['permessage-deflate', base], // Firefox
  ['permessage-deflate; client_max_window_bits', base], // Chromium
  ['permessage-deflate; server_no_context_takeover', `${base}; server_no_context_takeover`, { serverNoContextTakeover: true }],
  ['permessage-deflate; client_no_context_takeover', `${base}; client_no_context_takeover`, { clientNoContextTakeover: true }],
  ['permessage-deflate; server_max_window_bits=10', `${base}; server_max_window_bits=10`, { serverMaxWindowBits: 10 }],
  ['permessage-deflate; server_max_window_bits=8', `${base}; server_max_window_bits=8`, { serverMaxWindowBits: 8 }],
  ['permessage-deflate; server_max_window_bits="15"', `${base}; server_max_window_bits=15`],
  ['permessage-deflate; client_max_window_bits=9', `${base}; client_max_window_bits=9`, { clientMaxWindowBits: 9 }],
  [
    'permessage-deflate; client_no_context_takeover; server_no_context_takeover; server_max_window_bits=12; client_max_window_bits=11',
    `${base}; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=11`,
    { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 12, clientMaxWindowBits: 11 },
  ],
  ['permessage-deflate; server_max_window_bits', undefined],
  ['permessage-deflate; server_max_window_bits=16', undefined],
  ['permessage-deflate; server_max_window_bits=7', undefined],
  ['permessage-deflate; server_max_window_bits=09', undefined],
  ['permessage-deflate; client_max_window_bits=16', undefined],
  ['permessage-deflate; client_max_window_bits=abc', undefined],
  ['permessage-deflate; server_no_context_takeover=true', undefined],
  ['permessage-deflate; client_no_context_takeover="x"', undefined],
  ['permessage-deflate; client_no_context_takeover; client_no_context_takeover', undefined],
  ['permessage-deflate; client_max_window_bits; client_max_window_bits=10', undefined],
  ['permessage-deflate; server_max_window_bits=10; server_max_window_bits=10', undefined],
  ['permessage-deflate; mux', undefined],
  ['permessage-deflate; x="unterminated', undefined],
  ['x-webkit-deflate-frame', undefined],
  ['', undefined],
  ['permessage-deflate; server_max_window_bits=16, permessage-deflate; client_max_window_bits', base],
  ['x-webkit-deflate-frame, permessage-deflate; mux, permessage-deflate; server_max_window_bits=11', `${base}; server_max_window_bits=11`, { serverMaxWindowBits: 11 }],
  ['permessage-deflate; server_max_window_bits=10, permessage-deflate', `${base}; server_max_window_bits=10`, { serverMaxWindowBits: 10 }],
];

const nct = '; server_no_context_takeover; client_no_context_takeover';
/** [offer, response in no-context-takeover mode, agreed params] */
const nctOffers: [string, string, Partial<DeflateParams>?][] = [
  ['permessage-deflate', `${base}${nct}`],
  ['permessage-deflate; client_max_window_bits', `${base}${nct}`],
  ['permessage-deflate; client_max_window_bits=10', `${base}${nct}; client_max_window_bits=10`, { clientMaxWindowBits: 10 }],
];

describe('negotiateServer (RFC 7692 §5, §7.1)', { timeout: 10_000 }, () => {
  for (const [offer, response, agreed] of offers) {
    it(`${response === undefined ? 'declines' : 'accepts'} ${JSON.stringify(offer)}`, { timeout: 1000 }, () => {
      const result = negotiateServer(parseExtensions(offer), CompressionMode.ContextTakeover);
      assert.deepEqual(result, response === undefined ? undefined : { params: params(agreed), response });
    });
  }

  for (const [offer, response, agreed] of nctOffers) {
    it(`asks for both no_context_takeover in no-context-takeover mode: ${offer}`, { timeout: 1000 }, () => {
      const result = negotiateServer(parseExtensions(offer), CompressionMode.NoContextTakeover);
      assert.deepEqual(result, { params: { ...noTakeover, ...agreed }, response });
    });
  }

  it('accepts nothing when disabled', { timeout: 1000 }, () => {
    assert.equal(negotiateServer(parseExtensions('permessage-deflate'), CompressionMode.Disabled), undefined);
  });
});

const ct = CompressionMode.ContextTakeover;
/** [response, agreed params (undefined: no compression)] */
const goodResponses: [string | string[] | undefined, Partial<DeflateParams> | undefined][] = [
  [undefined, undefined],
  ['', undefined],
  ['permessage-deflate', {}],
  [['permessage-deflate'], {}],
  ['permessage-deflate; server_no_context_takeover', { serverNoContextTakeover: true }],
  ['permessage-deflate; client_no_context_takeover', { clientNoContextTakeover: true }],
  ['permessage-deflate; server_max_window_bits=9', { serverMaxWindowBits: 9 }],
  ['permessage-deflate; client_max_window_bits=8', { clientMaxWindowBits: 8 }],
  ['PerMessage-Deflate ; Client_Max_Window_Bits="12"', { clientMaxWindowBits: 12 }],
];

/** [response, mode offered, error] */
const badResponses: [string, CompressionMode, RegExp][] = [
  ['permessage-deflate', CompressionMode.Disabled, /not offered/],
  ['x-webkit-deflate-frame', ct, /x-webkit-deflate-frame, which was not offered/],
  ['permessage-deflate, permessage-deflate', ct, /more than one extension/],
  ['permessage-deflate; client_max_window_bits', ct, /client_max_window_bits needs a value/],
  ['permessage-deflate; server_max_window_bits', ct, /server_max_window_bits needs a value/],
  ['permessage-deflate; server_max_window_bits=16', ct, /from 8 to 15, got 16/],
  ['permessage-deflate; client_max_window_bits=7', ct, /from 8 to 15, got 7/],
  ['permessage-deflate; server_no_context_takeover; server_no_context_takeover', ct, /duplicate parameter/],
  ['permessage-deflate; client_no_context_takeover=1', ct, /must not have a value/],
  ['permessage-deflate; mux', ct, /unknown parameter mux/],
  ['permessage-deflate; x="', ct, /RFC 6455 §9\.1 syntax/],
];

describe('clientOffer and parseClientResponse (RFC 7692 §5, §7.1)', { timeout: 10_000 }, () => {
  it('offers what the mode asks for', { timeout: 1000 }, () => {
    assert.equal(clientOffer(CompressionMode.Disabled), '');
    assert.equal(clientOffer(CompressionMode.ContextTakeover), 'permessage-deflate; client_max_window_bits');
    assert.equal(
      clientOffer(CompressionMode.NoContextTakeover),
      'permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits',
    );
  });

  const modes = [CompressionMode.ContextTakeover, CompressionMode.NoContextTakeover];
  for (const clientMode of modes) {
    for (const serverMode of modes) {
      it(`agrees with our server: client ${clientMode}, server ${serverMode}`, { timeout: 1000 }, () => {
        const accepted = negotiateServer(parseExtensions(clientOffer(clientMode)), serverMode);
        assert.ok(accepted !== undefined);
        assert.deepEqual(parseClientResponse(accepted.response, clientMode), accepted.params);
        const resets = clientMode === CompressionMode.NoContextTakeover || serverMode === CompressionMode.NoContextTakeover;
        assert.deepEqual(accepted.params, resets ? noTakeover : params());
      });
    }
  }

  for (const [header, agreed] of goodResponses) {
    it(`accepts the response ${JSON.stringify(header)}`, { timeout: 1000 }, () => {
      assert.deepEqual(parseClientResponse(header, ct), agreed === undefined ? undefined : params(agreed));
    });
  }

  it('accepts a server that keeps its window although asked not to', { timeout: 1000 }, () => {
    assert.deepEqual(parseClientResponse('permessage-deflate', CompressionMode.NoContextTakeover), params());
  });

  for (const [header, mode, message] of badResponses) {
    it(`rejects the response ${JSON.stringify(header)} (${mode})`, { timeout: 1000 }, () => {
      assert.throws(() => parseClientResponse(header, mode), message);
    });
  }
});

/** Compresses `message` as `frames` frames the way a Conn would send it. */
function deflateFrames(deflater: MessageDeflater, message: Uint8Array, frames = 1): Uint8Array[] {
  const size = Math.ceil(message.length / frames);
  const out: Uint8Array[] = [];
  for (let i = 0; i < frames; i++) out.push(deflater.compress(message.subarray(i * size, (i + 1) * size), i === frames - 1));
  return out;
}

/** Feeds a compressed message to `inflater` in pieces of at most `piece` bytes, as read.ts would. */
function inflatePieces(inflater: MessageInflater, payload: Uint8Array, limit = Infinity, piece = payload.length): Buffer {
  const parts: Uint8Array[] = [];
  for (let at = 0; at < payload.length || at === 0; at += Math.max(1, piece)) {
    const end = Math.min(payload.length, at + Math.max(1, piece));
    parts.push(inflater.decompress(payload.subarray(at, end), end === payload.length, limit));
  }
  return Buffer.concat(parts);
}

/** A persistent zlib inflater with a real `bits` window, as a strict peer (or `ws`) has. */
async function peerInflate(payloads: Uint8Array[], bits: number, small = false): Promise<Buffer[]> {
  const stream = zlib.createInflateRaw({ windowBits: bits, ...(small ? { chunkSize: 64 } : {}) });
  const failed = new Promise<never>((_, reject) => stream.once('error', reject));
  const out: Buffer[] = [];
  try {
    for (const payload of payloads) {
      const parts: Buffer[] = [];
      const onData = (chunk: Buffer): void => void parts.push(chunk);
      stream.on('data', onData);
      stream.write(Buffer.concat([payload, Buffer.from([0, 0, 0xff, 0xff])]));
      await Promise.race([failed, new Promise((resolve) => stream.flush(zlib.constants.Z_SYNC_FLUSH, () => resolve(null)))]);
      stream.off('data', onData);
      out.push(Buffer.concat(parts));
    }
    return out;
  } finally {
    stream.destroy();
    failed.catch(() => {});
  }
}

/** [what, decoded text, frame payloads] */
const examples: [string, string, string[]][] = [
  ['§7.2.3.1 one compressed block', 'Hello', ['f2 48 cd c9 c9 07 00']],
  ['§7.2.3.1 the same, in two frames', 'Hello', ['f2 48 cd', 'c9 c9 07 00']],
  ['§7.2.3.3 a block with no compression', 'Hello', ['00 05 00 fa ff 48 65 6c 6c 6f 00']],
  ['§7.2.3.4 a block with BFINAL set', 'Hello', ['f3 48 cd c9 c9 07 00 00']],
  ['§7.2.3.5 two blocks in one message', 'Hello', ['f2 48 05 00 00 00 ff ff ca c9 c9 07 00']],
  ['§7.2.3.6 an empty message', '', ['00']],
  ['an empty payload', '', ['']],
  ['a message ended by an empty call', 'Hello', ['f2 48 cd', 'c9 c9 07 00', '']],
];

describe('MessageInflater: the RFC 7692 §7.2.3 examples', { timeout: 10_000 }, () => {
  for (const [name, text, frames] of examples) {
    it(`decodes ${name}`, { timeout: 1000 }, () => {
      const inflater = new MessageInflater(params(), false);
      const out = frames.map((frame, i) => inflater.decompress(hex(frame), i === frames.length - 1, 100));
      assert.equal(Buffer.concat(out).toString(), text);
    });
  }

  it('decodes §7.2.3.2: a second message that refers to the first', { timeout: 1000 }, () => {
    const inflater = new MessageInflater(params(), true);
    assert.equal(Buffer.from(inflater.decompress(hex('f2 48 cd c9 c9 07 00'), true, 100)).toString(), 'Hello');
    assert.equal(Buffer.from(inflater.decompress(hex('f2 00 11 00 00'), true, 100)).toString(), 'Hello');
    // The window survives a BFINAL block too.
    assert.equal(Buffer.from(inflater.decompress(hex('f3 48 cd c9 c9 07 00 00'), true, 100)).toString(), 'Hello');
    assert.equal(Buffer.from(inflater.decompress(hex('f2 00 11 00 00'), true, 100)).toString(), 'Hello');
  });

  it('fails §7.2.3.2 with 1007 when the peer agreed to reset its window', { timeout: 1000 }, () => {
    const inflater = new MessageInflater(noTakeover, true);
    inflater.decompress(hex('f2 48 cd c9 c9 07 00'), true, 100);
    assert.throws(() => inflater.decompress(hex('f2 00 11 00 00'), true, 100), (err: unknown) => {
      assert.ok(err instanceof ProtocolError);
      assert.equal(err.code, 1007);
      return true;
    });
  });

  it('fails invalid DEFLATE data with 1007', { timeout: 1000 }, () => {
    const inflater = new MessageInflater(params(), false);
    assert.throws(() => inflater.decompress(hex('ff ff ff ff'), true, 100), { name: 'ProtocolError', code: 1007 });
  });
});

describe('MessageDeflater: RFC 7692 §7.2.1', { timeout: 10_000 }, () => {
  it('produces the §7.2.3.1 and §7.2.3.2 bytes with context takeover', { timeout: 1000 }, () => {
    const deflater = new MessageDeflater(params(), true);
    assert.equal(toHex(deflater.compress(utf8('Hello'), true)), 'f2 48 cd c9 c9 07 00');
    assert.equal(toHex(deflater.compress(utf8('Hello'), true)), 'f2 00 11 00 00');
  });

  it('compresses every message alone without context takeover', { timeout: 1000 }, () => {
    const deflater = new MessageDeflater(params({ clientNoContextTakeover: true }), true);
    assert.equal(deflater.contextTakeover, false);
    assert.equal(deflater.defaultThreshold, 512);
    assert.equal(toHex(deflater.compress(utf8('Hello'), true)), 'f2 48 cd c9 c9 07 00');
    assert.equal(toHex(deflater.compress(utf8('Hello'), true)), 'f2 48 cd c9 c9 07 00');
    assert.equal(new MessageDeflater(params({ clientNoContextTakeover: true }), false).defaultThreshold, 128);
  });

  it('sends an empty message as 00 (§7.2.3.6) and keeps the flush tail on non-final frames', { timeout: 1000 }, () => {
    const deflater = new MessageDeflater(params(), false);
    assert.equal(toHex(deflater.compress(new Uint8Array(0), true)), '00');
    const first = deflater.compress(utf8('Hel'), false);
    assert.equal(toHex(first.subarray(first.length - 4)), '00 00 ff ff');
    const last = deflater.compress(utf8('lo'), true);
    assert.equal(Buffer.from(new MessageInflater(params(), true).decompress(Buffer.concat([first, last]), true, 100)).toString(), 'Hello');
  });

  it('leaves the caller’s bytes alone', { timeout: 1000 }, () => {
    const data = utf8('Hello Hello Hello');
    const copy = Buffer.from(data);
    new MessageDeflater(params(), false).compress(data, true);
    assert.deepEqual(Buffer.from(data), copy);
  });

  for (const bits of [8, 9, 12]) {
    it(`fits a ${bits}-bit window a strict peer enforces`, { timeout: 20_000 }, async () => {
      const rng = prng();
      const phrase = Buffer.from(rng.bytes(300)); // repeats 300 bytes apart: beyond a 256-byte window
      const messages = [0, 1, 2].map(() => Buffer.concat([phrase, phrase, Buffer.from(rng.bytes(40)), phrase]));
      const deflater = new MessageDeflater(params({ serverMaxWindowBits: bits }), false);
      const received = await peerInflate(messages.map((m) => deflater.compress(m, true)), bits, true);
      assert.deepEqual(received, messages, describeSeed(rng));
      if (bits === 8) {
        // The check can fail: the same data compressed with a 15-bit window is refused.
        const wide = new MessageDeflater(params(), false);
        await assert.rejects(peerInflate([wide.compress(messages[0] as Uint8Array, true)], 8, true), /too far back/);
      }
    });
  }
});

const rng = prng();
/** JSON of `n` small records. */
const json = (n: number): Uint8Array =>
  utf8(JSON.stringify(Array.from({ length: n }, (_, i) => ({ id: i, name: `user${rng.int(50)}`, score: rng.int(1000) }))));
const messages = [new Uint8Array(0), utf8('a'), json(1), json(3), json(8), json(40), Buffer.from(rng.bytes(3000)), json(300), json(3)];
/** [name, agreed params] for the round trips */
const settings: [string, Partial<DeflateParams>][] = [
  ['context takeover', {}],
  ['no context takeover', { serverNoContextTakeover: true, clientNoContextTakeover: true }],
  ['8-bit windows', { serverMaxWindowBits: 8, clientMaxWindowBits: 8 }],
  ['mixed', { serverNoContextTakeover: true, serverMaxWindowBits: 10, clientMaxWindowBits: 12 }],
];

describe('round trips', { timeout: 60_000 }, () => {
  for (const [name, overrides] of settings) {
    for (const client of [true, false]) {
      it(`${name}, ${client ? 'client → server' : 'server → client'}, frames and pieces of any size`, { timeout: 20_000 }, () => {
        const agreed = params(overrides);
        const deflater = new MessageDeflater(agreed, client);
        const inflater = new MessageInflater(agreed, !client);
        for (const [i, message] of messages.entries()) {
          const frames = 1 + (i % 3);
          const payload = Buffer.concat(deflateFrames(deflater, message, frames));
          const back = inflatePieces(inflater, payload, Infinity, i % 2 === 0 ? payload.length : 1 + rng.int(50));
          assert.deepEqual(back, Buffer.from(message), `message ${i}, ${describeSeed(rng)}`);
        }
      });
    }
  }

  it('is understood by a persistent zlib peer, and understands one, across messages', { timeout: 20_000 }, async () => {
    const deflater = new MessageDeflater(params(), false);
    const sent = messages.map((m) => deflater.compress(m, true));
    assert.deepEqual(await peerInflate(sent, 15), messages.map((m) => Buffer.from(m)));
    const peer = zlib.createDeflateRaw();
    const inflater = new MessageInflater(params(), true);
    try {
      for (const message of messages) {
        const flushed = await new Promise<Buffer>((resolve) => {
          const parts: Buffer[] = [];
          const onData = (chunk: Buffer): void => void parts.push(chunk);
          peer.on('data', onData);
          peer.write(message);
          peer.flush(zlib.constants.Z_SYNC_FLUSH, () => (peer.off('data', onData), resolve(Buffer.concat(parts))));
        });
        assert.deepEqual(Buffer.from(inflater.decompress(flushed.subarray(0, flushed.length - 4), true, Infinity)), Buffer.from(message));
      }
    } finally {
      peer.destroy();
    }
  });

  it('shrinks a repeated message with context takeover only', { timeout: 1000 }, () => {
    const message = json(20);
    const sizes = (agreed: DeflateParams): number[] => {
      const deflater = new MessageDeflater(agreed, false);
      return [deflater.compress(message, true).length, deflater.compress(message, true).length];
    };
    const [first, second] = sizes(params());
    assert.ok(second !== undefined && first !== undefined && second < first / 4, `${first} then ${second}`);
    const [alone, again] = sizes(noTakeover);
    assert.equal(again, alone);
  });

});

describe('16 MiB messages', { timeout: 60_000 }, () => {
  for (const [name, agreed, frames] of [['context takeover, one frame', params(), 1], ['no context takeover, 16 frames', noTakeover, 16]] as const) {
    it(`carries 16 MiB with ${name}`, { timeout: 30_000 }, () => {
      const message = Buffer.alloc(16 * MiB);
      for (let at = 0; at < message.length; at += 4096) message.set(json(5).subarray(0, 2048), at);
      message.set(rng.bytes(1 * MiB), 3 * MiB);
      const payload = Buffer.concat(deflateFrames(new MessageDeflater(agreed, true), message, frames));
      assert.ok(payload.length < message.length / 2);
      const back = inflatePieces(new MessageInflater(agreed, false), payload, 16 * MiB, 256 * KiB);
      assert.ok(back.equals(message), describeSeed(rng));
    });
  }
});

/**
 * 1 GiB of zeros as one compressed message (~1 MB): the first MiB compressed
 * plainly, then the same compressed MiB again and again, which — with zeros
 * already in the window — holds only back references, exactly what a
 * streaming deflate of 1 GiB of zeros emits, without spending seconds on it.
 */
function zeroBomb(mebibytes: number): Buffer {
  const zeros = Buffer.alloc(MiB);
  const options = { finishFlush: zlib.constants.Z_SYNC_FLUSH };
  const first = zlib.deflateRawSync(zeros, options);
  const next = zlib.deflateRawSync(zeros, { ...options, dictionary: zeros.subarray(0, 32 * KiB) });
  const bomb = Buffer.concat([first, ...Array.from({ length: mebibytes - 1 }, () => next)]);
  return bomb.subarray(0, bomb.length - 4);
}

describe('the read limit counts decompressed bytes', { timeout: 60_000 }, () => {
  const text = utf8('x'.repeat(1000));
  const tooBig = (limit: number) => (err: unknown) => err instanceof MessageTooBigError && err.code === 1009 && err.limit === limit;

  it('accepts a message of exactly the limit and refuses one byte more', { timeout: 1000 }, () => {
    const deflater = new MessageDeflater(params(), false);
    const inflater = new MessageInflater(params(), true);
    assert.equal(inflater.decompress(deflater.compress(text, true), true, 1000).length, 1000);
    const longer = deflater.compress(utf8('x'.repeat(1001)), true);
    assert.throws(() => inflater.decompress(longer, true, 1000), tooBig(1000));
  });

  it('applies a limit of 0', { timeout: 1000 }, () => {
    const deflater = new MessageDeflater(noTakeover, false);
    assert.equal(new MessageInflater(noTakeover, true).decompress(deflater.compress(new Uint8Array(0), true), true, 0).length, 0);
    assert.throws(() => new MessageInflater(noTakeover, true).decompress(deflater.compress(utf8('a'), true), true, 0), tooBig(0));
  });

  it('refuses a message whose compressed size passes compressedLimit before it ends', { timeout: 1000 }, () => {
    const inflater = new MessageInflater(params(), false);
    const noise = Buffer.from(prng(1).bytes(1000));
    assert.equal(compressedLimit(1000), 2000 + 64 * KiB);
    assert.equal(compressedLimit(Infinity), Infinity);
    let fed = 0;
    assert.throws(() => {
      for (;;) fed += inflater.decompress(noise, false, 1000).length + noise.length;
    }, tooBig(1000));
    assert.equal(fed, Math.floor(compressedLimit(1000) / noise.length) * noise.length);
  });

});

describe('a decompression bomb: 1 GiB of zeros', { timeout: 60_000 }, () => {
  const tooBig = (limit: number) => (err: unknown) => err instanceof MessageTooBigError && err.code === 1009 && err.limit === limit;

  it('builds a valid bomb (a small one inflates to exactly its size)', { timeout: 10_000 }, () => {
    const out = new MessageInflater(params(), false).decompress(zeroBomb(8), true, Infinity);
    assert.equal(out.length, 8 * MiB);
    assert.ok(out.every((byte) => byte === 0));
  });

  it('refuses 1 GiB of zeros at the limit, fast and without growing memory', { timeout: 20_000 }, () => {
    const bomb = zeroBomb(1024);
    assert.ok(bomb.length < 1.1 * MiB, `${bomb.length} B`);
    const before = process.memoryUsage();
    const start = performance.now();
    const inflater = new MessageInflater(params(), false);
    let fed = 0;
    assert.throws(() => {
      for (; fed < bomb.length; fed += 64 * KiB) {
        inflater.decompress(bomb.subarray(fed, fed + 64 * KiB), fed + 64 * KiB >= bomb.length, 4 * MiB);
      }
    }, tooBig(4 * MiB));
    const elapsed = performance.now() - start;
    const grown = process.memoryUsage().rss - before.rss;
    assert.ok(elapsed < 2000, `took ${elapsed.toFixed(0)} ms`);
    assert.ok(grown < 64 * MiB, `RSS grew by ${(grown / MiB).toFixed(1)} MiB`);
  });

  it('refuses the bomb with the default 32 KiB limit after ~100 KiB of it', { timeout: 10_000 }, () => {
    const bomb = zeroBomb(1024);
    const inflater = new MessageInflater(params(), false);
    let fed = 0;
    assert.throws(() => {
      for (; fed < bomb.length; fed += 4 * KiB) inflater.decompress(bomb.subarray(fed, fed + 4 * KiB), false, 32 * KiB);
    }, tooBig(32 * KiB));
    assert.ok(fed <= compressedLimit(32 * KiB), `fed ${fed} B`);
  });
});
