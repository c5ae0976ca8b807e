import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  acceptKey,
  hasToken,
  isToken,
  isValidKey,
  originAllowed,
  selectSubprotocol,
  tokenList,
  verifyUpgradeRequest,
  type UpgradeRequest,
} from '../src/handshake.js';
import { parseExtensions } from '../src/internal/extensions.js';
import { globMatch, validateGlob } from '../src/internal/glob.js';
import { isValidHost, parseList, type ListGrammar } from '../src/internal/header-list.js';

describe('acceptKey (RFC 6455 §1.3, §4.2.2)', { timeout: 5000 }, () => {
  it("answers the RFC's sample nonce with the RFC's value", { timeout: 1000 }, () => {
    assert.equal(acceptKey('dGhlIHNhbXBsZSBub25jZQ=='), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
  });

  it('hashes the key as sent, without decoding it', { timeout: 1000 }, () => {
    // Same bytes once decoded, different text: the answers must differ.
    assert.notEqual(acceptKey('AAAAAAAAAAAAAAAAAAAAAA=='), acceptKey('AAAAAAAAAAAAAAAAAAAAAB=='));
    assert.equal(acceptKey('x3JJHMbDL1EzLkh9GBhXDw=='), 'HSmrc0sMlYUkAGmm5OPpG2HaGWk=');
  });
});

describe('isValidKey (RFC 6455 §4.1, §4.2.1)', { timeout: 5000 }, () => {
  const cases: Array<[string, boolean]> = [
    ['dGhlIHNhbXBsZSBub25jZQ==', true],
    [Buffer.alloc(16, 0xff).toString('base64'), true],
    ['AAAAAAAAAAAAAAAAAAAAAA==', true],
    ['a+b/AAAAAAAAAAAAAAAAAA==', true],
    ['AAAAAAAAAAAAAAAAAAAAAB==', true], // non-zero pad bits still decode to 16 bytes
    ['', false],
    ['dGhlIHNhbXBsZSBub25jZQ', false], // padding is required
    ['dGhlIHNhbXBsZSBub25jZQ=', false],
    ['dGhlIHNhbXBsZSBub25jZ===', false],
    [Buffer.alloc(15).toString('base64'), false],
    [Buffer.alloc(17).toString('base64'), false],
    ['dGhlIHNhbXBsZSBub25jZQ==dGhlIHNhbXBsZSBub25jZQ==', false],
    ['dGhlIHNhbXBsZSBub25jZQ==, dGhlIHNhbXBsZSBub25jZQ==', false], // a repeated header, joined by Node
    ['dGhlIHNhbXBsZSBub25jZQ-_', false], // base64url is not base64
    [' dGhlIHNhbXBsZSBub25jZQ==', false],
    ['dGhlIHNhbXBsZSBub25jZQ==\n', false],
  ];
  for (const [key, valid] of cases) {
    it(`${JSON.stringify(key)} → ${valid}`, { timeout: 1000 }, () => {
      assert.equal(isValidKey(key), valid);
    });
  }
});

describe('tokenList and hasToken (RFC 9110 §5.6.1)', { timeout: 5000 }, () => {
  const lists: Array<[string | string[] | undefined, string[]]> = [
    [undefined, []],
    ['', []],
    ['websocket', ['websocket']],
    ['keep-alive, Upgrade', ['keep-alive', 'Upgrade']],
    [' a ,\tb\t, ,,c ', ['a', 'b', 'c']],
    [['a, b', 'c', ''], ['a', 'b', 'c']],
    ['chat.v1,chat.v2', ['chat.v1', 'chat.v2']],
  ];
  for (const [value, expected] of lists) {
    it(`tokenList(${JSON.stringify(value)})`, { timeout: 1000 }, () => {
      assert.deepEqual(tokenList(value), expected);
    });
  }

  const has: Array<[string | string[] | undefined, string, boolean]> = [
    ['Upgrade', 'upgrade', true],
    ['keep-alive, UPGRADE', 'upgrade', true],
    [['keep-alive', 'Upgrade'], 'upgrade', true],
    ['WebSocket', 'websocket', true],
    ['websocket2', 'websocket', false],
    ['h2c, websockets', 'websocket', false],
    ['upgrade-insecure', 'upgrade', false],
    [undefined, 'upgrade', false],
    ['', 'upgrade', false],
  ];
  for (const [value, token, expected] of has) {
    it(`hasToken(${JSON.stringify(value)}, ${token}) → ${expected}`, { timeout: 1000 }, () => {
      assert.equal(hasToken(value, token), expected);
    });
  }
});

describe('isToken (RFC 9110 §5.6.2)', { timeout: 5000 }, () => {
  const cases: Array<[string, boolean]> = [
    ['chat.v1', true],
    ["!#$%&'*+-.^_`|~09AZaz", true],
    ['', false],
    ['chat v1', false],
    ['a,b', false],
    ['a/b', false],
    ['a"b', false],
    ['é', false],
    ['a\r\nb', false],
  ];
  for (const [name, expected] of cases) {
    it(`${JSON.stringify(name)} → ${expected}`, { timeout: 1000 }, () => {
      assert.equal(isToken(name), expected);
    });
  }
});

describe('selectSubprotocol (RFC 6455 §4.2.2)', { timeout: 5000 }, () => {
  const cases: Array<[string[], string[], string]> = [
    [[], [], ''],
    [['chat'], [], ''],
    [[], ['chat'], ''],
    [['chat'], ['chat'], 'chat'],
    [['v2', 'v1'], ['v1', 'v2'], 'v2'], // server preference wins
    [['v1', 'v2'], ['v2', 'v1'], 'v1'],
    [['v3', 'v2'], ['v1', 'v2'], 'v2'],
    [['Chat'], ['chat'], ''], // names are compared exactly
    [['chat'], ['chat '], ''],
  ];
  for (const [server, offered, expected] of cases) {
    it(`server ${JSON.stringify(server)}, client ${JSON.stringify(offered)} → ${JSON.stringify(expected)}`, { timeout: 1000 }, () => {
      assert.equal(selectSubprotocol(server, offered), expected);
    });
  }
});

describe('globMatch (Go path.Match semantics, ignoring case)', { timeout: 5000 }, () => {
  // Go's path.Match test table; '*[a-ζ]' against 'A' matches here only
  // because both sides are lower-cased first.
  const cases: Array<[string, string, boolean]> = [
    ['abc', 'abc', true],
    ['*', 'abc', true],
    ['*c', 'abc', true],
    ['a*', 'a', true],
    ['a*', 'abc', true],
    ['a*', 'ab/c', false],
    ['a*/b', 'abc/b', true],
    ['a*/b', 'a/c/b', false],
    ['a*b*c*d*e*/f', 'axbxcxdxe/f', true],
    ['a*b*c*d*e*/f', 'axbxcxdxexxx/f', true],
    ['a*b*c*d*e*/f', 'axbxcxdxe/xxx/f', false],
    ['a*b*c*d*e*/f', 'axbxcxdxexxx/fff', false],
    ['a*b?c*x', 'abxbbxdbxebxczzx', true],
    ['a*b?c*x', 'abxbbxdbxebxczzy', false],
    ['ab[c]', 'abc', true],
    ['ab[b-d]', 'abc', true],
    ['ab[e-g]', 'abc', false],
    ['ab[^c]', 'abc', false],
    ['ab[^b-d]', 'abc', false],
    ['ab[^e-g]', 'abc', true],
    ['a\\*b', 'a*b', true],
    ['a\\*b', 'ab', false],
    ['a?b', 'a☺b', true],
    ['a[^a]b', 'a☺b', true],
    ['a???b', 'a☺b', false],
    ['a[^a][^a][^a]b', 'a☺b', false],
    ['[a-ζ]*', 'α', true],
    ['*[a-ζ]', 'A', true],
    ['a?b', 'a/b', false],
    ['a*b', 'a/b', false],
    ['[\\]a]', ']', true],
    ['[\\-]', '-', true],
    ['[x\\-]', 'x', true],
    ['[x\\-]', '-', true],
    ['[x\\-]', 'z', false],
    ['[\\-x]', 'x', true],
    ['[\\-x]', '-', true],
    ['[\\-x]', 'a', false],
    ['*x', 'xxx', true],
    // More: empty strings, astral characters, case, escapes of ordinary characters.
    ['', '', true],
    ['', 'a', false],
    ['*', '', true],
    ['**', 'abc', true],
    ['?', '', false],
    ['?', '😀', true],
    ['a\\b', 'ab', true],
    ['[^a]', '/', true],
    ['*.EXAMPLE.com', 'Api.Example.COM', true],
    ['[A-C]x', 'bX', true],
    ['*.example.com', 'example.com', false],
    ['*.example.com', 'a.b.example.com', true],
    ['example.com', 'example.com:8080', false],
    ['example.com:*', 'example.com:8080', true],
    ['https://*.example.com', 'https://api.example.com', true],
    ['https://*.example.com', 'http://api.example.com', false],
  ];
  for (const [pattern, name, expected] of cases) {
    it(`globMatch(${JSON.stringify(pattern)}, ${JSON.stringify(name)}) → ${expected}`, { timeout: 1000 }, () => {
      assert.equal(globMatch(pattern, name), expected);
    });
  }

  const malformed = ['[]a]', '[-]', '[x-]', '[-x]', '\\', '[a-b-c]', '[', '[^', '[^bc', 'a[', 'a/b[', '[^]', '[a\\', 'ok*[z-'];
  for (const pattern of malformed) {
    it(`rejects the malformed pattern ${JSON.stringify(pattern)}`, { timeout: 1000 }, () => {
      assert.throws(() => validateGlob(pattern), { name: 'Error', message: /malformed pattern/ });
      // Go reports a bad pattern even when the name could never match.
      assert.throws(() => globMatch(pattern, 'x'), /malformed pattern/);
    });
  }

  it('accepts every pattern of the match table', { timeout: 1000 }, () => {
    for (const [pattern] of cases) assert.doesNotThrow(() => validateGlob(pattern), pattern);
  });
});

describe('originAllowed (coder/websocket semantics, RFC 6455 §10.2)', { timeout: 5000 }, () => {
  const cases: Array<[string | undefined, string | undefined, string[], boolean, string]> = [
    [undefined, 'example.com', [], true, 'no Origin header'],
    ['', 'example.com', [], true, 'an empty Origin is no Origin'],
    ['https://example.com', 'example.com', [], true, 'same origin'],
    ['https://EXAMPLE.com', 'Example.COM', [], true, 'same origin, ignoring case'],
    ['http://example.com:8080', 'example.com:8080', [], true, 'same origin with a port'],
    ['http://example.com:8080', 'example.com', [], false, 'a different port is another origin'],
    ['http://example.com', 'example.com:8080', [], false, 'Host port without origin port'],
    ['https://example.com:443', 'example.com', [], true, 'the default port drops out of the origin'],
    ['https://evil.test', 'example.com', [], false, 'cross origin, no patterns'],
    ['https://evil.test', undefined, [], false, 'no Host header'],
    ['https://app.example.com', 'api.example.com', ['*.example.com'], true, 'host pattern'],
    ['https://APP.Example.com', 'api.example.com', ['*.EXAMPLE.COM'], true, 'host pattern ignores case'],
    ['https://example.com.evil.test', 'api.example.com', ['*.example.com'], false, 'suffix trick'],
    ['https://example.com', 'api.example.com', ['*.example.com'], false, 'the apex is not a subdomain'],
    ['https://evil.test', 'api.example.com', ['*.example.com', 'evil.test'], true, 'any pattern may match'],
    ['http://localhost:3000', 'api.example.com', ['localhost'], false, 'host patterns see the port'],
    ['http://localhost:3000', 'api.example.com', ['localhost:*'], true, 'port wildcard'],
    ['http://localhost:3000', 'api.example.com', ['localhost:300?'], true, 'port single-character wildcard'],
    ['http://[::1]:3000', 'api.example.com', ['\\[::1\\]:*'], true, 'IPv6 literal'],
    ['https://app.example.com', 'api.example.com', ['https://*.example.com'], true, 'scheme-aware pattern'],
    ['http://app.example.com', 'api.example.com', ['https://*.example.com'], false, 'scheme-aware pattern, wrong scheme'],
    ['HTTPS://app.example.com', 'api.example.com', ['https://*.example.com'], true, 'scheme case'],
    ['https://app.example.com:8443', 'api.example.com', ['https://*.example.com'], false, 'scheme-aware pattern sees the port'],
    ['https://app.example.com', 'api.example.com', ['https://*'], true, 'any https origin'],
    ['chrome-extension://abcdef', 'api.example.com', ['chrome-extension://abcdef'], true, 'non-special scheme'],
    ['null', 'api.example.com', ['*'], false, 'the opaque origin "null"'],
    ['file:///home/x/index.html', 'api.example.com', ['*'], false, 'an origin without a host'],
    ['example.com', 'example.com', ['*'], false, 'not an absolute URL'],
    ['https://a.test, https://b.test', 'api.example.com', ['*'], false, 'two Origin headers joined'],
    ['https://app.example.com', 'api.example.com', [], false, 'no patterns, cross origin'],
  ];
  for (const [origin, host, patterns, expected, what] of cases) {
    it(`${what}: ${JSON.stringify(origin)} on ${JSON.stringify(host)} with ${JSON.stringify(patterns)} → ${expected}`, { timeout: 1000 }, () => {
      assert.equal(originAllowed(origin, host, patterns), expected);
    });
  }

  it('throws on a malformed pattern it has to try', { timeout: 1000 }, () => {
    assert.throws(() => originAllowed('https://evil.test', 'example.com', ['[']), /malformed pattern/);
  });
});

describe('parseList: 1#token and 1#protocol lists (RFC 9110 §5.6.1, RFC 7230 §7)', { timeout: 5000 }, () => {
  const cases: Array<[string | string[] | undefined, ListGrammar, string[] | RegExp]> = [
    [undefined, 'token', []],
    ['Upgrade', 'token', ['Upgrade']],
    ['keep-alive, Upgrade', 'token', ['keep-alive', 'Upgrade']],
    ['\tkeep-alive ,Upgrade\t', 'token', ['keep-alive', 'Upgrade']],
    // Empty elements are ignored, as recipients MUST (RFC 7230 §7, RFC 9110 §5.6.1.2).
    ['a, , b,', 'token', ['a', 'b']],
    [',a', 'token', ['a']],
    [['a', '', 'b'], 'token', ['a', 'b']],
    // …but a 1# list needs one element that is not empty.
    ['', 'token', /lists nothing/],
    [' , ,', 'token', /lists nothing/],
    [['', ''], 'token', /lists nothing/],
    ['a b', 'token', /"b" after an element/],
    ['a;b', 'token', /";" after an element/],
    ['"a"', 'token', /"\\"" where a token/],
    ['chat\u00e9', 'token', /U\+00E9 after an element/],
    ['a,\u0000', 'token', /U\+0000 where a token/],
    ['websocket', 'protocol', ['websocket']],
    ['foo/1, WebSocket', 'protocol', ['foo/1', 'WebSocket']],
    ['websocket/', 'protocol', /the end of the value where a token/],
    ['/13', 'protocol', /"\/" where a token/],
    ['a/b/c', 'protocol', /"\/" after an element/],
    ['a/b', 'token', /"\/" after an element/],
  ];
  for (const [value, grammar, expected] of cases) {
    it(`${JSON.stringify(value)} as ${grammar} → ${expected instanceof RegExp ? expected : JSON.stringify(expected)}`, { timeout: 1000 }, () => {
      const result = parseList(value, grammar);
      if (expected instanceof RegExp) assert.match(result.error ?? '(no error)', expected);
      else assert.deepEqual(result, { elements: expected });
    });
  }
});

describe('isValidHost (RFC 9110 §7.2, RFC 3986 §3.2.2)', { timeout: 5000 }, () => {
  const cases: Array<[string, boolean]> = [
    ['example.com', true],
    ['example.com:8080', true],
    ['127.0.0.1:0', true],
    ['[::1]', true],
    ['[::1]:443', true],
    ['xn--bcher-kva.example', true],
    ['a.test:', true], // port = *DIGIT may be empty
    ['', false],
    [':80', false],
    ['a b', false],
    ['a.test:8o', false],
    ['a.test:80:80', false],
    ['[::1', false],
    ['[]', false],
    ['[::1]x', false],
    ['user@a.test', false],
    ['a.test/path', false],
    ['bücher.example', false],
  ];
  for (const [host, valid] of cases) {
    it(`${JSON.stringify(host)} → ${valid}`, { timeout: 1000 }, () => {
      assert.equal(isValidHost(host), valid);
    });
  }
});

describe('verifyUpgradeRequest (RFC 6455 §4.2.1), without I/O', { timeout: 5000 }, () => {
  type Fields = Record<string, string | string[] | undefined>;
  /** A request as Node would parse it: repeated lines joined with ", ", except Host (first kept). */
  function requestOf(overrides: Fields = {}, method = 'GET', minor = 1): UpgradeRequest {
    const fields: Fields = {
      host: 'server.example.com',
      upgrade: 'websocket',
      connection: 'Upgrade',
      'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
      'sec-websocket-version': '13',
      ...overrides,
    };
    const headers: Record<string, string> = {};
    const rawHeaders: string[] = [];
    for (const [name, value] of Object.entries(fields)) {
      if (value === undefined) continue;
      const values = typeof value === 'string' ? [value] : value;
      for (const v of values) rawHeaders.push(name, v);
      headers[name] = name === 'host' ? values[0]! : values.join(', ');
    }
    return { method, httpVersionMajor: 1, httpVersionMinor: minor, headers, rawHeaders };
  }

  const cases: Array<[string, UpgradeRequest, number | undefined, RegExp?]> = [
    ['the RFC sample', requestOf(), undefined],
    ['a POST', requestOf({}, 'POST'), 405],
    ['HTTP/1.0', requestOf({}, 'GET', 0), 400],
    ['no Host', requestOf({ host: undefined }), 400, /Host/],
    ['an empty Host', requestOf({ host: '' }), 400, /Host/],
    ['two Host lines', requestOf({ host: ['a.test', 'a.test'] }), 400, /more than one Host/],
    ['a Host with a path', requestOf({ host: 'a.test/x' }), 400, /Host header is malformed/],
    ['no Upgrade', requestOf({ upgrade: undefined }), 426],
    ['Upgrade: h2c', requestOf({ upgrade: 'h2c' }), 426],
    ['Upgrade: web socket', requestOf({ upgrade: 'web socket' }), 400, /Upgrade header/],
    ['an empty Upgrade', requestOf({ upgrade: '' }), 400, /Upgrade header lists nothing/],
    ['Connection: keep-alive', requestOf({ connection: 'keep-alive' }), 426],
    ['Connection: Upgrade, ,keep-alive', requestOf({ connection: 'Upgrade, ,keep-alive' }), undefined],
    ['Connection: "Upgrade"', requestOf({ connection: '"Upgrade"' }), 400, /Connection header/],
    ['version 8', requestOf({ 'sec-websocket-version': '8' }), 426],
    ['a key sent twice', requestOf({ 'sec-websocket-key': ['dGhlIHNhbXBsZSBub25jZQ==', 'dGhlIHNhbXBsZSBub25jZQ=='] }), 400],
    ['subprotocols over two lines', requestOf({ 'sec-websocket-protocol': ['chat', 'superchat'] }), undefined],
    ['a subprotocol repeated', requestOf({ 'sec-websocket-protocol': 'chat, superchat, chat' }), 400, /twice/],
    ['subprotocols differing in case only', requestOf({ 'sec-websocket-protocol': 'chat, Chat' }), undefined],
    ['a subprotocol with a slash', requestOf({ 'sec-websocket-protocol': 'chat/1' }), 400, /Sec-WebSocket-Protocol/],
    ['an empty Sec-WebSocket-Protocol', requestOf({ 'sec-websocket-protocol': '' }), 400, /lists nothing/],
    ['a trailing comma in Sec-WebSocket-Protocol', requestOf({ 'sec-websocket-protocol': 'chat,' }), undefined],
    ['two deflate offers', requestOf({ 'sec-websocket-extensions': 'permessage-deflate; client_max_window_bits, permessage-deflate' }), undefined],
    // RFC 7692 §5: well-formed but unacceptable offers are declined later, not refused.
    ['a deflate offer with a repeated parameter', requestOf({ 'sec-websocket-extensions': 'permessage-deflate; server_no_context_takeover; server_no_context_takeover' }), undefined],
    ['a deflate offer with an unknown parameter', requestOf({ 'sec-websocket-extensions': 'permessage-deflate; x=1' }), undefined],
    ['a deflate offer with window bits 7', requestOf({ 'sec-websocket-extensions': 'permessage-deflate; server_max_window_bits=7' }), undefined],
    ['an unclosed quoted string', requestOf({ 'sec-websocket-extensions': 'permessage-deflate; x="1' }), 400, /Extensions header is malformed/],
    ['a quoted value that is no token', requestOf({ 'sec-websocket-extensions': 'permessage-deflate; x="a b"' }), 400, /Extensions/],
    ['a parameter without a name', requestOf({ 'sec-websocket-extensions': 'permessage-deflate; =1' }), 400, /Extensions/],
    ['an extension that is no token', requestOf({ 'sec-websocket-extensions': '"deflate"' }), 400, /Extensions/],
    ['an empty Sec-WebSocket-Extensions', requestOf({ 'sec-websocket-extensions': ' , ' }), 400, /lists nothing/],
    ['a foreign Origin', requestOf({ origin: 'https://evil.test' }), 403],
  ];
  for (const [what, req, status, reason] of cases) {
    it(`${what} → ${status ?? 'accepted'}`, { timeout: 1000 }, () => {
      const refusal = verifyUpgradeRequest(req);
      assert.equal(refusal?.status, status, refusal?.reason);
      if (reason !== undefined) assert.match(refusal!.reason, reason);
    });
  }
});

describe('the handshake parsers take time linear in hostile input', { timeout: 120_000 }, () => {
  // Every parser here walks its input once. A quadratic one would need ~10^11 steps for 1 MB,
  // minutes; each call gets a bound generous enough for a loaded, shared CI machine (a linear
  // pass over 1 MB takes milliseconds to a few hundred when it builds half a million elements).
  const megabyte = 1 << 20;
  const boundMs = 5000;
  const hostile: Array<[string, string]> = [
    ['a run of spaces before a bad character', `a${' '.repeat(megabyte)}b`],
    ['a million empty elements', ','.repeat(megabyte)],
    ['half a million elements', 'a,'.repeat(megabyte / 2)],
    ['an unclosed quote', `permessage-deflate; x="${'a'.repeat(megabyte)}`],
    ['a third of a million parameters', `permessage-deflate${'; x'.repeat(megabyte / 3)}`],
    ['escaped quotes', `e; x="${'\\"'.repeat(megabyte / 2)}`],
    ['many elements and a bad end', `${'a, '.repeat(megabyte / 3)}"`],
    ['a slash run', `a${'/'.repeat(megabyte)}`],
  ];
  const parsers: Array<[string, (value: string) => unknown]> = [
    ['parseList token', (value) => parseList(value, 'token')],
    ['parseList protocol', (value) => parseList(value, 'protocol')],
    ['parseExtensions', (value) => parseExtensions(value)],
    ['tokenList', (value) => tokenList(value)],
    ['isValidHost', (value) => isValidHost(value)],
    [
      'verifyUpgradeRequest',
      (value) =>
        verifyUpgradeRequest({
          method: 'GET',
          httpVersionMajor: 1,
          httpVersionMinor: 1,
          headers: { host: 'a.test', upgrade: `websocket,${value}`, connection: `upgrade,${value}`, 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13', 'sec-websocket-protocol': value, 'sec-websocket-extensions': value },
          rawHeaders: ['Host', 'a.test'],
        }),
    ],
  ];
  for (const [what, value] of hostile) {
    it(`${what} (${(value.length / megabyte).toFixed(1)} MB)`, { timeout: 60_000 }, () => {
      for (const [name, parse] of parsers) {
        const started = performance.now();
        parse(value);
        const elapsed = performance.now() - started;
        assert.ok(elapsed < boundMs, `${name} took ${elapsed.toFixed(0)} ms`);
      }
    });
  }
});
