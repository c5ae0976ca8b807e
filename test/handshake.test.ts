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
} from '../src/handshake.js';
import { globMatch, validateGlob } from '../src/internal/glob.js';

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
