/**
 * The server for the isomorphic example: it answers `sum.v1` WebSocket
 * requests on /sum, and serves a page running the same client module as
 * node.ts, bundled for the browser with esbuild.
 *
 *   node --import tsx examples/isomorphic/server.ts [PORT]
 *   then open http://127.0.0.1:PORT/?1&2&3, or run node.ts against ws://127.0.0.1:PORT/sum
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { createUpgradeListener } from 'wsconn';
import * as wsjson from 'wsconn/wsjson';
import { subprotocol } from './client.js';

const { outputFiles } = await build({
  entryPoints: [fileURLToPath(new URL('page.ts', import.meta.url))],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  write: false,
});
const script = outputFiles[0]!.text;
const html = '<!doctype html><meta charset="utf-8"><title>wsconn isomorphic</title><body>…</body><script type="module" src="/page.js"></script>';

const server = createServer((req, res) => {
  if (req.url === '/page.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(script);
  else res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html);
});
const listener = createUpgradeListener({ path: '/sum', subprotocols: [subprotocol] }, async (conn) => {
  const { numbers } = await wsjson.read<{ numbers: number[] }>(conn);
  await wsjson.write(conn, { sum: numbers.reduce((a, b) => a + b, 0) });
  for await (const _ of conn); // until the client closes
});
server.on('upgrade', listener);
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
});
