import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { sign } from "../protocol/signature.js";
import { createSimulatorSignature } from "../providers/simulator/index.js";
import { scratchPostgres } from "../store/test-support/databases.js";
import {
  ADMIN_TOKEN,
  CHANNEL_PHONE,
  customerSends,
  eventually,
  json,
  type Loop,
  REAMAZE_SECRET,
  SIM_SECRET,
  startLoop,
} from "./test-support/loop.js";

interface Conversation {
  slug: string;
  thread_ids: string[];
  message_count: number;
  customer: { phone: string };
}
interface Message {
  id: number;
  external_id: string | null;
  direction: string;
  body: string;
  thread_id: string | null;
  status: string;
  webhook: { status: number | null; body: string } | null;
}
interface PhoneMessage {
  direction: "mo" | "mt";
  body: string;
  status: string;
}

const CUSTOMER = "+15105559999";

async function conversations(loop: Loop, phone: string): Promise<Conversation[]> {
  const r = await json<{ conversations: Conversation[] }>(
    await fetch(`${loop.sandbox.url}/api/conversations?customer=${encodeURIComponent(phone)}`),
  );
  return r.conversations.filter((c) => c.customer.phone === phone);
}

async function messagesOf(loop: Loop, slug: string): Promise<Message[]> {
  return (
    await json<{ conversation: { messages: Message[] } } & { messages?: Message[] }>(
      await fetch(`${loop.sandbox.url}/api/conversations/${slug}`),
    )
  ).conversation.messages;
}

async function staffReplies(loop: Loop, slug: string, body: string): Promise<Message> {
  const res = await fetch(`${loop.sandbox.url}/api/conversations/${slug}/messages`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ body }),
  });
  return (await json<{ message: Message }>(res)).message;
}

async function phone(loop: Loop, number: string): Promise<PhoneMessage[]> {
  return (
    await json<{ messages: PhoneMessage[] }>(
      await fetch(`${loop.bridge.url}/simulator/api/messages?phone=${encodeURIComponent(number)}`),
    )
  ).messages;
}

function simulatorWebhook(id: string, from: string, body: string) {
  const bytes = JSON.stringify({
    type: "message",
    id,
    from,
    to: CHANNEL_PHONE,
    body,
    media: [],
    sent_at: new Date().toISOString(),
  });
  const ts = Math.floor(Date.now() / 1000).toString();
  return {
    body: bytes,
    headers: {
      "content-type": "application/json",
      "x-simulator-timestamp": ts,
      "x-simulator-signature": createSimulatorSignature(SIM_SECRET, ts, bytes),
    },
  };
}

function staffWebhook(customer: string, body: string, threadId: string | null) {
  const bytes = JSON.stringify({
    to: { name: "Customer", phone: customer },
    from: { name: "Support", phone: CHANNEL_PHONE },
    body,
    conversation: { slug: "thread-slug" },
    attachments: [],
    created_at: new Date().toISOString(),
    thread_id: threadId,
  });
  return {
    body: bytes,
    headers: { "content-type": "application/json", "X-Reamaze-Hmac-SHA256": sign(bytes, REAMAZE_SECRET) },
  };
}

