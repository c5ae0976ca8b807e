/**
 * Scenario 6: permessage-deflate, wsconn against `ws` (raw TCP has no
 * compression), in both modes, on a seeded corpus of ~1 KiB JSON text
 * messages: echo rates and the CPU they cost, bytes on the wire per
 * message, and memory per idle compressed connection. See bench/README.md.
 * @module
 */
import type { BenchClient, Compression, ImplName } from './adapters/types.js';
import type { ServerProcess } from './child.js';
import { clientHeap, closeMany, growthPerConnection, openMany, parallelMap, pick, rateCell, serverOpened } from './common.js';
import { jsonCorpus } from './corpus.js';
import type { Cell, Cells, Row, Runner, Table } from './runner.js';
import type { Round, Sample, Window } from './timing.js';
import { median, timed } from './timing.js';

/** The implementations that compress. */
const impls: readonly ImplName[] = ['wsconn', 'ws'];

/** The two modes of RFC 7692, each with the prefix of its rows. */
const modes: readonly { compression: Compression; label: string }[] = [
  { compression: 'context-takeover', label: 'takeover' },
  { compression: 'no-context-takeover', label: 'no takeover' },
];

/** Distinct messages in the corpus. */
const corpusSize = 1000;
/** Messages echoed on a fresh connection to count the bytes on the wire. */
const wireMessages = 500;
/** Connections of the concurrent echo case. */
const concurrentConnections = 64;
/** Connections held open to measure memory. */
const idleConnections = 500;
/** Connections opened (and exercised) before the first memory sample. */
const idleWarmup = 100;
/** Messages each of those echoes (both ends send compressed) before it goes idle. */
const idleMessages = 3;

/**
 * This scenario's window: half the run's measured seconds and rounds (at
 * least 3), after a warm-up of at least 1 s (with less, the first measured
 * round of a fresh server ran at half speed).
 */
export function compressionWindow(window: Window): Window {
  const seconds = window.seconds / 2;
  return { warmup: Math.max(1, window.warmup), seconds, rounds: Math.max(3, Math.ceil(window.rounds / 2)) };
}

/** Walks the corpus in a circle; lanes start at different places. */
class Cursor {
  readonly #corpus: Uint8Array[];
  #at: number;

  constructor(corpus: Uint8Array[], start = 0) {
    this.#corpus = corpus;
    this.#at = Math.trunc(start) % corpus.length;
  }

  next(): Uint8Array {
    const message = this.#corpus[this.#at] as Uint8Array;
    this.#at = (this.#at + 1) % this.#corpus.length;
    return message;
  }
}

/** One echo round trip of a text message; checks the length that came back. */
async function roundTrip(client: BenchClient, message: Uint8Array): Promise<number> {
  await client.send(message, true);
  const echoed = await client.receive();
  if (echoed.length !== message.length) throw new Error(`echo of ${message.length} B came back as ${echoed.length} B`);
  return message.length;
}

/**
 * Wraps a round's measurement to also count the CPU time it took: this
 * process's plus the server child's, all threads of both (so `ws`'s zlib
 * jobs on libuv's thread pool count too).
 */
function withCpu(server: ServerProcess, measure: (seconds: number) => Promise<Round>): (seconds: number) => Promise<Round> {
  return async (seconds) => {
    const serverBefore = (await server.stats()).cpuMicros;
    const before = process.cpuUsage();
    const round = await measure(seconds);
    const used = process.cpuUsage(before);
    const serverUsed = (await server.stats()).cpuMicros - serverBefore;
    return { ...round, cpuMicros: used.user + used.system + serverUsed };
  };
}

/** A rate cell that also keeps each round's CPU µs per operation. */
function rateWithCpuCell(sample: Sample): Cell {
  const cpuPerOp = sample.rounds.map((r) => (r.cpuMicros ?? NaN) / r.ops);
  return { ...rateCell(sample), raw: { ...sample, cpuPerOp } };
}

/** The CPU-per-operation cells of rate cells made by `rateWithCpuCell`. */
function cpuCells(cells: Cells): Cells {
  const out: Cells = {};
  for (const [impl, cell] of Object.entries(cells)) {
    const perOp = cell.raw?.['cpuPerOp'];
    if (cell.error !== undefined || !Array.isArray(perOp)) {
      out[impl as ImplName] = cell;
      continue;
    }
    const values = perOp as number[];
    const mid = median(values);
    const spread = (Math.max(...values) - Math.min(...values)) / mid;
    out[impl as ImplName] = { value: mid, spread, rounds: values, raw: { cpuMicrosPerOp: values } };
  }
  return out;
}

