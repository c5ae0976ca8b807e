/**
 * permessage-deflate interop with real peers, verified on the wire: npm
 * `ws` in both directions with every perMessageDeflate parameter, undici's
 * `WebSocket` (it only inflates), Python `websockets` in both directions,
 * and a Chromium page. Every connection runs through a WireTap, which
 * records the negotiated headers and the RSV1 bit and size of every frame:
 * a test passes only if messages came back intact AND were compressed when
 * (and only when) each side should have compressed them, and each side kept
 * or reset its window as negotiated.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import type { Duplex } from 'node:stream';
import { after, afterEach, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { WebSocket as UndiciWebSocket, type MessageEvent as UndiciMessageEvent } from 'undici';
import WebSocket, { WebSocketServer, type PerMessageDeflateOptions } from 'ws';
import type { CompressionMode } from '../../src/compress.js';
import { MessageType, type Conn } from '../../src/conn.js';
import { dial } from '../../src/dial.js';
import { CloseError } from '../../src/errors.js';
import { chromiumMissing, launchChromium } from '../helpers/chromium.js';
import { leakCheck } from '../helpers/leak.js';
import { headerOf, WireTap, type TapStream } from '../helpers/raw.js';
import { describeWithPeer, echo, Inbox, pattern, python, requirePeer, within, WsconnServer } from './harness.js';

const checkLeaks = leakCheck();

const MiB = 1024 * 1024;
type Mode = Exclude<CompressionMode, 'disabled'>;
const modes: readonly Mode[] = ['context-takeover', 'no-context-takeover'];

// --- what went over the wire ---

/** A message as it crossed the wire: RSV1 on its first frame, how many frames, how many payload bytes. */
interface WireMessage {
  rsv1: boolean;
  frames: number;
  bytes: number;
}

/** Groups a direction's data frames into messages; RSV1 on a continuation frame is a failure (RFC 7692 §6.1). */
function wireMessages(stream: TapStream): WireMessage[] {
  const out: WireMessage[] = [];
  for (const frame of stream.dataFrames) {
    if (frame.opcode !== 0) {
      out.push({ rsv1: frame.rsv1, frames: 1, bytes: frame.length });
      continue;
    }
    assert.ok(!frame.rsv1, 'RSV1 set on a continuation frame (RFC 7692 §6.1)');
    const current = out.at(-1)!;
    current.frames += 1;
    current.bytes += frame.length;
  }
  return out;
}

