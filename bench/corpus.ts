/**
 * A deterministic corpus of realistic ~1 KiB JSON messages, shared by the
 * compression scenario of `npm run bench` and `bench/compress-micro.ts`.
 * @module
 */

/** A deterministic corpus of realistic ~1 KiB JSON events (mulberry32). */
export function jsonCorpus(count: number, seed = 7): Uint8Array[] {
  let state = seed >>> 0;
  const random = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 0x1_0000_0000;
  };
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)] as T;
  const words = ['alpha', 'beta', 'order', 'price', 'status', 'shipped', 'pending', 'account', 'berlin', 'tokyo', 'oslo', 'blue'];
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const user = { id: Math.floor(random() * 1e6), name: `${pick(words)} ${pick(words)}`, locale: pick(['en-US', 'de-DE', 'ja-JP']) };
    const event = {
      id: 100_000 + i,
      type: pick(['order.created', 'order.updated', 'cart.changed', 'user.seen']),
      ts: new Date(1_700_000_000_000 + Math.floor(random() * 1e9)).toISOString(),
      user: { ...user, email: `u${Math.floor(random() * 1e5)}@example.com` },
      items: [] as unknown[],
    };
    while (JSON.stringify(event).length < 950) {
      const note = random() < 0.3 ? `${pick(words)} ${pick(words)} ${pick(words)}` : null;
      event.items.push({ sku: `SKU-${Math.floor(random() * 1e6)}`, qty: 1 + Math.floor(random() * 9), price: Math.round(random() * 1e4) / 100, tag: pick(words), note });
    }
    out.push(Buffer.from(JSON.stringify(event)));
  }
  return out;
}
