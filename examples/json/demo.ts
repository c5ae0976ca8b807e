/**
 * Request/response over one WebSocket with `wsconn/wsjson`.
 *
 *   node --import tsx examples/json/demo.ts
 *
 * The server answers requests `{ id, method, params }` with
 * `{ id, result }` or `{ id, error }`, each as soon as it is ready, so
 * answers may overtake each other. The client sends several requests at
 * once and matches the answers to them by `id`; one read loop per
 * connection hands each answer to the call that waits for it. Self-
 * contained: it serves on 127.0.0.1 port 0 and exits when done.
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { accept, closeStatus, dial, type Conn } from 'wsconn';
import * as wsjson from 'wsconn/wsjson';

interface Request {
  id: number;
  method: string;
  params?: unknown;
}

type Response =
  | { id: number; result: unknown }
  | { id: number | null; error: { code: number; message: string } };

// --- the server ---

/** The methods the server offers; `signal` aborts when the connection ends, so work stops with it. */
const methods: Record<string, (params: unknown, signal: AbortSignal) => unknown> = {
  add: (params) => {
    if (!Array.isArray(params) || !params.every((n) => typeof n === 'number')) throw new TypeError('add takes numbers');
    return params.reduce((sum: number, n: number) => sum + n, 0);
  },
  upper: (params) => String(params).toUpperCase(),
  /** Answers after `ms` milliseconds, to show answers overtaking each other. */
  sleep: async (params, signal) => {
    const ms = Math.min(Number((params as { ms?: unknown } | null)?.ms) || 0, 5000);
    await sleep(ms, undefined, { signal });
    return `slept ${ms} ms`;
  },
};

function isRequest(value: unknown): value is Request {
  const v = value as Partial<Request> | null;
  return typeof v === 'object' && v !== null && Number.isSafeInteger(v.id) && typeof v.method === 'string';
}

async function answer(request: unknown, signal: AbortSignal): Promise<Response> {
  // The client is not trusted: check the shape before using it.
  if (!isRequest(request)) return { id: null, error: { code: -32600, message: 'invalid request' } };
  const method = Object.hasOwn(methods, request.method) ? methods[request.method] : undefined;
  if (method === undefined) return { id: request.id, error: { code: -32601, message: `no method ${request.method}` } };
  try {
    return { id: request.id, result: await method(request.params, signal) };
  } catch (err) {
    return { id: request.id, error: { code: -32602, message: (err as Error).message } };
  }
}

async function serve(conn: Conn): Promise<void> {
  const gone = new AbortController();
  void conn.closed.then(() => gone.abort(new Error('the connection has ended')));
  try {
    for (;;) {
      // Invalid JSON or a binary message rejects here, and wsjson has
      // closed the connection with 1007 or 1003.
      const request = await wsjson.read(conn);
      // Handle each request on its own so a slow one does not hold up the rest.
      // A reply that can no longer be sent (the connection ended) is dropped.
      answer(request, gone.signal)
        .then((response) => wsjson.write(conn, response))
        .catch(() => {});
    }
  } catch (err) {
    const code = closeStatus(err);
    if (code !== 1000 && code !== 1001) console.error(`server: connection ended: ${(err as Error).message}`);
  }
  // Whatever ended the loop, the Conn is closing or closed by now, within
  // its closeTimeout: nothing is left to clean up.
}

// --- the client ---

/** Calls methods on the server; answers are matched to calls by id. */
class RpcClient {
  readonly #conn: Conn;
  readonly #pending = new Map<number, { resolve: (r: Response) => void; reject: (e: Error) => void }>();
  #nextId = 1;
  readonly done: Promise<void>;

  constructor(conn: Conn) {
    this.#conn = conn;
    this.done = this.#readLoop();
  }

  /** Sends one request and resolves with its result; rejects with the server's error or the signal's reason. */
  async call(method: string, params?: unknown, options: { signal?: AbortSignal } = {}): Promise<unknown> {
    const id = this.#nextId++;
    const { signal } = options;
    signal?.throwIfAborted();
    const answered = new Promise<Response>((resolve, reject) => this.#pending.set(id, { resolve, reject }));
    // If the write below fails, nobody awaits the answer: keep its rejection from going unhandled.
    answered.catch(() => {});
    const onAbort = (): void => this.#settle(id, undefined, signal?.reason as Error);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await wsjson.write(this.#conn, { id, method, params } satisfies Request, options);
      const response = await answered;
      if ('error' in response) throw new Error(`${method}: ${response.error.message} (${response.error.code})`);
      return response.result;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.#pending.delete(id);
    }
  }

  async close(): Promise<void> {
    await this.#conn.close(1000, 'done');
    await this.done;
  }

  /** Reads answers until the connection ends; an answer nobody waits for any more is dropped. */
  async #readLoop(): Promise<void> {
    let ended: Error;
    try {
      for (;;) {
        const response = await wsjson.read<Response>(this.#conn);
        if (typeof response.id === 'number') this.#settle(response.id, response);
      }
    } catch (err) {
      ended = err as Error;
    }
    for (const id of this.#pending.keys()) this.#settle(id, undefined, ended);
  }

  #settle(id: number, response: Response | undefined, error?: Error): void {
    const waiter = this.#pending.get(id);
    this.#pending.delete(id);
    if (response !== undefined) waiter?.resolve(response);
    else waiter?.reject(error ?? new Error('no answer'));
  }
}

// --- the demo ---

const server = createServer();
server.on('upgrade', (req, socket, head) => {
  accept(req, socket, head).then(serve, () => {});
});
server.listen(0, '127.0.0.1');
await once(server, 'listening');
const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/`;

const client = new RpcClient(await dial(url, { signal: AbortSignal.timeout(5000) }));
const started = performance.now();
const log = (label: string) => (value: unknown) => {
  console.log(`  ${label} -> ${JSON.stringify(value)} after ${Math.round(performance.now() - started)} ms`);
  return value;
};

console.log('four requests sent at once; answers arrive as they are ready, matched by id:');
const results = await Promise.all([
  client.call('sleep', { ms: 300 }).then(log('sleep 300')),
  client.call('add', [1, 2, 3]).then(log('add [1,2,3]')),
  client.call('sleep', { ms: 100 }).then(log('sleep 100')),
  client.call('upper', 'wsjson').then(log('upper "wsjson"')),
]);
console.log(`results in call order: ${JSON.stringify(results)}`);

console.log('an unknown method and bad params come back as errors:');
for (const [method, params] of [['divide', [1, 0]], ['add', ['x']]] as const) {
  await client.call(method, params).catch((err: Error) => console.log(`  ${err.message}`));
}

console.log('a call with a deadline gives up; the connection carries on:');
await client
  .call('sleep', { ms: 1000 }, { signal: AbortSignal.timeout(100) })
  .catch((err: Error) => console.log(`  sleep 1000 with a 100 ms deadline: ${err.name}`));
console.log(`  add [40,2] afterwards -> ${JSON.stringify(await client.call('add', [40, 2]))}`);

await client.close();
server.close();
