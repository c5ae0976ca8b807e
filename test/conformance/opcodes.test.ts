// Opcodes (RFC 6455 §5.2, §11.8): 0x3–0x7 and 0xB–0xF are reserved; a frame
// carrying one fails the connection. In the spirit of Autobahn section 4.
import { binary, cont, ping, text, want } from '../helpers/raw.js';
import { conformance, fails, type Case } from './harness.js';

const reservedData = [3, 4, 5, 6, 7];
const reservedControl = [11, 12, 13, 14, 15];

const cases: Case[] = [
  ...reservedData.map((opcode) => fails(`§5.2 reserved data opcode ${opcode} fails with 1002`, [{ opcode }], 1002)),
  ...reservedData.map((opcode) =>
    fails(`§5.2 reserved data opcode ${opcode} with a payload, after a valid text and before a ping: echo, then 1002`, [text('valid'), { opcode, payload: 'reserved' }, ping('after')], 1002, [want.text('valid')]),
  ),
  ...reservedControl.map((opcode) => fails(`§5.2 reserved control opcode ${opcode} fails with 1002`, [{ opcode }], 1002)),
  ...reservedControl.map((opcode) =>
    fails(`§5.2 reserved control opcode ${opcode} with a payload, after a valid text and before a ping: echo, then 1002`, [text('valid'), { opcode, payload: 'reserved' }, ping('after')], 1002, [want.text('valid')]),
  ),
  fails('§5.2 reserved data opcode 3 between the fragments of a message fails with 1002', [text('frag', { fin: false }), { opcode: 3, payload: 'x' }, cont('ment')], 1002),
  fails('§5.2 reserved control opcode 11 between the fragments of a message fails with 1002', [binary('frag', { fin: false }), { opcode: 11, payload: 'x' }, cont('ment')], 1002),
  fails('§5.2 reserved control opcode 15 with FIN clear fails with 1002', [{ opcode: 15, fin: false }], 1002),
  fails('§5.2 reserved data opcode 7, arriving one byte at a time, fails with 1002', [text('valid'), { opcode: 7, payload: 'reserved' }], 1002, [want.text('valid')], { chop: 1 }),
];

conformance('opcodes (RFC 6455 §5.2)', cases);
