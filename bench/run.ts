/**
 * `npm run bench`: wsconn, ws (with bufferutil) and raw node:net side by
 * side. Servers run in child processes, clients here. See bench/README.md.
 *
 * Environment: BENCH_SECONDS (measured seconds per implementation and case,
 * default 2.5, 1 with `--quick`), BENCH_ROUNDS (default 10, 5 with
 * `--quick`), BENCH_PIN (split | same | none, default split: servers on
 * CPU 0, clients on CPU 1), BENCH_SCENARIOS (e.g. "echo,memory"),
 * BENCH_IMPLS (e.g. "ws,net"), BENCH_ECHO_SIZES (e.g. "60K,64K,68K").
 * @module
 */
import os from 'node:os';
import { loadAdapter } from './adapters/index.js';
import { implNames, type Adapter, type ImplName } from './adapters/types.js';
import { killAll, pin } from './child.js';
import { formatTable, writeJson } from './report.js';
import { Runner, type Placement, type Table } from './runner.js';
import { scenarios } from './scenarios.js';
import type { Window } from './timing.js';

/** No run may take longer than this, whatever hangs. */
const hardLimitMs = 15 * 60_000;

function list(name: string, all: readonly string[]): string[] {
  const value = process.env[name];
  if (value === undefined || value.trim() === '') return [...all];
  const picked = value.split(',').map((s) => s.trim());
  const unknown = picked.filter((s) => !all.includes(s));
  if (unknown.length > 0) throw new Error(`${name}: unknown ${unknown.join(', ')} (known: ${all.join(', ')})`);
  return picked;
}

/** `--quick`: a shorter run (about 2.5 min) for a first look. */
const quick = process.argv.includes('--quick');

function windowFromEnv(): Window {
  const seconds = Number(process.env['BENCH_SECONDS'] ?? (quick ? '1' : '2.5'));
  const rounds = Number(process.env['BENCH_ROUNDS'] ?? (quick ? '5' : '10'));
  if (!(seconds > 0)) throw new Error('BENCH_SECONDS must be a positive number');
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error('BENCH_ROUNDS must be a positive integer');
  return { warmup: Math.max(0.3, seconds / 5), seconds, rounds };
}

/**
 * Pins this process's main thread (where the clients run) and says where
 * the server children go: by default servers on CPU 0 and clients on CPU 1,
 * so that neither end's work waits for the other's.
 */
function placementFromEnv(): Placement {
  const mode = process.env['BENCH_PIN'] ?? 'split';
  if (mode === 'none') return undefined;
  if (mode !== 'same' && mode !== 'split') throw new Error('BENCH_PIN must be split, same or none');
  const placement = { parent: mode === 'same' ? 0 : 1, child: 0 };
  try {
    pin(process.pid, placement.parent);
    return placement;
  } catch (err) {
    console.log(`!! cannot pin to CPUs (${err instanceof Error ? err.message : err}); running unpinned`);
    return undefined;
  }
}

function describePlacement(placement: Placement): string {
  if (placement === undefined) return 'unpinned';
  if (placement.parent === placement.child) return `client and server main threads both on CPU ${placement.child}`;
  return `server main threads on CPU ${placement.child}, client main thread on CPU ${placement.parent}`;
}

/** Loads the adapters that load; prints why the others did not. */
async function loadAdapters(impls: ImplName[]): Promise<Adapter[]> {
  const adapters: Adapter[] = [];
  for (const impl of impls) {
    try {
      adapters.push(await loadAdapter(impl));
    } catch (err) {
      console.log(`!! ${impl} could not be loaded, its column stays empty: ${err instanceof Error ? err.message : err}`);
    }
  }
  return adapters;
}

function printInfo(adapters: Adapter[], runner: Runner): void {
  for (const adapter of adapters) {
    const client = adapter.info();
    // an implementation none of the scenarios started a server for: its client's word only
    const server = runner.info.get(adapter.name) ?? client;
    for (const key of new Set([...Object.keys(client), ...Object.keys(server)])) {
      const same = client[key] === server[key];
      const text = same ? client[key] : `client ${client[key] ?? '?'}; server ${server[key] ?? '?'}`;
      console.log(`${adapter.name} ${key}: ${text}`);
    }
  }
}

async function main(): Promise<void> {
  const window = windowFromEnv();
  const impls = list('BENCH_IMPLS', implNames) as ImplName[];
  const ids = list('BENCH_SCENARIOS', Object.keys(scenarios));
  console.log(`node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}${quick ? ', --quick' : ''}`);
  const load = os.loadavg();
  console.log(`load average ${load.map((l) => l.toFixed(2)).join(' ')} (1, 5, 15 min) at start`);
  if ((load[0] ?? 0) > 0.5) {
    console.log('!! other processes compete for the CPUs: absolute numbers are noisy, trust the ratios of one run');
  }
  const placement = placementFromEnv();
  console.log(
    `per implementation and case: ${window.warmup} s warm-up, then ${window.seconds} s measured in ` +
      `${window.rounds} interleaved rounds (median shown, ± = half the range of the rounds)`,
  );
  console.log(`servers in child processes; ${describePlacement(placement)}\n`);
  const adapters = await loadAdapters(impls);
  const masking = adapters.find((a) => a.name === 'ws')?.info()['masking'];
  if (masking !== undefined) console.log(`ws masks with: ${masking}${masking.startsWith('bufferutil') ? '' : '  !! not the native addon'}\n`);
  const runner = new Runner(window, adapters, placement);
  const tables: Table[] = [];
  for (const id of ids) {
    const scenario = scenarios[id];
    if (scenario === undefined) continue;
    const table = await scenario(runner, { quick });
    tables.push(table);
    console.log(`\n${formatTable(table, impls)}\n`);
  }
  printInfo(adapters, runner);
  console.log(`load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (1, 5, 15 min) at the end`);
  console.log(`\nresults: ${await writeJson(tables, window, runner.info)}`);
  const failed = tables.some((t) => t.rows.some((r) => Object.values(r.cells).some((c) => c.error !== undefined)));
  if (failed || adapters.length < impls.length) process.exitCode = 1;
}

const watchdog = setTimeout(() => {
  console.error(`bench: still running after ${hardLimitMs / 60_000} min, giving up`);
  killAll();
  process.exit(2);
}, hardLimitMs);
watchdog.unref();
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAll();
    process.exit(130);
  });
}

main()
  .catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(() => {
    killAll();
    // client libraries may keep idle sockets or timers; the run is over
    process.exit();
  });
