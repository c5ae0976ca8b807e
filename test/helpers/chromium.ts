import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';

/**
 * The system Chromium found on PATH (Debian's `chromium`), or undefined.
 * `WSCONN_TEST_CHROMIUM` names another binary (one that does not exist
 * makes the Chromium suites skip, as on a machine without it).
 */
export function findChromium(): string | undefined {
  const override = process.env.WSCONN_TEST_CHROMIUM;
  if (override !== undefined) return existsSync(override) ? override : undefined;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    for (const name of ['chromium', 'chromium-browser']) {
      if (existsSync(join(dir, name))) return join(dir, name);
    }
  }
  return undefined;
}

/** Why a Chromium test cannot run here, or undefined when it can. */
export const chromiumMissing = findChromium() === undefined ? `chromium not found (${process.env.WSCONN_TEST_CHROMIUM ?? 'on PATH'}; apt-get install chromium)` : undefined;

/** Launches the system Chromium headless, with the flags this machine's closed network needs. */
export function launchChromium(): Promise<Browser> {
  const executablePath = findChromium();
  if (executablePath === undefined) throw new Error(chromiumMissing);
  return chromium.launch({
    executablePath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}
