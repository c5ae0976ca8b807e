/**
 * Helpers the scenarios share: running things a few at a time, opening and
 * closing many connections, the parent's memory, cells.
 * @module
 */
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { BenchClient } from './adapters/types.js';
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

/** Opens `count` connections, `parallel` at a time. */
export function openMany(connect: () => Promise<BenchClient>, count: number, parallel: number): Promise<BenchClient[]> {
  return parallelMap(Array.from({ length: count }), parallel, connect);
}

/** Closes every client, `parallel` at a time. */
export async function closeMany(clients: BenchClient[], parallel: number): Promise<void> {
  await parallelMap(clients, parallel, (client) => client.close());
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
