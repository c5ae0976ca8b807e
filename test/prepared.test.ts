// Prepared messages on the pure engine: what is shared between connections,
// and that every peer decodes what it gets (RFC 6455 §5.3 masking, RFC 7692
// §7.2.1 compression with and without context takeover).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeflateParams } from '../src/compress.js';
import { ClosedError } from '../src/errors.js';
import { Protocol, type DataEvent } from '../src/protocol/engine.js';
import { PreparedMessage } from '../src/protocol/prepared.js';

const takeover: DeflateParams = { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 };
const noTakeover: DeflateParams = { ...takeover, serverNoContextTakeover: true, clientNoContextTakeover: true };

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const str = (b: Uint8Array): string => new TextDecoder().decode(b);

/** What the other end reads from `bytes`: each whole message as text. */
function decode(peer: Protocol, bytes: Uint8Array): string[] {
  peer.receive(bytes);
  const out: string[] = [];
  for (let event = peer.next(); event !== undefined; event = peer.next()) {
    assert.equal(event.kind, 'data', `expected data, got ${JSON.stringify(event)}`);
    const data = event as DataEvent;
    assert.equal(data.fin, true);
    out.push(str(data.data));
  }
  return out;
}

/** A message long enough to be compressed by default, with nothing in common with `other`. */
const report = JSON.stringify({ kind: 'report', rows: Array.from({ length: 40 }, (_, i) => ({ id: i, label: `row ${i}`, ok: i % 3 === 0 })) });
const other = 'zq'.repeat(300);

describe('PreparedMessage on the engine', { timeout: 10_000 }, () => {
  it('servers share one frame object, and a client decodes it', () => {
    const message = new PreparedMessage(1, 'hello, everyone');
    const [a, b] = [new Protocol({ client: false }), new Protocol({ client: false })];
    const frame = a.encodePrepared(message);
    assert.equal(b.encodePrepared(message), frame, 'the second connection gets the same bytes, not a copy');
    assert.deepEqual(decode(new Protocol({ client: true }), frame), ['hello, everyone']);
  });

  it('clients mask each frame with a fresh key (RFC 6455 §5.3) and servers decode them', () => {
    const message = new PreparedMessage(2, utf8('x'.repeat(200)));
    const client = new Protocol({ client: true });
    const [first, second] = [client.encodePrepared(message), client.encodePrepared(message)];
    assert.notDeepEqual(first, second, 'two frames with the same masking key');
    assert.equal((first[1]! & 0x80) !== 0, true, 'the mask bit is set');
    const server = new Protocol({ client: false });
    assert.deepEqual(decode(server, first), ['x'.repeat(200)]);
    assert.deepEqual(decode(server, second), ['x'.repeat(200)]);
  });

  it('copies the caller\'s bytes when made', () => {
    const bytes = utf8('before');
    const message = new PreparedMessage(1, bytes);
    bytes.set(utf8('AFTER!'));
    assert.deepEqual(decode(new Protocol({ client: true }), new Protocol({ client: false }).encodePrepared(message)), ['before']);
  });

  it('refuses text that is not UTF-8 and a bad type', () => {
    assert.throws(() => new PreparedMessage(1, Uint8Array.of(0xc0, 0x80)), TypeError);
    assert.throws(() => new PreparedMessage(8 as 1, 'x'), TypeError);
  });

  it('without context takeover, servers share one compressed frame', () => {
    const message = new PreparedMessage(1, report);
    const [a, b] = [new Protocol({ client: false, deflate: noTakeover }), new Protocol({ client: false, deflate: noTakeover })];
    const frame = a.encodePrepared(message);
    assert.equal(b.encodePrepared(message), frame);
    assert.equal(frame[0]! & 0x40, 0x40, 'RSV1 set: compressed (RFC 7692 §6.1)');
    assert.ok(frame.length < report.length / 2, `compressed frame of ${frame.length} bytes`);
    assert.deepEqual(decode(new Protocol({ client: true, deflate: noTakeover }), frame), [report]);
  });

  it('with context takeover, it is shared too, and later messages may refer back to it (RFC 7692 §7.2.1)', () => {
    const message = new PreparedMessage(1, report);
    const server = new Protocol({ client: false, deflate: takeover });
    const peer = new Protocol({ client: true, deflate: takeover });
    const before = server.encodeMessage(1, other);
    const shared = server.encodePrepared(message);
    assert.equal(new Protocol({ client: false, deflate: takeover }).encodePrepared(message), shared);
    const again = server.encodeMessage(1, report);
    assert.deepEqual(decode(peer, before), [other]);
    assert.deepEqual(decode(peer, shared), [report]);
    assert.deepEqual(decode(peer, again), [report]);
    assert.ok(again.length < 40 && shared.length > 200, `the repeat (${again.length} bytes) refers back to the prepared message (${shared.length} bytes)`);
  });

  it('compresses once per window size, and each peer decodes its own', () => {
    const message = new PreparedMessage(1, report);
    const small = { ...noTakeover, serverMaxWindowBits: 10 };
    const frameSmall = new Protocol({ client: false, deflate: small }).encodePrepared(message);
    const frameLarge = new Protocol({ client: false, deflate: noTakeover }).encodePrepared(message);
    assert.notEqual(frameSmall, frameLarge);
    assert.deepEqual(decode(new Protocol({ client: true, deflate: small }), frameSmall), [report]);
    assert.deepEqual(decode(new Protocol({ client: true, deflate: noTakeover }), frameLarge), [report]);
  });

  it('a client compresses the shared payload and masks it per frame', () => {
    const message = new PreparedMessage(1, report);
    const client = new Protocol({ client: true, deflate: takeover });
    const server = new Protocol({ client: false, deflate: takeover });
    assert.deepEqual(decode(server, client.encodePrepared(message)), [report]);
    assert.deepEqual(decode(server, client.encodeMessage(1, report)), [report]);
  });

  it('follows the compression threshold and the compress option', () => {
    const short = new PreparedMessage(1, 'short');
    const server = new Protocol({ client: false, deflate: noTakeover });
    assert.equal(server.encodePrepared(short)[0]! & 0x40, 0, 'under the threshold: not compressed');
    assert.equal(server.encodePrepared(short, true)[0]! & 0x40, 0x40);
    assert.equal(server.encodePrepared(new PreparedMessage(1, report, { compress: false }))[0]! & 0x40, 0);
    assert.equal(server.encodePrepared(new PreparedMessage(1, report, { compress: false }), true)[0]! & 0x40, 0x40);
  });

  it('cannot follow this end\'s close frame (RFC 6455 §5.5.1)', () => {
    const server = new Protocol({ client: false });
    server.encodeClose(1000, '');
    assert.throws(() => server.encodePrepared(new PreparedMessage(1, 'late')), ClosedError);
  });
});
