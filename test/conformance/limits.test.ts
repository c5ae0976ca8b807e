// Message size limits (RFC 6455 §10.4): a message over the read limit fails
// the connection with 1009 as soon as a frame header announces it, before
// the payload is buffered; control frames do not count.
import { binary, cont, ping, text, want } from '../helpers/raw.js';
import { conformance, echoes, fails, type Case } from './harness.js';

const zeros = (n: number): Uint8Array => new Uint8Array(n);
const defaultLimit = 32 * 1024;

const cases: Case[] = [
  echoes('§10.4 a text message exactly at the read limit (1000) is echoed', [text('x'.repeat(1000))], [want.text('x'.repeat(1000))], { readLimit: 1000 }),
  fails('§10.4 a frame announcing 1001 bytes over a 1000-byte limit fails with 1009 before its payload arrives', [binary(zeros(0), { declaredLength: 1001 })], 1009, [], { readLimit: 1000 }),
  fails('§10.4 a whole 1001-byte binary message over a 1000-byte limit fails with 1009, no echo', [binary(zeros(1001))], 1009, [], { readLimit: 1000 }),
  fails('§10.4 a valid message, then one over the limit: echo, then 1009', [text('small'), text('y'.repeat(1001))], 1009, [want.text('small')], { readLimit: 1000 }),
  fails('§10.4/§5.4 fragments adding up past the limit fail with 1009 at the header of the fragment crossing it', [binary(zeros(600), { fin: false }), cont(zeros(0), { declaredLength: 401, fin: false })], 1009, [], { readLimit: 1000 }),
  echoes('§10.4/§5.4 fragments adding up to exactly the limit are echoed', [binary(zeros(600), { fin: false }), cont(zeros(400))], [want.binary(zeros(1000))], { readLimit: 1000 }),
  echoes('§10.4 the limit is per message: two messages at the limit are both echoed', [binary(zeros(1000)), binary(zeros(1000))], [want.binary(zeros(1000)), want.binary(zeros(1000))], { readLimit: 1000 }),
  echoes('§10.4/§5.5 control frames do not count: a 125-byte ping with a 10-byte limit is answered', [ping('p'.repeat(125)), text('0123456789')], [want.pong('p'.repeat(125)), want.text('0123456789')], { readLimit: 10 }),
  echoes('§10.4 a read limit of 0 allows empty messages', [text(''), binary(zeros(0))], [want.text(''), want.binary(zeros(0))], { readLimit: 0 }),
  fails('§10.4 a read limit of 0 refuses a 1-byte message with 1009', [text('!')], 1009, [], { readLimit: 0 }),
  echoes(`§10.4 the default limit (${defaultLimit} bytes) admits a message of exactly that size`, [binary(zeros(defaultLimit))], [want.binary(zeros(defaultLimit))]),
  fails(`§10.4 the default limit refuses a frame announcing ${defaultLimit + 1} bytes with 1009 before its payload`, [binary(zeros(0), { declaredLength: defaultLimit + 1 })], 1009),
  fails('§10.4 the default limit refuses a 64-bit length of 2^32 with 1009 before any payload', [binary(zeros(0), { declaredLength: 2 ** 32 })], 1009),
  fails('§10.4 a 64-bit length of 2^62 fails with 1009 before any payload', [text(zeros(0), { declaredLength: 2n ** 62n })], 1009),
  echoes('§10.4 with the limit disabled (-1) a 200 KiB message is echoed', [binary(zeros(200 * 1024))], [want.binary(zeros(200 * 1024))], { readLimit: -1 }),
  fails('§5.2/§10.4 with the limit disabled a 64-bit length of 2^62 still fails with 1009', [binary(zeros(0), { declaredLength: 2n ** 62n })], 1009, [], { readLimit: -1 }),
];

conformance('limits (RFC 6455 §10.4)', cases);