/** Bytes on the wire per message, each direction, as counted on the server's TCP sockets. */
interface Wire {
  clientToServer: number;
  serverToClient: number;
  payload: number;
  messages: number;
}

/**
 * Echoes the first `wireMessages` corpus messages one by one on a fresh
 * connection and divides the server sockets' byte counts by their number.
 * Checks every echo byte for byte, and fails if the messages cannot have
 * been compressed.
 */
async function measureWire(client: BenchClient, server: ServerProcess, corpus: Uint8Array[]): Promise<Wire> {
  const before = await server.stats();
  let payload = 0;
  for (let i = 0; i < wireMessages; i++) {
    const message = corpus[i % corpus.length] as Uint8Array;
    await client.send(message, true);
    const echoed = await client.receive();
    if (Buffer.compare(echoed, message) !== 0) throw new Error(`message ${i} came back changed`);
    payload += message.length;
  }
  const after = await server.stats();
  if (after.messagesIn - before.messagesIn !== wireMessages) {
    throw new Error(`the server counted ${after.messagesIn - before.messagesIn} messages, not ${wireMessages}`);
  }
  const wire: Wire = {
    clientToServer: (after.wireRead - before.wireRead) / wireMessages,
    serverToClient: (after.wireWritten - before.wireWritten) / wireMessages,
    payload: payload / wireMessages,
    messages: wireMessages,
  };
  if (Math.max(wire.clientToServer, wire.serverToClient) > 0.9 * wire.payload) {
    throw new Error(
      `messages went out uncompressed: ${wire.clientToServer} B/msg client→server, ` +
        `${wire.serverToClient} B/msg server→client for ${wire.payload} B of payload`,
    );
  }
  return wire;
}

/** Cells of one wire direction; an implementation whose echo case failed keeps its failure. */
function wireCells(echo: Cells, wire: Map<ImplName, Wire>, key: 'clientToServer' | 'serverToClient'): Cells {
  const out: Cells = {};
  for (const [impl, cell] of Object.entries(echo) as [ImplName, Cell][]) {
    const measured = wire.get(impl);
    if (cell.error !== undefined || measured === undefined) out[impl] = { error: cell.error ?? 'not measured' };
    else out[impl] = { value: measured[key], raw: { ...measured } };
  }
  return out;
}

/** All rows of one mode. */
async function modeRows(
  runner: Runner,
  corpus: Uint8Array[],
  compression: Compression,
  label: string,
  negotiated: string[],
): Promise<Row[]> {
  const mode = { kind: 'echo', compression } as const;
  const wire = new Map<ImplName, Wire>();

  const echo = await runner.compare(
    `${label}: echo 1 conn`,
    mode,
    async ({ adapter, connect, server }) => {
      const client = await connect();
      negotiated.push(`${label}, ${adapter.name}: ${client.extensions}`);
      wire.set(adapter.name, await measureWire(client, server, corpus));
      const cursor = new Cursor(corpus, wireMessages);
      const measure = withCpu(server, (s) => timed(() => roundTrip(client, cursor.next()), s));
      return { measure, close: () => client.close() };
    },
    rateWithCpuCell,
  );

  const concurrent = await runner.compare(
    `${label}: echo ${concurrentConnections} conns`,
    mode,
    async ({ connect, server }) => {
      const clients = await openMany(connect, concurrentConnections, 16);
      const cursors = clients.map((_, i) => new Cursor(corpus, Math.floor((i * corpus.length) / clients.length)));
      const op = (lane: number): Promise<number> =>
        roundTrip(clients[lane] as BenchClient, (cursors[lane] as Cursor).next());
      const measure = withCpu(server, (s) => timed(op, s, concurrentConnections));
      return { measure, close: () => closeMany(clients, 16) };
    },
    rateWithCpuCell,
  );

  const lower = { lowerIsBetter: true } as const;
  return [
    { label: `${label}: echo, 1 conn`, unit: 'round trips/s', cells: echo },
    { label: `${label}:   CPU, 1 conn`, unit: 'µs/round trip', ...lower, cells: cpuCells(echo) },
    { label: `${label}: echo, ${concurrentConnections} conns`, unit: 'msgs/s (aggregate)', cells: concurrent },
    { label: `${label}:   CPU, ${concurrentConnections} conns`, unit: 'µs/msg', ...lower, cells: cpuCells(concurrent) },
    { label: `${label}: wire client→server`, unit: 'B/msg', ...lower, cells: wireCells(echo, wire, 'clientToServer') },
    { label: `${label}: wire server→client`, unit: 'B/msg', ...lower, cells: wireCells(echo, wire, 'serverToClient') },
    ...(await idleRows(runner, corpus, compression, label)),
  ];
}

