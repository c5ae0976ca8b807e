/**
 * Raw WebSocket bytes for conformance tests: a frame builder that can also
 * build invalid frames, an incremental parser for what the peer sends back,
 * hand-written opening handshakes, and `RawPeer`, one end of a connection
 * driven byte by byte. Written from RFC 6455 alone; nothing here imports
 * wsconn, so a bug in wsconn's codecs cannot hide itself.
 */
import { createHash } from 'node:crypto';
import { isUtf8 } from 'node:buffer';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Duplex } from 'node:stream';

/** Opcodes (RFC 6455 §5.2). */
export const Op = { Continuation: 0x0, Text: 0x1, Binary: 0x2, Close: 0x8, Ping: 0x9, Pong: 0xa } as const;

/** The masking key of the example in RFC 6455 §5.7; every masked test frame uses it unless told otherwise. */
export const testMaskKey = Uint8Array.of(0x37, 0xfa, 0x21, 0x3d);

/** The `Sec-WebSocket-Key` of RFC 6455 §1.3 and the `Sec-WebSocket-Accept` it yields. */
export const sampleKey = 'dGhlIHNhbXBsZSBub25jZQ==';
export const sampleAccept = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=';

const encoder = new TextEncoder();

/** One frame to build. Everything a valid frame would fix can be overridden to build an invalid one. */
export interface FrameSpec {
  opcode: number;
  payload?: Uint8Array | string;
  /** Default true. */
  fin?: boolean;
  rsv1?: boolean;
  rsv2?: boolean;
  rsv3?: boolean;
  /**
   * Whether to mask. Unset: as the sender's role requires (RFC 6455 §5.1);
   * `'wrong'`: the opposite of what the role requires.
   */
  masked?: boolean | 'wrong';
  maskKey?: Uint8Array;
  /** A payload length to declare instead of the payload's own (the payload bytes sent stay as given). */
  declaredLength?: number | bigint;
  /** Forces the 7-bit, 16-bit or 64-bit length form, for lengths the minimal form would encode otherwise. */
  lengthForm?: 7 | 16 | 64;
}

/** Something to send: a frame to build, or bytes sent as they are. */
export type Sendable = FrameSpec | Uint8Array;

/** Bytes of a string or byte array. */
export function bytesOf(data: Uint8Array | string): Uint8Array {
  return typeof data === 'string' ? encoder.encode(data) : data;
}

/** Bytes from a hex string; spaces are ignored. */
export function hex(text: string): Uint8Array {
  return Uint8Array.from(Buffer.from(text.replace(/\s+/g, ''), 'hex'));
}

/** Concatenates byte arrays. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat(parts));
}

/**
 * Encodes `spec` as wire bytes (RFC 6455 §5.2). `clientSide` says whether
 * the sender is a client, which decides masking when `spec.masked` is unset.
 */
export function encodeFrame(spec: FrameSpec, clientSide: boolean): Uint8Array {
  const payload = bytesOf(spec.payload ?? new Uint8Array(0));
  const masked = spec.masked === 'wrong' ? !clientSide : (spec.masked ?? clientSide);
  const length = BigInt(spec.declaredLength ?? payload.length);
  const form = spec.lengthForm ?? (length < 126n ? 7 : length < 0x10000n ? 16 : 64);
  const head: number[] = [
    (spec.fin === false ? 0 : 0x80) |
      (spec.rsv1 === true ? 0x40 : 0) |
      (spec.rsv2 === true ? 0x20 : 0) |
      (spec.rsv3 === true ? 0x10 : 0) |
      (spec.opcode & 0x0f),
  ];
  const maskBit = masked ? 0x80 : 0;
  if (form === 7) head.push(maskBit | Number(length));
  else if (form === 16) head.push(maskBit | 126, Number(length >> 8n) & 0xff, Number(length) & 0xff);
  else {
    head.push(maskBit | 127);
    for (let shift = 56n; shift >= 0n; shift -= 8n) head.push(Number((length >> shift) & 0xffn));
  }
  const key = spec.maskKey ?? testMaskKey;
  if (masked) head.push(...key);
  const out = new Uint8Array(head.length + payload.length);
  out.set(head, 0);
  for (let i = 0; i < payload.length; i++) {
    out[head.length + i] = masked ? payload[i]! ^ key[i % 4]! : payload[i]!;
  }
  return out;
}

