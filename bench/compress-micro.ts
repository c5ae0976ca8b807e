/**
 * Micro-benchmark for the permessage-deflate data path, no sockets: which
 * way of driving zlib suits many connections exchanging ~1 KiB JSON
 * messages? Each candidate runs in its own child process (so memory numbers
 * are its own), three times, interleaved; the table shows medians.
 *
 * `node --import tsx bench/compress-micro.ts` (BENCH_CONNS, BENCH_ROUNDS,
 * BENCH_REPEAT and BENCH_ONLY=name,name tune it). Results: bench/compression-design.md.
 * @module
 */
import { spawn } from 'node:child_process';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import { MessageDeflater, MessageInflater, type DeflateParams } from '../src/compress.js';
import { jsonCorpus } from './corpus.js';

const { Z_SYNC_FLUSH } = zlib.constants;
const tail = Buffer.from([0x00, 0x00, 0xff, 0xff]);
const KiB = 1024;

/** One side of a connection: compresses what it sends, inflates what it gets. */
interface End {
  deflate(message: Uint8Array): Uint8Array | Promise<Uint8Array>;
  inflate(payload: Uint8Array): Uint8Array | Promise<Uint8Array>;
}

/** At most `max` zlib jobs at once, process-wide (ws uses 10). */
class Limiter {
  #running = 0;
  readonly #waiting: (() => void)[] = [];
  readonly #max: number;
  constructor(max: number) {
    this.#max = max;
  }
  async run<T>(job: () => Promise<T>): Promise<T> {
    if (this.#running >= this.#max) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    this.#running++;
    try {
      return await job();
    } finally {
      this.#running--;
      this.#waiting.shift()?.();
    }
  }
}

/** Writes `input` (+ the tail) to a zlib stream and collects what one flush yields. */
function through(stream: zlib.DeflateRaw | zlib.InflateRaw, input: Uint8Array[], reset: boolean): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    const onData = (chunk: Buffer): void => void parts.push(chunk);
    stream.on('data', onData);
    stream.once('error', reject);
    for (const piece of input) stream.write(piece);
    stream.flush(Z_SYNC_FLUSH, () => {
      stream.off('data', onData);
      stream.off('error', reject);
      if (reset) stream.reset();
      resolve(Buffer.concat(parts));
    });
  });
}

/** Persistent async zlib streams per direction (the `ws` way), optionally capped. */
function streamEnd(takeover: boolean, limiter: Limiter | undefined): End {
  const deflater = zlib.createDeflateRaw({ memLevel: 8, windowBits: 15 });
  const inflater = zlib.createInflateRaw({ windowBits: 15 });
  const run = <T>(job: () => Promise<T>): Promise<T> => (limiter === undefined ? job() : limiter.run(job));
  return {
    deflate: (message) => run(() => through(deflater, [message], !takeover)).then((out) => out.subarray(0, out.length - 4)),
    inflate: (payload) => run(() => through(inflater, [payload, tail], !takeover)),
  };
}

/** A bounded copy of the last `size` bytes seen. */
function remember(history: Buffer, more: Uint8Array, size: number): Buffer {
  const joined = Buffer.concat([history, more]);
  return joined.length > size ? Buffer.from(joined.subarray(joined.length - size)) : joined;
}

/** One-shot synchronous zlib per message; context takeover emulated with a dictionary. */
function oneShotEnd(takeover: boolean, deflateDictionary: number): End {
  let sent: Buffer = Buffer.alloc(0);
  let received: Buffer = Buffer.alloc(0);
  return {
    deflate(message) {
      const options: zlib.ZlibOptions = { finishFlush: Z_SYNC_FLUSH, memLevel: 8, windowBits: 15 };
      if (takeover && sent.length > 0) options.dictionary = sent;
      const out = zlib.deflateRawSync(message, options);
      if (takeover) sent = remember(sent, message, deflateDictionary);
      return out.subarray(0, out.length - 4);
    },
    inflate(payload) {
      const options: zlib.ZlibOptions = { finishFlush: Z_SYNC_FLUSH, maxOutputLength: 64 * KiB, windowBits: 15 };
      if (takeover && received.length > 0) options.dictionary = received;
      const out = zlib.inflateRawSync(Buffer.concat([payload, tail]), options);
      if (takeover) received = remember(received, out, 32 * KiB);
      return out;
    },
  };
}

/** The classes in src/compress.ts, as the Conn will use them. */
function wsconnEnd(takeover: boolean): End {
  const params: DeflateParams = {
    serverNoContextTakeover: !takeover,
    clientNoContextTakeover: !takeover,
    serverMaxWindowBits: 15,
    clientMaxWindowBits: 15,
  };
  const deflater = new MessageDeflater(params, false);
  const inflater = new MessageInflater(params, true);
  return {
    deflate: (message) => deflater.compress(message, true),
    inflate: (payload) => inflater.decompress(payload, true, 64 * KiB),
  };
}

