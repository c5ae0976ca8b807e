/**
 * Pure frame header codec (RFC 6455 §5.2). Bytes in, plain objects out: no
 * socket, timer or promise here.
 * @module
 */
import { ProtocolError } from './errors.js';

/** Frame opcodes (RFC 6455 §5.2, §11.8). */
export const Opcode = {
  /** 0x0: a later frame of a fragmented message. */
  Continuation: 0x0,
  /** 0x1: the first frame of a text message. */
  Text: 0x1,
  /** 0x2: the first frame of a binary message. */
  Binary: 0x2,
  /** 0x8: a close frame. */
  Close: 0x8,
  /** 0x9: a ping. */
  Ping: 0x9,
  /** 0xA: a pong. */
  Pong: 0xa,
} as const;

/** A decoded or to-be-encoded frame header. */
export interface FrameHeader {
  /** The frame ends its message. */
  fin: boolean;
  /** Reserved bit 1 (permessage-deflate's "compressed" flag, RFC 7692 §6). */
  rsv1: boolean;
  /** Reserved bit 2: set only by a negotiated extension. */
  rsv2: boolean;
  /** Reserved bit 3: set only by a negotiated extension. */
  rsv3: boolean;
  /** The frame's opcode (see `Opcode`). */
  opcode: number;
  /** The payload's length in bytes. */
  payloadLength: number;
  /** The 4-byte masking key, or undefined for an unmasked frame. */
  maskKey: Uint8Array | undefined;
}

/** What `decodeHeader()` found. */
export interface DecodedHeader {
  /** The header's fields. */
  header: FrameHeader;
  /** How many bytes the header took. */
  headerLength: number;
}

/** The largest header: 2 bytes, 8 bytes of extended length, 4 of mask key. */
export const maxHeaderLength = 14;

/** Control frames have opcodes with the high bit set (RFC 6455 §5.5). */
export function isControl(opcode: number): boolean {
  return (opcode & 0x8) !== 0;
}

/** How many bytes the header of a frame with this payload length takes. */
export function headerLength(payloadLength: number, masked: boolean): number {
  const base = payloadLength < 126 ? 2 : payloadLength < 0x10000 ? 4 : 10;
  return masked ? base + 4 : base;
}

/**
 * Writes `header` into `out` at `offset` and returns the number of bytes
 * written. Uses the minimal length encoding, as RFC 6455 §5.2 requires.
 */
export function encodeHeader(header: FrameHeader, out: Uint8Array, offset = 0): number {
  const { payloadLength, maskKey } = header;
  let b0 = header.opcode & 0x0f;
  if (header.fin) b0 |= 0x80;
  if (header.rsv1) b0 |= 0x40;
  if (header.rsv2) b0 |= 0x20;
  if (header.rsv3) b0 |= 0x10;
  out[offset] = b0;
  const maskBit = maskKey === undefined ? 0 : 0x80;
  let at = offset + 2;
  if (payloadLength < 126) {
    out[offset + 1] = maskBit | payloadLength;
  } else if (payloadLength < 0x10000) {
    out[offset + 1] = maskBit | 126;
    out[at] = payloadLength >>> 8;
    out[at + 1] = payloadLength & 0xff;
    at += 2;
  } else {
    out[offset + 1] = maskBit | 127;
    const high = Math.floor(payloadLength / 0x1_0000_0000);
    const low = payloadLength >>> 0;
    writeUint32(out, at, high);
    writeUint32(out, at + 4, low);
    at += 8;
  }
  if (maskKey !== undefined) {
    out.set(maskKey.subarray(0, 4), at);
    at += 4;
  }
  return at - offset;
}

/**
 * Decodes the frame header at `offset` of `buf`. Returns undefined when
 * `buf` does not hold the whole header yet.
 * @throws ProtocolError 1002 for a 64-bit length with its most significant
 * bit set (RFC 6455 §5.2); 1009 for a length JavaScript cannot index.
 */
export function decodeHeader(buf: Uint8Array, offset = 0): DecodedHeader | undefined {
  const available = buf.length - offset;
  if (available < 2) return undefined;
  const b0 = buf[offset]!;
  const b1 = buf[offset + 1]!;
  const masked = (b1 & 0x80) !== 0;
  let payloadLength = b1 & 0x7f;
  let at = offset + 2;
  if (payloadLength === 126) {
    if (available < 4 + (masked ? 4 : 0)) return undefined;
    payloadLength = (buf[at]! << 8) | buf[at + 1]!;
    at += 2;
  } else if (payloadLength === 127) {
    if (available < 10 + (masked ? 4 : 0)) return undefined;
    const high = readUint32(buf, at);
    // RFC 6455 §5.2: "the most significant bit MUST be 0".
    if (high >= 0x8000_0000) throw new ProtocolError(1002, 'frame length has its most significant bit set');
    if (high > 0x1f_ffff) throw new ProtocolError(1009, 'frame length exceeds 2^53 - 1 bytes');
    payloadLength = high * 0x1_0000_0000 + readUint32(buf, at + 4);
    at += 8;
  } else if (masked && available < 6) {
    return undefined;
  }
  let maskKey: Uint8Array | undefined;
  if (masked) {
    maskKey = buf.slice(at, at + 4);
    at += 4;
  }
  const header: FrameHeader = {
    fin: (b0 & 0x80) !== 0,
    rsv1: (b0 & 0x40) !== 0,
    rsv2: (b0 & 0x20) !== 0,
    rsv3: (b0 & 0x10) !== 0,
    opcode: b0 & 0x0f,
    payloadLength,
    maskKey,
  };
  return { header, headerLength: at - offset };
}

function readUint32(buf: Uint8Array, at: number): number {
  return ((buf[at]! << 24) | (buf[at + 1]! << 16) | (buf[at + 2]! << 8) | buf[at + 3]!) >>> 0;
}

function writeUint32(out: Uint8Array, at: number, value: number): void {
  out[at] = value >>> 24;
  out[at + 1] = (value >>> 16) & 0xff;
  out[at + 2] = (value >>> 8) & 0xff;
  out[at + 3] = value & 0xff;
}
