/**
 * The application side of every framework recipe: who may connect and what
 * a connection does. The recipe files only show the wiring.
 */
import type { IncomingMessage } from 'node:http';
import { MessageType, type AuthenticateContext, type ConnHandler } from 'wsconn';

export interface User {
  name: string;
}

/** Demo users by bearer token. A real app asks its session store or verifies a JWT here. */
const users = new Map<string, User>([['alice-secret', { name: 'alice' }]]);

/**
 * Runs before the 101: a missing or unknown token is answered 401 and the
 * handler never runs. Browsers cannot set headers on a WebSocket, so for a
 * page use its session cookie (same origin) or a short-lived ticket in the
 * query instead; pass `signal` to whatever lookup you await.
 */
export async function authenticate(req: IncomingMessage, { refuse }: AuthenticateContext): Promise<User> {
  const header = req.headers.authorization ?? '';
  const user = header.startsWith('Bearer ') ? users.get(header.slice('Bearer '.length)) : undefined;
  if (user === undefined) {
    throw refuse(401, { headers: { 'WWW-Authenticate': 'Bearer' }, body: 'a valid bearer token is required\n' });
  }
  return user;
}

/** Greets the user, then echoes every message until the client closes. */
export const greetAndEcho: ConnHandler<User> = async (conn, { user }) => {
  await conn.write(MessageType.Text, `hello ${user.name}`);
  for await (const { type, data } of conn) await conn.write(type, data);
};

/** Runs `stop` once on SIGINT or SIGTERM; the process then exits by itself when nothing is left open. */
export function onShutdown(stop: () => Promise<void>): void {
  const run = (): void => {
    stop().then(
      () => console.log('shut down'),
      (err: unknown) => {
        console.error('shutdown failed:', err);
        process.exitCode = 1;
      },
    );
  };
  process.once('SIGINT', run);
  process.once('SIGTERM', run);
}

/** The port to listen on: $PORT, default 8080 (0 picks a free one). */
export const port = Number(process.env.PORT ?? 8080);
