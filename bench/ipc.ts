/**
 * The messages between the benchmark (parent) and a server child.
 * @module
 */
import type { ImplName, ServerCounters, ServerMode } from './adapters/types.js';

/** How the parent starts a child: `argv[2]` is this object as JSON. */
export interface ChildConfig {
  impl: ImplName;
  mode: ServerMode;
}

/** A request from the parent; the child answers with the same `id`. */
export interface Request {
  id: number;
  cmd: 'stats' | 'memory' | 'stall' | 'close' | 'ack';
  /** With 'ack': the message number the probe client got (see adapters/pacer.ts). */
  seq?: number;
}

/**
 * The longest the child's event loop was blocked since the last 'stall'
 * request (`perf_hooks.monitorEventLoopDelay`, 1 ms resolution), in ms.
 */
export interface StallSample {
  maxMs: number;
}

/**
 * The counters, stamped with the child's clock (`performance.now()`, ms),
 * with the bytes its TCP sockets moved so far and the CPU time the child
 * has used (µs, all threads: `process.cpuUsage()` user + system).
 */
export interface Stats extends ServerCounters {
  time: number;
  wireRead: number;
  wireWritten: number;
  cpuMicros: number;
}

/** Heap numbers after a full garbage collection. */
export interface MemorySample {
  rss: number;
  heapUsed: number;
  external: number;
}

/** Everything a child sends. */
export type ChildMessage =
  | { type: 'ready'; port: number; info: Record<string, string> }
  | { type: 'failed'; error: string }
  | { type: 'reply'; id: number; result: Stats | MemorySample | StallSample | null };
