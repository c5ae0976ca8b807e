/**
 * Timed loops. A case is measured in several short rounds, interleaved with
 * the other implementations' rounds, so that a slow spell of the machine
 * hits every implementation alike; the result is the median round.
 * @module
 */
import { setTimeout as sleep } from 'node:timers/promises';

/** How long a case runs. */
export interface Window {
  /** Seconds each implementation runs first, not counted. */
  warmup: number;
  /** Seconds counted per implementation, split into `rounds`. */
  seconds: number;
  rounds: number;
}

/** What one round counted. */
export interface Round {
  ops: number;
  bytes: number;
  seconds: number;
  /** CPU time the round took, µs, when the case measures it. */
  cpuMicros?: number;
}

/** The summary of a case's rounds for one implementation. */
export interface Sample {
  /** Median of the rounds' operations per second. */
  rate: number;
  /** Median of the rounds' bytes per second. */
  byteRate: number;
  /** (max − min) / median of the rounds' rates; 0.1 prints as ±5 %. */
  spread: number;
  rounds: Round[];
}

/** The median of `values` (0 when empty). */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

/** Summarizes rounds; the spread is taken over bytes/s when bytes moved. */
export function summarize(rounds: Round[]): Sample {
  const rates = rounds.map((r) => r.ops / r.seconds);
  const byteRates = rounds.map((r) => r.bytes / r.seconds);
  const basis = rounds.some((r) => r.bytes > 0) ? byteRates : rates;
  const mid = median(basis);
  const spread = mid > 0 ? (Math.max(...basis) - Math.min(...basis)) / mid : 0;
  return { rate: median(rates), byteRate: median(byteRates), spread, rounds };
}

/**
 * Runs `op` back to back in `lanes` concurrent loops for `seconds` and
 * counts the operations that completed in that time; `op` gets its lane's
 * index and resolves with the payload bytes it moved. Stops early after
 * `maxOps` operations.
 */
export async function timed(
  op: (lane: number) => Promise<number>,
  seconds: number,
  lanes = 1,
  maxOps = 1e7,
): Promise<Round> {
  const start = performance.now();
  const end = start + seconds * 1000;
  let ops = 0;
  let bytes = 0;
  let stoppedAt = end;
  const lane = async (_: unknown, index: number): Promise<void> => {
    while (ops < maxOps) {
      const moved = await op(index);
      const now = performance.now();
      if (now >= end) return;
      bytes += moved;
      if (++ops === maxOps) stoppedAt = now;
    }
  };
  await Promise.all(Array.from({ length: lanes }, lane));
  return { ops, bytes, seconds: (stoppedAt - start) / 1000 };
}

/**
 * Measures a receiver in another process: reads its cumulative counters
 * (stamped with its own clock, ms) now and after `seconds`.
 */
export async function polled(
  read: () => Promise<{ bytes: number; ops: number; time: number }>,
  seconds: number,
): Promise<Round> {
  const first = await read();
  await sleep(seconds * 1000);
  const last = await read();
  return { ops: last.ops - first.ops, bytes: last.bytes - first.bytes, seconds: (last.time - first.time) / 1000 };
}

/** Rejects with a timeout error if `promise` has not settled in `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${(ms / 1000).toFixed(1)} s`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