const capped = new Limiter(10);
const candidates: Record<string, () => End> = {
  'stream ct': () => streamEnd(true, undefined),
  'stream ct cap10': () => streamEnd(true, capped),
  'stream nct': () => streamEnd(false, undefined),
  'stream nct cap10': () => streamEnd(false, capped),
  'oneshot nct': () => oneShotEnd(false, 0),
  'oneshot ct dict32k': () => oneShotEnd(true, 32 * KiB),
  'oneshot ct dict8k': () => oneShotEnd(true, 8 * KiB),
  'wsconn ct': () => wsconnEnd(true),
  'wsconn nct': () => wsconnEnd(false),
};

/** One message from `from` to `to`; returns its compressed size. */
async function send(from: End, to: End, message: Uint8Array): Promise<number> {
  const payload = await from.deflate(message);
  const back = await to.inflate(payload);
  if (back.length !== message.length) throw new Error(`inflated ${back.length} B, sent ${message.length} B`);
  return payload.length;
}

interface Result {
  name: string;
  seqMicros: number;
  wireBytes: number;
  manyMsgsPerSec: number;
  cpuMicros: number;
  peakRssMiB: number;
  idleKiB: number;
  idleTrackedKiB: number;
  loadCpu: number;
  lagP99: number;
  lagMax: number;
}

/** Echo round trips on one connection, back to back. */
async function sequential(make: () => End, corpus: Uint8Array[]): Promise<{ micros: number; wire: number }> {
  const [a, b] = [make(), make()];
  const count = 4000;
  let wire = 0;
  for (let i = 0; i < 500; i++) await send(a, b, corpus[i % corpus.length] as Uint8Array);
  const start = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    const message = corpus[i % corpus.length] as Uint8Array;
    wire += await send(a, b, message);
    await send(b, a, message);
  }
  return { micros: Number(process.hrtime.bigint() - start) / 1000 / (2 * count), wire: wire / count };
}

/** Resident memory, and what V8 accounts for (JS heap + external memory, which includes zlib's). */
function memory(): { rss: number; tracked: number } {
  globalThis.gc?.();
  const m = process.memoryUsage();
  return { rss: m.rss, tracked: m.heapUsed + m.external };
}

type Pair = readonly [End, End];

