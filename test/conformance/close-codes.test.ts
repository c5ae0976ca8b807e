// The close frame (RFC 6455 §5.5.1) and its status codes (§7.4), in the
// spirit of Autobahn section 7: valid codes are answered with a close frame
// echoing the code; malformed close frames fail the connection.
import { bytesOf, close, concat, hex, Op, ping, text, want } from '../helpers/raw.js';
import { clean, conformance, fails, type Case } from './harness.js';

const validCodes = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999];
const invalidCodes = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535];

function closes(name: string, frames: Case['send'], code: number | undefined, closed: Case['closed']): Case {
  return { name, send: frames, want: [want.close(code)], closed };
}

const reason123 = 'r'.repeat(123);

const cases: Case[] = [
  closes('§5.5.1 a close frame with no body is answered with a close frame with no body (1005 reported)', [close()], undefined, clean(1005, '')),
  fails('§5.5.1 a close frame with a 1-byte body fails with 1002', [{ opcode: Op.Close, payload: hex('03') }], 1002),
  ...validCodes.map((code) => closes(`§7.4.1/§7.4.2 close code ${code} is echoed`, [close(code)], code, clean(code, ''))),
  ...invalidCodes.map((code) => fails(`§7.4.1/§7.4.2 close code ${code} may not be sent: fails with 1002`, [close(code)], 1002)),
  closes('§5.5.1 a close frame with code and reason: the code is echoed, the reason reported', [close(1000, 'Hello World!')], 1000, clean(1000, 'Hello World!')),
  closes('§5.5.1 a multi-byte UTF-8 reason ("κόσμε") is reported as sent', [close(1001, 'κόσμε')], 1001, clean(1001, 'κόσμε')),
  closes('§5.5 a 123-byte reason (a 125-byte body, the largest allowed) is accepted', [close(1000, reason123)], 1000, clean(1000, reason123)),
  fails('§5.5 a 124-byte reason (a 126-byte body) fails with 1002', [close(1000, 'r'.repeat(124))], 1002),
  fails('§5.5.1 a reason that is not UTF-8 (a surrogate) fails with 1007', [close(1000, hex('ce ba e1 bd b9 cf 83 ce bc ce b5 ed a0 80 65 64 69 74 65 64'))], 1007),
  fails('§5.5.1 a reason that is a truncated UTF-8 sequence fails with 1007', [close(1000, concat([bytesOf('bye'), hex('e2 82')]))], 1007),
  closes('§5.5.1 a close frame arriving one byte at a time', [close(3000, 'slowly')], 3000, clean(3000, 'slowly')),
  {
    name: '§5.5.1 a text message, then a close: echo, then close',
    send: [text('before'), close(1000)],
    want: [want.text('before'), want.close(1000)],
    closed: clean(1000),
  },
  closes('§5.5.1/§1.4 data after the close frame is ignored', [close(1000), text('after close'), ping('after close')], 1000, clean(1000)),
  {
    name: '§5.5.1/§1.4 data after the close frame, arriving a byte at a time after it, is ignored and TCP still closes promptly',
    send: [close(1000), text('after close, in many TCP segments')],
    want: [want.close(1000)],
    closed: clean(1000),
    chop: 1,
  },
  closes('§5.5.1 a second close frame is ignored: one answer', [close(1000), close(1001)], 1000, clean(1000)),
  closes('§5.5.1 bytes that are no frame at all after the close frame are ignored', [close(4000), hex('ff ff ff ff 00 11 22 33')], 4000, clean(4000)),
];
cases.find((c) => c.name.includes('one byte at a time'))!.chop = 1;

conformance('close codes (RFC 6455 §5.5.1, §7.4)', cases);
