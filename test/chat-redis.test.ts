/**
 * The chat example as two processes joined by a real `redis-server` (started
 * here on a free loopback port), seen through WebSocket clients: what the
 * tabs see while Redis is down at start, when it goes away mid-session, and
 * when it comes back. The browser test is chat-redis.e2e.test.ts.
 *
 * Without `redis-server` on PATH the suite skips and says why, except in CI
 * (`CI` set), where a missing server fails it (see helpers/peers.ts).
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { MessageType, type Conn } from '../src/conn.js';
import { dial } from '../src/dial.js';
import { ExampleProcess } from './helpers/example-process.js';
import { leakCheck } from './helpers/leak.js';
import { describeWithPeer, requirePeer } from './helpers/peers.js';
import { freePort, redisMissing, RedisServer } from './helpers/redis.js';

const checkLeaks = leakCheck();
const processes: ExampleProcess[] = [];
const conns: Conn[] = [];
let redis: RedisServer | undefined;

after(async () => {
  for (const conn of conns) conn.closeNow();
  await Promise.all(processes.map((p) => p.kill()));
  await redis?.kill();
  await checkLeaks();
});

/** What the tabs are told (examples/chat/server.ts). */
const notice = {
  down: 'cross-server relay unavailable: for now, messages reach only the people on this server',
  up: 'cross-server relay restored: messages reach every server again',
};

interface ChatEvent {
  kind: 'welcome' | 'system' | 'message';
  name?: string;
  from?: string;
  text?: string;
}

/** Reads chat events until one matches, skipping the others (joins, leaves…). */
async function nextEvent(conn: Conn, matches: (event: ChatEvent) => boolean, ms = 10_000): Promise<ChatEvent> {
  const signal = AbortSignal.timeout(ms);
  for (;;) {
    const event = JSON.parse(Buffer.from((await conn.read({ signal })).data).toString('utf8')) as ChatEvent;
    if (matches(event)) return event;
  }
}

const isSystem = (text: string) => (e: ChatEvent) => e.kind === 'system' && e.text === text;
const isMessage = (e: ChatEvent): boolean => e.kind === 'message';

/** Starts one chat process using the Redis at `redisPort`; resolves with its WebSocket URL. */
async function startChat(redisPort: number): Promise<{ chat: ExampleProcess; wsUrl: string }> {
  const chat = new ExampleProcess('examples/chat/server.ts', [], { PORT: '0', REDIS_URL: `redis://127.0.0.1:${redisPort}` });
  processes.push(chat);
  const [, pageUrl] = (await chat.waitFor(/listening on (http:\/\/\S+)/, 20_000)) as [string, string];
  return { chat, wsUrl: `${pageUrl.replace(/^http/, 'ws')}ws` };
}

/** Connects a client and resolves once it has its welcome (and so its name). */
async function join(wsUrl: string): Promise<{ conn: Conn; name: string }> {
  const conn = await dial(wsUrl, { signal: AbortSignal.timeout(5000) });
  conns.push(conn);
  const { name } = await nextEvent(conn, (e) => e.kind === 'welcome');
  return { conn, name: name! };
}

