/**
 * The scenario runner. `compare()` measures one case for every
 * implementation in interleaved rounds, each implementation against its own
 * fresh server child; `each()` runs a one-shot case per implementation.
 * Both bound every step in time, clean up, and ask the server afterwards
 * whether it saw errors or connections left open.
 * @module
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Adapter, BenchClient, Compression, ImplName, ServerMode } from './adapters/types.js';
import { ServerProcess } from './child.js';
import type { Round, Sample, Window } from './timing.js';
import { summarize, withTimeout } from './timing.js';

/** One implementation's result in one row; `error` when it failed. */
export interface Cell {
  value?: number;
  /** A secondary figure printed after the value, e.g. "12.3 MB/s". */
  extra?: string;
  /** Spread of the round rates (see `Sample.spread`). */
  spread?: number;
  /** The value measured in each round, for ratios paired by round. */
  rounds?: number[];
  /** Something odd the server saw, e.g. connection errors. */
  note?: string;
  error?: string;
  /** Raw numbers for the JSON output. */
  raw?: Record<string, unknown>;
}

/** One implementation's cells of a row. */
export type Cells = Partial<Record<ImplName, Cell>>;

/** One row of a scenario's table. */
export interface Row {
  label: string;
  unit: string;
  lowerIsBetter?: boolean;
  cells: Cells;
}

/** One scenario's results. */
export interface Table {
  id: string;
  title: string;
  rows: Row[];
  /** The implementations it applies to, when not all (the others get no column). */
  impls?: readonly ImplName[];
  /** Lines printed under the table (and kept in the JSON): how it was measured. */
  notes?: string[];
}

/** What a case's setup gets. */
export interface CaseContext {
  adapter: Adapter;
  server: ServerProcess;
  /**
   * Opens a client connection (with the case's compression, checked); any
   * still open when the case ends is dropped.
   */
  connect(): Promise<BenchClient>;
}

/** A prepared case: measure it round by round, then close it. */
export interface Workload {
  measure(seconds: number): Promise<Round>;
  close(): Promise<void>;
}

/** Where the processes run (see README: "CPU placement"). */
export type Placement = { parent: number; child: number } | undefined;

/**
 * Who talks to whom in a case: by default each implementation to itself;
 * `client` or `server` fixes one end to that implementation for every lane
 * (e.g. a `ws` client against each server, to see the server side alone).
 */
export interface Pairing {
  client?: ImplName;
  server?: ImplName;
}

/** One implementation's live state during a case. */
class Lane {
  readonly adapter: Adapter;
  /** The adapter whose client connects (the lane's own unless the pairing fixes it). */
  readonly clientAdapter: Adapter;
  /** The implementation whose server runs. */
  readonly serverImpl: ImplName;
  readonly clients = new Set<BenchClient>();
  readonly rounds: Round[] = [];
  server: ServerProcess | undefined;
  workload: Workload | undefined;
  error: string | undefined;

  constructor(adapter: Adapter, clientAdapter = adapter, serverImpl: ImplName = adapter.name) {
    this.adapter = adapter;
    this.clientAdapter = clientAdapter;
    this.serverImpl = serverImpl;
  }

  context(server: ServerProcess, mode: ServerMode): CaseContext {
    const connect = (): Promise<BenchClient> => track(this.clientAdapter, server, this.clients, mode.compression);
    return { adapter: this.adapter, server, connect };
  }

  async teardown(): Promise<void> {
    for (const client of this.clients) client.destroy();
    await this.server?.stop();
    this.server = undefined;
  }
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** Runs the cases of all scenarios. */
export class Runner {
  readonly window: Window;
  readonly adapters: readonly Adapter[];
  readonly placement: Placement;
  /** What each server child reported about itself (native addon status, …). */
  readonly info: Map<string, Record<string, string>>;

  constructor(
    window: Window,
    adapters: readonly Adapter[],
    placement: Placement,
    info = new Map<string, Record<string, string>>(),
  ) {
    this.window = window;
    this.adapters = adapters;
    this.placement = placement;
    this.info = info;
  }

  /**
   * A runner for part of the run: only the adapters among `impls` (all
   * when omitted), with `window` instead of this one's (same when
   * omitted). It reports into the same `info`.
   */
  narrowed(opts: { impls?: readonly ImplName[]; window?: Window }): Runner {
    const adapters = this.adapters.filter((a) => opts.impls?.includes(a.name) ?? true);
    return new Runner(opts.window ?? this.window, adapters, this.placement, this.info);
  }

