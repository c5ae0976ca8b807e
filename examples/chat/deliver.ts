/**
 * Local delivery: the one place where the chat writes an event to the tabs
 * connected to *this* process. Events from this process's own tabs and
 * events relayed from other processes both end here.
 */
import { MessageType, type Conn } from 'wsconn';

/** How long one client may take to accept one message before it is dropped. */
const writeTimeoutMs = Number(process.env.CHAT_WRITE_TIMEOUT_MS ?? 2000);

/** A tab connected to this process. */
export interface Client {
  conn: Conn;
  name: string;
  /** How this server ended the connection, when it did: the close code it sent, or 'dropped'. */
  endedBy?: number | 'dropped';
}

/**
 * Sends `event` to every client in `clients`; never rejects. The event is
 * serialised once. Each write races its own timeout: a client that has not
 * taken the message by then is not reading (its TCP buffers are full), so it
 * is dropped and the others carry on.
 */
export async function deliver(clients: Iterable<Client>, event: object): Promise<void> {
  const text = JSON.stringify(event);
  await Promise.all(
    [...clients].map(async (client) => {
      try {
        await client.conn.write(MessageType.Text, text, { signal: AbortSignal.timeout(writeTimeoutMs) });
      } catch (err) {
        if ((err as Error).name === 'TimeoutError') {
          console.log(`${client.name} is not keeping up: dropped`);
          client.endedBy ??= 'dropped';
          // A close frame would queue behind everything the client has not
          // read, so drop the TCP connection instead.
          client.conn.closeNow();
        }
        // Otherwise the connection is already closing; its own loop ends.
      }
    }),
  );
}
