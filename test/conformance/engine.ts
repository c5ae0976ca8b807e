/**
 * The conformance tables against the pure protocol engine
 * (src/protocol/engine.ts): no socket, no stream, no handshake. The raw
 * peer's bytes go straight into a `Protocol`, an echo loop written here in
 * plain code answers them, and the bytes the engine produced are decoded
 * into the same `want.*` strings the socket harness compares. The engine
 * is set up as accept() or dial() would set it up for the case's
 * negotiation: the same read limit default, the same permessage-deflate
 * parameters, the same compression threshold.
 */
import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import { negotiateServer, parseClientResponse, parseExtensions, type DeflateParams } from '../../src/compress.js';
import { checkLimit, defaultReadLimit } from '../../src/options.js';
import { Protocol } from '../../src/protocol/engine.js';
import { concat, describeFrame, encodeAll, FrameParser, Op, type RawFrame } from '../helpers/raw.js';
import type { Case, ClosedWant, Negotiation, Role } from './harness.js';

/** Why a case cannot run against the engine, or undefined when it can. */
/** The permessage-deflate parameters accept() (server) or dial() (client) would agree on for `negotiation`. */
export function agreedDeflate(role: Role, negotiation: Negotiation): DeflateParams | undefined {
  const mode = negotiation.options?.compressionMode ?? 'disabled';
  if (role === 'server') return negotiateServer(parseExtensions(negotiation.offer), mode)?.params;
  return parseClientResponse(negotiation.answer, mode);
}

/**
 * Masking keys for the engine's frames: a different one each frame, so a
 * key reused at the wrong offset shows up as garbled bytes in the transcript.
 */
function keySequence(): () => Uint8Array {
  let n = 0;
  return () => {
    n = (n + 0x9e37_79b9) >>> 0;
    return Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
  };
}

/** The engine as wsconn in `role` would create it for `c` under `negotiation`. */
export function engineFor(role: Role, c: Case, negotiation: Negotiation): Protocol {
  const readLimit = checkLimit(c.readLimit ?? negotiation.options?.readLimit ?? defaultReadLimit);
  return new Protocol({
    client: role === 'client',
    deflate: agreedDeflate(role, negotiation),
    readLimit,
    compressionThreshold: negotiation.options?.compressionThreshold,
    maskKey: keySequence(),
  });
}

/**
 * Plays a Conn's echo loop on the engine, scheduled the way a Conn
 * schedules it: the transport answers pings as it parses a read's bytes,
 * and the application's turn comes after that, echoing each whole data
 * message with its type. A close or fail event is answered with the
 * engine's `closeReply()` only once the messages before it were echoed
 * (a Conn holds the peer's close back until they are read).
 */
export class EchoLoop {
  readonly engine: Protocol;
  /** What the engine produced, in the order a socket would carry it. */
  readonly output: Uint8Array[] = [];
  #message: { type: 1 | 2; parts: Uint8Array[] } | undefined;

  constructor(engine: Protocol) {
    this.engine = engine;
  }

  /** Hands `bytes` (one read from the transport) to the engine and answers every event they complete. */
  feed(bytes: Uint8Array): void {
    const engine = this.engine;
    const messages: Array<{ type: 1 | 2; data: Uint8Array }> = [];
    let ended = false;
    engine.receive(bytes);
    for (let event = engine.next(); event !== undefined; event = engine.next()) {
      if (event.kind === 'data') {
        const whole = this.#assemble(event.type, event.data, event.start, event.fin);
        if (whole !== undefined) messages.push(whole);
      } else if (event.kind === 'ping') {
        this.output.push(engine.encodeControl(Op.Pong, event.payload));
      } else if (event.kind !== 'pong') {
        ended = true;
      }
    }
    // The application's turn.
    for (const { type, data } of messages) this.output.push(engine.encodeMessage(type, data));
    const reply = ended ? engine.closeReply() : undefined;
    if (reply !== undefined) this.output.push(reply);
  }

