/**
 * A small seeded PRNG (mulberry32) so random tests can be replayed. The seed
 * comes from WSCONN_SEED when set; `describeSeed()` says which one ran.
 */
export interface Prng {
  readonly seed: number;
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [0, n). */
  int(n: number): number;
  /** `n` pseudo-random bytes. */
  bytes(n: number): Uint8Array;
}

export function prng(seed = Number(process.env.WSCONN_SEED ?? Date.now() % 0x7fff_ffff)): Prng {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 0x1_0000_0000;
  };
  return {
    seed,
    next,
    int: (n) => Math.floor(next() * n),
    bytes: (n) => {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) out[i] = Math.floor(next() * 256);
      return out;
    },
  };
}

/** A message to append to assertion failures: how to replay this run. */
export function describeSeed(rng: Prng): string {
  return `replay with WSCONN_SEED=${rng.seed}`;
}
