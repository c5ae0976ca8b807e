/**
 * The rule for suites that need a peer from outside npm (Debian's Chromium,
 * python3-websockets and redis-server): locally a missing peer skips the suite, counted
 * in the summary and with the reason; in CI it fails the run.
 *
 * To see the skips on a machine that has the peers, hide them:
 *
 *   WSCONN_TEST_PYTHON=/nonexistent WSCONN_TEST_CHROMIUM=/nonexistent WSCONN_TEST_REDIS=/nonexistent npm test
 */
import { describe, it } from 'node:test';

/** CI runs every suite: a missing peer is a failure there, not a skip. */
export const inCI = process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false';

/**
 * The Python that has python3-websockets: Debian installs it for the system
 * Python, not a pyenv one on PATH. `WSCONN_TEST_PYTHON` overrides it.
 */
export const python = process.env.WSCONN_TEST_PYTHON ?? '/usr/bin/python3';

/** Throws, from a `before` hook, when the peer is missing: only reached in CI. */
export function requirePeer(missing: string | undefined): void {
  if (missing !== undefined) throw new Error(`${missing}; CI=true requires every interop peer`);
}

/**
 * `describe()` for a suite that needs a peer; `missing` says why it cannot
 * run here, or is undefined when it can.
 *
 * With the peer missing and CI unset, the body is not run: one skipped test
 * stands in for the suite, because Node's summary (`# skipped N`) counts
 * skipped tests but not skipped suites. In CI the suite runs as usual, and
 * its `before` hook is expected to fail through {@link requirePeer}.
 */
export function describeWithPeer(name: string, missing: string | undefined, options: { timeout: number }, fn: () => void): void {
  if (missing !== undefined && !inCI) {
    describe(name, options, () => {
      it('needs its peer', { skip: missing }, () => {});
    });
  } else {
    describe(name, options, fn);
  }
}
