// The direct dial path's response parser, fed bytes directly: no I/O.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ResponseParser } from '../src/internal/upgrade-response.js';

interface Seen {
  status?: number;
  headers?: Array<[string, string]>;
  rest?: string;
  body: string;
  ended: boolean;
  error?: string;
}

/** Feeds `bytes` split at `cut` (or whole), then EOF when `eof`; returns what the parser reported. */
function parse(text: string, cut?: number, eof = false, maxHeaderSize = 16_384): Seen {
  const seen: Seen = { body: '', ended: false };
  const parser = new ResponseParser(
    {
      response(status, headers, rest) {
        Object.assign(seen, { status, headers: [...headers], rest: rest.toString('latin1') });
      },
      data: (chunk) => void (seen.body += chunk.toString('latin1')),
      end: () => void (seen.ended = true),
      error: (err) => void (seen.error = err.message),
    },
    maxHeaderSize,
  );
  const bytes = Buffer.from(text, 'latin1');
  const pieces = cut === undefined ? [bytes] : [bytes.subarray(0, cut), bytes.subarray(cut)];
  for (const piece of pieces) {
    // After a 101 the bytes are the WebSocket stream's: the socket's next reads, not the parser's.
    if (seen.status === 101) seen.rest += piece.toString('latin1');
    else parser.push(piece);
  }
  if (eof && !parser.finish()) seen.error ??= 'incomplete at EOF';
  return seen;
}

/** Asserts that every split point of `text` gives the same result as the whole. */
function sameAtEverySplit(text: string, eof = false): Seen {
  const whole = parse(text, undefined, eof);
  for (let cut = 0; cut <= text.length; cut++) assert.deepEqual(parse(text, cut, eof), whole, `split at ${cut}`);
  return whole;
}

describe('upgrade response parser (RFC 9112)', { timeout: 10_000 }, () => {
  it('stops at a 101 and hands over the bytes after it, past interim responses', { timeout: 5000 }, () => {
    const seen = sameAtEverySplit('HTTP/1.1 103 Early\r\nLink: x\r\n\r\nHTTP/1.1 101 OK\r\nUpgrade:  websocket \r\n\r\n\x81\x02hi');
    assert.equal(seen.status, 101);
    assert.deepEqual(seen.headers, [['upgrade', 'websocket']]);
    assert.equal(seen.rest, '\x81\x02hi');
    assert.equal(seen.ended, false);
  });

  it('strips only spaces and tabs around a value (RFC 9112 §5.1), so a no-break space stays in it', { timeout: 5000 }, () => {
    const seen = parse('HTTP/1.1 101 OK\r\nSec-WebSocket-Accept: \tkey\xa0\r\nX-Tab: a\t \r\n\r\n');
    assert.deepEqual(seen.headers, [
      ['sec-websocket-accept', 'key\xa0'],
      ['x-tab', 'a'],
    ]);
  });

  it('reads Content-Length, chunked and close-delimited bodies', { timeout: 5000 }, () => {
    assert.equal(sameAtEverySplit('HTTP/1.1 403 No\r\nContent-Length: 3\r\n\r\nabcIGNORED').body, 'abc');
    const chunked = sameAtEverySplit('HTTP/1.1 400 No\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nab\r\nA\r\n0123456789\r\n0\r\nT: 1\r\n\r\n');
    assert.deepEqual([chunked.body, chunked.ended], ['ab0123456789', true]);
    const closed = sameAtEverySplit('HTTP/1.0 500 No\r\n\r\nuntil eof', true);
    assert.deepEqual([closed.body, closed.ended, closed.error], ['until eof', true, undefined]);
    assert.deepEqual(parse('HTTP/1.1 204 No Content\r\n\r\n').ended, true);
  });

  it('reports a truncated Content-Length body as incomplete at EOF', { timeout: 5000 }, () => {
    const seen = parse('HTTP/1.1 502 No\r\nContent-Length: 10\r\n\r\nabc', undefined, true);
    assert.deepEqual([seen.body, seen.error], ['abc', 'incomplete at EOF']);
  });

  it('rejects malformed heads and bodies', { timeout: 5000 }, () => {
    const bad = [
      'HTTP/2 101 OK\r\n\r\n',
      'HTTP/1.1 1O1 OK\r\n\r\n',
      'HTTP/1.1 101 OK\r\nBad Name: x\r\n\r\n',
      'HTTP/1.1 101 OK\r\nName : x\r\n\r\n',
      'HTTP/1.1 101 OK\r\nA: b\r\n folded\r\n\r\n',
      'HTTP/1.1 400 OK\r\nContent-Length: 1, 2\r\n\r\n',
      'HTTP/1.1 400 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
      'HTTP/1.1 400 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc\r\n',
    ];
    for (const text of bad) assert.notEqual(parse(text).error, undefined, JSON.stringify(text));
  });

  it('bounds the response head, whether or not its end has arrived', { timeout: 5000 }, () => {
    const head = `HTTP/1.1 101 OK\r\nX: ${'a'.repeat(100)}\r\n\r\n`;
    assert.match(parse(head, undefined, false, 64).error ?? '', /exceeds 64 bytes/);
    assert.match(parse(head.slice(0, 80), undefined, false, 64).error ?? '', /exceeds 64 bytes/);
    assert.equal(parse(head, undefined, false, head.length).status, 101);
  });
});
