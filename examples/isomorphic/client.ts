/**
 * One client module for Node and the browser: it imports only `wsconn` and
 * `wsconn/wsjson`, so Node runs it over undici (node.ts) and a bundler
 * builds it for a page with the browser build (page.ts; server.ts bundles
 * and serves that page).
 *
 * It asks the server of server.ts to add numbers: one JSON request, one
 * JSON answer, then a normal closure.
 */
import { dial } from 'wsconn';
import * as wsjson from 'wsconn/wsjson';

/** The subprotocol client and server agree on. */
export const subprotocol = 'sum.v1';

/** The server's answer. */
export interface SumReply {
  sum: number;
}

/** Sends `numbers` to the server at `url` and resolves with their sum; `signal` bounds the whole exchange. */
export async function sum(url: string, numbers: number[], signal: AbortSignal = AbortSignal.timeout(10_000)): Promise<number> {
  await using conn = await dial(url, { signal, subprotocols: [subprotocol] });
  if (conn.subprotocol !== subprotocol) throw new Error(`the server does not speak ${subprotocol}`);
  await wsjson.write(conn, { numbers }, { signal });
  const reply = await wsjson.read<SumReply>(conn, { signal });
  return reply.sum;
}
