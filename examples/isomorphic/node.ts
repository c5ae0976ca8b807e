/**
 * The isomorphic client from Node: `wsconn` resolves to the Node build.
 *
 *   node --import tsx examples/isomorphic/server.ts      # prints its URL
 *   node --import tsx examples/isomorphic/node.ts ws://127.0.0.1:8080 1 2 3
 */
import { sum } from './client.js';

const [url = 'ws://127.0.0.1:8080', ...numbers] = process.argv.slice(2);
console.log(`sum: ${await sum(url, numbers.map(Number))}`);
