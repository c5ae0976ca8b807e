import assert from 'node:assert/strict';
import { createCipheriv, createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import { createServer as createTcpServer, connect, type AddressInfo, type Server as TcpServer } from 'node:net';
import { Readable, Writable, type Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { accept } from '../src/accept.js';
import { closeStatus } from '../src/close.js';
import { MessageType, type Conn } from '../src/conn.js';
import { dial } from '../src/dial.js';
import { ClosedError, CloseError, ProtocolError } from '../src/errors.js';
import { deferred, type Deferred } from '../src/internal/deferred.js';
import { netConn, type NetConn } from '../src/netconn/index.js';
import { pipe } from '../src/pipe.js';
import { leakCheck } from './helpers/leak.js';
import { describeSeed, prng } from './helpers/prng.js';

const checkLeaks = leakCheck();

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

// --- a real WebSocket connection over loopback TCP -------------------------

let wsServer: Server;
let wsPort = 0;
let pendingAccept: Deferred<Conn> | undefined;

before(async () => {
  wsServer = createServer((_req, res) => res.writeHead(426).end());
  wsServer.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const waiting = pendingAccept;
    pendingAccept = undefined;
    if (waiting === undefined) return socket.destroy();
    accept(req, socket, head).then(waiting.resolve, waiting.reject);
  });
  wsServer.listen(0, '127.0.0.1');
  await once(wsServer, 'listening');
  wsPort = (wsServer.address() as AddressInfo).port;
});

after(async () => {
  wsServer.close();
  await checkLeaks();
});

/** A client and a server Conn joined by a real TCP connection: dial() to accept(). */
async function loopback(): Promise<[client: Conn, server: Conn]> {
  const accepted = deferred<Conn>();
  pendingAccept = accepted;
  const client = await dial(`ws://127.0.0.1:${wsPort}/`, { signal: AbortSignal.timeout(5000) });
  return [client, await accepted.promise];
}

/** Both ends of a Conn pair, named by which one the test puts netConn on. */
interface Ends {
  near: Conn;
  far: Conn;
}

const roles = ['client', 'server'] as const;
type Role = (typeof roles)[number];

async function ends(nearRole: Role, transport: 'tcp' | 'pipe' = 'tcp'): Promise<Ends> {
  const [client, server] = transport === 'tcp' ? await loopback() : pipe();
  return nearRole === 'client' ? { near: client, far: server } : { near: server, far: client };
}

/** Resolves with the error a stream is destroyed with (undefined if it closed cleanly). */
function closing(stream: Duplex): Promise<Error | undefined> {
  return new Promise((resolve) => {
    let error: Error | undefined;
    stream.on('error', (err: Error) => {
      error = err;
    });
    stream.on('close', () => resolve(error));
  });
}

/** A deterministic pseudo-random byte source (AES-CTR keystream) fast enough for 100 MB. */
function randomStream(seed: number, total: number, chunkSize = 64 * 1024): { source: Readable; digest: Promise<string> } {
  const key = createHash('sha256').update(`wsconn-${seed}`).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(chunkSize);
  const hash = createHash('sha256');
  const digest = deferred<string>();
  let sent = 0;
  const source = new Readable({
    read() {
      if (sent >= total) {
        digest.resolve(hash.digest('hex'));
        this.push(null);
        return;
      }
      const n = Math.min(chunkSize, total - sent);
      const chunk = cipher.update(zeros.subarray(0, n));
      sent += n;
      hash.update(chunk);
      this.push(chunk);
    },
  });
  return { source, digest: digest.promise };
}

/** Writes a readable's chunks into `dest`, respecting backpressure, without ending it. */
async function feed(source: Readable, dest: Writable, onWritten?: (bytes: number) => void): Promise<void> {
  for await (const chunk of source) {
    if (!dest.write(chunk)) await drained(dest);
    onWritten?.((chunk as Buffer).length);
  }
}

