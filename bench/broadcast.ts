/**
 * Scenario 8: broadcast. One server, `connections` clients (all in the
 * parent), numbered ~1 KiB JSON messages broadcast to all of them as fast
 * as delivery allows (adapters/pacer.ts: at most 64 messages in flight
 * beyond what a probe client acknowledged). wsconn sends each message with
 * `broadcast()` of one `PreparedMessage`; `ws` with the usual
 * `for (const client of clients) client.send(buffer)`. Measured: messages
 * delivered per second (counted by the clients) and per CPU-second of the
 * server child (all its threads, so `ws`'s zlib thread pool counts too).
 * Target: ≥ 2× `ws` delivered per server CPU-second.
 * @module
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ackEvery, seqOf } from './adapters/pacer.js';
import type { BenchClient, Compression } from './adapters/types.js';
import type { ServerProcess } from './child.js';
import { closeMany, openMany } from './common.js';
import type { Cell, Cells, Runner, Table } from './runner.js';
import { median } from './timing.js';

/** Reads every client until it ends, counting messages; the probe acknowledges. */
function readAll(clients: BenchClient[], counter: { delivered: number }, server: ServerProcess): Promise<void[]> {
  return Promise.all(
    clients.map(async (client, i) => {
      try {
        for (;;) {
          const message = await client.receive();
          counter.delivered++;
          if (i === 0) {
            const seq = seqOf(message);
            if (seq % ackEvery === 0) server.ack(seq);
          }
        }
      } catch {
        // the connection ended: the case is over
      }
    }),
  );
}

async function measure(runner: Runner, connections: number, compression: Compression): Promise<Cells> {
  const { warmup, seconds, rounds } = runner.window;
  const what = `broadcast × ${connections}${compression === 'off' ? '' : `, ${compression}`}`;
  return runner.each(
    what,
    { kind: 'broadcast', connections, compression },
    async ({ connect, server }): Promise<Cell> => {
      const clients = await openMany(connect, connections, 32);
      const counter = { delivered: 0 };
      const reading = readAll(clients, counter, server);
      for (let waited = 0; counter.delivered === 0; waited += 10) {
        if (waited > 20_000) throw new Error('no message arrived');
        await sleep(10);
      }
      await sleep(warmup * 1000);
      const perCpuSecond: number[] = [];
      const perSecond: number[] = [];
      for (let round = 0; round < rounds; round++) {
        const [d0, s0, t0] = [counter.delivered, await server.stats(), performance.now()];
        await sleep((seconds / rounds) * 1000);
        const [d1, s1, t1] = [counter.delivered, await server.stats(), performance.now()];
        perCpuSecond.push((d1 - d0) / ((s1.cpuMicros - s0.cpuMicros) / 1e6));
        perSecond.push((d1 - d0) / ((t1 - t0) / 1000));
      }
      await closeMany(clients, 64);
      await reading;
      const value = median(perCpuSecond);
      const rate = median(perSecond);
      const spread = (Math.max(...perCpuSecond) - Math.min(...perCpuSecond)) / value;
      return {
        value,
        spread,
        extra: `${Math.round(rate).toLocaleString('en-US')} delivered/s, ${(1e6 / value).toFixed(2)} µs server CPU each`,
        raw: { deliveredPerServerCpuSecond: perCpuSecond, deliveredPerSecond: perSecond },
      };
    },
    180_000,
  );
}

/** Scenario 8: one server broadcasting to many clients, with and without compression. */
export async function broadcastScenario(runner: Runner, options: { quick: boolean }): Promise<Table> {
  const wsOnly = runner.narrowed({ impls: ['wsconn', 'ws'] });
  const sizes = (process.env['BENCH_BROADCAST_CONNS'] ?? (options.quick ? '500' : '1000')).split(',').map(Number);
  const rows = [];
  for (const connections of sizes) {
    for (const compression of ['off', 'no-context-takeover', 'context-takeover'] as const) {
      const cells = await measure(wsOnly, connections, compression);
      const label = `${connections.toLocaleString('en-US')} clients, ${compression === 'off' ? 'no compression' : compression}`;
      rows.push({ label, unit: 'delivered/server CPU-s', cells });
    }
  }
  const notes = [
    '~1 KiB JSON messages; at most 64 in flight beyond what one probe client acknowledged (over IPC); clients all in the parent process (CPU 1)',
    'wsconn: broadcast(conns, new PreparedMessage(Text, buffer)); ws: for (const c of clients) c.send(buffer) — compressed per client',
    'compression: every message compressed (threshold 0) on both; wsconn deflates a prepared message once in both modes',
    'value: messages delivered per CPU-second of the server process (all threads); target ≥ 2× ws',
  ];
  return { id: 'broadcast', title: '8. Broadcast: one server to many clients', rows, impls: ['wsconn', 'ws'], notes };
}
