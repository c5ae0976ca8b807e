/**
 * Helpers the scenarios share: running things a few at a time, opening and
 * closing many connections, the parent's memory, cells.
 * @module
 */
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BenchClient } from './adapters/types.js';
import type { ServerProcess } from './child.js';
import type { Cell, Cells } from './runner.js';
import type { Sample } from './timing.js';

/** Runs `fn` over `items` (with each item's index), `parallel` at a time. */
export async function parallelMap<T, U>(
  items: T[],
  parallel: number,
  fn: (item: T, index: number) => Promise<U>,
): Promise<U[]> {
  const out: U[] = [];
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, items.length) }, lane));
  return out;
}

/**
 * Opens `count` connections, `parallel` at a time. If one fails, no more
 * are started; once those in flight have settled, the ones that opened are
 * closed and the first error is thrown, so nothing is left open.
 */
export async function openMany(connect: () => Promise<BenchClient>, count: number, parallel: number): Promise<BenchClient[]> {
  const opened: BenchClient[] = [];
  let failure: { error: unknown } | undefined;
  let started = 0;
  const lane = async (): Promise<void> => {
    while (started < count && failure === undefined) {
      started++;
      try {
        opened.push(await connect());
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, lane));
  if (failure === undefined) return opened;
  await closeMany(opened, parallel).catch(() => {});
  throw failure.error;
}

/** Closes every client, `parallel` at a time. */
export async function closeMany(clients: BenchClient[], parallel: number): Promise<void> {
  await parallelMap(clients, parallel, (client) => client.close());
}

/**
 * Memory growth per connection, measured as a slope: `warmup` connections
 * are opened first (and `prepare`d), then memory is sampled, then `count`
 * more, then memory again; the growth is divided by `count`. What the
 * first connections cost only once (code the JIT compiles for the
 * connection paths, lazily built module state) lands before the first
 * sample, so the figure is what each further connection holds. Every
 * connection is closed before it returns.
 */
export async function growthPerConnection<M extends Record<string, number>>(options: {
  connect: () => Promise<BenchClient>;
  /** Runs on each new connection before it is counted (e.g. a few echoes). */
  prepare?: (clients: BenchClient[]) => Promise<void>;
  /** Resolves once the server counts `open` connections. */
  opened: (open: number) => Promise<void>;
  /** A memory sample (server and client side). */
  sample: () => Promise<M>;
  warmup: number;
  count: number;
}): Promise<{ before: M; after: M; perConn: (key: keyof M) => number }> {
  const { connect, prepare, opened, sample, warmup, count } = options;
  const warm = await openMany(connect, warmup, 32);
  let clients: BenchClient[] = [];
  try {
    // openMany() closes what it opened when it fails; these close the rest.
    await prepare?.(warm);
    await opened(warmup);
    const before = await sample();
    clients = await openMany(connect, count, 32);
    await prepare?.(clients);
    await opened(warmup + count);
    const after = await sample();
    return { before, after, perConn: (key) => ((after[key] as number) - (before[key] as number)) / count };
  } finally {
    await closeMany([...warm, ...clients], 32);
  }
}

/** Resolves once the server child counts `open` connections (polled over IPC; fails after 10 s). */
export async function serverOpened(server: ServerProcess, open: number): Promise<void> {
  for (let waited = 0; (await server.stats()).open < open; waited += 20) {
    if (waited > 10_000) throw new Error(`the server did not see ${open} connections open`);
    await sleep(20);
  }
}

/** The parent's heap + external memory after garbage collection (the flag is set at run time). */
export function clientHeap(): number {
  v8.setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  gc();
  const { heapUsed, external } = process.memoryUsage();
  return heapUsed + external;
}

/** Picks one raw figure of each cell as its value. */
export function pick(cells: Cells, key: string): Cells {
  const out: Cells = {};
  for (const [impl, cell] of Object.entries(cells)) {
    const value = cell.raw?.[key];
    out[impl as keyof Cells] = typeof value === 'number' ? { value, raw: cell.raw ?? {} } : cell;
  }
  return out;
}

/** A cell of operations per second: the median round, its spread, every round. */
export const rateCell = (sample: Sample): Cell => ({
  value: sample.rate,
  spread: sample.spread,
  rounds: sample.rounds.map((r) => r.ops / r.seconds),
  raw: { ...sample },
});