/** The wire bytes of `items`, frames encoded for a sender on the client side or not. */
export function encodeAll(items: readonly Sendable[], clientSide: boolean): Uint8Array {
  return concat(items.map((item) => (item instanceof Uint8Array ? item : encodeFrame(item, clientSide))));
}

/** A text frame. */
export function text(payload: Uint8Array | string, more: Partial<FrameSpec> = {}): FrameSpec {
  return { opcode: Op.Text, payload, ...more };
}

/** A binary frame. */
export function binary(payload: Uint8Array | string, more: Partial<FrameSpec> = {}): FrameSpec {
  return { opcode: Op.Binary, payload, ...more };
}

/** A continuation frame; `fin` defaults to true. */
export function cont(payload: Uint8Array | string, more: Partial<FrameSpec> = {}): FrameSpec {
  return { opcode: Op.Continuation, payload, ...more };
}

/** A ping frame. */
export function ping(payload: Uint8Array | string = '', more: Partial<FrameSpec> = {}): FrameSpec {
  return { opcode: Op.Ping, payload, ...more };
}

/** A pong frame. */
export function pong(payload: Uint8Array | string = '', more: Partial<FrameSpec> = {}): FrameSpec {
  return { opcode: Op.Pong, payload, ...more };
}

/** The body of a close frame: a 2-byte code, then the reason (RFC 6455 §5.5.1). */
export function closeBody(code: number, reason: Uint8Array | string = ''): Uint8Array {
  const why = bytesOf(reason);
  const out = new Uint8Array(2 + why.length);
  out[0] = (code >>> 8) & 0xff;
  out[1] = code & 0xff;
  out.set(why, 2);
  return out;
}

/** A close frame with `code` and `reason`; with no code, an empty close frame. */
export function close(code?: number, reason: Uint8Array | string = '', more: Partial<FrameSpec> = {}): FrameSpec {
  const payload = code === undefined ? new Uint8Array(0) : closeBody(code, reason);
  return { opcode: Op.Close, payload, ...more };
}

/** A received frame, unmasked. */
export interface RawFrame {
  fin: boolean;
  rsv: number;
  opcode: number;
  masked: boolean;
  payload: Uint8Array;
}

/** Parses frames out of a byte stream as it arrives. */
export class FrameParser {
  #buf: Buffer = Buffer.alloc(0);

  /** Adds bytes and returns the frames now complete. */
  push(chunk: Uint8Array): RawFrame[] {
    this.#buf = this.#buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.#buf, chunk]);
    const frames: RawFrame[] = [];
    for (;;) {
      const frame = this.#one();
      if (frame === undefined) return frames;
      frames.push(frame);
    }
  }

  #one(): RawFrame | undefined {
    const buf = this.#buf;
    if (buf.length < 2) return undefined;
    const masked = (buf[1]! & 0x80) !== 0;
    let length = buf[1]! & 0x7f;
    let at = 2;
    if (length === 126) {
      if (buf.length < 4) return undefined;
      length = buf.readUInt16BE(2);
      at = 4;
    } else if (length === 127) {
      if (buf.length < 10) return undefined;
      const big = buf.readBigUInt64BE(2);
      if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`peer sent a frame of ${big} bytes`);
      length = Number(big);
      at = 10;
    }
    const keyAt = at;
    if (masked) at += 4;
    if (buf.length < at + length) return undefined;
    const payload = Uint8Array.from(buf.subarray(at, at + length));
    if (masked) for (let i = 0; i < length; i++) payload[i] = payload[i]! ^ buf[keyAt + (i % 4)]!;
    this.#buf = buf.subarray(at + length);
    return { fin: (buf[0]! & 0x80) !== 0, rsv: (buf[0]! >> 4) & 0x7, opcode: buf[0]! & 0x0f, masked, payload };
  }
}

