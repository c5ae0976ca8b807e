import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The repository root: examples run from there so that `wsconn` resolves to dist/. */
export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** How a child process ended. */
export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * A child process with its output collected as it comes, so that a test can
 * wait for a line instead of sleeping.
 */
export class WatchedProcess {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  /** Settles once the process has exited and its output is complete. */
  readonly exited: Promise<Exit>;
  #waiters = new Set<() => void>();

  /** `input`, when given, is written to the process's stdin, which then ends. */
  constructor(command: string, args: string[], options: { cwd?: string; env?: Record<string, string>; input?: string } = {}) {
    const { cwd = repoRoot, env = {}, input } = options;
    this.child = spawn(command, args, {
      cwd,
      env: { ...process.env, ...env },
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    if (input !== undefined) this.child.stdin!.end(input);
    this.child.stdout!.setEncoding('utf8').on('data', (text: string) => this.#append('stdout', text));
    this.child.stderr!.setEncoding('utf8').on('data', (text: string) => this.#append('stderr', text));
    this.exited = new Promise((resolve) => {
      this.child.once('close', (code, signal) => {
        resolve({ code, signal });
        this.#wake();
      });
    });
  }

  /** Everything printed so far, for assertion messages. */
  get output(): string {
    return `--- stdout\n${this.stdout}--- stderr\n${this.stderr}`;
  }

  /**
   * Resolves with the first match of `pattern` in stdout, waiting for it up
   * to `ms`; rejects if the process exits or the time runs out first.
   */
  async waitFor(pattern: RegExp, ms = 10_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + ms;
    for (;;) {
      const match = this.stdout.match(pattern);
      if (match !== null) return match;
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`exited before printing ${pattern}\n${this.output}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${pattern} within ${ms} ms\n${this.output}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, left);
        const waiters = this.#waiters;
        function done(): void {
          clearTimeout(timer);
          waiters.delete(done);
          resolve();
        }
        waiters.add(done);
      });
    }
  }

  /** Waits for the process to exit by itself, up to `ms`; kills it and rejects after that. */
  async exit(ms = 15_000): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.child.kill('SIGKILL');
        reject(new Error(`did not exit within ${ms} ms\n${this.output}`));
      }, ms);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Kills the process if it still runs, and waits until it is gone. */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
  }

  #append(stream: 'stdout' | 'stderr', text: string): void {
    this[stream] += text;
    this.#wake();
  }

  #wake(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }
}

/**
 * An example running as `node --import tsx FILE ARGS…` in the repository
 * root, with its output collected as it comes.
 */
export class ExampleProcess extends WatchedProcess {
  /** `input`, when given, is written to the process's stdin, which then ends. */
  constructor(file: string, args: string[] = [], env: Record<string, string> = {}, input?: string) {
    super(process.execPath, ['--import', 'tsx', file, ...args], input === undefined ? { env } : { env, input });
  }
}
