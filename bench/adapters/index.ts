/**
 * Loads an implementation's adapter on demand, so that one that fails to
 * load (say, wsconn while its sources are incomplete) costs only its column.
 * @module
 */
import type { Adapter, ImplName } from './types.js';

/** Imports and returns the adapter of `name`. */
export async function loadAdapter(name: ImplName): Promise<Adapter> {
  switch (name) {
    case 'wsconn':
      return (await import('./wsconn.js')).adapter;
    case 'ws':
      return (await import('./ws.js')).adapter;
    case 'net':
      return (await import('./net.js')).adapter;
  }
}
