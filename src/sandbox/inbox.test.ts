import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { existsSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { type Browser, chromium, type Page } from "playwright-core";
import { type RunningSandbox, startSandbox } from "./server.js";
import { postIncoming, startReceiver, type WebhookReceiver } from "./test-support/helpers.js";

/**
 * The web inbox in a real browser (Debian's chromium driven by playwright-core) against a real sandbox and a
 * real webhook receiver that verifies signatures. Skips only on a workstation without chromium; under CI it runs.
 */

const CHROMIUM = "/usr/bin/chromium";
const missing = !existsSync(CHROMIUM);
if (missing && process.env.CI) {
  throw new Error(
    `${CHROMIUM} is missing under CI: install it (apt-get install -y chromium); .ci/run does this`,
  );
}
const skip = missing ? `${CHROMIUM} not found: apt-get install -y chromium to run the browser test` : false;

const SUPPORT = "+16501234567";
const SECRET = "browser_test_secret";

describe("web inbox in chromium", { skip }, () => {
  let browser: Browser;
  let page: Page;
  let sandbox: RunningSandbox;
  let receiver: WebhookReceiver;

  before(async () => {
    receiver = await startReceiver([SECRET]);
    sandbox = await startSandbox({
      port: 0,
      config: {
        channels: [{ name: "Support", phone: SUPPORT, secret: SECRET, webhookUrl: receiver.url }],
        staff: [{ name: "Ana Lima", email: "ana@example.com" }],
      },
    });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    page = await browser.newPage({ viewport: { width: 1400, height: 860 } });
    // Generous: CI runs the suite twice on two cores, beside other test files.
    page.setDefaultTimeout(20_000);
    await page.goto(sandbox.url);
    await page.locator("#live[data-state='live']").waitFor();
    // A reload would drop this marker: the checks below prove updates arrive live.
    await page.evaluate(() => {
      (window as unknown as { __sameDocument: boolean }).__sameDocument = true;
    });
  });

  after(async () => {
    await browser?.close();
    await sandbox?.close();
    await receiver?.close();
  });

  it("an SMS posted to /incoming/sms appears in the open inbox without reload", async () => {
    const r = await postIncoming(
      sandbox.url,
      {
        id: "b-1",
        to: { phone: SUPPORT },
        from: { name: "Maria García", phone: "+15105559999" },
        body: "Where is my order #4412?",
        thread_id: "t-browser",
      },
      SECRET,
    );
    assert.equal(r.status, 201);
    await page.locator(".conversation", { hasText: "Maria García" }).waitFor();
    await page.locator(".msg.customer .bubble", { hasText: "Where is my order #4412?" }).waitFor();
    assert.equal(
      await page.evaluate(() => (window as unknown as { __sameDocument?: boolean }).__sameDocument),
      true,
    );
  });

  it("a reply typed in the UI reaches the receiver, which verifies the signature, and shows sent", async () => {
    receiver.answer = { status: 201, body: '{"id":"SM123"}' };
    await page.keyboard.press("r");
    await page.keyboard.type("It ships tomorrow!");
    await page.keyboard.press("Control+Enter");
    const msg = page.locator(".msg.staff", { hasText: "It ships tomorrow!" });
    await msg.and(page.locator("[data-status='sent']")).waitFor();
    assert.match(String(await msg.locator(".chip-sent").textContent()), /sent/);
    const got = receiver.received.at(-1);
    assert.ok(got?.verified, "the receiver verified X-Reamaze-Hmac-SHA256");
    const payload = got?.json as { body: string; to: { phone: string }; thread_id: string };
    assert.equal(payload.body, "It ships tomorrow!");
    assert.equal(payload.to.phone, "+15105559999");
    assert.equal(payload.thread_id, "t-browser");
    assert.equal(await page.locator("#reply").inputValue(), "", "the reply box is cleared");
  });

  it("with the receiver answering 500 the reply shows failed with that answer, and retry sends it", async () => {
    receiver.answer = { status: 500, body: '{"error":"provider exploded"}' };
    await page.locator("#reply").fill("Second try");
    await page.locator("#send").click();
    const msg = page.locator(".msg.staff", { hasText: "Second try" });
    await msg.and(page.locator("[data-status='failed']")).waitFor();
    const failure = String(await msg.locator(".failure").textContent());
    assert.match(failure, /500/);
    assert.match(failure, /provider exploded/);

    receiver.answer = { status: 200, body: "ok" };
    await msg.locator("button.retry").click();
    await page.locator(".msg.staff[data-status='sent']", { hasText: "Second try" }).waitFor();
  });

  it("the request log shows the signature debugger for a bad signature", async () => {
    const body = JSON.stringify({
      id: "b-2",
      to: { phone: SUPPORT },
      from: { phone: "+15105559999" },
      body: "x",
    });
    const res = await fetch(`${sandbox.url}/incoming/sms`, {
      method: "POST",
      body,
      headers: {
        "content-type": "application/json",
        "X-Reamaze-Hmac-SHA256": createHmac("sha256", SECRET).update(body).digest("hex"),
      },
    });
    assert.equal(res.status, 401);
    await page.keyboard.press("Escape");
    await page.keyboard.press("2");
    await page.locator(".request .pill-4", { hasText: "401" }).first().click();
    await page.locator(".verdict.bad", { hasText: "hex digest" }).waitFor();
  });

  it("the chaos switch turns chaos on and off, and the badge shows it", async () => {
    await page.keyboard.press("3");
    await page.locator("#chaos-status").fill("429");
    await page.locator("#chaos-on").check();
    await page.locator("#chaos-badge:not([hidden])", { hasText: "429" }).waitFor();
    const on = (await (await fetch(`${sandbox.url}/api/chaos`)).json()) as {
      chaos: { incoming?: { status: number } };
    };
    assert.equal(on.chaos.incoming?.status, 429);
    await page.locator("#chaos-on").uncheck();
    await page.locator("#chaos-badge[hidden]").waitFor({ state: "attached" });
    const off = (await (await fetch(`${sandbox.url}/api/chaos`)).json()) as { chaos: object };
    assert.deepEqual(off.chaos, {});
  });
});