/** Codes a close frame may carry (RFC 6455 §7.4.1, §7.4.2), checked independently of wsconn's own table. */
export function sendableCloseCode(code: number): boolean {
  if (code >= 3000 && code <= 4999) return true;
  return [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014].includes(code);
}

/**
 * A one-line description of a frame or message, used to compare what was
 * received with what a test expects: short payloads in full, long ones by
 * length and digest so a failure prints readably.
 */
export function describeFrame(kind: string, data: Uint8Array): string {
  if (kind === 'close') {
    if (data.length === 0) return 'close (no code)';
    if (data.length === 1) return `close INVALID 1-byte body ${Buffer.from(data).toString('hex')}`;
    const code = (data[0]! << 8) | data[1]!;
    const reason = data.subarray(2);
    if (!sendableCloseCode(code)) return `close INVALID code ${code}`;
    if (!isUtf8(reason)) return `close ${code} INVALID reason (not UTF-8)`;
    return `close ${code}`;
  }
  if (data.length > 64) {
    const digest = createHash('sha1').update(data).digest('hex').slice(0, 12);
    return `${kind} ${data.length} bytes sha1:${digest}`;
  }
  if (kind === 'text' && isUtf8(data)) return `text ${JSON.stringify(Buffer.from(data).toString('utf8'))}`;
  return `${kind} ${data.length === 0 ? '(empty)' : Buffer.from(data).toString('hex')}`;
}

/** What a test expects the raw peer to receive, in the same form as `describeFrame()`. */
export const want = {
  text: (data: Uint8Array | string): string => describeFrame('text', bytesOf(data)),
  binary: (data: Uint8Array | string): string => describeFrame('binary', bytesOf(data)),
  pong: (data: Uint8Array | string = ''): string => describeFrame('pong', bytesOf(data)),
  close: (code?: number): string => (code === undefined ? 'close (no code)' : `close ${code}`),
};

const kindOf: Readonly<Record<number, string>> = { 1: 'text', 2: 'binary', 8: 'close', 9: 'ping', 10: 'pong' };

/** What the raw peer saw, in order: described frames and messages, then 'eof'. */
export interface Transcript {
  events: string[];
  /** Violations of RFC 6455 in how the peer framed its output (masking, RSV bits, fragmented control frames…). */
  violations: string[];
}

/**
 * One end of a WebSocket connection driven by hand over a `net.Socket` whose
 * opening handshake is already done. It sends frames built from specs and
 * records what comes back, assembling fragmented messages and checking the
 * framing rules the other side must follow.
 */
export class RawPeer {
  readonly socket: Duplex;
  /** We are the client: we mask, and the other side must not (RFC 6455 §5.1). */
  readonly clientSide: boolean;
  readonly #parser = new FrameParser();
  readonly #transcript: Transcript = { events: [], violations: [] };
  /** Every frame received so far, as it came (unmasked, not reassembled), for tests that check bits and bytes. */
  readonly received: RawFrame[] = [];
  #onReceived: (() => void) | undefined;
  readonly #eof: Promise<void>;
  #message: { kind: string; parts: Uint8Array[] } | undefined;
  #sentClose = false;
  #receivedClose = false;