/** A permessage-deflate response's parameters as sorted `name` or `name=value` strings. */
function paramsOf(extensions: string): string[] {
  return extensions
    .split(';')
    .slice(1)
    .map((p) => p.trim().replace(/\s*=\s*/, '=').replace(/"/g, '').toLowerCase())
    .sort();
}

/** What one side does with its own compressor, from the negotiated response (RFC 7692 §7.1). */
function compressorOf(extensions: string, side: 'server' | 'client'): { keeps: boolean; bits: number } {
  const params = paramsOf(extensions);
  const bits = params.find((p) => p.startsWith(`${side}_max_window_bits=`));
  return { keeps: !params.includes(`${side}_no_context_takeover`), bits: bits === undefined ? 15 : Number(bits.split('=')[1]) };
}

/** wsconn's default compressionThreshold for a compressor (DESIGN.md: 128 B with the window kept, 512 B without). */
const thresholdOf = (keeps: boolean): number => (keeps ? 128 : 512);

/** The sizes of the messages each echo test sends: text and binary alternating, then the same 1000 random bytes ×3. */
const sizes = [0, 1, 127, 128, 129, 511, 512, 513, 5000, 70_000];
const planSizes = [...sizes, 1000, 1000, 1000];
/** Where the 5000-byte compressible text and the repeated random message are in the plan. */
const bigTextAt = sizes.indexOf(5000);
const repeatAt = sizes.length;

/**
 * Checks one direction of an echo exchange. `compressed` says which
 * messages must have RSV1 (one entry per message, in order); the 5000-byte
 * text must shrink below half when compressed; and the three repeats of
 * the same random kilobyte must shrink after the first when the sender
 * keeps a window of at least 2^11 bytes (zlib reaches back window − 262
 * bytes), and stay the same size when it resets its window.
 */
function checkDirection(
  who: string,
  stream: TapStream,
  compressed: readonly boolean[],
  compressor: { keeps: boolean; bits: number } | undefined,
): WireMessage[] {
  const messages = wireMessages(stream);
  assert.deepEqual(messages.map((m) => m.rsv1), compressed, `${who}: RSV1 per message`);
  if (compressed[bigTextAt] === true) {
    assert.ok(messages[bigTextAt]!.bytes < 2500, `${who}: 5000 B of text went out as ${messages[bigTextAt]!.bytes} B`);
  }
  if (compressor !== undefined && compressed[repeatAt] === true) {
    const [a, b, c] = messages.slice(repeatAt, repeatAt + 3).map((m) => m.bytes);
    if (!compressor.keeps) {
      assert.deepEqual([b, c], [a, a], `${who} resets its window: the repeats compress alone (${a}, ${b}, ${c})`);
    } else if (compressor.bits >= 11) {
      assert.ok(b! < 50 && c! < 50, `${who} keeps its window: the repeats refer back (${a}, ${b}, ${c})`);
    }
  }
  return messages;
}

/** Which of the planned messages wsconn compresses with its default threshold. */
function wsconnCompresses(keeps: boolean, list: readonly number[] = planSizes): boolean[] {
  return list.map((size) => size >= thresholdOf(keeps));
}

/** Exactly `size` bytes of compressible ASCII. */
function textOf(size: number): string {
  const words = 'alpha beta gamma delta event user value true null ';
  return words.repeat(Math.ceil(size / words.length) + 1).slice(0, size);
}

/** The planned messages, for the Node peers. */
function plan(): Array<{ binary: boolean; data: Buffer }> {
  const out = sizes.map((size, i) => (i % 2 === 0 ? { binary: false, data: Buffer.from(textOf(size)) } : { binary: true, data: Buffer.from(pattern(size, i)) }));
  const random = Buffer.from(crypto.getRandomValues(new Uint8Array(1000)));
  return [...out, ...[0, 1, 2].map(() => ({ binary: true, data: random }))];
}

/** Three 400-byte fragments of one binary message. */
const fragments: [Buffer, Buffer, Buffer] = [Buffer.from(pattern(400, 10)), Buffer.from(pattern(400, 11)), Buffer.from(pattern(400, 12))];

// --- npm ws ---

type WsParams = Omit<PerMessageDeflateOptions, 'clientMaxWindowBits'> & { clientMaxWindowBits?: number | boolean };

const windowBits = [8, 9, 10, 11, 12, 13, 14, 15];
const windowCombos: WsParams[] = [
  {},
  { clientMaxWindowBits: true },
  { clientMaxWindowBits: false },
  ...windowBits.map((bits) => ({ serverMaxWindowBits: bits, clientMaxWindowBits: bits })),
  { serverMaxWindowBits: 8, clientMaxWindowBits: 15 },
  { serverMaxWindowBits: 15, clientMaxWindowBits: 8 },
];
const takeoverCombos: WsParams[] = [
  {},
  { serverNoContextTakeover: true },
  { clientNoContextTakeover: true },
  { serverNoContextTakeover: true, clientNoContextTakeover: true },
];
const wsCombos: WsParams[] = takeoverCombos.flatMap((t) => windowCombos.map((w) => ({ ...t, ...w })));

function describeParams(params: WsParams): string {
  const parts = Object.entries(params).map(([k, v]) => (v === true ? k : `${k}=${String(v)}`));
  return parts.length === 0 ? 'defaults' : parts.join(', ');
}

/** The ws options under test, with threshold 0 so that ws compresses every message. */
const wsOptions = (params: WsParams): PerMessageDeflateOptions => ({ ...params, threshold: 0 }) as PerMessageDeflateOptions;

/** What wsconn's accept() answers to a ws client's offer (RFC 7692 §7.1; bench/compression-design.md). */
function wsconnAnswer(offer: WsParams, mode: Mode): string[] {
  const params: string[] = [];
  if (offer.serverNoContextTakeover === true || mode === 'no-context-takeover') params.push('server_no_context_takeover');
  if (offer.clientNoContextTakeover === true || mode === 'no-context-takeover') params.push('client_no_context_takeover');
  if (typeof offer.serverMaxWindowBits === 'number') params.push(`server_max_window_bits=${offer.serverMaxWindowBits}`);
  if (typeof offer.clientMaxWindowBits === 'number') params.push(`client_max_window_bits=${offer.clientMaxWindowBits}`);
  return params.sort();
}

/** What a ws server answers to wsconn's offer for `mode`: the offer's own parameters plus its options. */
function wsAnswer(options: WsParams, mode: Mode): string[] {
  const params = new Set<string>();
  if (options.serverNoContextTakeover === true || mode === 'no-context-takeover') params.add('server_no_context_takeover');
  if (options.clientNoContextTakeover === true || mode === 'no-context-takeover') params.add('client_no_context_takeover');
  if (typeof options.serverMaxWindowBits === 'number') params.add(`server_max_window_bits=${options.serverMaxWindowBits}`);
  if (typeof options.clientMaxWindowBits === 'number') params.add(`client_max_window_bits=${options.clientMaxWindowBits}`);
  return [...params].sort();
}

interface WsMessage {
  data: Buffer;
  isBinary: boolean;
}

describe('ws client → wsconn accept(), permessage-deflate on', { timeout: 60_000 }, () => {
  let server: WsconnServer;
  let tap: WireTap;
  const clients = new Set<WebSocket>();

  before(async () => {
    server = await new WsconnServer().listen();
    tap = await new WireTap(server.port).listen();
  });
  afterEach(() => {
    for (const ws of clients) ws.terminate();
    clients.clear();
  });
  after(async () => {
    await tap?.close();
    await server?.close();
  });

  for (const params of wsCombos) {
    for (const mode of modes) {
      it(`ws offers ${describeParams(params)}; wsconn ${mode}`, { timeout: 10_000 }, async () => {
        const connP = server.nextConn({ compressionMode: mode, readLimit: MiB });
        const ws = new WebSocket(`ws://127.0.0.1:${tap.port}/`, { perMessageDeflate: wsOptions(params) });
        clients.add(ws);
        const messages = new Inbox<WsMessage>();
        ws.on('message', (data, isBinary) => messages.push({ data: data as Buffer, isBinary }));
        const wsClosed = once(ws, 'close');
        await once(ws, 'open');
        const conn = await connP;
        const wire = tap.last();
        const answer = wsconnAnswer(params, mode);
        assert.deepEqual(paramsOf(conn.extensions), answer, `wsconn answered ${conn.extensions}`);
        assert.match(conn.extensions, /^permessage-deflate\b/);
        assert.equal(headerOf(wire.toClient.head, 'sec-websocket-extensions'), conn.extensions);
        assert.equal(ws.extensions, 'permessage-deflate', 'ws took the answer');
        const echoed = echo(conn);

        for (const message of plan()) {
          ws.send(message.data, { binary: message.binary });
          const back = await messages.next();
          assert.equal(back.isBinary, message.binary);
          assert.ok(back.data.equals(message.data), `${message.data.length} B came back changed`);
        }
        ws.send(fragments[0], { binary: true, fin: false });
        ws.send(fragments[1], { fin: false });
        ws.send(fragments[2], { fin: true });
        assert.ok((await messages.next()).data.equals(Buffer.concat(fragments)));
        ws.close(1000);
        const ended = await echoed;
        assert.ok(ended instanceof CloseError && ended.code === 1000, String(ended));
        await wsClosed;

        const sent = checkDirection('ws', wire.toServer, [...planSizes.map(() => true), true], compressorOf(conn.extensions, 'client'));
        assert.equal(sent.at(-1)!.frames, 3, 'ws sent the last message in three frames');
        const own = compressorOf(conn.extensions, 'server');
        checkDirection('wsconn', wire.toClient, [...wsconnCompresses(own.keeps), true], own);
      });
    }
  }
});

describe('wsconn dial() → ws WebSocketServer, permessage-deflate on', { timeout: 60_000 }, () => {
  let http: Server;
  let tap: WireTap;
  const servers = wsCombos.map((params) => new WebSocketServer({ noServer: true, perMessageDeflate: wsOptions(params) }));
  const conns = new Set<Conn>();

  before(async () => {
    for (const wss of servers) {
      wss.on('connection', (ws) => {
        ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }));
        ws.on('error', () => {});
      });
    }
    http = createServer((_req, res) => res.writeHead(426).end());
    http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const wss = servers[Number(req.url?.split('/')[2])];
      if (wss === undefined) return void socket.destroy();
      wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
    });
    http.listen(0, '127.0.0.1');
    await once(http, 'listening');
    tap = await new WireTap((http.address() as AddressInfo).port).listen();
  });
  afterEach(() => {
    for (const conn of conns) conn.closeNow();
    conns.clear();
  });
  after(async () => {
    for (const wss of servers) {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
    }
    await tap?.close();
    http?.closeAllConnections();
    http?.close();
    if (http !== undefined) await once(http, 'close');
  });

  wsCombos.forEach((params, index) => {
    for (const mode of modes) {
      it(`ws answers with ${describeParams(params)}; wsconn ${mode}`, { timeout: 10_000 }, async () => {
        const conn = await dial(`ws://127.0.0.1:${tap.port}/combo/${index}`, { compressionMode: mode, readLimit: MiB, signal: AbortSignal.timeout(5000) });
        conns.add(conn);
        const wire = tap.last();
        assert.deepEqual(paramsOf(conn.extensions), wsAnswer(params, mode), `ws answered ${conn.extensions}`);
        assert.equal(headerOf(wire.toClient.head, 'sec-websocket-extensions'), conn.extensions);

        const planned = plan();
        for (const message of planned) {
          const reading = conn.read({ signal: AbortSignal.timeout(5000) });
          await conn.write(message.binary ? MessageType.Binary : MessageType.Text, message.data);
          const back = await reading;
          assert.equal(back.type, message.binary ? MessageType.Binary : MessageType.Text);
          assert.ok(Buffer.from(back.data).equals(message.data), `${message.data.length} B came back changed`);
        }
        const reading = conn.read({ signal: AbortSignal.timeout(5000) });
        const writer = (await conn.writer(MessageType.Binary)).getWriter();
        for (const part of fragments) await writer.write(part);
        await writer.close();
        assert.ok(Buffer.from((await reading).data).equals(Buffer.concat(fragments)));
        const info = await within(3000, 'close()', conn.close(1000));
        assert.equal(info.code, 1000);

        // A dial() in no-context-takeover mode resets its window whatever the answer said.
        const own = compressorOf(conn.extensions, 'client');
        if (mode === 'no-context-takeover') own.keeps = false;
        const sent = checkDirection('wsconn', wire.toServer, [...wsconnCompresses(own.keeps), true], own);
        assert.equal(sent.at(-1)!.frames, 4, 'writer(): three chunks and the final frame');
        checkDirection('ws', wire.toClient, [...planSizes.map(() => true), true], compressorOf(conn.extensions, 'server'));
      });
    }
  });
});