/**
 * Memory per idle connection: `idleConnections` connections each echo
 * `idleMessages` corpus messages, then sit with a read pending on the
 * server; growth per connection after GC, server (a fresh child: heap +
 * external, RSS) and client (this process: heap + external).
 */
async function idleRows(runner: Runner, corpus: Uint8Array[], compression: Compression, label: string): Promise<Row[]> {
  const mode = { kind: 'echo', compression } as const;
  const cells = await runner.each(`${label}: idle memory × ${idleConnections}`, mode, async ({ connect, server }) => {
    const { perConn } = await growthPerConnection({
      connect,
      prepare: (clients) =>
        parallelMap(clients, 32, async (client, i) => {
          for (let k = 0; k < idleMessages; k++) await roundTrip(client, corpus[(i * idleMessages + k) % corpus.length] as Uint8Array);
        }).then(() => undefined),
      opened: (open) => serverOpened(server, open),
      sample: async () => {
        const { heapUsed, external, rss } = await server.memory();
        return { server: heapUsed + external, rss, client: clientHeap() };
      },
      warmup: idleWarmup,
      count: idleConnections,
    });
    const raw = {
      serverHeapExternalPerConn: perConn('server'),
      serverRssPerConn: perConn('rss'),
      clientHeapExternalPerConn: perConn('client'),
      connections: idleConnections,
      messagesEach: idleMessages,
    };
    return { value: raw.serverHeapExternalPerConn, raw };
  });

  const lower = { lowerIsBetter: true } as const;
  return [
    { label: `${label}: idle server heap+ext`, unit: 'B/conn', ...lower, cells },
    { label: `${label}: idle server RSS`, unit: 'B/conn', ...lower, cells: pick(cells, 'serverRssPerConn') },
    { label: `${label}: idle client heap+ext`, unit: 'B/conn', ...lower, cells: pick(cells, 'clientHeapExternalPerConn') },
  ];
}

/** Scenario 6: permessage-deflate in both modes, wsconn and `ws`. */
export async function compression(runner: Runner): Promise<Table> {
  const window = compressionWindow(runner.window);
  const part = runner.narrowed({ impls, window });
  const corpus = jsonCorpus(corpusSize);
  const sizes = corpus.map((m) => m.length);
  const mean = sizes.reduce((a, b) => a + b, 0) / sizes.length;
  const negotiated: string[] = [];
  const rows: Row[] = [];
  for (const { compression: c, label } of modes) rows.push(...(await modeRows(part, corpus, c, label, negotiated)));
  rows.push(...(await idleRows(part, corpus, 'off', 'no compression')));
  const notes = [
    `corpus: ${corpusSize} seeded JSON events, ${Math.min(...sizes)}–${Math.max(...sizes)} B (mean ${mean.toFixed(0)} B), sent as text and echoed as text`,
    'every message is compressed by both ends: wsconn compressionThreshold 0, ws perMessageDeflate threshold 0 ' +
      '(its default 1024 would skip most); zlib level 6, memLevel 8, 15-bit windows on both; ws keeps concurrencyLimit 10',
    ...negotiated.map((n) => `negotiated (${n.replace(/: /, '): ')}`),
    `per case: ${window.warmup} s warm-up, ${window.seconds} s measured in ${window.rounds} rounds (half of BENCH_SECONDS / BENCH_ROUNDS)`,
    'CPU: process.cpuUsage() of client (this process) + server child, all threads, per op of each round (ws runs zlib on the thread pool, off the pinned main threads)',
    `wire: TCP bytes read/written by the server's sockets while the first ${wireMessages} messages are echoed on a fresh connection, ÷ ${wireMessages} (frame headers and masking keys included)`,
    `idle: ${idleConnections} connections, each echoes ${idleMessages} messages, then GC (same without compression for reference); growth per connection since before they opened; RSS only for the server (a fresh child), the parent's reuses pages freed by earlier cases`,
  ];
  return { id: 'compression', title: '6. permessage-deflate, ~1 KiB JSON text messages, wsconn vs ws', rows, impls, notes };
}
