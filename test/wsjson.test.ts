import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { closeStatus } from '../src/close.js';
import { MessageType, type Conn } from '../src/conn.js';
import { ProtocolError } from '../src/errors.js';
import { pipe } from '../src/pipe.js';
import * as wsjson from '../src/wsjson/index.js';
import { leakCheck } from './helpers/leak.js';

const checkLeaks = leakCheck();
after(() => checkLeaks());

const roles = ['client', 'server'] as const;

/** A connected pair named by the role of the end under test. */
function ends(role: (typeof roles)[number]): { near: Conn; far: Conn } {
  const [client, server] = pipe();
  return role === 'client' ? { near: client, far: server } : { near: server, far: client };
}

const values: Array<[string, unknown]> = [
  ['nested objects and arrays', { a: [1, 2, { b: [true, false, null] }], c: { d: { e: 'deep' } }, f: [] }],
  ['unicode text', { greeting: 'héllo wörld ✓ 𝄞', empty: '' }],
  ['numbers', [0, -1, 1.5, 1e300, -2.5e-300, Number.MAX_SAFE_INTEGER]],
  ['a bare string', 'just a string'],
  ['a bare number', 42],
  ['null', null],
  ['an array just under the 32 KiB read limit', Array.from({ length: 1200 }, (_, i) => ({ i, s: `item ${i}` }))],
];

describe('wsjson round trips', { timeout: 10_000 }, () => {
  for (const role of roles) {
    for (const [name, value] of values) {
      it(`${name}, written by the ${role}`, { timeout: 5_000 }, async () => {
        const { near, far } = ends(role);
        await Promise.all([wsjson.write(near, value), wsjson.read(far).then((got) => assert.deepEqual(got, value))]);
        near.closeNow();
      });
    }
  }

  it('sends text messages a plain read() sees as JSON', { timeout: 5_000 }, async () => {
    const { near, far } = ends('client');
    await wsjson.write(near, { x: 1, skip: undefined, at: new Date(0) });
    const { type, data } = await far.read();
    assert.equal(type, MessageType.Text);
    assert.equal(Buffer.from(data).toString(), '{"x":1,"at":"1970-01-01T00:00:00.000Z"}');
    near.closeNow();
  });

  it('reads values over the default read limit once it is raised', { timeout: 5_000 }, async () => {
    const { near, far } = ends('server');
    const big = { blob: 'x'.repeat(1024 * 1024) };
    far.setReadLimit(2 * 1024 * 1024);
    await Promise.all([wsjson.write(near, big), wsjson.read(far).then((got) => assert.deepEqual(got, big))]);
    near.closeNow();
  });

  it('reads typed values', { timeout: 5_000 }, async () => {
    const { near, far } = ends('server');
    await far.write(MessageType.Text, '{"id":7,"tags":["a"]}');
    const got = await wsjson.read<{ id: number; tags: string[] }>(near);
    assert.equal(got.id, 7);
    assert.deepEqual(got.tags, ['a']);
    near.closeNow();
  });

  it('an aborted read rejects with the reason and the connection stays usable', { timeout: 5_000 }, async () => {
    const { near, far } = ends('client');
    const controller = new AbortController();
    const reading = wsjson.read(near, { signal: controller.signal });
    const reason = new Error('changed my mind');
    controller.abort(reason);
    await assert.rejects(reading, (err) => err === reason);
    await far.write(MessageType.Text, '[1,2,3]');
    assert.deepEqual(await wsjson.read(near), [1, 2, 3]);
    near.closeNow();
  });
});

// Each waits for the far end's `closed`; while the Conn waits out its 5 s
// closeTimeout after a close the server starts (see the netconn tests), that
// takes 5 s, hence the timeouts.
describe('wsjson read failures close the connection', { timeout: 30_000 }, () => {
  for (const role of roles) {
    it(`invalid JSON closes with 1007 (reader is the ${role})`, { timeout: 7_000 }, async () => {
      const { near, far } = ends(role);
      const farSees = far.read().then(
        () => assert.fail('the peer read a message'),
        (err: unknown) => err,
      );
      await far.write(MessageType.Text, '{"unterminated": ');
      const error = await wsjson.read(near).then(
        () => assert.fail('read() resolved'),
        (err: unknown) => err,
      );
      assert.ok(error instanceof ProtocolError);
      assert.equal(error.code, 1007);
      assert.ok(error.cause instanceof SyntaxError);
      assert.equal(closeStatus(await farSees), 1007);
      const info = await far.closed;
      assert.deepEqual([info.code, info.wasClean], [1007, true]);
    });

    it(`a binary message closes with 1003 (reader is the ${role})`, { timeout: 7_000 }, async () => {
      const { near, far } = ends(role);
      const farSees = far.read().then(
        () => assert.fail('the peer read a message'),
        (err: unknown) => err,
      );
      await far.write(MessageType.Binary, Buffer.from('{"looks":"like json"}'));
      const error = await wsjson.read(near).then(
        () => assert.fail('read() resolved'),
        (err: unknown) => err,
      );
      assert.ok(error instanceof ProtocolError);
      assert.equal(error.code, 1003);
      assert.equal(closeStatus(await farSees), 1003);
      const info = await far.closed;
      assert.deepEqual([info.code, info.wasClean], [1003, true]);
    });
  }
});

describe('wsjson write refuses what JSON cannot encode', { timeout: 10_000 }, () => {
  const circular: Record<string, unknown> = {};
  circular.self = circular;
  const bad: Array<[string, unknown]> = [
    ['undefined', undefined],
    ['a function', () => 1],
    ['a symbol', Symbol('s')],
    ['a BigInt', 10n],
    ['a nested BigInt', { a: [1, { b: 2n }] }],
    ['a circular structure', circular],
    ['a toJSON() returning undefined', { toJSON: () => undefined }],
  ];
  for (const [name, value] of bad) {
    it(`${name}: TypeError and nothing sent`, { timeout: 5_000 }, async () => {
      const { near, far } = ends('client');
      await assert.rejects(wsjson.write(near, value), TypeError);
      // The first message the peer sees is the one written after.
      await wsjson.write(near, 'next');
      assert.deepEqual(await far.read(), { type: MessageType.Text, data: Buffer.from('"next"') });
      near.closeNow();
    });
  }

  it('rejects with ClosedError once the connection is closed', { timeout: 5_000 }, async () => {
    const { near } = ends('server');
    near.closeNow();
    await near.closed;
    await assert.rejects(wsjson.write(near, { late: true }), { name: 'ClosedError' });
  });
});