for (const mode of ["session", "pair", "helpdesk"] as const) {
  describe(`conversation loop, threading ${mode}`, () => {
    let loop: Loop;
    before(async () => {
      loop = await startLoop({ threading: { mode } });
    });
    after(() => loop.close());

    test("customer SMS → conversation; staff reply → phone; the answer lands in the same conversation", async () => {
      await customerSends(loop, CUSTOMER, `hello (${mode})`);
      const [conv] = await eventually("the conversation", async () => {
        const c = await conversations(loop, CUSTOMER);
        return c.length ? c : undefined;
      });
      assert.ok(conv);
      const sent = await staffReplies(loop, conv.slug, "Hi! How can we help?");
      assert.equal(sent.status, "sent", `webhook answer: ${JSON.stringify(sent.webhook)}`);
      assert.equal(sent.webhook?.status, 201);
      const got = await eventually("the reply on the phone", async () => {
        const m = (await phone(loop, CUSTOMER)).find((x) => x.direction === "mt");
        return m;
      });
      assert.equal(got.body, "Hi! How can we help?");
      await customerSends(loop, CUSTOMER, "my order is late");
      const msgs = await eventually("the answer in the same conversation", async () => {
        const c = await conversations(loop, CUSTOMER);
        assert.equal(c.length, 1, "still one conversation");
        const m = await messagesOf(loop, c[0]!.slug);
        return m.length === 3 ? m : undefined;
      });
      assert.deepEqual(
        msgs.map((m) => m.body),
        [`hello (${mode})`, "Hi! How can we help?", "my order is late"],
      );
      const inbound = msgs.filter((m) => m.direction === "inbound");
      if (mode === "helpdesk")
        assert.ok(
          inbound.every((m) => m.thread_id === null),
          "helpdesk mode sends no thread_id",
        );
      else assert.equal(inbound[0]!.thread_id, inbound[1]!.thread_id);
      if (mode === "pair") assert.equal(inbound[0]!.thread_id, `support:${CUSTOMER}`);
    });
  });
}

describe("idempotency", () => {
  let loop: Loop;
  before(async () => {
    loop = await startLoop();
  });
  after(() => loop.close());

  test("the same provider webhook delivered three times → one helpdesk message", async () => {
    const customer = "+15105550001";
    const hook = simulatorWebhook("SMdup0001", customer, "only once please");
    const answers = await Promise.all(
      [1, 2, 3].map(() =>
        fetch(`${loop.bridge.url}/channels/support/inbound`, { method: "POST", ...hook }).then(
          (r) => r.status,
        ),
      ),
    );
    assert.deepEqual(answers, [200, 200, 200]);
    const again = await fetch(`${loop.bridge.url}/channels/support/inbound`, { method: "POST", ...hook });
    assert.equal(again.status, 200);
    const [conv] = await eventually("the conversation", async () => {
      const c = await conversations(loop, customer);
      return c.length ? c : undefined;
    });
    // Give a duplicate every chance to show up before counting.
    await loop.bridge.forwarder.stop();
    loop.bridge.forwarder.start();
    const msgs = await messagesOf(loop, conv!.slug);
    assert.equal(msgs.length, 1);
    assert.equal(msgs[0]!.external_id, "simulator:SMdup0001");
    const stats = await loop.bridge.store.channelStats();
    assert.equal(stats.find((s) => s.channelId === "support")?.pending ?? 0, 0);
  });

  test("the same staff webhook three times → one SMS, the same answer each time", async () => {
    const customer = "+15105550002";
    const hook = staffWebhook(customer, "Your refund is on its way", "thread-x");
    const first = await Promise.all(
      [1, 2].map(() =>
        fetch(`${loop.bridge.url}/channels/support/reamaze`, { method: "POST", ...hook }).then(async (r) => [
          r.status,
          await r.text(),
        ]),
      ),
    );
    const third = await fetch(`${loop.bridge.url}/channels/support/reamaze`, { method: "POST", ...hook });
    const answers = [...first, [third.status, await third.text()]];
    assert.ok(
      answers.every(([s]) => s === 201),
      JSON.stringify(answers),
    );
    assert.equal(new Set(answers.map(([, b]) => b)).size, 1, "every copy gets the first answer");
    const sms = (await phone(loop, customer)).filter((m) => m.direction === "mt");
    assert.equal(sms.length, 1);
    // Every reply that went out has its three phases on /metrics (operations.md), the copies none.
    const metrics = await (await fetch(`${loop.bridge.url}/metrics`)).text();
    const count = (re: RegExp) => Number(re.exec(metrics)?.[1] ?? Number.NaN);
    const sent = count(
      /^smsbridge_provider_sends_total\{channel="support",provider="[^"]+",outcome="sent"\} (\d+)$/m,
    );
    assert.ok(sent >= 1, `provider sends: ${sent}`);
    for (const phase of ["claim", "provider", "record"]) {
      const re = new RegExp(
        `^smsbridge_reply_phase_seconds_count\\{channel="support",phase="${phase}"\\} (\\d+)$`,
        "m",
      );
      assert.equal(count(re), sent, `${phase} observations`);
    }
  });
});

