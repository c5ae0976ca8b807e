import { randomMaskKey } from './encode.js';

/**
 * A fresh 4-byte masking key from a strong random source (RFC 6455 §5.3,
 * §10.3), as a new array the caller owns.
 * @example
 * ```ts
 * import { maskKey } from 'wsconn/protocol';
 * console.log(maskKey().length); // 4
 * ```
 */
export function maskKey(): Uint8Array {
  return randomMaskKey().slice();
}