  /**
   * `head` holds bytes that arrived along with the handshake response or
   * request; `sent` what was already sent along with our side of it.
   */
  constructor(socket: Duplex, clientSide: boolean, head: Uint8Array = new Uint8Array(0), sent: readonly Sendable[] = []) {
    this.socket = socket;
    this.clientSide = clientSide;
    this.#noteSent(sent);
    // An HTTP/2 stream (RFC 8441) has no Nagle to turn off.
    (socket as Partial<Socket>).setNoDelay?.(true);
    if (head.length > 0) this.#receive(head);
    this.#eof = new Promise((resolve) => {
      socket.once('close', () => resolve());
    });
    socket.on('error', (err) => this.#transcript.violations.push(`socket error: ${err.message}`));
    socket.on('data', (chunk: Buffer) => this.#receive(chunk));
    socket.resume(); // readHttpHead() left it paused
    socket.once('end', () => this.#transcript.events.push('eof'));
  }

  /** Encodes `items` for our role and writes them; with `chop`, in pieces of that many bytes, one per event-loop turn. */
  async send(items: readonly Sendable[], chop?: number): Promise<void> {
    const bytes = encodeAll(items, this.clientSide);
    this.#noteSent(items);
    if (chop === undefined) return this.#write(bytes);
    for (let at = 0; at < bytes.length; at += chop) {
      await this.#write(bytes.subarray(at, at + chop));
      await nextTurn();
    }
  }

  /** The wire bytes of one item, masked as our role requires unless the spec says otherwise. */
  encode(item: Sendable): Uint8Array {
    return item instanceof Uint8Array ? item : encodeFrame(item, this.clientSide);
  }

  /**
   * Waits until the other side has closed the TCP connection and returns
   * everything received. A close frame from the other side is answered
   * with one echoing its code when we have not sent one (RFC 6455 §5.5.1);
   * on the server side we then close TCP first (§7.1.1).
   * Rejects if the connection is still open after `timeoutMs`.
   */
  async transcript(timeoutMs: number): Promise<Transcript> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const seen = this.#transcript.events.join(' | ') || 'nothing';
        reject(new Error(`the TCP connection was still open after ${timeoutMs} ms; received so far: ${seen}`));
      }, timeoutMs);
    });
    try {
      await Promise.race([this.#eof, late]);
    } finally {
      clearTimeout(timer);
    }
    return this.#transcript;
  }

  /**
   * Resolves with `received` once it holds at least `count` frames; rejects
   * if they have not all arrived after `timeoutMs` or the connection closed first.
   */
  async receivedAtLeast(count: number, timeoutMs = 2000): Promise<RawFrame[]> {
    const deadline = performance.now() + timeoutMs;
    while (this.received.length < count) {
      const left = deadline - performance.now();
      const seen = (): string => this.received.map((f) => `opcode ${f.opcode} rsv ${f.rsv}`).join(', ') || 'nothing';
      if (left <= 0) throw new Error(`received ${this.received.length} of ${count} frames within ${timeoutMs} ms: ${seen()}`);
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve, reject) => {
        this.#onReceived = resolve;
        timer = setTimeout(resolve, left);
        this.#eof.then(() => reject(new Error(`the connection closed after ${this.received.length} of ${count} frames: ${seen()}`)), reject);
      }).finally(() => {
        clearTimeout(timer);
        this.#onReceived = undefined;
      });
    }
    return this.received;
  }

  /** Drops the connection (test cleanup). */
  destroy(): void {
    this.socket.destroy();
  }

  #noteSent(items: readonly Sendable[]): void {
    for (const item of items) if (!(item instanceof Uint8Array) && item.opcode === Op.Close) this.#sentClose = true;
  }

  #write(bytes: Uint8Array): Promise<void> {
    if (this.socket.destroyed || !this.socket.writable) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.write(bytes, () => resolve());
    });
  }

  #receive(chunk: Uint8Array): void {
    let frames: RawFrame[];
    try {
      frames = this.#parser.push(chunk);
    } catch (err) {
      this.#transcript.violations.push((err as Error).message);
      this.socket.destroy();
      return;
    }
    for (const frame of frames) this.#onFrame(frame);
  }

  #onFrame(frame: RawFrame): void {
    this.received.push(frame);
    this.#onReceived?.();
    const { events, violations } = this.#transcript;
    const at = `frame #${events.length + 1} (opcode ${frame.opcode})`;
    if (this.#receivedClose) violations.push(`${at} arrived after the close frame (RFC 6455 §5.5.1)`);
    if (frame.masked === this.clientSide) {
      violations.push(`${at} is ${frame.masked ? 'masked' : 'unmasked'} (RFC 6455 §5.1)`);
    }
    if (frame.rsv !== 0) violations.push(`${at} has RSV bits ${frame.rsv} set (RFC 6455 §5.2)`);
    const control = (frame.opcode & 0x8) !== 0;
    if (control) {
      if (!frame.fin) violations.push(`${at} is a fragmented control frame (RFC 6455 §5.5)`);
      if (frame.payload.length > 125) violations.push(`${at} is a control frame over 125 bytes (RFC 6455 §5.5)`);
      this.#onControl(frame);
      return;
    }
    if (frame.opcode === Op.Continuation) {
      if (this.#message === undefined) violations.push(`${at} continues no message (RFC 6455 §5.4)`);
      this.#message?.parts.push(frame.payload);
    } else {
      if (this.#message !== undefined) violations.push(`${at} starts a message inside another (RFC 6455 §5.4)`);
      this.#message = { kind: kindOf[frame.opcode] ?? `opcode-${frame.opcode}`, parts: [frame.payload] };
    }
    if (frame.fin && this.#message !== undefined) {
      const { kind, parts } = this.#message;
      this.#message = undefined;
      const data = concat(parts);
      if (kind === 'text' && !isUtf8(data)) violations.push(`${at} ends a text message that is not UTF-8 (RFC 6455 §5.6)`);
      events.push(describeFrame(kind, data));
    }
  }

  #onControl(frame: RawFrame): void {
    const kind = kindOf[frame.opcode] ?? `opcode-${frame.opcode}`;
    this.#transcript.events.push(describeFrame(kind, frame.payload));
    if (frame.opcode !== Op.Close) return;
    this.#receivedClose = true;
    const code = frame.payload.length >= 2 ? (frame.payload[0]! << 8) | frame.payload[1]! : undefined;
    if (!this.#sentClose) {
      this.#sentClose = true;
      const echo = code === undefined ? close() : close(code);
      this.socket.write(this.encode(echo));
    }
    // RFC 6455 §7.1.1: the server closes the TCP connection first.
    if (!this.clientSide) this.socket.end();
  }
}