describe("helpdesk faults", () => {
  let loop: Loop;
  before(async () => {
    loop = await startLoop();
  });
  after(() => loop.close());

  test("503 for a while → every message arrives afterwards", async () => {
    const chaos = await fetch(`${loop.sandbox.url}/api/chaos`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ incoming: { status: 503, probability: 1, delay_ms: 0 } }),
    });
    assert.equal(chaos.status, 200);
    const customers = ["+15105550011", "+15105550012", "+15105550013"];
    for (const c of customers) await customerSends(loop, c, `queued for ${c}`);
    await eventually("retries against the 503", async () => {
      const stats = await loop.bridge.store.channelStats();
      const s = stats.find((x) => x.channelId === "support");
      const retried = (await loop.bridge.metrics.forwardAttempts.get()).values.some(
        (v) => v.labels.outcome === "retry" && v.value >= 3,
      );
      return s && s.pending === 3 && retried ? true : undefined;
    });
    assert.equal(
      (await conversations(loop, customers[0]!)).length,
      0,
      "nothing stored by the sandbox during the storm",
    );
    await fetch(`${loop.sandbox.url}/api/chaos`, { method: "DELETE" });
    for (const c of customers) {
      await eventually(`the message of ${c}`, async () =>
        (await conversations(loop, c)).length === 1 ? true : undefined,
      );
    }
  });

  test("422 → dead, listed, replayed after the fix", async () => {
    await fetch(`${loop.sandbox.url}/api/chaos`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ incoming: { status: 422, probability: 1, delay_ms: 0 } }),
    });
    const customer = "+15105550021";
    await customerSends(loop, customer, "this one will be refused");
    const dead = await eventually("the dead message", async () => {
      const d = await loop.bridge.store.listDead({ channelId: "support" });
      return d.length ? d : undefined;
    });
    assert.equal(dead[0]!.last_status, 422);
    assert.match(dead[0]!.last_answer ?? "", /chaos/);
    await fetch(`${loop.sandbox.url}/api/chaos`, { method: "DELETE" });
    assert.equal((await conversations(loop, customer)).length, 0);
    assert.equal(await loop.bridge.store.replayDead({ id: dead[0]!.id }, Date.now()), 1);
    loop.bridge.forwarder.wake();
    await eventually("the replayed message", async () =>
      (await conversations(loop, customer)).length === 1 ? true : undefined,
    );
    assert.equal((await loop.bridge.store.listDead({ channelId: "support" })).length, 0);
  });
});