/** Resolves on 'drain', or when the stream closes instead. */
function drained(stream: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}

/** Counts the bytes a stream yields; `reach(n)` resolves once n have come. */
function counter(stream: Readable): { reach(n: number): Promise<void>; done: Promise<number> } {
  let bytes = 0;
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  const done = (async () => {
    for await (const chunk of stream) {
      bytes += (chunk as Buffer).length;
      for (const w of waiters.filter((w) => bytes >= w.n)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
    return bytes;
  })();
  return {
    reach: (n) => (bytes >= n ? Promise.resolve() : new Promise((resolve) => waiters.push({ n, resolve }))),
    done,
  };
}

function liveBytes(): number {
  gc();
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return heapUsed + arrayBuffers;
}

const MB = 1024 * 1024;

// --- tests -----------------------------------------------------------------

describe('netConn tunnels a byte protocol', { timeout: 60_000 }, () => {
  for (const serverRole of roles) {
    it(`serves HTTP through the tunnel (HTTP server on the WebSocket ${serverRole})`, { timeout: 10_000 }, async () => {
      const { near, far } = await ends(serverRole);
      const httpServer = createServer((req, res) => {
        let body = '';
        req.setEncoding('utf8');
        req.on('data', (part: string) => (body += part));
        req.on('end', () => res.end(`${req.method} ${req.url} ${body.length} ${body.slice(0, 5)}`));
      });
      const serverSide = netConn(near, MessageType.Binary);
      httpServer.emit('connection', serverSide);
      const clientSide = netConn(far, MessageType.Binary);
      const clientClosed = closing(clientSide);
      const serverClosed = closing(serverSide);

      const req = request({ method: 'POST', path: '/echo?x=1', createConnection: () => clientSide });
      req.end('hello'.repeat(10_000));
      const [res] = (await once(req, 'response')) as [IncomingMessage];
      res.setEncoding('utf8');
      let text = '';
      for await (const part of res) text += part as string;
      assert.equal(res.statusCode, 200);
      assert.equal(text, 'POST /echo?x=1 50000 hello');

      // The request said Connection: close, so both ends finish cleanly.
      assert.equal(await clientClosed, undefined);
      assert.equal(await serverClosed, undefined);
      const [a, b] = await Promise.all([near.closed, far.closed]);
      assert.equal(a.wasClean && b.wasClean, true);
      assert.equal(a.code, 1000);
    });
  }

  it('carries 100 MB through a TCP echo server both ways, checksummed', { timeout: 30_000 }, async () => {
    const rng = prng();
    const echo: TcpServer = createTcpServer((socket) => {
      socket.pipe(socket);
    });
    echo.listen(0, '127.0.0.1');
    await once(echo, 'listening');
    const { near, far } = await ends('client');

    // Far side: the tunnel exit, wired to a real TCP connection.
    const tcp = connect((echo.address() as AddressInfo).port, '127.0.0.1');
    const exit = netConn(far, MessageType.Binary);
    const exitDone = pipeline(exit, tcp, exit);

    // Near side: send 100 MB and read the echo back; end once it has all come.
    const entry = netConn(near, MessageType.Binary);
    const total = 100 * MB;
    const { source, digest } = randomStream(rng.seed, total);
    const hash = createHash('sha256');
    let received = 0;
    const sending = feed(source, entry);
    for await (const chunk of entry) {
      hash.update(chunk as Buffer);
      received += (chunk as Buffer).length;
      if (received === total) entry.end();
    }
    await sending;
    assert.equal(received, total, describeSeed(rng));
    assert.equal(hash.digest('hex'), await digest, describeSeed(rng));
    await exitDone;
    echo.close();
    assert.equal((await near.closed).wasClean, true);
  });
});

describe('netConn backpressure', { timeout: 60_000 }, () => {
  it('stalls the writer while the far reader does not read, then delivers 100 MB in bounded memory', { timeout: 30_000 }, async () => {
    const rng = prng();
    const { near, far } = await ends('client');
    const writer = netConn(near, MessageType.Binary);
    const reader = netConn(far, MessageType.Binary);
    const total = 100 * MB;
    const { source, digest } = randomStream(rng.seed, total);
    const baseline = liveBytes();

    let written = 0;
    const sending = feed(source, writer, (n) => (written += n)).then(() => writer.end());

    // Nobody reads on the far side: the writer must stop after what the
    // buffers on the way (TCP's included) can hold.
    // (Polling: the stall is the absence of an event. On a loaded machine
    // the writer may take a while to fill those buffers.)
    let stalledAt = -1;
    for (let i = 0; i < 25 && written !== stalledAt; i++) {
      stalledAt = written;
      await sleep(200);
    }
    assert.equal(written, stalledAt, 'the writer kept going while nobody read');
    assert.ok(stalledAt < 24 * MB, `wrote ${stalledAt} bytes with nobody reading`);

    // Now read slowly, and watch memory. Once, mid-stream, stop reading for
    // a while: reading must stop too (nothing pulled ahead of the consumer),
    // so the bytes in flight stay what the buffers on the way hold.
    let peak = 0;
    let sinceCheck = 0;
    let paused = false;
    const hash = createHash('sha256');
    let received = 0;
    for await (const chunk of reader) {
      hash.update(chunk as Buffer);
      received += (chunk as Buffer).length;
      sinceCheck += (chunk as Buffer).length;
      if (!paused && received >= 20 * MB) {
        paused = true;
        await sleep(300);
        assert.ok(written - received < 24 * MB, `${written - received} bytes in flight while the reader paused`);
      }
      if (sinceCheck >= 4 * MB) {
        sinceCheck = 0;
        peak = Math.max(peak, liveBytes() - baseline);
        await sleep(2);
      }
    }
    await sending;
    assert.equal(received, total, describeSeed(rng));
    assert.equal(hash.digest('hex'), await digest, describeSeed(rng));
    assert.ok(peak < 50 * MB, `live memory grew by ${(peak / MB).toFixed(1)} MB while 100 MB flowed`);
    await once(writer, 'close');
  });

  it('streams one huge message in pieces as they arrive (no read limit, nothing buffered whole)', { timeout: 10_000 }, async () => {
    const { near, far } = await ends('client');
    const reader = netConn(near, MessageType.Binary);
    const count = counter(reader);
    const sink = (await far.writer(MessageType.Binary)).getWriter();
    const piece = new Uint8Array(256 * 1024).fill(7);
    await sink.write(piece);
    // The message has not ended, yet its first frame has been read: the
    // reader does not wait for the whole message.
    await count.reach(piece.length);
    // Far over the client's default 32 KiB read limit.
    for (let i = 1; i < 8; i++) await sink.write(piece);
    await sink.close();
    await far.close(1000);
    assert.equal(await count.done, 8 * piece.length);
  });
});

describe('netConn endings', { timeout: 60_000 }, () => {
  for (const role of roles) {
    it(`end() on the ${role} reads as end-of-stream on the other side`, { timeout: 10_000 }, async () => {
      const { near, far } = await ends(role);
      const a = netConn(near, MessageType.Binary);
      const b = netConn(far, MessageType.Binary);
      const aClosed = closing(a);
      const bClosed = closing(b);
      const start = performance.now();
      a.write('first ');
      a.end('last');
      let text = '';
      b.setEncoding('utf8');
      for await (const part of b) text += part as string;
      assert.equal(text, 'first last');
      assert.equal(await bClosed, undefined);
      assert.equal(await aClosed, undefined);
      assert.equal(a.writableFinished, true);
      // Both ends close as soon as the close frames have crossed, not when
      // the Conn's 5 s closeTimeout gives up waiting for the other's FIN.
      const elapsed = performance.now() - start;
      assert.ok(elapsed < 2000, `the close took ${Math.round(elapsed)} ms`);
      const [x, y] = await Promise.all([near.closed, far.closed]);
      assert.deepEqual([x.code, x.wasClean, y.code, y.wasClean], [1000, true, 1000, true]);
    });

    it(`aborting the signal on the ${role} mid-stream ends both sides`, { timeout: 10_000 }, async () => {
      const { near, far } = await ends(role);
      const controller = new AbortController();
      const a = netConn(near, MessageType.Binary, { signal: controller.signal });
      const b = netConn(far, MessageType.Binary);
      const aClosed = closing(a);
      const bClosed = closing(b);
      const chunk = Buffer.alloc(64 * 1024, 1);
      const writing = (async () => {
        while (!a.destroyed) if (!a.write(chunk)) await drained(a);
      })();
      await once(b, 'readable'); // bytes are flowing
      const reason = new Error('stop');
      controller.abort(reason);
      b.resume();
      assert.equal(await aClosed, reason);
      const farError = await bClosed;
      assert.ok(farError instanceof ClosedError, `far side got ${String(farError)}`);
      assert.equal(closeStatus(farError), -1);
      await writing;
      assert.deepEqual([(await far.closed).code, (await near.closed).code], [1006, 1006]);
    });

    it(`the peer vanishing (${role} side closeNow) destroys the stream with an error`, { timeout: 10_000 }, async () => {
      const { near, far } = await ends(role);
      const a = netConn(near, MessageType.Binary);
      const aClosed = closing(a);
      a.resume();
      await far.write(MessageType.Binary, new Uint8Array(10));
      far.closeNow();
      const error = await aClosed;
      assert.ok(error instanceof ClosedError, `got ${String(error)}`);
      assert.equal(closeStatus(error), -1);
      assert.equal((await near.closed).code, 1006);
    });
  }

  for (const code of [1000, 1001]) {
    it(`a close ${code} from the peer reads as end-of-stream`, { timeout: 10_000 }, async () => {
      const { near, far } = await ends('client', 'pipe');
      const a = netConn(near, MessageType.Binary);
      const aClosed = closing(a);
      await far.write(MessageType.Binary, Buffer.from('bytes'));
      const closed = far.close(code, 'bye');
      let text = '';
      for await (const part of a) text += String(part);
      assert.equal(text, 'bytes');
      assert.equal(await aClosed, undefined);
      assert.equal((await closed).wasClean, true);
    });
  }

  it('any other close code destroys the stream with an error closeStatus() reads', { timeout: 10_000 }, async () => {
    const { near, far } = await ends('server', 'pipe');
    const a = netConn(near, MessageType.Binary);
    const aClosed = closing(a);
    a.resume();
    const closed = far.close(4001, 'app says no');
    const error = await aClosed;
    assert.ok(error instanceof CloseError);
    assert.equal(closeStatus(error), 4001);
    assert.equal(error.reason, 'app says no');
    assert.equal((await closed).wasClean, true);
  });

  it('a message of the other type closes with 1003', { timeout: 10_000 }, async () => {
    const { near, far } = await ends('client');
    const a = netConn(near, MessageType.Binary);
    const aClosed = closing(a);
    a.resume();
    await far.write(MessageType.Text, 'not bytes');
    const farRead = far.read().then(
      () => assert.fail('the far side read a message'),
      (err: unknown) => err,
    );
    const error = await aClosed;
    assert.ok(error instanceof ProtocolError);
    assert.equal(error.code, 1003);
    const farError = await farRead;
    assert.equal(closeStatus(farError), 1003);
    const info = await far.closed;
    assert.equal(info.code, 1003);
    assert.equal(info.wasClean, true);
  });

  it('end() on both sides at once closes both cleanly', { timeout: 10_000 }, async () => {
    const { near, far } = await ends('client');
    const a = netConn(near, MessageType.Binary);
    const b = netConn(far, MessageType.Binary);
    const closed = Promise.all([closing(a), closing(b)]);
    a.end('from a');
    b.end('from b');
    const [fromB, fromA] = await Promise.all([a.toArray(), b.toArray()]);
    assert.deepEqual([Buffer.concat(fromA).toString(), Buffer.concat(fromB).toString()], ['from a', 'from b']);
    assert.deepEqual(await closed, [undefined, undefined]);
    const [x, y] = await Promise.all([near.closed, far.closed]);
    assert.deepEqual([x.code, x.wasClean, y.code, y.wasClean], [1000, true, 1000, true]);
  });

  it('a write the Conn refuses destroys the stream with its error', { timeout: 10_000 }, async () => {
    const { near, far } = await ends('server', 'pipe');
    const a = netConn(near, MessageType.Text);
    a.write(Buffer.from([0x68, 0xff])); // not UTF-8: no text message can carry it
    const error = await closing(a);
    assert.ok(error instanceof TypeError, `got ${String(error)}`);
    await assert.rejects(far.read(), ClosedError);
  });

  it('destroy() drops the connection at once', { timeout: 10_000 }, async () => {
    const { near, far } = await ends('server');
    const a = netConn(near, MessageType.Binary);
    a.destroy();
    await assert.rejects(far.read(), ClosedError);
    assert.deepEqual([(await far.closed).code, (await near.closed).code], [1006, 1006]);
  });

  it('a signal aborted already destroys the stream at once', { timeout: 10_000 }, async () => {
    const { near, far } = await ends('client', 'pipe');
    const reason = new Error('too late');
    const a = netConn(near, MessageType.Binary, { signal: AbortSignal.abort(reason) });
    assert.equal(await closing(a), reason);
    await assert.rejects(far.read(), ClosedError);
  });
});

describe('netConn details', { timeout: 30_000 }, () => {
  it('reports the addresses of the TCP connection', { timeout: 10_000 }, async () => {
    const { near, far } = await ends('client');
    const a: NetConn = netConn(near, MessageType.Binary);
    const b: NetConn = netConn(far, MessageType.Binary);
    assert.equal(a.remoteAddress, '127.0.0.1');
    assert.equal(a.remotePort, wsPort);
    assert.equal(b.localPort, wsPort);
    assert.equal(b.remotePort, a.localPort);
    assert.equal(typeof a.localPort, 'number');
    a.destroy();
    b.destroy();
    await Promise.all([near.closed, far.closed]);
  });

  it('reports undefined addresses over an in-memory pipe', { timeout: 10_000 }, async () => {
    const { near, far } = await ends('client', 'pipe');
    const a = netConn(near, MessageType.Binary);
    assert.equal(a.remoteAddress, undefined);
    assert.equal(a.localPort, undefined);
    a.destroy();
    await far.closed;
  });

  it('carries text messages when asked to, each write one message', { timeout: 10_000 }, async () => {
    const { near, far } = await ends('server', 'pipe');
    const a = netConn(near, MessageType.Text);
    a.write('héllo');
    a.write(Buffer.from(' wörld'));
    assert.deepEqual(await far.read(), { type: MessageType.Text, data: Buffer.from('héllo') });
    assert.deepEqual(await far.read(), { type: MessageType.Text, data: Buffer.from(' wörld') });
    a.destroy();
  });

  it('skips empty messages instead of stalling', { timeout: 10_000 }, async () => {
    const { near, far } = await ends('client', 'pipe');
    const a = netConn(near, MessageType.Binary);
    const reading = (async () => {
      let text = '';
      for await (const part of a) text += String(part);
      return text;
    })();
    await far.write(MessageType.Binary, new Uint8Array(0));
    await far.write(MessageType.Binary, Buffer.from('after'));
    await far.close(1000);
    assert.equal(await reading, 'after');
  });

  it('rejects a bad message type', { timeout: 5_000 }, () => {
    const [client, server] = pipe();
    assert.throws(() => netConn(client, 3 as MessageType), TypeError);
    client.closeNow();
    server.closeNow();
  });
});
