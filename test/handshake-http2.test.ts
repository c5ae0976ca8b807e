/**
 * The pure checks of an HTTP/2 extended CONNECT (RFC 8441 §4–§5):
 * verifyConnectRequest() against a table of request headers.
 */
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http2';
import { describe, it } from 'node:test';
import { verifyConnectRequest, type OriginOptions } from '../src/handshake.js';

const valid: IncomingHttpHeaders = {
  ':method': 'CONNECT',
  ':protocol': 'websocket',
  ':scheme': 'https',
  ':path': '/chat?room=1',
  ':authority': 'server.example.com',
  'sec-websocket-version': '13',
  'sec-websocket-protocol': 'chat, superchat',
  origin: 'https://server.example.com',
};

const cases: Array<{ name: string; change: IncomingHttpHeaders; status?: number; opts?: OriginOptions }> = [
  { name: 'accepts the RFC 8441 §5.1 example (no Sec-WebSocket-Key needed)', change: {} },
  { name: '405 for a GET (RFC 8441 §4: only CONNECT carries :protocol)', change: { ':method': 'GET' }, status: 405 },
  { name: '400 for a CONNECT without :protocol (a tunnel)', change: { ':protocol': undefined }, status: 400 },
  { name: '501 for another :protocol (RFC 9220 §3)', change: { ':protocol': 'webtransport' }, status: 501 },
  { name: '400 without :path (RFC 8441 §4)', change: { ':path': undefined }, status: 400 },
  { name: '400 without :scheme (RFC 8441 §4)', change: { ':scheme': undefined }, status: 400 },
  { name: '400 without :authority', change: { ':authority': undefined }, status: 400 },
  { name: '400 for a malformed :authority', change: { ':authority': 'a b' }, status: 400 },
  { name: '426 for another version (RFC 6455 §4.4)', change: { 'sec-websocket-version': '8' }, status: 426 },
  { name: '426 without a version', change: { 'sec-websocket-version': undefined }, status: 426 },
  { name: '400 for a subprotocol that is not a token', change: { 'sec-websocket-protocol': 'a b' }, status: 400 },
  { name: '400 for a repeated subprotocol', change: { 'sec-websocket-protocol': 'a, a' }, status: 400 },
  { name: '400 for malformed extensions', change: { 'sec-websocket-extensions': ';' }, status: 400 },
  { name: 'declines, not refuses, an unacceptable deflate offer (RFC 7692 §5)', change: { 'sec-websocket-extensions': 'permessage-deflate; foo' } },
  { name: '403 for a cross origin (RFC 6455 §10.2), compared with :authority', change: { origin: 'https://evil.test' }, status: 403 },
  { name: 'allows a cross origin matching originPatterns', change: { origin: 'https://app.example.com' }, opts: { originPatterns: ['*.example.com'] } },
  { name: 'allows any origin with insecureSkipVerify', change: { origin: 'https://evil.test' }, opts: { insecureSkipVerify: true } },
];

describe('verifyConnectRequest (RFC 8441 §4–§5)', () => {
  for (const c of cases) {
    it(c.name, { timeout: 1000 }, () => {
      const headers: IncomingHttpHeaders = { ...valid, ...c.change };
      for (const [name, value] of Object.entries(headers)) if (value === undefined) delete headers[name];
      const refusal = verifyConnectRequest(headers, c.opts);
      assert.equal(refusal?.status, c.status, refusal?.reason);
    });
  }

  it('names the version it speaks in a 426, without HTTP/1.1-only fields', { timeout: 1000 }, () => {
    const refusal = verifyConnectRequest({ ...valid, 'sec-websocket-version': '7' });
    assert.deepEqual(refusal?.headers, [['Sec-WebSocket-Version', '13']]);
  });
});