describeWithPeer('chat example across two processes over Redis', redisMissing, { timeout: 120_000 }, () => {
  let redisPort: number;
  let a: { chat: ExampleProcess; wsUrl: string };
  let b: { chat: ExampleProcess; wsUrl: string };

  before(async () => {
    requirePeer(redisMissing);
    // Nothing listens on this port yet: the servers start with Redis down.
    redisPort = await freePort();
    [a, b] = await Promise.all([startChat(redisPort), startChat(redisPort)]);
  });

  it('Redis down at start: each server serves its own tabs and says so; once Redis runs, messages cross', { timeout: 40_000 }, async () => {
    await a.chat.waitFor(/relay: unavailable \(ECONNREFUSED\); serving this server's tabs only, retrying/);
    await b.chat.waitFor(/relay: unavailable \(ECONNREFUSED\)/);

    // A tab joining now hears about it right after its welcome.
    const alice = await join(a.wsUrl);
    assert.deepEqual(await nextEvent(alice.conn, () => true), { kind: 'system', text: notice.down });
    assert.match(alice.name, /^guest-1@\d+$/, 'names carry the server, so that they stay unique across servers');
    const ann = await join(a.wsUrl);
    const bob = await join(b.wsUrl);
    assert.deepEqual(await nextEvent(bob.conn, () => true), { kind: 'system', text: notice.down });

    // Local delivery works without Redis.
    await alice.conn.write(MessageType.Text, 'only for server A');
    assert.deepEqual(await nextEvent(ann.conn, isMessage), { kind: 'message', from: alice.name, text: 'only for server A' });

    redis = await RedisServer.start(redisPort);
    await nextEvent(alice.conn, isSystem(notice.up));
    await nextEvent(bob.conn, isSystem(notice.up));
    await a.chat.waitFor(/relay: up \(channel wsconn-chat; \d+ event\(s\) were not relayed meanwhile\)/);

    await alice.conn.write(MessageType.Text, 'hello, server B');
    // Bob's first message is this one: what was said while Redis was down was dropped, not queued.
    assert.deepEqual(await nextEvent(bob.conn, isMessage), { kind: 'message', from: alice.name, text: 'hello, server B' });
    await bob.conn.write(MessageType.Text, 'hello, server A');
    assert.deepEqual(await nextEvent(alice.conn, (e) => e.text === 'hello, server A'), { kind: 'message', from: bob.name, text: 'hello, server A' });
    await nextEvent(ann.conn, (e) => e.text === 'hello, server A');
    for (const { conn } of [alice, ann, bob]) await conn.close(1000);
  });

  it('Redis killed mid-session: local delivery goes on, the tabs are told, and messages cross again once it is back', { timeout: 40_000 }, async () => {
    const alice = await join(a.wsUrl);
    const ann = await join(a.wsUrl);
    const bob = await join(b.wsUrl);
    await nextEvent(alice.conn, isSystem(`${bob.name} joined`));
    await nextEvent(ann.conn, isSystem(`${bob.name} joined`));

    await redis!.kill();
    for (const { conn } of [alice, ann, bob]) await nextEvent(conn, isSystem(notice.down));
    await a.chat.waitFor(/relay: unavailable \(.+\); serving this server's tabs only, retrying[\s\S]*relay: unavailable \(.+\); serving/);

    await alice.conn.write(MessageType.Text, 'while Redis is away');
    assert.deepEqual(await nextEvent(ann.conn, isMessage), { kind: 'message', from: alice.name, text: 'while Redis is away' });

    redis = await RedisServer.start(redisPort);
    for (const { conn } of [alice, ann, bob]) await nextEvent(conn, isSystem(notice.up));

    await alice.conn.write(MessageType.Text, 'Redis is back');
    assert.deepEqual(await nextEvent(bob.conn, isMessage), { kind: 'message', from: alice.name, text: 'Redis is back' });
    await bob.conn.write(MessageType.Text, 'so I hear');
    for (const { conn } of [alice, ann]) {
      assert.deepEqual(await nextEvent(conn, (e) => e.text === 'so I hear'), { kind: 'message', from: bob.name, text: 'so I hear' });
    }
    for (const { conn } of [alice, ann, bob]) await conn.close(1000);
  });

  it('Redis frozen (connections open, no answers): the tabs are told within seconds, and again once it answers', { timeout: 40_000 }, async () => {
    const alice = await join(a.wsUrl);
    const bob = await join(b.wsUrl);
    await nextEvent(alice.conn, isSystem(`${bob.name} joined`));

    redis!.pause();
    for (const { conn } of [alice, bob]) await nextEvent(conn, isSystem(notice.down), 15_000);
    await a.chat.waitFor(/relay: unavailable \(no answer from Redis for 5 s\)/);
    redis!.resume();
    for (const { conn } of [alice, bob]) await nextEvent(conn, isSystem(notice.up), 15_000);

    await alice.conn.write(MessageType.Text, 'thawed');
    assert.deepEqual(await nextEvent(bob.conn, isMessage), { kind: 'message', from: alice.name, text: 'thawed' });
    for (const { conn } of [alice, bob]) await conn.close(1000);
  });

  it('on SIGTERM with Redis down, both servers exit 0: no reconnection attempt keeps them alive', { timeout: 20_000 }, async () => {
    const before = a.chat.stdout.match(/relay: unavailable/g)?.length ?? 0;
    await redis!.kill();
    await a.chat.waitFor(new RegExp(`(relay: unavailable[\\s\\S]*){${before + 1}}`));
    for (const { chat } of [a, b]) chat.child.kill('SIGTERM');
    for (const { chat } of [a, b]) assert.deepEqual(await chat.exit(), { code: 0, signal: null }, chat.output);
  });
});
