/**
 * The scenarios (compression's is in `compression.ts`). Each returns a
 * table of rows with one cell per implementation; see bench/README.md for
 * what each one measures.
 * @module
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BenchClient } from './adapters/types.js';
import { clientHeap, closeMany, growthPerConnection, openMany, pick, rateCell, serverOpened } from './common.js';
import { compression } from './compression.js';
import { stall } from './stall.js';
import { broadcastScenario } from './broadcast.js';
import type { CaseContext, Cell, Runner, Table, Workload } from './runner.js';

/** What `--quick` changes. */
export interface ScenarioOptions {
  quick: boolean;
}
import type { Round, Sample } from './timing.js';
import { median, polled, timed } from './timing.js';
import type { ServerProcess } from './child.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Formats bytes per second as MB/s (10^6 bytes). */
function mbps(bytesPerSecond: number): string {
  return `${(bytesPerSecond / 1e6).toFixed(bytesPerSecond < 1e7 ? 2 : 1)} MB/s`;
}

function sizeLabel(size: number): string {
  if (size >= MiB && size % MiB === 0) return `${size / MiB} MiB`;
  return size >= KiB && size % KiB === 0 ? `${size / KiB} KiB` : `${size} B`;
}

const rateAndBytesCell = (sample: Sample): Cell => ({ ...rateCell(sample), extra: mbps(sample.byteRate) });

/** Also counts the server child's CPU time (all threads) in each round. */
function withServerCpu(server: ServerProcess, measure: (seconds: number) => Promise<Round>): (seconds: number) => Promise<Round> {
  return async (seconds) => {
    const before = (await server.stats()).cpuMicros;
    const round = await measure(seconds);
    return { ...round, cpuMicros: (await server.stats()).cpuMicros - before };
  };
}

/** Rate, MB/s and the server's CPU µs per operation (median of the rounds). */
function rateBytesAndCpuCell(sample: Sample): Cell {
  const cpuPerOp = median(sample.rounds.map((r) => (r.cpuMicros ?? NaN) / r.ops));
  return { ...rateCell(sample), extra: `${mbps(sample.byteRate)}, server ${Math.round(cpuPerOp)} µs CPU each`, raw: { ...sample, serverCpuMicrosPerOp: cpuPerOp } };
}
const byteRateCell = (sample: Sample): Cell => ({
  ...rateCell(sample),
  value: sample.byteRate / 1e6,
  rounds: sample.rounds.map((r) => r.bytes / r.seconds / 1e6),
});

/** One echo round trip; checks the length that came back. */
async function roundTrip(client: BenchClient, payload: Uint8Array): Promise<number> {
  await client.send(payload);
  const echoed = await client.receive();
  if (echoed.length !== payload.length) throw new Error(`echo of ${payload.length} B came back as ${echoed.length} B`);
  return payload.length;
}

/** Sizes like "16", "64K", "1M" from BENCH_ECHO_SIZES, or the default set. */
function echoSizes(): number[] {
  const value = process.env['BENCH_ECHO_SIZES'];
  if (value === undefined || value.trim() === '') return [16, KiB, 64 * KiB, MiB];
  return value.split(',').map((item) => {
    const match = /^(\d+)([KM]?)$/i.exec(item.trim());
    if (match === null) throw new Error(`BENCH_ECHO_SIZES: cannot read ${JSON.stringify(item)}`);
    const unit = match[2]?.toUpperCase() === 'M' ? MiB : match[2]?.toUpperCase() === 'K' ? KiB : 1;
    return Number(match[1]) * unit;
  });
}

/** Scenario 1: sequential echo round trips on one connection. */
export async function echo(runner: Runner): Promise<Table> {
  const rows = [];
  for (const size of echoSizes()) {
    const payload = randomBytes(size);
    const setup = async ({ connect, server }: CaseContext): Promise<Workload> => {
      const client = await connect();
      return { measure: withServerCpu(server, (s) => timed(() => roundTrip(client, payload), s)), close: () => client.close() };
    };
    const cells = await runner.compare(`echo ${sizeLabel(size)}`, { kind: 'echo' }, setup, rateBytesAndCpuCell);
    rows.push({ label: sizeLabel(size), unit: 'round trips/s', cells });
  }
  return { id: 'echo', title: '1. Echo round trips, one connection, sequential (MB/s = payload bytes echoed)', rows };
}

/** Scenario 2: 64 connections, each doing sequential 1 KiB echoes. */
export async function concurrentEcho(runner: Runner, connections = 64): Promise<Table> {
  const payload = randomBytes(KiB);
  const cells = await runner.compare(
    `echo 1 KiB × ${connections} conns`,
    { kind: 'echo' },
    async ({ connect }) => {
      const clients = await openMany(connect, connections, 16);
      return {
        measure: (s) => timed((lane) => roundTrip(clients[lane] as BenchClient, payload), s, connections),
        close: () => closeMany(clients, 16),
      };
    },
    rateAndBytesCell,
  );
  const rows = [{ label: `${connections} conns × 1 KiB`, unit: 'msgs/s (aggregate)', cells }];
  return { id: 'concurrent', title: `2. Echo, ${connections} concurrent connections, 1 KiB messages`, rows };
}

/** Scenario 3: one-way streaming of 64 KiB and 1 MiB messages, both directions. */
export async function streaming(runner: Runner): Promise<Table> {
  const rows = [];
  for (const size of [64 * KiB, MiB]) {
    rows.push({ label: `${sizeLabel(size)} client→server`, unit: 'MB/s at receiver', cells: await upstream(runner, size) });
    rows.push({ label: `${sizeLabel(size)} server→client`, unit: 'MB/s at receiver', cells: await downstream(runner, size) });
  }
  return { id: 'streaming', title: '3. One-way streaming (as fast as back-pressure allows)', rows };
}

