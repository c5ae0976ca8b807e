/**
 * Hostile input: seeded random frame streams, valid ones mutated byte by
 * byte and cut at random points, fed to a Conn in either role (with and
 * without compression). Whatever arrives, the Conn must either deliver messages or
 * end with a well-formed close, never throw outside a promise, and never
 * hold more than its limits allow.
 */
import assert from 'node:assert/strict';
import { deflateRawSync } from 'node:zlib';
import { after, describe, it } from 'node:test';
import { CloseError, ClosedError, MessageTooBigError, ProtocolError } from '../src/errors.js';
import { newConn, type Conn } from '../src/conn.js';
import { duplexPair } from '../src/internal/duplex-pair.js';
import { leakCheck } from './helpers/leak.js';
import { describeSeed, prng, type Prng } from './helpers/prng.js';
import { binary, close, concat, cont, encodeAll, FrameParser, Op, ping, pong, sendableCloseCode, text, type Sendable } from './helpers/raw.js';

const checkLeaks = leakCheck();
after(() => checkLeaks());

const deflate = { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 };

/** A plausible frame sequence a client might send, before mutation. */
function validStream(rng: Prng, compressed: boolean): Sendable[] {
  const frames: Sendable[] = [];
  const count = 1 + rng.int(6);
  for (let i = 0; i < count; i++) {
    const kind = rng.int(6);
    const payload = rng.bytes(rng.int(4) === 0 ? rng.int(70_000) : rng.int(200));
    if (kind === 0) frames.push(ping(payload.subarray(0, 125)));
    else if (kind === 1) frames.push(pong(payload.subarray(0, 125)));
    else if (kind === 2) frames.push(text(Buffer.from('héllo wörld ✓ '.repeat(1 + rng.int(20)))));
    else if (kind === 3 && compressed) {
      const body = deflateRawSync(payload, { finishFlush: 2 }).subarray(0, -4);
      frames.push(binary(body, { rsv1: true }));
    } else if (kind === 4) {
      frames.push(binary(payload.subarray(0, 100), { fin: false }), ping('x'), cont(payload.subarray(100)));
    } else frames.push(binary(payload));
  }
  if (rng.int(2) === 0) frames.push(close(1000, 'bye'));
  return frames;
}

/** Flips, inserts or drops a few bytes. */
function mutate(rng: Prng, bytes: Uint8Array): Uint8Array {
  const out = Array.from(bytes);
  const edits = rng.int(4);
  for (let i = 0; i < edits && out.length > 0; i++) {
    const at = rng.int(out.length);
    const what = rng.int(3);
    if (what === 0) out[at] = rng.int(256);
    else if (what === 1) out.splice(at, 0, rng.int(256));
    else out.splice(at, 1);
  }
  return Uint8Array.from(out);
}

/** Feeds `bytes` in random pieces to a fresh Conn of the given role and checks how it ended. */
async function run(rng: Prng, bytes: Uint8Array, compressed: boolean, client: boolean): Promise<void> {
  const [peer, socket] = duplexPair();
  const conn: Conn = newConn({
    socket,
    client,
    subprotocol: '',
    extensions: compressed ? 'permessage-deflate' : '',
    ...(compressed ? { deflate } : {}),
    options: { readLimit: 64 * 1024, closeTimeout: 200 },
  });
  const parser = new FrameParser();
  const sent: number[] = [];
  let closeCode: number | undefined;
  peer.on('data', (chunk: Buffer) => {
    for (const frame of parser.push(chunk)) {
      sent.push(frame.opcode);
      assert.equal(frame.masked, client, client ? 'a client frame was not masked' : 'a server frame was masked');
      if (frame.opcode === Op.Close && frame.payload.length >= 2) closeCode = (frame.payload[0]! << 8) | frame.payload[1]!;
    }
  });
  peer.on('error', () => {});
  const reading = (async () => {
    for (;;) await conn.read();
  })().catch((err: unknown) => err);
  for (let at = 0; at < bytes.length; ) {
    const piece = 1 + rng.int(rng.int(2) === 0 ? 16 : 4096);
    peer.write(bytes.subarray(at, at + piece));
    at += piece;
  }
  // Whatever came in, drop the peer's side now: the Conn must end.
  peer.end();
  const err = await reading;
  const known = [CloseError, ClosedError, ProtocolError, MessageTooBigError].some((type) => err instanceof type);
  assert.ok(known, `read ended with an unexpected ${String(err)}`);
  const info = await conn.closed;
  assert.ok(info.code === 1005 || info.code === 1006 || sendableCloseCode(info.code), `closed with code ${info.code}`);
  if (closeCode !== undefined) assert.ok(sendableCloseCode(closeCode), `sent close code ${closeCode}`);
  if (err instanceof ProtocolError || err instanceof MessageTooBigError) assert.equal(closeCode, err.code);
  peer.destroy();
}

for (const client of [false, true]) {
  for (const compressed of [false, true]) {
    const role = client ? 'client' : 'server';
    describe(`hostile input to a ${role} Conn${compressed ? ', compression on' : ''}`, { timeout: 60_000 }, () => {
      it('300 mutated frame streams end in a clean delivery or a well-formed close', { timeout: 50_000 }, async () => {
        const rng = prng();
        for (let round = 0; round < 300; round++) {
          // The peer's frames: masked when it is a client (our Conn the server), not otherwise.
          const stream = encodeAll(validStream(rng, compressed), !client);
          const bytes = rng.int(5) === 0 ? concat([stream, rng.bytes(rng.int(300))]) : mutate(rng, stream);
          try {
            await run(rng, bytes, compressed, client);
          } catch (err) {
            throw new Error(`round ${round}: ${(err as Error).message}; ${describeSeed(rng)}`, { cause: err });
          }
        }
      });
    });
  }
}
