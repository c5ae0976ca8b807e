/**
 * Local delivery: the one place where the chat writes an event to the tabs
 * connected to *this* process. Events from this process's own tabs and
 * events relayed from other processes both end here.
 */
import { broadcast, MessageType, PreparedMessage, StatusCode, type Conn } from 'wsconn';

/** How many events may wait for one tab that cannot take them yet, before it is dropped. */
const queueLimit = Number(process.env.CHAT_QUEUE_LIMIT ?? 256);

/** A tab connected to this process. */
export interface Client {
  conn: Conn;
  name: string;
  /** How this server ended the connection, when it did: the close code it sent, or 'dropped'. */
  endedBy?: number | 'dropped';
}

/** This process's tabs, by connection. */
export class Clients extends Map<Conn, Client> {
  add(client: Client): void {
    this.set(client.conn, client);
  }
}

/**
 * Sends `event` to every tab, without waiting for any: serialised and
 * framed once (a `PreparedMessage`), then `broadcast()`. A tab whose socket
 * is full gets its events queued, up to `queueLimit`; one that falls that
 * far behind is not reading, so it is dropped: a close frame would wait
 * behind everything it has not read, so the TCP connection goes at once.
 */
export function deliver(clients: Clients, event: object): void {
  const message = new PreparedMessage(MessageType.Text, JSON.stringify(event));
  broadcast(clients.keys(), message, {
    queueLimit,
    whenFull: 'close',
    closeCode: StatusCode.PolicyViolation,
    onFull: (conn) => {
      const client = clients.get(conn);
      if (client === undefined) return;
      console.log(`${client.name} is not keeping up: dropped`);
      client.endedBy ??= 'dropped';
      conn.closeNow();
    },
  });
}
