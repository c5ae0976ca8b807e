/**
 * The chat example as two processes joined by a real `redis-server`, end to
 * end in a real browser: a Chromium page on server A and one on server B
 * (Debian `chromium`, driven by playwright-core); what is typed in one
 * appears in the other. Redis failures are covered by chat-redis.test.ts.
 *
 * Without Chromium or `redis-server` on PATH the suite skips and says why,
 * except in CI (`CI` set), where a missing peer fails it (see helpers/peers.ts).
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { chromiumMissing, launchChromium } from './helpers/chromium.js';
import { ExampleProcess } from './helpers/example-process.js';
import { leakCheck } from './helpers/leak.js';
import { describeWithPeer, requirePeer } from './helpers/peers.js';
import { freePort, redisMissing, RedisServer } from './helpers/redis.js';

const checkLeaks = leakCheck();

const missing = chromiumMissing ?? redisMissing;

let redis: RedisServer | undefined;
const chats: ExampleProcess[] = [];
let browser: Browser | undefined;

after(async () => {
  await browser?.close();
  await Promise.all(chats.map((chat) => chat.kill()));
  await redis?.kill();
  await checkLeaks();
});

/** Starts one chat process on Redis; resolves with its page URL once it is relaying. */
async function startChat(redisUrl: string): Promise<string> {
  const chat = new ExampleProcess('examples/chat/server.ts', [], { PORT: '0', REDIS_URL: redisUrl });
  chats.push(chat);
  const [, pageUrl] = (await chat.waitFor(/listening on (http:\/\/\S+)/, 20_000)) as [string, string];
  await chat.waitFor(/relay: up/);
  return pageUrl;
}

describeWithPeer('chat example across two processes in Chromium', missing, { timeout: 90_000 }, () => {
  let urlA: string;
  let urlB: string;

  before(async () => {
    requirePeer(missing);
    redis = await RedisServer.start(await freePort());
    [urlA, urlB] = await Promise.all([startChat(redis.url), startChat(redis.url)]);
    browser = await launchChromium();
  });

  async function openChat(url: string): Promise<{ page: Page; name: string }> {
    const page = await browser!.newPage();
    await page.goto(url);
    await page.locator('#status', { hasText: 'connected as' }).waitFor({ timeout: 10_000 });
    const status = await page.locator('#status').textContent();
    return { page, name: status!.replace('connected as ', '') };
  }

  async function say(from: { page: Page }, text: string): Promise<void> {
    await from.page.fill('#text', text);
    await from.page.press('#text', 'Enter');
  }

  async function heard(to: { page: Page }, from: { name: string }, text: string): Promise<void> {
    const item = to.page.locator('#messages li:not(.system)', { hasText: text });
    await item.waitFor({ timeout: 10_000 });
    assert.equal(await item.textContent(), `${from.name}${text}`);
  }

  it('a message typed in a page on server A appears in a page on server B, and back', { timeout: 40_000 }, async () => {
    const alice = await openChat(urlA);
    const bob = await openChat(urlB);
    assert.notEqual(alice.name, bob.name, 'two servers never hand out the same name');
    // Alice's page, on A, hears that Bob joined B.
    await alice.page.locator('#messages li.system', { hasText: `${bob.name} joined` }).waitFor({ timeout: 10_000 });

    await say(alice, 'hello from server A ✓');
    await heard(bob, alice, 'hello from server A ✓');
    await heard(alice, alice, 'hello from server A ✓');

    await say(bob, 'hello back from server B');
    await heard(alice, bob, 'hello back from server B');

    await alice.page.close();
    await bob.page.locator('#messages li.system', { hasText: `${alice.name} left` }).waitFor({ timeout: 10_000 });
    await bob.page.close();
  });
});
