/**
 * The chat example end to end in a real browser: two Chromium pages
 * (Debian `chromium`, driven by playwright-core) load the page that
 * examples/chat/server.ts serves; a message typed in one appears in both.
 *
 * Without Chromium on PATH the suite skips and says why, except in CI
 * (`CI` set), where a missing browser fails it (see helpers/peers.ts).
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { ExampleProcess } from './helpers/example-process.js';
import { chromiumMissing, launchChromium } from './helpers/chromium.js';
import { leakCheck } from './helpers/leak.js';
import { describeWithPeer } from './helpers/peers.js';

const checkLeaks = leakCheck();

const missing = chromiumMissing;

let chat: ExampleProcess | undefined;
let browser: Browser | undefined;

after(async () => {
  await browser?.close();
  await chat?.kill();
  await checkLeaks();
});

describeWithPeer('chat example in Chromium', missing, { timeout: 60_000 }, () => {
  let pageUrl: string;

  before(async () => {
    if (missing !== undefined) throw new Error(`${missing}; CI requires it`);
    chat = new ExampleProcess('examples/chat/server.ts', [], { PORT: '0' });
    [, pageUrl] = (await chat.waitFor(/listening on (http:\/\/\S+)/)) as [string, string];
    browser = await launchChromium();
  });

  async function openChat(): Promise<{ page: Page; name: string }> {
    const page = await browser!.newPage();
    await page.goto(pageUrl);
    await page.locator('#status', { hasText: 'connected as' }).waitFor({ timeout: 10_000 });
    const status = await page.locator('#status').textContent();
    return { page, name: status!.replace('connected as ', '') };
  }

  it('a message typed in one page appears in the other', { timeout: 30_000 }, async () => {
    const alice = await openChat();
    const bob = await openChat();
    assert.notEqual(alice.name, bob.name);
    // Alice's page hears Bob join.
    await alice.page.locator('#messages li.system', { hasText: `${bob.name} joined` }).waitFor({ timeout: 10_000 });

    const text = 'hello from a real browser ✓ <b>not bold</b>';
    await alice.page.fill('#text', text);
    await alice.page.press('#text', 'Enter');

    for (const { page } of [bob, alice]) {
      const item = page.locator('#messages li:not(.system)', { hasText: text });
      await item.waitFor({ timeout: 10_000 });
      // The sender's name in bold, then the text as text: the markup was not parsed.
      assert.equal(await item.locator('b').textContent(), alice.name);
      assert.equal(await item.textContent(), `${alice.name}${text}`);
      assert.equal(await item.locator('b').count(), 1);
    }
    assert.equal(await alice.page.inputValue('#text'), '', 'the input is cleared after sending');

    await alice.page.close();
    await bob.page.locator('#messages li.system', { hasText: `${alice.name} left` }).waitFor({ timeout: 10_000 });
    await bob.page.close();
  });
});
