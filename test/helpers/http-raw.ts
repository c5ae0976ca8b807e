import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { sampleKey } from './raw.js';

/** Header fields of a hand-written request; `undefined` leaves a field out, an array repeats it. */
export type HeaderSpec = Record<string, string | string[] | undefined>;

/** The valid handshake of RFC 6455 §1.3 with `overrides` applied, as raw text. */
export function upgradeText(overrides: HeaderSpec = {}, startLine = 'GET /chat HTTP/1.1'): string {
  const fields: HeaderSpec = {
    Host: 'server.example.com',
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': sampleKey,
    'Sec-WebSocket-Version': '13',
    ...overrides,
  };
  let text = `${startLine}\r\n`;
  for (const [name, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    for (const v of typeof value === 'string' ? [value] : value) text += `${name}: ${v}\r\n`;
  }
  return `${text}\r\n`;
}

/** A parsed HTTP response: names lower-cased, in order. */
export interface RawResponse {
  status: number;
  statusLine: string;
  headers: Array<[string, string]>;
  body: string;
}

export function parseRawResponse(raw: string): RawResponse {
  const split = raw.indexOf('\r\n\r\n');
  assert.ok(split >= 0, `no end of head in ${JSON.stringify(raw)}`);
  const [statusLine = '', ...lines] = raw.slice(0, split).split('\r\n');
  const headers = lines.map((line): [string, string] => {
    const colon = line.indexOf(':');
    return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()];
  });
  return { status: Number(statusLine.split(' ')[1]), statusLine, headers, body: raw.slice(split + 4) };
}

export function field(response: RawResponse, name: string): string | undefined {
  return response.headers.find(([n]) => n === name)?.[1];
}

export async function dialRaw(port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port });
  await once(socket, 'connect');
  return socket;
}

/**
 * Sends `raw` and reads until the server ends the stream: resolves with the
 * response only if the server did end it (a refusal must not keep the
 * connection alive).
 */
export async function refusedWith(port: number, raw: string | Uint8Array): Promise<RawResponse> {
  const socket = await dialRaw(port);
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.write(raw);
  await once(socket, 'end');
  socket.destroy();
  return parseRawResponse(Buffer.concat(chunks).toString('utf8'));
}