/** `Sec-WebSocket-Accept` for a key (RFC 6455 §4.2.2). */
export function acceptFor(key: string): string {
  return createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
}

/** Reads from `socket` up to the end of an HTTP head; resolves with the head and the bytes after it. */
export function readHttpHead(socket: Socket): Promise<{ head: string; rest: Uint8Array }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      cleanup();
      resolve({ head: buf.subarray(0, end).toString('latin1'), rest: Uint8Array.from(buf.subarray(end + 4)) });
    };
    const onEnd = (): void => {
      cleanup();
      reject(new Error(`connection ended inside the HTTP head: ${JSON.stringify(buf.toString('latin1'))}`));
    };
    const cleanup = (): void => {
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onEnd);
      socket.pause();
    };
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('error', onEnd);
  });
}

/** A header of an HTTP head, by case-insensitive name. */
export function headerOf(head: string, name: string): string | undefined {
  const wanted = name.toLowerCase();
  for (const line of head.split('\r\n').slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0 && line.slice(0, colon).trim().toLowerCase() === wanted) return line.slice(colon + 1).trim();
  }
  return undefined;
}

/** The client's opening handshake of RFC 6455 §1.3, with the sample key. */
export function upgradeRequest(host: string): string {
  return (
    'GET /chat HTTP/1.1\r\n' +
    `Host: ${host}\r\n` +
    'Upgrade: websocket\r\n' +
    'Connection: Upgrade\r\n' +
    `Sec-WebSocket-Key: ${sampleKey}\r\n` +
    'Sec-WebSocket-Version: 13\r\n\r\n'
  );
}