// --- undici WebSocket (inflates only) ---

describe('undici WebSocket → wsconn accept(), permessage-deflate on', { timeout: 30_000 }, () => {
  let server: WsconnServer;
  let tap: WireTap;
  const clients = new Set<UndiciWebSocket>();

  before(async () => {
    server = await new WsconnServer().listen();
    tap = await new WireTap(server.port).listen();
  });
  afterEach(() => {
    for (const ws of clients) if (ws.readyState !== UndiciWebSocket.CLOSED) ws.close();
    clients.clear();
  });
  after(async () => {
    await tap?.close();
    await server?.close();
  });

  for (const mode of modes) {
    it(`undici offers, wsconn ${mode} compresses; undici's frames stay uncompressed`, { timeout: 10_000 }, async () => {
      const connP = server.nextConn({ compressionMode: mode, readLimit: MiB });
      const ws = new UndiciWebSocket(`ws://127.0.0.1:${tap.port}/`);
      clients.add(ws);
      ws.binaryType = 'arraybuffer';
      const messages = new Inbox<string | Buffer>();
      ws.addEventListener('message', (event: UndiciMessageEvent) => {
        const data: unknown = event.data;
        messages.push(typeof data === 'string' ? data : Buffer.from(data as ArrayBuffer));
      });
      const closed = new Promise<number>((resolve) => ws.addEventListener('close', (event) => resolve(event.code)));
      await new Promise<void>((resolve, reject) => {
        ws.addEventListener('open', () => resolve(), { once: true });
        ws.addEventListener('error', () => reject(new Error('undici WebSocket failed to open')), { once: true });
      });
      const conn = await connP;
      const wire = tap.last();
      assert.equal(headerOf(wire.toServer.head, 'sec-websocket-extensions'), 'permessage-deflate; client_max_window_bits');
      const expected = mode === 'context-takeover' ? 'permessage-deflate' : 'permessage-deflate; server_no_context_takeover; client_no_context_takeover';
      assert.equal(conn.extensions, expected);
      assert.equal(ws.extensions, expected);
      const echoed = echo(conn);

      for (const message of plan()) {
        ws.send(message.binary ? message.data : message.data.toString());
        const back = await messages.next();
        if (message.binary) assert.ok(Buffer.isBuffer(back) && back.equals(message.data), `${message.data.length} B came back changed`);
        else assert.equal(back, message.data.toString());
      }
      ws.close(1000);
      const ended = await echoed;
      assert.ok(ended instanceof CloseError && ended.code === 1000, String(ended));
      assert.equal(await closed, 1000);

      checkDirection('undici', wire.toServer, planSizes.map(() => false), undefined);
      const own = compressorOf(conn.extensions, 'server');
      checkDirection('wsconn', wire.toClient, wsconnCompresses(own.keeps), own);
    });
  }
});

