/**
 * A server child: starts one implementation's server in the mode given on
 * the command line and answers the parent's requests over IPC. It exits
 * when told to or when the parent goes away.
 * @module
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { loadAdapter } from './adapters/index.js';
import { pacer } from './adapters/pacer.js';
import type { BenchServer, ServerCounters } from './adapters/types.js';
import type { ChildConfig, ChildMessage, MemorySample, Request, StallSample, Stats } from './ipc.js';

function send(message: ChildMessage): void {
  process.send?.(message);
}

/** Collects garbage until the heap stops shrinking, then samples memory. */
async function memory(): Promise<MemorySample> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('the server child needs --expose-gc');
  let last = Infinity;
  for (let i = 0; i < 10; i++) {
    gc();
    await nextTurn();
    const used = process.memoryUsage().heapUsed;
    if (used >= last - 1024) break;
    last = used;
  }
  const { rss, heapUsed, external } = process.memoryUsage();
  return { rss, heapUsed, external };
}

/** The counters now, with the clock, the bytes on the wire and the CPU time used so far. */
function stats(counters: ServerCounters, server: BenchServer): Stats {
  const { read, written } = server.wire();
  const cpu = process.cpuUsage();
  return { ...counters, time: performance.now(), wireRead: read, wireWritten: written, cpuMicros: cpu.user + cpu.system };
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? '{}') as ChildConfig;
  const counters: ServerCounters = { open: 0, accepted: 0, messagesIn: 0, bytesIn: 0, errors: 0, lastError: '' };
  const adapter = await loadAdapter(config.impl);
  const server = await adapter.listen(config.mode, counters);
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  process.on('message', (request: Request) => {
    const reply = (result: Stats | MemorySample | StallSample | null): void => send({ type: 'reply', id: request.id, result });
    if (request.cmd === 'ack') pacer.ack(request.seq ?? -1);
    else if (request.cmd === 'stats') reply(stats(counters, server));
    else if (request.cmd === 'stall') {
      reply({ maxMs: delay.max / 1e6 });
      delay.reset();
    }
    else if (request.cmd === 'memory') void memory().then(reply, (err: unknown) => send({ type: 'failed', error: String(err) }));
    else void server.close().then(() => process.exit(0));
  });
  send({ type: 'ready', port: server.port, info: adapter.info() });
}

process.on('disconnect', () => process.exit(0));
main().catch((err: unknown) => {
  send({ type: 'failed', error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  process.exitCode = 1;
  process.disconnect?.();
});
