// The chat page (GET /) in headless Chromium: streamed replies, diffusion statistics, stop, reload. run.sh starts
// the server (the built-in model; the test decoder "slow" as the server's default, so a reply lasts long enough to
// be stopped) and passes its URL, the Chromium binary and an output folder for the screenshot.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const url = process.env.BITRUN_URL;
const out = process.env.BITRUN_OUT;
let browser, page;

before(async () => {
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM, args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"] });
  page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
  page.on("pageerror", (e) => { throw e; });
  await page.goto(url);
});
after(async () => { await browser?.close(); });

const assistant = () => page.locator(".msg.assistant").last();
async function idle() {   // the reply has ended: Send is enabled again
  await page.waitForFunction(() => !document.getElementById("send").disabled, null, { timeout: 30000 });
}
async function say(text) {
  await page.fill("#input", text);
  await page.click("#send");
  await idle();
}

test("shows the model and streams a reply", async () => {
  await page.waitForFunction(() => document.getElementById("model-facts").textContent.includes("context"));
  assert.match(await page.textContent("#model-facts"), /default · bitnet-b1\.58 · context 512/);
  await page.click("#toggle-settings");
  await page.selectOption("#decoder", "ar");
  await say("Once upon a time");
  const text = await assistant().textContent();
  assert.ok(text.length > 20, text);
  assert.match(text, /1\.00 tokens\/forward|0\.\d+ tokens\/forward/);   // AR: at most one token a forward
});

test("block diffusion shows several tokens per forward", async () => {
  await page.click("#new-chat");   // one story request: the small default model is confident on a single turn
  await page.selectOption("#decoder", "diffusion");
  await page.selectOption("#mode", "adaptive");
  await say("Tell me a story about a little dog.");
  const stats = await assistant().locator(".stats").textContent();
  const perForward = Number(/([\d.]+) tokens\/forward/.exec(stats)[1]);
  assert.ok(perForward > 1.0, stats);
});

test("stop ends a long reply", async () => {
  await page.selectOption("#decoder", "");    // the server's default: the slow test decoder
  await page.fill("#max_tokens", "2000");
  await page.fill("#input", "a slow reply");
  await page.click("#send");
  await page.waitForFunction(() => {   // a few tokens have streamed in
    const all = document.querySelectorAll(".msg.assistant");
    const stats = all.length ? all[all.length - 1].querySelector(".stats") : null;
    return stats && Number(/^(\d+) tokens/.exec(stats.textContent)?.[1]) >= 3;
  });
  await page.click("#stop");
  await idle();
  const stopped = await assistant().textContent();
  await page.waitForTimeout(500);
  assert.equal(await assistant().textContent(), stopped, "no text after stop");
  assert.match(stopped, /\(stopped\)/);
});

test("the conversation survives a reload, and a new chat clears it", async () => {
  const before = await page.locator(".msg").allTextContents();
  await page.reload();
  await page.waitForSelector(".msg");
  assert.deepEqual(await page.locator(".msg").allTextContents(), before);
  await page.screenshot({ path: `${out}/chat.png` });
  await page.click("#new-chat");
  assert.equal(await page.locator(".msg").count(), 0);
});
