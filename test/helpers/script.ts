/**
 * Runs an ES module script in a fresh Node process (with tsx, from the
 * repository root), for checks that need a process nothing else has
 * touched: which modules load, what lands on `globalThis`.
 * @module
 */
import { execFile } from 'node:child_process';

/** Runs `script` and resolves with its standard output; rejects with its standard error if it fails. */
export function runScript(script: string, options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      { cwd: new URL('../..', import.meta.url), timeout: options.timeoutMs ?? 10_000, env: options.env ?? process.env },
      (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)),
    );
  });
}