describe("opt-out and provider faults on staff replies", () => {
  let loop: Loop;
  before(async () => {
    loop = await startLoop({ reply: { deadlineMs: 500 } });
  });
  after(() => loop.close());

  // The same webhook bytes are the same reply (idempotency is per body), so each (customer, text) is built once.
  const hooks = new Map<string, ReturnType<typeof staffWebhook>>();
  async function reply(customer: string, body: string) {
    const key = `${customer}|${body}`;
    const hook = hooks.get(key) ?? staffWebhook(customer, body, null);
    hooks.set(key, hook);
    const r = await fetch(`${loop.bridge.url}/channels/support/reamaze`, { method: "POST", ...hook });
    return { status: r.status, body: (await r.json()) as { error?: string; id?: string } };
  }

  async function faults(next: string[]) {
    const r = await fetch(`${loop.bridge.url}/simulator/api/faults`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ next }),
    });
    assert.equal(r.status, 200);
  }

  test("STOP → the next staff reply is refused with words a person understands, and nothing is sent", async () => {
    const customer = "+15105550031";
    await customerSends(loop, customer, "STOP");
    await eventually("the STOP in the inbox", async () =>
      (await conversations(loop, customer)).length ? true : undefined,
    );
    const r = await reply(customer, "are you sure?");
    assert.equal(r.status, 422);
    assert.match(r.body.error ?? "", /opted out.*STOP.*START/s);
    assert.equal((await phone(loop, customer)).filter((m) => m.direction === "mt").length, 0);
    await customerSends(loop, customer, "start");
    assert.equal((await reply(customer, "welcome back")).status, 201);
  });

  test("provider faults map to 503 (retryable), 422 (permanent, opted out), 504 (deadline)", async () => {
    await faults(["retryable"]);
    const retry = await reply("+15105550041", "first try");
    assert.equal(retry.status, 503);
    assert.equal(
      (await reply("+15105550041", "first try")).status,
      201,
      "a repeat of a retryable failure sends",
    );
    assert.equal(
      (await phone(loop, "+15105550041")).filter((m) => m.direction === "mt" && m.status !== "failed").length,
      1,
    );
    await faults(["permanent"]);
    assert.equal((await reply("+15105550042", "nope")).status, 422);
    await faults(["opted_out"]);
    const opted = await reply("+15105550043", "hello?");
    assert.equal(opted.status, 422);
    assert.match(opted.body.error ?? "", /opted out/);
    assert.equal((await reply("+15105550043", "another")).status, 422, "the carrier's opt-out is remembered");
    await fetch(`${loop.bridge.url}/simulator/api/faults`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ slow: { probability: 1, delay_ms: 1500 } }),
    });
    const slow = await reply("+15105550044", "slowly");
    assert.equal(slow.status, 504);
    await fetch(`${loop.bridge.url}/simulator/api/faults`, { method: "DELETE" });
    const repeat = await reply("+15105550044", "slowly");
    assert.equal(repeat.status, 504, "an unknown outcome is never sent again");
  });

  test("POST /api/messages sends through the channel and logs it to the helpdesk as outbound", async () => {
    const customer = "+15105550051";
    const unauth = await fetch(`${loop.bridge.url}/api/messages`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer wrong" },
      body: JSON.stringify({ to: customer, body: "x" }),
    });
    assert.equal(unauth.status, 401);
    const res = await fetch(`${loop.bridge.url}/api/messages`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${ADMIN_TOKEN}` },
      body: JSON.stringify({ to: customer, body: "Your order shipped" }),
    });
    assert.equal(res.status, 201, await res.clone().text());
    assert.equal((await phone(loop, customer)).filter((m) => m.direction === "mt").length, 1);
    const [conv] = await eventually("the outbound copy in the inbox", async () => {
      const c = await conversations(loop, customer);
      return c.length ? c : undefined;
    });
    const msgs = await messagesOf(loop, conv!.slug);
    assert.equal(msgs[0]!.direction, "outbound");
    assert.equal(msgs[0]!.body, "Your order shipped");
  });
});

describe("the loop on PostgreSQL", () => {
  let loop: Loop;
  let scratch: Awaited<ReturnType<typeof scratchPostgres>>;
  before(async () => {
    scratch = await scratchPostgres();
    loop = await startLoop({ database: scratch.url });
  });
  after(async () => {
    await loop.close();
    await scratch.drop();
  });

  test("customer SMS → conversation → staff reply → phone", async () => {
    const customer = "+15105550061";
    await customerSends(loop, customer, "hello from postgres");
    const [conv] = await eventually("the conversation", async () => {
      const c = await conversations(loop, customer);
      return c.length ? c : undefined;
    });
    const sent = await staffReplies(loop, conv!.slug, "hello back");
    assert.equal(sent.status, "sent");
    assert.equal((await phone(loop, customer)).filter((m) => m.direction === "mt").length, 1);
  });
});
