/**
 * The cross-server relay: how one chat process hears what the tabs connected
 * to the other processes say. Without a `REDIS_URL` there is none (one
 * process, as before); with one, events travel over Redis pub/sub
 * (redis-relay.ts, loaded only then, so a single process needs no Redis
 * client at all).
 */

/** What the tabs say and see, as the chat sends it to every tab on every server. */
export type ChatEvent = { kind: 'message'; from: string; text: string } | { kind: 'system'; text: string };

/**
 * `off`: no relay configured. `connecting`: configured, not yet reached.
 * `up`: publishing and subscribed. `down`: lost or never reached; retrying.
 */
export type RelayState = 'off' | 'connecting' | 'up' | 'down';

/** Carries this process's events to the other processes and theirs to it. */
export interface Relay {
  readonly state: RelayState;
  /**
   * Sends `event` to the other processes. Never throws and never waits: an
   * event that cannot go now (the relay is down, or too far behind) is
   * dropped, not queued.
   */
  publish(event: ChatEvent): void;
  /** Disconnects for good, letting what is already on its way go out (briefly). */
  close(): Promise<void>;
}

/** What a relay tells the server. */
export interface RelayHooks {
  /** An event that a tab connected to another process caused. */
  onEvent(event: ChatEvent): void;
  /** The relay has become usable (`up`) or has stopped being so (`down`); `detail` says why. */
  onState(state: 'up' | 'down', detail: string): void;
}

/** The relay of a process that has no other process to talk to. */
const noRelay: Relay = { state: 'off', publish() {}, close: async () => {} };

/** Opens the relay that `redisUrl` asks for: none when it is unset or empty. */
export async function openRelay(redisUrl: string | undefined, hooks: RelayHooks): Promise<Relay> {
  if (redisUrl === undefined || redisUrl === '') return noRelay;
  const { RedisRelay } = await import('./redis-relay.js');
  return new RedisRelay(redisUrl, hooks);
}

/** One event on the wire between processes: which process sent it, and the event. */
interface Envelope {
  origin: string;
  event: ChatEvent;
}

/** Serialises an event for the other processes. */
export function encodeEnvelope(origin: string, event: ChatEvent): string {
  return JSON.stringify({ origin, event } satisfies Envelope);
}

/**
 * Parses what another process published; undefined for anything that is not
 * a well-formed event (whatever else shares the channel cannot reach the tabs).
 */
export function decodeEnvelope(text: string): Envelope | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { origin, event } = value as { origin?: unknown; event?: Record<string, unknown> };
  if (typeof origin !== 'string' || typeof event !== 'object' || event === null || typeof event.text !== 'string') return undefined;
  if (event.kind === 'system') return { origin, event: { kind: 'system', text: event.text } };
  if (event.kind === 'message' && typeof event.from === 'string') {
    return { origin, event: { kind: 'message', from: event.from, text: event.text } };
  }
  return undefined;
}