/** Every pair echoes `rounds` messages as fast as it can, all pairs at once. */
async function saturate(pairs: Pair[], corpus: Uint8Array[], rounds: number): Promise<Pick<Result, 'manyMsgsPerSec' | 'cpuMicros' | 'peakRssMiB'>> {
  const before = process.memoryUsage().rss;
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
  const cpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  await Promise.all(
    pairs.map(async ([a, b], lane) => {
      for (let i = 0; i < rounds; i++) {
        const message = corpus[(lane * 7 + i) % corpus.length] as Uint8Array;
        await send(a, b, message);
        await nextTurn(); // the next message arrives through I/O
        await send(b, a, message);
        await nextTurn();
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const used = process.cpuUsage(cpu);
  clearInterval(sampler);
  const messages = pairs.length * rounds * 2;
  return { manyMsgsPerSec: messages / seconds, cpuMicros: (used.user + used.system) / messages, peakRssMiB: (peak - before) / 2 ** 20 };
}

/**
 * A fixed offered load: every pair echoes one message per second, phases
 * spread evenly, for `seconds`. Reports the CPU share it took and the event
 * loop's delay (what every other connection of the process would feel).
 */
async function steady(pairs: Pair[], corpus: Uint8Array[], seconds: number): Promise<Pick<Result, 'loadCpu' | 'lagP99' | 'lagMax'>> {
  const lag = monitorEventLoopDelay({ resolution: 1 });
  const timers: NodeJS.Timeout[] = [];
  let failure: unknown;
  const echo = (lane: number, i: number): void => {
    const [a, b] = pairs[lane] as Pair;
    const message = corpus[(lane + i) % corpus.length] as Uint8Array;
    send(a, b, message)
      .then(() => send(b, a, message))
      .catch((err: unknown) => (failure = err));
  };
  const cpu = process.cpuUsage();
  lag.enable();
  await new Promise<void>((resolve) => {
    pairs.forEach((_, lane) => {
      let i = 0;
      const first = setTimeout(() => {
        echo(lane, i++);
        timers.push(setInterval(() => echo(lane, i++), 1000));
      }, (lane * 1000) / pairs.length);
      timers.push(first);
    });
    setTimeout(resolve, seconds * 1000);
  });
  lag.disable();
  const used = process.cpuUsage(cpu);
  for (const timer of timers) clearTimeout(timer);
  await new Promise((resolve) => setTimeout(resolve, 200)); // let the last echoes finish
  if (failure !== undefined) throw failure;
  return { loadCpu: (used.user + used.system) / 1e6 / seconds, lagP99: lag.percentile(99) / 1e6, lagMax: lag.max / 1e6 };
}

async function child(name: string): Promise<void> {
  const make = candidates[name];
  if (make === undefined) throw new Error(`unknown candidate ${name}`);
  const corpus = jsonCorpus(1000);
  const conns = Number(process.env['BENCH_CONNS'] ?? 1000);
  const rounds = Number(process.env['BENCH_ROUNDS'] ?? 20);
  const seq = await sequential(make, corpus);
  const before = memory();
  const pairs: Pair[] = Array.from({ length: conns }, () => [make(), make()] as const);
  const load = await saturate(pairs, corpus, rounds);
  const after = memory();
  const idleKiB = (after.rss - before.rss) / 1024 / (2 * conns);
  const idleTrackedKiB = (after.tracked - before.tracked) / 1024 / (2 * conns);
  const lag = await steady(pairs, corpus, 3);
  const result: Result = { name, seqMicros: seq.micros, wireBytes: seq.wire, ...load, idleKiB, idleTrackedKiB, ...lag };
  process.stdout.write(JSON.stringify(result));
}

function runChild(name: string): Promise<Result> {
  const script = fileURLToPath(import.meta.url);
  const proc = spawn(process.execPath, [...process.execArgv, '--expose-gc', script, name], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  proc.stdout.setEncoding('utf8').on('data', (text: string) => (out += text));
  return new Promise((resolve, reject) => {
    proc.on('error', reject);
    proc.on('close', (code) => (code === 0 ? resolve(JSON.parse(out) as Result) : reject(new Error(`${name} exited ${code}`))));
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[sorted.length >> 1] ?? NaN;
}

function row(runs: Result[]): string {
  const m = (key: keyof Omit<Result, 'name'>, digits: number): string => median(runs.map((r) => r[key])).toFixed(digits);
  const name = runs[0]?.name ?? '?';
  const cells = [m('seqMicros', 1), m('wireBytes', 0), m('manyMsgsPerSec', 0), m('cpuMicros', 1), m('peakRssMiB', 0), `${m('idleKiB', 0)} / ${m('idleTrackedKiB', 0)}`];
  const load = [`${(median(runs.map((r) => r.loadCpu)) * 100).toFixed(0)} %`, m('lagP99', 2), m('lagMax', 1)];
  return `| ${name} | ${[...cells, ...load].join(' | ')} |`;
}

async function main(): Promise<void> {
  const only = process.env['BENCH_ONLY'];
  const names = only === undefined ? Object.keys(candidates) : only.split(',').map((s) => s.trim());
  const repeat = Number(process.env['BENCH_REPEAT'] ?? 3);
  const results = new Map<string, Result[]>(names.map((n) => [n, []]));
  for (let i = 0; i < repeat; i++) {
    for (const name of names) results.get(name)?.push(await runChild(name));
  }
  const conns = process.env['BENCH_CONNS'] ?? '1000';
  console.log(`node ${process.version}; ~1 KiB JSON; median of ${repeat} runs; ${conns} connections`);
  console.log('saturated: every connection echoes as fast as it can; steady: every connection echoes once a second');
  const head = ['1 conn µs/msg', 'wire B/msg', 'saturated msgs/s', 'CPU µs/msg', 'peak RSS MiB', 'idle KiB/end (RSS / V8)', 'steady CPU', 'lag p99 ms', 'lag max ms'];
  console.log(`| candidate | ${head.join(' | ')} |`);
  console.log(`| --- |${' --- |'.repeat(head.length)}`);
  for (const runs of results.values()) console.log(row(runs));
  blocking();
}

/**
 * How long one synchronous call blocks the event loop, by message size
 * (JSON from the corpus, context takeover, best of three).
 */
function blocking(): void {
  const corpus = Buffer.concat(jsonCorpus(1000));
  const agreed: DeflateParams = { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 };
  console.log('\n| message | compress ms | decompress ms | compressed |');
  console.log('| --- | --- | --- | --- |');
  for (const size of [KiB, 16 * KiB, 256 * KiB, 1024 * KiB, 16384 * KiB]) {
    const message = Buffer.alloc(size);
    for (let at = 0; at < size; at += corpus.length) message.set(corpus.subarray(0, Math.min(corpus.length, size - at)), at);
    let best = [Infinity, Infinity];
    let payload: Uint8Array = new Uint8Array(0);
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      payload = new MessageDeflater(agreed, false).compress(message, true);
      const t1 = performance.now();
      new MessageInflater(agreed, true).decompress(payload, true, Infinity);
      const t2 = performance.now();
      best = [Math.min(best[0] ?? Infinity, t1 - t0), Math.min(best[1] ?? Infinity, t2 - t1)];
    }
    const label = size >= 1024 * KiB ? `${size / 1024 / KiB} MiB` : `${size / KiB} KiB`;
    console.log(`| ${label} | ${best[0]?.toFixed(3)} | ${best[1]?.toFixed(3)} | ${((100 * payload.length) / size).toFixed(1)} % |`);
  }
}

const candidate = process.argv[2];
if (candidate !== undefined) await child(candidate);
else await main();