/** A `101 Switching Protocols` answering `key` (RFC 6455 §4.2.2). */
export function switchingProtocols(key: string): string {
  return (
    'HTTP/1.1 101 Switching Protocols\r\n' +
    'Upgrade: websocket\r\n' +
    'Connection: Upgrade\r\n' +
    `Sec-WebSocket-Accept: ${acceptFor(key)}\r\n\r\n`
  );
}

/** An HTTP head (ending in a blank line) with `lines` added as header fields before its end. */
export function withHeaders(head: string, lines: readonly string[]): string {
  if (lines.length === 0) return head;
  return `${head.slice(0, head.length - 2)}${lines.map((line) => `${line}\r\n`).join('')}\r\n`;
}

/** One frame a {@link WireTap} saw go by: its header, and the first bytes of its payload, unmasked. */
export interface TappedFrame {
  fin: boolean;
  rsv1: boolean;
  /** RSV1..RSV3 as a 3-bit number (RSV1 = 4). */
  rsv: number;
  opcode: number;
  masked: boolean;
  /** The payload length the header declared. */
  length: number;
  /** The first `WireTap.keep` bytes of the payload (all of it when shorter). */
  start: Uint8Array;
}

/** Whether a tapped frame is a data frame (text, binary or continuation). */
export function isDataFrame(frame: TappedFrame): boolean {
  return frame.opcode === Op.Continuation || frame.opcode === Op.Text || frame.opcode === Op.Binary;
}

/**
 * One direction of a tapped connection: the HTTP head, then frame headers
 * parsed as the bytes stream by. Payloads are skipped, not buffered, so a
 * 16 MiB frame costs nothing to watch.
 */
export class TapStream {
  /** The HTTP request or response head, without its blank line; '' until complete. */
  head = '';
  readonly frames: TappedFrame[] = [];
  readonly #keep: number;
  #headBytes: Buffer | undefined = Buffer.alloc(0);
  #header: number[] = [];
  #frame: TappedFrame | undefined;
  #remaining = 0;
  #key: number[] | undefined;
  #offset = 0;
  /** Set when this side's bytes are not WebSocket frames (a refused upgrade). */
  passthrough = false;

  constructor(keep: number) {
    this.#keep = keep;
  }

  /** The data frames seen so far. */
  get dataFrames(): TappedFrame[] {
    return this.frames.filter(isDataFrame);
  }

