/**
 * The parent's handle on a server child process: start it, ask it for
 * counters or memory, stop it. Every child is tracked so that none outlives
 * the benchmark.
 * @module
 */
import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import type { ImplName, ServerMode } from './adapters/types.js';
import type { ChildConfig, ChildMessage, MemorySample, StallSample, Stats } from './ipc.js';

const entry = fileURLToPath(new URL('./server.ts', import.meta.url));
const root = fileURLToPath(new URL('..', import.meta.url));
const live = new Set<ChildProcess>();

/** A running server child. */
export class ServerProcess {
  readonly port: number;
  readonly info: Record<string, string>;
  #child: ChildProcess;
  #nextId = 1;
  #pending = new Map<number, (result: unknown) => void>();
  #failure: Error | undefined;

  private constructor(child: ChildProcess, port: number, info: Record<string, string>) {
    this.#child = child;
    this.port = port;
    this.info = info;
    child.on('message', (message: ChildMessage) => {
      if (message.type === 'reply') this.#pending.get(message.id)?.(message.result);
      else if (message.type === 'failed') this.#fail(new Error(`server child: ${message.error}`));
    });
    child.on('exit', (code, signal) => this.#fail(new Error(`server child exited (${signal ?? code})`)));
  }

  /**
   * Forks a child running `impl`'s server in `mode`, its main thread on
   * `cpu` if given; resolves once it listens. A forked process inherits
   * the affinity of the parent's (pinned) main thread for all its threads,
   * so once it listens all of them are let loose again and then only the
   * main thread is pinned: the helper threads (V8's GC workers, libuv's
   * thread pool, where `ws` compresses) stay free, as in the parent.
   */
  static start(impl: ImplName, mode: ServerMode, cpu?: number, timeoutMs = 15_000): Promise<ServerProcess> {
    const config: ChildConfig = { impl, mode };
    const child = fork(entry, [JSON.stringify(config)], {
      cwd: root,
      execArgv: ['--import', 'tsx', '--expose-gc', ...(process.env['BENCH_CHILD_ARGS']?.split(' ').filter(Boolean) ?? [])],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    live.add(child);
    child.on('exit', () => live.delete(child));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`${impl} server did not start in ${timeoutMs} ms`)), timeoutMs);
      const fail = (err: Error): void => {
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(err);
      };
      child.once('exit', (code) => fail(new Error(`${impl} server exited with ${code} before listening`)));
      child.once('message', (message: ChildMessage) => {
        if (message.type === 'failed') return fail(new Error(`${impl} server failed to start: ${message.error}`));
        if (message.type !== 'ready') return fail(new Error(`unexpected message ${message.type}`));
        try {
          if (cpu !== undefined && child.pid !== undefined) {
            unpin(child.pid);
            pin(child.pid, cpu);
          }
        } catch (err) {
          return fail(err instanceof Error ? err : new Error(String(err)));
        }
        clearTimeout(timer);
        child.removeAllListeners('exit');
        child.on('exit', () => live.delete(child));
        resolve(new ServerProcess(child, message.port, message.info));
      });
    });
  }

  /** The child's counters and clock. */
  stats(): Promise<Stats> {
    return this.#request('stats') as Promise<Stats>;
  }

  /** The child's memory after garbage collection. */
  memory(): Promise<MemorySample> {
    return this.#request('memory') as Promise<MemorySample>;
  }

  /** The child's longest event-loop stall since the last call (see `StallSample`); starts a new window. */
  stall(): Promise<StallSample> {
    return this.#request('stall') as Promise<StallSample>;
  }

  /** Tells a broadcasting child that the probe client got message `seq` (no answer). */
  ack(seq: number): void {
    if (this.#child.connected) this.#child.send({ id: 0, cmd: 'ack', seq });
  }

  /** Asks the child to close its server and exit; kills it after `graceMs`. */
  async stop(graceMs = 2000): Promise<void> {
    const child = this.#child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    if (child.connected) child.send({ id: 0, cmd: 'close' });
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }

  #request(cmd: 'stats' | 'memory' | 'stall', timeoutMs = 10_000): Promise<unknown> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`server child did not answer '${cmd}'`)), timeoutMs);
      const done = (result: unknown): void => {
        clearTimeout(timer);
        this.#pending.delete(id);
        if (result instanceof Error) reject(result);
        else resolve(result);
      };
      this.#pending.set(id, done);
      this.#child.send({ id, cmd });
    });
  }

  #fail(err: Error): void {
    this.#failure ??= err;
    for (const done of this.#pending.values()) done(err);
  }
}

/**
 * Moves the main thread of process `pid` to `cpu` (Linux `taskset`; the
 * process's helper threads stay free). Throws when that fails.
 */
export function pin(pid: number, cpu: number): void {
  const result = spawnSync('taskset', ['-p', '-c', String(cpu), String(pid)], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`taskset failed: ${result.error?.message ?? result.stderr}`);
}

/** Lets every thread of process `pid` run on every CPU again (Linux `taskset -a`). */
function unpin(pid: number): void {
  const all = `0-${os.cpus().length - 1}`;
  const result = spawnSync('taskset', ['-a', '-p', '-c', all, String(pid)], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`taskset failed: ${result.error?.message ?? result.stderr}`);
}

/** Kills every child still running; safe to call more than once. */
export function killAll(): void {
  for (const child of live) child.kill('SIGKILL');
  live.clear();
}
