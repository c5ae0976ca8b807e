/**
 * Handshake rate of one client against a `ws` server in another process:
 * `node --import tsx bench/dial-profile.ts [wsconn|wsconn-undici|ws] [count]`.
 * The server runs in a forked child on CPU 0, this process is pinned to CPU 1
 * by the caller (`taskset -c 1`). Add `--cpu-prof` to see where dial()'s
 * time goes.
 * @module
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Agent } from 'undici';
import { WebSocket, WebSocketServer } from 'ws';
import { dial } from '../src/dial.js';
import { pin } from './child.js';

async function serve(): Promise<void> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(wss, 'listening');
  wss.on('connection', (socket) => socket.on('error', () => {}));
  process.send?.((wss.address() as { port: number }).port);
  process.on('disconnect', () => process.exit(0));
}

async function client(which: string, count: number): Promise<void> {
  const child = fork(fileURLToPath(import.meta.url), ['server'], { execArgv: ['--import', 'tsx'] });
  const [port] = (await once(child, 'message')) as [number];
  if (child.pid !== undefined) pin(child.pid, 0);
  const url = `ws://127.0.0.1:${port}/`;
  const dispatcher = which === 'wsconn-undici' ? new Agent() : undefined;
  const one = async (): Promise<void> => {
    if (which === 'ws') {
      const socket = new WebSocket(url);
      await once(socket, 'open');
      const closed = once(socket, 'close');
      socket.close(1000);
      await closed;
      return;
    }
    const conn = await dial(url, dispatcher === undefined ? {} : { dispatcher });
    await conn.close(1000);
  };
  for (let i = 0; i < Math.min(500, count); i++) await one();
  const start = performance.now();
  const cpu = process.cpuUsage();
  for (let i = 0; i < count; i++) await one();
  const used = process.cpuUsage(cpu);
  const rate = (count / (performance.now() - start)) * 1000;
  const cpuPer = (used.user + used.system) / count;
  console.log(`${which}: ${rate.toFixed(0)} handshakes/s (${count} sequential), client CPU ${cpuPer.toFixed(0)} µs each`);
  child.kill();
  await dispatcher?.close();
}

if (process.argv[2] === 'server') await serve();
else await client(process.argv[2] ?? 'wsconn', Number(process.argv[3] ?? 3000));
