/**
 * An echo client, in one of two modes.
 *
 * Talk to a server (`--interactive`): each line typed (or piped) on stdin is
 * sent as a text message and the server's answer is printed; end of input
 * (Ctrl-D) closes with 1000. With server.ts next to it:
 *
 *   node --import tsx examples/echo/client.ts ws://127.0.0.1:8080 --interactive
 *
 * Echo for a server (the default): dials URL and sends back every message it
 * receives, with its type, until the server closes. It waits for the server
 * to speak first, which is what a conformance harness that drives the test
 * through the messages it sends needs (two echo peers facing each other
 * would both wait forever).
 *
 *   node --import tsx examples/echo/client.ts URL [--read-limit BYTES] [--compression MODE]
 */
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { closeStatus, dial, MessageType, StatusCode, type CompressionMode, type Conn } from 'wsconn';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    interactive: { type: 'boolean', short: 'i', default: false },
    'read-limit': { type: 'string' },
    compression: { type: 'string', default: 'disabled' },
  },
});

const url = positionals[0];
if (url === undefined) {
  console.error('usage: client.ts URL [--interactive] [--read-limit BYTES] [--compression MODE]');
  process.exit(2);
}

const conn = await dial(url, {
  signal: AbortSignal.timeout(10_000),
  readLimit: values['read-limit'] === undefined ? 32 * 1024 : Number(values['read-limit']),
  compressionMode: values.compression as CompressionMode, // dial() rejects an unknown mode
});

/** Sends each line of stdin and prints the answer to it. */
async function talk(conn: Conn): Promise<number> {
  let count = 0;
  // Only one message is in flight at a time, so each answer follows its line.
  // While this waits for input no read is pending, so a ping from the server
  // is answered only with the next line: fine for a demo, not for a long-lived client.
  for await (const line of createInterface({ input: process.stdin })) {
    await conn.write(MessageType.Text, line);
    const { type, data } = await conn.read({ signal: AbortSignal.timeout(10_000) });
    console.log(type === MessageType.Text ? `< ${new TextDecoder().decode(data)}` : `< ${data.length} bytes`);
    count++;
  }
  return count;
}

/** Sends back every message the server sends, until it closes. */
async function echo(conn: Conn): Promise<number> {
  let count = 0;
  for await (const { type, data } of conn) {
    await conn.write(type, data);
    count++;
  }
  return count;
}

let count = 0;
try {
  count = await (values.interactive ? talk(conn) : echo(conn));
} catch (err) {
  const code = closeStatus(err);
  console.error(`connection ended: ${code === -1 ? (err as Error).message : `close ${code}`}`);
}
const { code, reason } = await conn.close(StatusCode.NormalClosure);
console.log(`${values.interactive ? 'sent' : 'echoed'} ${count} messages; closed with ${code}${reason ? ` (${reason})` : ''}`);