  push(chunk: Buffer): void {
    let at = 0;
    if (this.#headBytes !== undefined) {
      const all = Buffer.concat([this.#headBytes, chunk]);
      const end = all.indexOf('\r\n\r\n');
      if (end === -1) {
        this.#headBytes = all;
        return;
      }
      this.head = all.subarray(0, end).toString('latin1');
      this.#headBytes = undefined;
      chunk = all.subarray(end + 4);
      if (this.head.startsWith('HTTP/') && !/^HTTP\/1\.1 101 /.test(this.head)) this.passthrough = true;
    }
    while (at < chunk.length && !this.passthrough) {
      if (this.#frame !== undefined) {
        const n = Math.min(this.#remaining, chunk.length - at);
        this.#capture(chunk.subarray(at, at + n));
        at += n;
        this.#remaining -= n;
        if (this.#remaining === 0) this.#frame = undefined;
        continue;
      }
      this.#header.push(chunk[at]!);
      at += 1;
      this.#tryHeader();
    }
  }

  #tryHeader(): void {
    const h = this.#header;
    if (h.length < 2) return;
    const masked = (h[1]! & 0x80) !== 0;
    const short = h[1]! & 0x7f;
    const lengthBytes = short === 126 ? 2 : short === 127 ? 8 : 0;
    const size = 2 + lengthBytes + (masked ? 4 : 0);
    if (h.length < size) return;
    let length = short;
    if (lengthBytes > 0) {
      length = 0;
      for (let i = 0; i < lengthBytes; i++) length = length * 256 + h[2 + i]!;
    }
    this.#key = masked ? h.slice(2 + lengthBytes, size) : undefined;
    this.#offset = 0;
    const frame: TappedFrame = {
      fin: (h[0]! & 0x80) !== 0,
      rsv1: (h[0]! & 0x40) !== 0,
      rsv: (h[0]! >> 4) & 0x7,
      opcode: h[0]! & 0x0f,
      masked,
      length,
      start: new Uint8Array(0),
    };
    this.frames.push(frame);
    this.#header = [];
    if (length > 0) {
      this.#frame = frame;
      this.#remaining = length;
    }
  }

  #capture(bytes: Buffer): void {
    const frame = this.#frame!;
    const room = this.#keep - frame.start.length;
    if (room > 0) {
      const piece = Uint8Array.from(bytes.subarray(0, room));
      if (this.#key !== undefined) {
        for (let i = 0; i < piece.length; i++) piece[i] = piece[i]! ^ this.#key[(this.#offset + i) % 4]!;
      }
      const start = new Uint8Array(frame.start.length + piece.length);
      start.set(frame.start, 0);
      start.set(piece, frame.start.length);
      frame.start = start;
    }
    this.#offset += bytes.length;
  }
}

/** One TCP connection through a {@link WireTap}. */
export interface TapConnection {
  /** What the client sent: the upgrade request, then its frames. */
  toServer: TapStream;
  /** What the server sent: the response, then its frames. */
  toClient: TapStream;
}

/**
 * A TCP proxy on 127.0.0.1:0 that forwards every byte to a target port
 * unchanged and records, per connection and direction, the HTTP head and
 * each WebSocket frame's header bits (RSV1 above all) as it goes by. Bytes
 * are parsed before they are forwarded, so once the receiving end has seen
 * a message, the tap has seen its frames.
 */
export class WireTap {
  readonly connections: TapConnection[] = [];
  port = 0;
  readonly #target: number;
  readonly #keep: number;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();

  /** @param keep how many payload bytes of each frame to remember */
  constructor(targetPort: number, keep = 64) {
    this.#target = targetPort;
    this.#keep = keep;
    this.#server = createServer((socket) => this.#connection(socket));
  }

  async listen(): Promise<this> {
    this.#server.listen(0, '127.0.0.1');
    await once(this.#server, 'listening');
    this.port = (this.#server.address() as AddressInfo).port;
    return this;
  }

  /** The most recent connection (tests open one at a time). */
  last(): TapConnection {
    const last = this.connections.at(-1);
    if (last === undefined) throw new Error('no connection went through the tap');
    return last;
  }

  /** Drops every connection and stops listening. */
  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    this.#server.close();
    await once(this.#server, 'close');
  }

  #connection(client: Socket): void {
    const upstream = connect(this.#target, '127.0.0.1');
    const record: TapConnection = { toServer: new TapStream(this.#keep), toClient: new TapStream(this.#keep) };
    this.connections.push(record);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    this.#forward(client, upstream, record.toServer);
    this.#forward(upstream, client, record.toClient);
  }

  #forward(from: Socket, to: Socket, stream: TapStream): void {
    this.#sockets.add(from);
    from.on('error', () => to.destroy());
    from.on('close', () => {
      this.#sockets.delete(from);
      if (!to.writableEnded) to.end();
    });
    from.on('data', (chunk: Buffer) => {
      stream.push(chunk);
      if (!to.write(chunk)) {
        from.pause();
        to.once('drain', () => from.resume());
      }
    });
    from.on('end', () => to.end());
  }
}