  /**
   * Measures a case for every implementation: all set up first (each with
   * a warm-up), then `window.rounds` rounds in rotating order.
   */
  async compare(
    what: string,
    mode: ServerMode,
    setup: (ctx: CaseContext) => Promise<Workload>,
    toCell: (sample: Sample) => Cell,
    pairing: Pairing = {},
  ): Promise<Cells> {
    const t0 = performance.now();
    const { warmup, seconds, rounds } = this.window;
    const roundSeconds = seconds / rounds;
    const lanes = this.#lanes(pairing);
    for (const lane of lanes) {
      await this.#step(lane, 'setup', async () => {
        lane.server = await this.#start(lane.serverImpl, mode);
        lane.workload = await setup(lane.context(lane.server, mode));
        await lane.workload.measure(warmup);
      }, warmup * 1000 + 10_000);
    }
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < lanes.length; i++) {
        const lane = lanes[(i + round) % lanes.length] as Lane;
        await this.#step(lane, `round ${round + 1}`, async () => {
          lane.rounds.push(await (lane.workload as Workload).measure(roundSeconds));
        }, roundSeconds * 1000 + 10_000);
      }
    }
    const cells: Cells = {};
    for (const lane of lanes) {
      let note: string | undefined;
      await this.#step(lane, 'close', async () => {
        await lane.workload?.close();
        note = await serverNote(lane.server as ServerProcess);
      }, 10_000);
      await lane.teardown();
      const cell = lane.error !== undefined ? { error: lane.error } : toCell(summarize(lane.rounds));
      cells[lane.adapter.name] = note === undefined ? cell : { ...cell, note };
    }
    progress(what, cells, t0);
    return cells;
  }

  /** Runs `body` once per implementation against a fresh `mode` server. */
  async each(what: string, mode: ServerMode, body: (ctx: CaseContext) => Promise<Cell>, limitMs = 60_000): Promise<Cells> {
    const t0 = performance.now();
    const cells: Cells = {};
    for (const adapter of this.adapters) {
      const lane = new Lane(adapter);
      let cell: Cell = {};
      await this.#step(lane, 'run', async () => {
        lane.server = await this.#start(adapter.name, mode);
        cell = await body(lane.context(lane.server, mode));
        const note = await serverNote(lane.server);
        if (note !== undefined) cell = { ...cell, note };
      }, limitMs);
      await lane.teardown();
      cells[adapter.name] = lane.error !== undefined ? { error: lane.error } : cell;
    }
    progress(what, cells, t0);
    return cells;
  }

  /** A lane per adapter, paired as asked; lanes whose fixed end is not loaded are left out. */
  #lanes(pairing: Pairing): Lane[] {
    const client = this.adapters.find((a) => a.name === pairing.client);
    if (pairing.client !== undefined && client === undefined) return [];
    return this.adapters.map((adapter) => new Lane(adapter, client ?? adapter, pairing.server ?? adapter.name));
  }

  async #start(impl: ImplName, mode: ServerMode): Promise<ServerProcess> {
    const server = await ServerProcess.start(impl, mode, this.placement?.child);
    this.info.set(impl, server.info);
    return server;
  }

  /** Runs one step of a lane that has not failed; a failure ends the lane. */
  async #step(lane: Lane, step: string, fn: () => Promise<void>, limitMs: number): Promise<void> {
    if (lane.error !== undefined) return;
    try {
      await withTimeout(fn(), limitMs);
    } catch (err) {
      lane.error = `${step}: ${message(err)}`;
      await lane.teardown();
    }
  }
}

function progress(what: string, cells: Cells, t0: number): void {
  const failed = Object.entries(cells).filter(([, cell]) => cell.error !== undefined).map(([impl]) => impl);
  const status = failed.length === 0 ? 'ok' : `FAILED: ${failed.join(', ')}`;
  process.stderr.write(`  ${what}: ${status} (${((performance.now() - t0) / 1000).toFixed(1)} s)\n`);
}

/** Connects and keeps the client in `clients` until it is closed. */
async function track(
  adapter: Adapter,
  server: ServerProcess,
  clients: Set<BenchClient>,
  compression: Compression | undefined,
): Promise<BenchClient> {
  const client = await adapter.connect(server.port, compression);
  clients.add(client);
  return {
    extensions: client.extensions,
    send: (data, text) => client.send(data, text),
    receive: () => client.receive(),
    async close() {
      await client.close();
      clients.delete(client);
    },
    destroy() {
      client.destroy();
      clients.delete(client);
    },
  };
}

/**
 * Waits (up to 2 s) for the server to see every connection closed, then
 * describes what went wrong on its side, if anything.
 */
async function serverNote(server: ServerProcess): Promise<string | undefined> {
  let stats = await server.stats();
  for (let waited = 0; stats.open > 0 && waited < 2000; waited += 50) {
    await sleep(50);
    stats = await server.stats();
  }
  const notes: string[] = [];
  if (stats.errors > 0) notes.push(`server saw ${stats.errors} connection error(s), last: ${stats.lastError}`);
  if (stats.open > 0) notes.push(`server still had ${stats.open} open connection(s) 2 s after the clients closed`);
  return notes.length === 0 ? undefined : notes.join('; ');
}
