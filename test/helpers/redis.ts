/**
 * A throwaway `redis-server` (Debian's `redis-server` package) for the
 * multi-process chat tests: on 127.0.0.1, a port the test chose, nothing
 * saved to disk, its working directory a temporary one removed on kill.
 *
 * `WSCONN_TEST_REDIS` names another binary (one that does not exist makes
 * the Redis suites skip, as on a machine without it).
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { WatchedProcess } from './example-process.js';

/** The `redis-server` binary on PATH, or undefined. */
export function findRedisServer(): string | undefined {
  const override = process.env.WSCONN_TEST_REDIS;
  if (override !== undefined) return existsSync(override) ? override : undefined;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir !== '' && existsSync(join(dir, 'redis-server'))) return join(dir, 'redis-server');
  }
  return undefined;
}

/** Why a Redis test cannot run here, or undefined when it can. */
export const redisMissing =
  findRedisServer() === undefined ? `redis-server not found (${process.env.WSCONN_TEST_REDIS ?? 'on PATH'}; apt-get install redis-server)` : undefined;

/**
 * A loopback port that was free a moment ago. Nothing holds it: the test
 * needs a port on which Redis is *not* running yet (and later is again).
 */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A running `redis-server`. */
export class RedisServer {
  readonly port: number;
  readonly #process: WatchedProcess;
  readonly #dir: string;

  private constructor(port: number, process: WatchedProcess, dir: string) {
    this.port = port;
    this.#process = process;
    this.#dir = dir;
  }

  /** `redis://127.0.0.1:PORT`. */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts `redis-server` on `port` and resolves once it accepts connections. */
  static async start(port: number): Promise<RedisServer> {
    const binary = findRedisServer();
    if (binary === undefined) throw new Error(redisMissing);
    const dir = await mkdtemp(join(tmpdir(), 'wsconn-redis-'));
    const args = ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', '--dir', dir];
    const child = new WatchedProcess(binary, args, { cwd: dir });
    const server = new RedisServer(port, child, dir);
    try {
      await child.waitFor(/Ready to accept connections/);
    } catch (err) {
      await server.kill();
      throw err;
    }
    return server;
  }

  /** Freezes the server (SIGSTOP): its connections stay open, but nothing is answered. */
  pause(): void {
    this.#process.child.kill('SIGSTOP');
  }

  /** Lets a paused server go on (SIGCONT). */
  resume(): void {
    this.#process.child.kill('SIGCONT');
  }

  /** Kills the server the hard way (SIGKILL: no goodbye to its clients), waits for it, removes its directory. */
  async kill(): Promise<void> {
    const { child } = this.#process;
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await this.#process.exited;
    await rm(this.#dir, { recursive: true, force: true });
  }
}
