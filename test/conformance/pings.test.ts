// Ping and pong (RFC 6455 §5.5, §5.5.2, §5.5.3), in the spirit of Autobahn section 2.
import { binary, cont, Op, ping, pong, text, want } from '../helpers/raw.js';
import { conformance, echoes, fails, type Case } from './harness.js';

const bytes125 = Uint8Array.from({ length: 125 }, (_, i) => 0xfe - i);
const binaryPayload = Uint8Array.of(0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff);

const cases: Case[] = [
  echoes('§5.5.2 ping with an empty payload gets a pong with an empty payload', [ping()], [want.pong()]),
  echoes('§5.5.2 ping with a small text payload gets a pong with the same payload', [ping('Hello, world!')], [want.pong('Hello, world!')]),
  echoes('§5.5.2 ping with a binary payload gets a pong with the same bytes', [ping(binaryPayload)], [want.pong(binaryPayload)]),
  echoes('§5.5 ping with a 125-byte payload (the largest allowed) gets the same 125 bytes back', [ping(bytes125)], [want.pong(bytes125)]),
  fails('§5.5 ping with a 126-byte payload fails the connection with 1002, no pong', [ping(new Uint8Array(126))], 1002),
  fails('§5.5 ping declaring 126 bytes fails with 1002 before its payload has arrived', [ping(new Uint8Array(10), { declaredLength: 126 })], 1002),
  echoes('§5.5 ping with a 125-byte payload arriving one byte at a time', [ping(bytes125)], [want.pong(bytes125)], { chop: 1 }),
  fails('§5.5 fragmented ping (FIN clear) fails the connection with 1002', [ping('frag', { fin: false }), cont('ment')], 1002),
  fails('§5.5 fragmented pong (FIN clear) fails the connection with 1002', [pong('frag', { fin: false }), cont('ment')], 1002),
  fails('§5.5 pong with a 126-byte payload fails the connection with 1002', [pong(new Uint8Array(126))], 1002),
  echoes('§5.5.3 an unsolicited pong is ignored', [pong('unsolicited'), text('after pong')], [want.text('after pong')]),
  echoes('§5.5.3 an unsolicited empty pong is ignored', [pong(), binary(binaryPayload)], [want.binary(binaryPayload)]),
  echoes('§5.5.3 an unsolicited pong then a ping: only the ping is answered', [pong('unsolicited'), ping('answer me')], [want.pong('answer me')]),
  echoes(
    '§5.5.2 ten pings in a row are each answered, in order',
    Array.from({ length: 10 }, (_, i) => ping(`ping ${i}`)),
    Array.from({ length: 10 }, (_, i) => want.pong(`ping ${i}`)),
  ),
  echoes(
    '§5.5.2 ten pings arriving one byte at a time are each answered',
    Array.from({ length: 10 }, (_, i) => ping(`ping ${i}`)),
    Array.from({ length: 10 }, (_, i) => want.pong(`ping ${i}`)),
    { chop: 1 },
  ),
  echoes('§5.4/§5.5 a ping between the fragments of a message is answered first', [text('Hello, ', { fin: false }), ping('in between'), cont('world')], [want.pong('in between'), want.text('Hello, world')]),
  echoes('§5.4 a pong between the fragments of a message is ignored', [binary('ab', { fin: false }), pong('stray'), cont('cd')], [want.binary('abcd')]),
  // Pings are answered as input arrives (§5.5.2 "as soon as is practical"),
  // ahead of the application's echo of the message between them.
  echoes('§5.5.2 a ping before and after a data message', [ping('one'), text('data'), ping('two')], [want.pong('one'), want.pong('two'), want.text('data')]),
  {
    name: '§5.5.1 a ping after the close frame is not answered',
    send: [{ opcode: Op.Close, payload: Uint8Array.of(0x03, 0xe8) }, ping('too late')],
    want: [want.close(1000)],
    closed: { code: 1000, wasClean: true },
  },
];

conformance('pings (RFC 6455 §5.5.2, §5.5.3)', cases);