// --- Python websockets ---

const peerScript = fileURLToPath(new URL('./py/deflate_peer.py', import.meta.url));
const pythonProbe = spawnSync(python, ['-c', 'import websockets; print(websockets.__version__)'], { encoding: 'utf8', timeout: 10_000 });
const pythonVersion = pythonProbe.status === 0 ? pythonProbe.stdout.trim() : '';
const pythonMissing = pythonProbe.status === 0 ? undefined : 'python3-websockets not installed (apt-get install python3-websockets)';
/** Python processes still running; a failed test may leave one behind. */
const children = new Set<ChildProcess>();

interface PyClientResult {
  ok: boolean;
  errors: string[];
  request_extensions: string | null;
  response_extensions: string | null;
  close_code: number;
}

async function runPythonClient(url: string, options: unknown): Promise<{ status: number | null; result: PyClientResult; stderr: string }> {
  const child = spawn(python, [peerScript, 'client', url, JSON.stringify(options)], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const [status] = (await once(child, 'close')) as [number | null];
  children.delete(child);
  assert.ok(stdout.trim() !== '', `deflate_peer.py client printed nothing (exit ${status}): ${stderr}`);
  return { status, result: JSON.parse(stdout) as PyClientResult, stderr };
}

/** Sizes of what the Python peer sends: the plan, then one message in three fragments. */
const pythonCompressesAll = [...planSizes.map(() => true), true];

describeWithPeer(`python websockets ${pythonVersion || '(missing)'} client → wsconn accept(), permessage-deflate on`, pythonMissing, { timeout: 30_000 }, () => {
  let server: WsconnServer;
  let tap: WireTap;

  before(async () => {
    requirePeer(pythonMissing);
    server = await new WsconnServer().listen();
    tap = await new WireTap(server.port).listen();
  });
  after(async () => {
    await tap?.close();
    await server?.close();
  });

  const variants: Array<[string, Record<string, unknown> | null, Mode]> = [
    ['its default offer', null, 'context-takeover'],
    ['its default offer', null, 'no-context-takeover'],
    ['both no_context_takeover', { server_no_context_takeover: true, client_no_context_takeover: true }, 'context-takeover'],
    ['server_max_window_bits=10, client_max_window_bits=9', { server_max_window_bits: 10, client_max_window_bits: 9 }, 'context-takeover'],
    // zlib's inflate holds python to a real 256-byte window across messages: wsconn must not refer further back.
    ['server_max_window_bits=8', { server_max_window_bits: 8 }, 'context-takeover'],
  ];
  for (const [what, options, mode] of variants) {
    it(`python offers ${what}; wsconn ${mode}`, { timeout: 15_000 }, async () => {
      const connP = server.nextConn({ compressionMode: mode, readLimit: MiB });
      const client = runPythonClient(`ws://127.0.0.1:${tap.port}/`, options);
      const conn = await connP;
      const wire = tap.last();
      const ended = echo(conn);
      const { status, result, stderr } = await client;
      assert.equal(status, 0, `python: ${result.errors.join('; ')} ${stderr}`);
      assert.equal(result.close_code, 1000);
      assert.ok((await ended) instanceof CloseError);
      assert.equal(result.response_extensions, conn.extensions, 'python saw the answer wsconn sent');
      assert.equal(headerOf(wire.toClient.head, 'sec-websocket-extensions'), conn.extensions);
      assert.match(conn.extensions, /^permessage-deflate\b/);
      if (mode === 'no-context-takeover') assert.match(conn.extensions, /server_no_context_takeover/);
      if (options?.['server_max_window_bits'] !== undefined) {
        assert.match(conn.extensions, new RegExp(`server_max_window_bits=${String(options['server_max_window_bits'])}`));
      }

      const sent = checkDirection('python', wire.toServer, pythonCompressesAll, compressorOf(conn.extensions, 'client'));
      // websockets sends an iterable as its fragments, then an empty final frame.
      assert.equal(sent.at(-1)!.frames, 4, 'python sent the last message in four frames');
      const own = compressorOf(conn.extensions, 'server');
      checkDirection('wsconn', wire.toClient, [...wsconnCompresses(own.keeps), true], own);
    });
  }
});

interface PyServerEvent {
  event: 'listening' | 'open';
  ports?: number[];
  request_extensions?: string | null;
  response_extensions?: string | null;
}

describeWithPeer(`wsconn dial() → python websockets ${pythonVersion || '(missing)'} server, permessage-deflate on`, pythonMissing, { timeout: 30_000 }, () => {
  /** [what, server options, parameters the answer must include] */
  const variants: Array<[string, Record<string, unknown> | null, string[]]> = [
    ['its defaults', null, ['client_max_window_bits=12', 'server_max_window_bits=12']],
    ['server_no_context_takeover', { server_no_context_takeover: true }, ['server_no_context_takeover']],
    ['client_no_context_takeover, 9/10 window bits', { client_no_context_takeover: true, server_max_window_bits: 9, client_max_window_bits: 10 }, ['client_max_window_bits=10', 'client_no_context_takeover', 'server_max_window_bits=9']],
    // python inflates with a real 256-byte window across messages: wsconn must not refer further back.
    ['client_max_window_bits=8', { client_max_window_bits: 8 }, ['client_max_window_bits=8']],
  ];
  let child: ChildProcess;
  let events: Inbox<PyServerEvent>;
  const taps: WireTap[] = [];
  const conns = new Set<Conn>();

  before(async () => {
    requirePeer(pythonMissing);
    child = spawn(python, [peerScript, 'server', JSON.stringify(variants.map(([, options]) => options))], { stdio: ['pipe', 'pipe', 'inherit'] });
    children.add(child);
    events = new Inbox<PyServerEvent>();
    createInterface({ input: child.stdout! }).on('line', (line) => events.push(JSON.parse(line) as PyServerEvent));
    const exited = once(child, 'exit').then(([code]) => {
      throw new Error(`deflate_peer.py server exited with ${String(code)} before listening`);
    });
    const first = await Promise.race([events.next(), exited]);
    assert.equal(first.event, 'listening');
    for (const port of first.ports!) taps.push(await new WireTap(port).listen());
  });
  afterEach(() => {
    for (const conn of conns) conn.closeNow();
    conns.clear();
  });
  after(async () => {
    for (const tap of taps) await tap.close();
    if (child === undefined) return;
    child.stdin!.end();
    if (child.exitCode === null) await once(child, 'exit');
    children.delete(child);
  });

  variants.forEach(([what, , required], index) => {
    for (const mode of modes) {
      it(`python server with ${what}; wsconn ${mode}`, { timeout: 15_000 }, async () => {
        const tap = taps[index]!;
        const conn = await dial(`ws://127.0.0.1:${tap.port}/`, { compressionMode: mode, readLimit: MiB, signal: AbortSignal.timeout(5000) });
        conns.add(conn);
        const wire = tap.last();
        const opened = await events.next();
        assert.equal(opened.event, 'open');
        assert.equal(opened.response_extensions, conn.extensions, 'wsconn reports the answer python sent');
        assert.equal(headerOf(wire.toClient.head, 'sec-websocket-extensions'), conn.extensions);
        const params = paramsOf(conn.extensions);
        for (const param of required) assert.ok(params.includes(param), `${param} in ${conn.extensions}`);
        if (mode === 'no-context-takeover') assert.ok(params.includes('server_no_context_takeover'), conn.extensions);

        for (const message of plan()) {
          const reading = conn.read({ signal: AbortSignal.timeout(5000) });
          await conn.write(message.binary ? MessageType.Binary : MessageType.Text, message.data);
          const back = await reading;
          assert.ok(Buffer.from(back.data).equals(message.data), `${message.data.length} B came back changed`);
        }
        const reading = conn.read({ signal: AbortSignal.timeout(5000) });
        const writer = (await conn.writer(MessageType.Binary)).getWriter();
        for (const part of fragments) await writer.write(part);
        await writer.close();
        assert.ok(Buffer.from((await reading).data).equals(Buffer.concat(fragments)));
        const info = await within(3000, 'close()', conn.close(1000));
        assert.deepEqual([info.code, info.wasClean], [1000, true]);

        const own = compressorOf(conn.extensions, 'client');
        if (mode === 'no-context-takeover') own.keeps = false;
        const sent = checkDirection('wsconn', wire.toServer, [...wsconnCompresses(own.keeps), true], own);
        assert.equal(sent.at(-1)!.frames, 4);
        checkDirection('python', wire.toClient, pythonCompressesAll, compressorOf(conn.extensions, 'server'));
      });
    }
  });
});

// --- Chromium ---


/**
 * The page's half: opens a WebSocket, sends the planned messages (the same
 * recipe as plan() above) and checks each echo, then closes with 1000.
 */
const pageScript = String.raw`
function textOf(size) {
  const words = 'alpha beta gamma delta event user value true null ';
  return words.repeat(Math.ceil(size / words.length) + 1).slice(0, size);
}
function pattern(length, seed) {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + seed + (i >>> 8)) & 0xff;
  return bytes;
}
async function deflateSession(url, sizes) {
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  const inbox = [], waiters = [];
  ws.onmessage = (event) => { const w = waiters.shift(); if (w) w(event.data); else inbox.push(event.data); };
  const closed = new Promise((resolve) => { ws.onclose = (event) => resolve({ code: event.code, wasClean: event.wasClean }); });
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = () => reject(new Error('WebSocket error before open')); });
  const next = () => inbox.length > 0 ? Promise.resolve(inbox.shift()) : new Promise((resolve) => waiters.push(resolve));
  const messages = sizes.map((size, i) => i % 2 === 0 ? textOf(size) : pattern(size, i));
  const random = crypto.getRandomValues(new Uint8Array(1000));
  messages.push(random, random, random);
  const problems = [];
  for (const sent of messages) {
    ws.send(typeof sent === 'string' ? sent : sent.buffer.slice(0));
    const got = await next();
    if (typeof sent === 'string') {
      if (got !== sent) problems.push('text ' + sent.length + ' came back changed');
    } else {
      const bytes = got instanceof ArrayBuffer ? new Uint8Array(got) : null;
      if (bytes === null || bytes.length !== sent.length || !bytes.every((b, i) => b === sent[i])) problems.push('binary ' + sent.length + ' came back changed');
    }
  }
  const extensions = ws.extensions;
  ws.close(1000);
  return { extensions, problems, closed: await closed };
}
`;

describeWithPeer('Chromium page → wsconn accept(), permessage-deflate on', chromiumMissing, { timeout: 40_000 }, () => {
  let browser: Browser;
  let server: WsconnServer;
  let tap: WireTap;

  before(async () => {
    requirePeer(chromiumMissing);
    server = await new WsconnServer().listen();
    server.onRequest = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(`<!doctype html><meta charset="utf-8"><script>${pageScript}</script>`);
    };
    tap = await new WireTap(server.port).listen();
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await tap?.close();
    await server?.close();
  });

  for (const mode of modes) {
    it(`the page negotiates with wsconn ${mode}; compressed frames flow both ways`, { timeout: 20_000 }, async () => {
      const page = await browser.newPage();
      try {
        await page.goto(`http://127.0.0.1:${server.port}/`);
        // The page's origin is the server's port; its WebSocket goes through the tap's port.
        const connP = server.nextConn({ compressionMode: mode, readLimit: MiB, originPatterns: ['127.0.0.1:*'] });
        const session = page.evaluate(`deflateSession(${JSON.stringify(`ws://127.0.0.1:${tap.port}/`)}, ${JSON.stringify(sizes)})`) as Promise<{
          extensions: string;
          problems: string[];
          closed: { code: number; wasClean: boolean };
        }>;
        const conn = await connP;
        const wire = tap.last();
        const ended = echo(conn);
        const result = await session;
        assert.deepEqual(result.problems, []);
        assert.deepEqual(result.closed, { code: 1000, wasClean: true });
        assert.ok((await ended) instanceof CloseError);
        assert.equal(headerOf(wire.toServer.head, 'sec-websocket-extensions'), 'permessage-deflate; client_max_window_bits');
        assert.equal(result.extensions, conn.extensions, "the page's ws.extensions is wsconn's answer");
        assert.equal(headerOf(wire.toClient.head, 'sec-websocket-extensions'), conn.extensions);

        const own = compressorOf(conn.extensions, 'server');
        checkDirection('wsconn', wire.toClient, wsconnCompresses(own.keeps), own);
        // Chromium compresses every message it sends, even empty ones, and keeps its window unless told not to.
        checkDirection('Chromium', wire.toServer, planSizes.map(() => true), compressorOf(conn.extensions, 'client'));
      } finally {
        await page.close();
      }
    });
  }
});

after(async () => {
  for (const child of children) child.kill('SIGKILL');
  await Promise.all([...children].map((child) => (child.exitCode === null ? once(child, 'exit') : undefined)));
  await checkLeaks();
});
