/**
 * Scenario 7: fairness. A raw TCP client performs the upgrade by hand, then
 * sends a burst in ONE socket write: 10,000 small frames (16 B payloads,
 * masked), or a flood of 5,000 compressed ~1 KiB JSON messages. The server
 * child (sink mode) counts them; its event loop's longest stall during the
 * burst (`monitorEventLoopDelay`, 1 ms resolution) is what another
 * connection on that server would have waited. Target: < 50 ms.
 * @module
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import zlib from 'node:zlib';
import type { Compression, ImplName } from './adapters/types.js';
import type { ServerProcess } from './child.js';
import { jsonCorpus } from './corpus.js';
import type { Cell, Runner, Table } from './runner.js';

const smallFrames = 10_000;
const smallPayload = 16;
const floodMessages = 5_000;

/** One client frame (FIN, masked); `rsv1` marks a compressed message. */
function clientFrame(opcode: number, payload: Uint8Array, rsv1 = false): Buffer {
  const length = payload.length;
  const extra = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const out = Buffer.allocUnsafe(2 + extra + 4 + length);
  out[0] = 0x80 | (rsv1 ? 0x40 : 0) | opcode;
  if (extra === 0) out[1] = 0x80 | length;
  else if (extra === 2) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(length, 2);
  } else {
    out[1] = 0x80 | 127;
    out.writeBigUInt64BE(BigInt(length), 2);
  }
  const key = randomBytes(4);
  const at = 2 + extra;
  key.copy(out, at);
  for (let i = 0; i < length; i++) out[at + 4 + i] = (payload[i] as number) ^ (key[i & 3] as number);
  return out;
}

/** The burst for `impl`: WebSocket frames, or length-prefixed messages for raw TCP. */
function burst(impl: ImplName, compressed: boolean): { bytes: Buffer; messages: number } {
  if (compressed) {
    const corpus = jsonCorpus(1000);
    const frames = Array.from({ length: floodMessages }, (_, i) => {
      // RFC 7692 §7.2.1: a raw deflate stream flushed with Z_SYNC_FLUSH, its 00 00 ff ff tail removed.
      const deflated = zlib.deflateRawSync(corpus[i % corpus.length] as Uint8Array, { flush: zlib.constants.Z_SYNC_FLUSH });
      return clientFrame(0x1, deflated.subarray(0, deflated.length - 4), true);
    });
    return { bytes: Buffer.concat(frames), messages: floodMessages };
  }
  const payload = randomBytes(smallPayload);
  if (impl === 'net') {
    const one = Buffer.allocUnsafe(4 + smallPayload);
    one.writeUInt32BE(smallPayload, 0);
    payload.copy(one, 4);
    return { bytes: Buffer.concat(Array.from({ length: smallFrames }, () => one)), messages: smallFrames };
  }
  return { bytes: Buffer.concat(Array.from({ length: smallFrames }, () => clientFrame(0x2, payload))), messages: smallFrames };
}

/** Connects and, for a WebSocket server, performs the upgrade by hand; input is drained from then on. */
async function rawConnect(port: number, impl: ImplName, compression: Compression): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
  await once(socket, 'connect');
  if (impl === 'net') {
    socket.resume();
    return socket;
  }
  const offer = compression === 'off' ? '' : 'Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover\r\n';
  socket.write(
    `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${offer}\r\n`,
  );
  let head = '';
  while (!head.includes('\r\n\r\n')) {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    head += chunk.toString('latin1');
  }
  if (!head.startsWith('HTTP/1.1 101')) throw new Error(`upgrade refused: ${head.split('\r\n')[0]}`);
  socket.resume();
  return socket;
}

/** Waits until the server has counted `count` more messages than `base`; returns how long that took (ms, ±10). */
async function delivered(server: ServerProcess, base: number, count: number, limitMs = 30_000): Promise<number> {
  const start = performance.now();
  while ((await server.stats()).messagesIn - base < count) {
    if (performance.now() - start > limitMs) throw new Error(`the server took more than ${limitMs} ms`);
    await sleep(10);
  }
  return performance.now() - start;
}

/** Ends the connection the way the protocol wants: a close frame (WebSocket) or FIN, then waits for the server. */
async function rawClose(socket: net.Socket, impl: ImplName): Promise<void> {
  const closed = once(socket, 'close');
  if (impl === 'net') socket.end();
  else socket.write(clientFrame(0x8, Uint8Array.of(0x03, 0xe8)));
  await Promise.race([closed, sleep(2000)]);
  socket.destroy();
}

async function measure(runner: Runner, compression: Compression, what: string) {
  const compressed = compression !== 'off';
  return runner.each(what, { kind: 'sink', compression }, async ({ adapter, server }): Promise<Cell> => {
    const { bytes, messages } = burst(adapter.name, compressed);
    const socket = await rawConnect(server.port, adapter.name, compression);
    await sleep(100); // let the server settle into waiting for input
    const base = (await server.stats()).messagesIn;
    await server.stall(); // a fresh window
    socket.write(bytes);
    const ms = await delivered(server, base, messages);
    const { maxMs } = await server.stall();
    await rawClose(socket, adapter.name);
    return { value: maxMs, extra: `all in ${Math.round(ms)} ms`, raw: { maxStallMs: maxMs, deliveredMs: ms, bytes: bytes.length, messages } };
  });
}

/** Scenario 7: the receiving server's worst event-loop stall under a burst in one TCP write. */
export async function stall(runner: Runner): Promise<Table> {
  const small = await measure(runner, 'off', `stall: ${smallFrames} frames in one write`);
  const ws = runner.narrowed({ impls: ['wsconn', 'ws'] });
  const flood = await measure(ws, 'no-context-takeover', `stall: ${floodMessages} compressed messages in one write`);
  const rows = [
    { label: `${smallFrames.toLocaleString('en-US')} × ${smallPayload} B frames`, unit: 'worst stall ms', lowerIsBetter: true, cells: small },
    { label: `${floodMessages.toLocaleString('en-US')} × ~1 KiB deflated`, unit: 'worst stall ms', lowerIsBetter: true, cells: flood },
  ];
  const notes = [
    'one socket write from a raw client; server side, sink mode; target < 50 ms (the time another connection waits)',
    'compressed: permessage-deflate, no context takeover, JSON corpus messages; raw TCP has no compression',
  ];
  return { id: 'stall', title: '7. Fairness: worst event-loop stall of the receiving server during a burst', rows, notes };
}
