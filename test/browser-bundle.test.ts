/**
 * The browser build as a bundler sees it: `import … from 'wsconn'` with
 * the `"browser"` condition resolves to dist/browser, the bundle of `dial`,
 * Conn and wsjson holds no Node built-in, and its size is reported.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bundleForBrowser } from './helpers/bundle.js';

/** What a page using the browser build imports. */
const app = `
export { dial, MessageType, StatusCode, closeStatus } from 'wsconn';
export * as wsjson from 'wsconn/wsjson';
`;

/** The target for dial + Conn + wsjson, minified and gzipped. */
const sizeTarget = 5 * 1024;

describe('browser bundle', { timeout: 60_000 }, () => {
  it('resolves wsconn to dist/browser and wsconn/wsjson as it is, with no Node built-in, under 5 KiB min+gzip', { timeout: 30_000 }, async (t) => {
    const bundle = await bundleForBrowser({ contents: app }, true);
    assert.ok(bundle.inputs.includes('dist/browser/index.js'), `not the browser build: ${bundle.inputs.join(', ')}`);
    assert.ok(bundle.inputs.includes('dist/wsjson/index.js'));
    assert.ok(!bundle.inputs.includes('dist/conn.js'), 'the Node Conn got into the browser bundle');
    t.diagnostic(`dial + Conn + wsjson: ${bundle.code.length} B minified, ${bundle.gzipBytes} B min+gzip`);
    assert.ok(bundle.gzipBytes < sizeTarget, `${bundle.gzipBytes} B min+gzip, over the ${sizeTarget} B target`);
  });

  it('fails the bundle when the Node build is imported (the guard works)', { timeout: 30_000 }, async () => {
    await assert.rejects(bundleForBrowser({ contents: "export { netConn } from 'wsconn/netconn';" }), /Node built-in 'node:/);
  });
});