  #assemble(type: 1 | 2, data: Uint8Array, start: boolean, fin: boolean): { type: 1 | 2; data: Uint8Array } | undefined {
    if (start) this.#message = { type, parts: [] };
    assert.ok(this.#message !== undefined, 'a data event continues no message');
    // A copy: the event's bytes are a view of what was fed in.
    this.#message.parts.push(data.slice());
    if (!fin) return undefined;
    const whole = { type: this.#message.type, data: concat(this.#message.parts) };
    this.#message = undefined;
    return whole;
  }
}

/**
 * What a raw peer on the other side makes of the engine's bytes: messages
 * reassembled and described as the socket harness describes them, and
 * every RFC 6455 framing rule the engine broke. A sibling of RawPeer's
 * bookkeeping, without the socket.
 */
export function transcriptOf(bytes: Uint8Array, engineIsClient: boolean): { events: string[]; violations: string[] } {
  const events: string[] = [];
  const violations: string[] = [];
  let frames: RawFrame[] = [];
  const parser = new FrameParser();
  try {
    frames = parser.push(bytes);
  } catch (err) {
    violations.push((err as Error).message);
  }
  let message: { kind: string; parts: Uint8Array[] } | undefined;
  let closed = false;
  for (const frame of frames) {
    const at = `frame #${events.length + 1} (opcode ${frame.opcode})`;
    if (closed) violations.push(`${at} follows the engine's close frame (RFC 6455 §5.5.1)`);
    if (frame.masked !== engineIsClient) violations.push(`${at} is ${frame.masked ? 'masked' : 'unmasked'} (RFC 6455 §5.1)`);
    if (frame.rsv !== 0) violations.push(`${at} has RSV bits ${frame.rsv} set (RFC 6455 §5.2)`);
    const kind = kindOf[frame.opcode] ?? `opcode-${frame.opcode}`;
    if ((frame.opcode & 0x8) !== 0) {
      if (!frame.fin) violations.push(`${at} is a fragmented control frame (RFC 6455 §5.5)`);
      if (frame.payload.length > 125) violations.push(`${at} is a control frame over 125 bytes (RFC 6455 §5.5)`);
      events.push(describeFrame(kind, frame.payload));
      if (frame.opcode === Op.Close) closed = true;
      continue;
    }
    if (frame.opcode === Op.Continuation) {
      if (message === undefined) violations.push(`${at} continues no message (RFC 6455 §5.4)`);
      message?.parts.push(frame.payload);
    } else {
      if (message !== undefined) violations.push(`${at} starts a message inside another (RFC 6455 §5.4)`);
      message = { kind, parts: [frame.payload] };
    }
    if (frame.fin && message !== undefined) {
      const data = concat(message.parts);
      if (message.kind === 'text' && !isUtf8(data)) violations.push(`${at} ends a text message that is not UTF-8 (RFC 6455 §5.6)`);
      events.push(describeFrame(message.kind, data));
      message = undefined;
    }
  }
  return { events, violations };
}

const kindOf: Readonly<Record<number, string>> = { 1: 'text', 2: 'binary', 8: 'close', 9: 'ping', 10: 'pong' };

/**
 * How the engine's connection ended, in the terms of `ClosedWant`: clean
 * when close frames went both ways and nothing failed (code and reason are
 * the peer's); otherwise 1006 with the code the engine failed with.
 */
function closedOf(engine: Protocol, want: ClosedWant): ClosedWant {
  const received = engine.closeReceived;
  const wasClean = engine.closeSent && received !== undefined && engine.failure === undefined;
  const got: ClosedWant = { code: wasClean ? received.code : 1006, wasClean };
  if (want.reason !== undefined) got.reason = received?.reason ?? '';
  if (want.errorCode !== undefined) got.errorCode = engine.failure?.code ?? -1;
  return got;
}

/**
 * Runs one case against the engine in `role`: the raw peer's bytes are fed
 * whole or in `chop`-byte pieces, the echo loop answers, the raw peer's
 * answer to a close frame is fed back (it must change nothing), and the
 * output is compared with the case's `want` and `closed`. The transcript
 * ends in 'eof' when the engine is done both ways (its close frame sent,
 * input over), where a socket would end.
 */
export function runEngineCase(role: Role, c: Case, negotiation: Negotiation): void {
  const engine = engineFor(role, c, negotiation);
  const loop = new EchoLoop(engine);
  const peerIsClient = role === 'server';
  const input = encodeAll(c.send, peerIsClient);
  const step = c.chop ?? input.length;
  for (let at = 0; at < input.length; at += step) loop.feed(input.slice(at, at + step));
  const sentClose = c.send.some((item) => !(item instanceof Uint8Array) && item.opcode === Op.Close);
  if (engine.closeSent && !sentClose) {
    // The raw peer answers the engine's close frame; the engine has no more events to give.
    const before = loop.output.length;
    loop.feed(encodeAll([{ opcode: Op.Close, payload: Uint8Array.of(0x03, 0xe8) }], peerIsClient));
    assert.equal(loop.output.length, before, 'the engine answered bytes that came after its input ended');
  }
  const transcript = transcriptOf(concat(loop.output), role === 'client');
  if (engine.closeSent && engine.inputDone) transcript.events.push('eof');
  assert.deepEqual(transcript.violations, [], 'the engine broke the framing rules');
  assert.deepEqual(transcript.events, [...c.want, 'eof'], 'what the raw peer would receive');
  assert.deepEqual(closedOf(engine, c.closed), c.closed, 'how the engine ended');
}