/** Client → server: the server counts, sampled over IPC with its own clock. */
function upstream(runner: Runner, size: number) {
  const payload = randomBytes(size);
  return runner.compare(
    `stream ${sizeLabel(size)} client→server`,
    { kind: 'sink' },
    async ({ connect, server }) => {
      const client = await connect();
      const received = async (): Promise<{ bytes: number; ops: number; time: number }> => {
        const stats = await server.stats();
        return { bytes: stats.bytesIn, ops: stats.messagesIn, time: stats.time };
      };
      const measure = async (seconds: number): Promise<Round> => {
        let stop = false;
        const pump = (async () => {
          while (!stop) await client.send(payload);
        })();
        pump.catch(() => {}); // awaited below; this only keeps it from counting as unhandled
        try {
          await sleep(50); // let the pipe fill before the receiver is sampled
          return await polled(received, seconds);
        } finally {
          stop = true;
          await pump;
        }
      };
      return { measure, close: () => client.close() };
    },
    byteRateCell,
  );
}

/** Server → client: the client counts. */
function downstream(runner: Runner, size: number) {
  return runner.compare(
    `stream ${sizeLabel(size)} server→client`,
    { kind: 'source', size },
    async ({ connect }) => {
      const client = await connect();
      const receive = async (): Promise<number> => (await client.receive()).length;
      const measure = async (seconds: number): Promise<Round> => {
        await timed(receive, 0.05); // drain what piled up between rounds first
        return timed(receive, seconds);
      };
      return { measure, close: () => client.close() };
    },
    byteRateCell,
  );
}

/**
 * Scenario 4: memory held per idle connection, server and client side: the
 * growth from `warmup` to `warmup + connections` open connections (see
 * `growthPerConnection`).
 */
export async function idleMemory(runner: Runner, connections = 1000): Promise<Table> {
  const warmup = Math.round(connections / 5);
  const cells = await runner.each(`idle memory × ${connections}`, { kind: 'echo' }, async ({ connect, server }) => {
    const { perConn } = await growthPerConnection({
      connect,
      opened: (open) => serverOpened(server, open),
      sample: async () => {
        const { heapUsed, external, rss } = await server.memory();
        return { heapUsed, external, rss, client: clientHeap() };
      },
      warmup,
      count: connections,
    });
    const raw = {
      heapPerConn: perConn('heapUsed'),
      externalPerConn: perConn('external'),
      rssPerConn: perConn('rss'),
      clientHeapExternalPerConn: perConn('client'),
    };
    return { value: raw.heapPerConn + raw.externalPerConn, raw };
  });
  const rows = [
    { label: 'server heap+external', unit: 'B/conn', lowerIsBetter: true, cells },
    { label: 'server RSS', unit: 'B/conn', lowerIsBetter: true, cells: pick(cells, 'rssPerConn') },
    { label: 'client heap+external', unit: 'B/conn', lowerIsBetter: true, cells: pick(cells, 'clientHeapExternalPerConn') },
  ];
  return { id: 'memory', title: `4. Idle memory per connection (${warmup} → ${warmup + connections} open, after GC)`, rows };
}

/** Scenario 5: connect + close, sequential and 16 at a time; then each end alone against `ws`. */
export async function handshakes(runner: Runner): Promise<Table> {
  const rows = [];
  const cases = [
    { lanes: 1, label: 'sequential', pairing: {} },
    { lanes: 16, label: '16 concurrent', pairing: {} },
    { lanes: 1, label: 'server side: ws client, sequential', pairing: { client: 'ws' as const } },
    { lanes: 16, label: 'server side: ws client, 16 concurrent', pairing: { client: 'ws' as const } },
    { lanes: 1, label: 'client side: ws server, sequential', pairing: { server: 'ws' as const } },
    { lanes: 16, label: 'client side: ws server, 16 concurrent', pairing: { server: 'ws' as const } },
  ];
  const wsOnly = runner.narrowed({ impls: ['wsconn', 'ws'] });
  for (const { lanes, label, pairing } of cases) {
    const cross = pairing.client !== undefined || pairing.server !== undefined;
    const cells = await (cross ? wsOnly : runner).compare(
      `handshakes ${label}`,
      { kind: 'echo' },
      async ({ connect }) => {
        const once = async (): Promise<number> => {
          const client = await connect();
          await client.close();
          return 0;
        };
        return { measure: (s) => timed(once, s, lanes, 20_000), close: async () => {} };
      },
      rateCell,
      pairing,
    );
    rows.push({ label, unit: 'connect+close/s', cells });
  }
  const notes = [
    '"server side": a ws client against each server (wsconn accept() vs ws); "client side": each client against a ws server (wsconn dial() vs ws)',
  ];
  return { id: 'handshakes', title: '5. Handshakes: connect, upgrade, close handshake, TCP close', rows, notes };
}

/** Every scenario by id, in run order. */
export const scenarios: Record<string, (runner: Runner, opts: ScenarioOptions) => Promise<Table>> = {
  echo,
  concurrent: (runner) => concurrentEcho(runner),
  streaming,
  memory: (runner, { quick }) => idleMemory(runner, quick ? 500 : 1000),
  handshakes,
  compression,
  stall,
  broadcast: broadcastScenario,
};
