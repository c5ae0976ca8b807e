import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';

/** Resources that belong to the test runner or the process, not to a test. */
const ignored = new Set(['TTYWrap', 'PipeWrap', 'SignalWrap', 'FSReqCallback', 'Immediate', 'StatWatcher']);

function active(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const name of process.getActiveResourcesInfo()) {
    if (ignored.has(name)) continue;
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return counts;
}

function excess(baseline: Map<string, number>): string[] {
  const out: string[] = [];
  for (const [name, count] of active()) {
    const before = baseline.get(name) ?? 0;
    if (count > before) out.push(`${name} ×${count - before}`);
  }
  return out;
}

/**
 * Records the active handles now; the returned function asserts that none
 * were added since. Closing sockets release their handles a few event-loop
 * turns later, so it waits up to `graceMs` for the count to come back.
 *
 * ```ts
 * const checkLeaks = leakCheck();
 * after(() => checkLeaks());
 * ```
 */
export function leakCheck(graceMs = 2000): () => Promise<void> {
  const baseline = active();
  return async () => {
    const deadline = Date.now() + graceMs;
    let left = excess(baseline);
    while (left.length > 0 && Date.now() < deadline) {
      await nextTurn();
      left = excess(baseline);
    }
    assert.deepEqual(left, [], `handles left open after the tests: ${left.join(', ')}`);
  };
}
