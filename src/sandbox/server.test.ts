import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { sign } from "../protocol/signature.js";
import type { SandboxConfigInput } from "./config.js";
import type { ApiConversation, ApiMessage, RequestEntry } from "./model.js";
import { type RunningSandbox, startSandbox } from "./server.js";
import { api, postIncoming, startReceiver, type WebhookReceiver } from "./test-support/helpers.js";

// The seed's "Creating the SMS in Re:amaze" example, as a fixture.
const seedPayload = JSON.parse(
  readFileSync(new URL("./testdata/seed-incoming.json", import.meta.url), "utf8"),
) as {
  [k: string]: unknown;
};

const SUPPORT = "+16501234567";
const SALES = "+16505550123";
const CUSTOMER = "+15105559999";
const NEW_SECRET = "my_shared_secret";
const OLD_SECRET = "old_shared_secret";
const SALES_SECRET = "sales_secret";

type Conversations = { conversations: ApiConversation[] };
type ConversationDetail = { conversation: ApiConversation & { messages: ApiMessage[] } };
type ReplyAnswer = { message: ApiMessage; conversation: ApiConversation; error?: string };

let sandbox: RunningSandbox;
let receiver: WebhookReceiver;
let base: string;
let n = 0;
const nextId = () => `sms-${++n}`;

function sms(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: nextId(),
    to: { name: "Support", phone: SUPPORT },
    from: { name: "Customer name", phone: CUSTOMER },
    body: "Hello",
    ...over,
  };
}

async function conversation(slug: string) {
  const r = await api<ConversationDetail>(base, "GET", `/api/conversations/${slug}`);
  assert.equal(r.status, 200);
  return r.json.conversation;
}

async function slugOf(answer: { json: Record<string, unknown> }): Promise<string> {
  return (answer.json.conversation as { slug: string }).slug;
}

async function lastRequest(): Promise<RequestEntry> {
  const r = await api<{ requests: RequestEntry[] }>(base, "GET", "/api/requests?limit=1");
  return r.json.requests[0] as RequestEntry;
}

describe("sandbox over real HTTP", () => {
  before(async () => {
    receiver = await startReceiver([NEW_SECRET]);
    const config: SandboxConfigInput = {
      channels: [
        { name: "Support", phone: SUPPORT, secrets: [NEW_SECRET, OLD_SECRET], webhookUrl: receiver.url },
        { name: "Sales", phone: SALES, secret: SALES_SECRET },
      ],
      staff: [
        { name: "Staff", email: "staffemail@example.com" },
        { name: "Ana", email: "ana@example.com" },
      ],
    };
    sandbox = await startSandbox({ port: 0, config, bodyLimit: 4096, webhookTimeoutMs: 3000 });
    base = sandbox.url;
  });
  after(async () => {
    await sandbox.close();
    await receiver.close();
  });
  beforeEach(async () => {
    await api(base, "DELETE", "/api/data");
    await api(base, "DELETE", "/api/clock");
    await api(base, "DELETE", "/api/chaos");
    receiver.received.length = 0;
    receiver.answer = { status: 201, body: '{"id":"sent-1"}' };
  });

  describe("POST /incoming/sms answers", () => {
    it("2xx for the seed's own example, stored with thread, created_at, attachments and assignee", async () => {
      const r = await postIncoming(base, seedPayload, NEW_SECRET);
      assert.equal(r.status, 201, JSON.stringify(r.json));
      const c = await conversation(await slugOf(r));
      assert.deepEqual(c.customer, { name: "Customer name", phone: CUSTOMER });
      assert.deepEqual(c.thread_ids, ["sms-conversation-id-123"]);
      assert.deepEqual(c.assignee, { name: "Staff", email: "staffemail@example.com" });
      assert.equal(c.channel.name, "Support");
      const m = c.messages[0] as ApiMessage;
      assert.equal(m.body, "This is the SMS message body");
      assert.equal(m.created_at, "2019-08-06T23:21:15+0000");
      assert.deepEqual(m.attachments, ["https://www.example.com/image1.png"]);
      assert.equal(m.direction, "inbound");
      assert.equal(m.external_id, "sms-message-id");
    });

    const cases: Array<{
      name: string;
      status: number;
      raw?: string;
      payload?: Record<string, unknown>;
      secret?: string;
      header?: string;
      error: RegExp;
    }> = [
      {
        name: "400 malformed JSON",
        status: 400,
        raw: '{"id": "1",',
        secret: NEW_SECRET,
        error: /malformed JSON/,
      },
      { name: "401 missing signature", status: 401, payload: sms(), error: /missing X-Reamaze-Hmac-SHA256/ },
      {
        name: "401 wrong secret",
        status: 401,
        payload: sms(),
        secret: "not_the_secret",
        error: /does not match/,
      },
      {
        name: "401 signed by another channel's secret",
        status: 401,
        payload: sms(),
        secret: SALES_SECRET,
        error: /does not match/,
      },
      {
        name: "404 unknown channel number",
        status: 404,
        payload: sms({ to: { phone: "+14155550000" } }),
        secret: NEW_SECRET,
        error: /no channel has the number \+14155550000/,
      },
      {
        name: "422 schema errors name the fields",
        status: 422,
        payload: {
          id: "",
          to: { phone: SUPPORT },
          from: { phone: "5105559999" },
          body: 5,
          created_at: "yesterday",
        },
        secret: NEW_SECRET,
        error:
          /id: id must not be empty.*from\.phone: not E\.164.*body: must be a string.*created_at: not ISO 8601/,
      },
      {
        name: "422 channel number missing",
        status: 422,
        payload: { id: "x", from: { phone: CUSTOMER }, body: "hi" },
        secret: NEW_SECRET,
        error: /to\.phone: required/,
      },
      {
        name: "413 over the body limit",
        status: 413,
        payload: sms({ body: "x".repeat(5000) }),
        secret: NEW_SECRET,
        error: /larger than the limit of 4096 bytes/,
      },
    ];
    for (const c of cases) {
      it(c.name, async () => {
        const r = await postIncoming(base, c.payload, c.secret, {
          ...(c.raw ? { raw: c.raw } : {}),
          ...(c.header ? { header: c.header } : {}),
        });
        assert.equal(r.status, c.status, JSON.stringify(r.json));
        assert.match(String(r.json.error), c.error);
        const list = await api<Conversations>(base, "GET", "/api/conversations");
        assert.equal(list.json.conversations.length, 0, "nothing stored");
        const logged = await lastRequest();
        assert.equal(logged.status, c.status);
        assert.equal(logged.kind, "incoming");
      });
    }

    it("422 lists every failing field in `errors`", async () => {
      const r = await postIncoming(base, { id: "x", to: { phone: SUPPORT }, from: {}, body: 5 }, NEW_SECRET);
      assert.equal(r.status, 422);
      const paths = (r.json.errors as Array<{ path: string }>).map((e) => e.path).sort();
      assert.deepEqual(paths, ["body", "from.phone"]);
    });

    it("accepts the old secret during rotation and logs which one matched", async () => {
      const r = await postIncoming(base, sms(), OLD_SECRET);
      assert.equal(r.status, 201);
      const logged = await lastRequest();
      assert.equal(logged.signature?.ok, true);
      assert.equal(logged.signature?.matched_secret_index, 1);
    });

    it("accepts Ruby's encode64 signature with its trailing newline", async () => {
      const p = sms();
      const r = await postIncoming(base, p, undefined, {
        header: `${sign(JSON.stringify(p), NEW_SECRET)}\n`,
      });
      assert.equal(r.status, 201);
    });

    it("accepts a body without a content-type", async () => {
      const bytes = JSON.stringify(sms());
      const res = await fetch(`${base}/incoming/sms`, {
        method: "POST",
        body: Buffer.from(bytes),
        headers: { "X-Reamaze-Hmac-SHA256": sign(bytes, NEW_SECRET) },
      });
      assert.equal(res.status, 201);
    });
  });

  describe("request log and signature debugger", () => {
    const mistakes: Array<{
      name: string;
      header: (bytes: string) => string;
      bytes?: (p: object) => string;
      mistake: string;
      answer: RegExp;
    }> = [
      {
        name: "hex digest",
        header: (b) => Buffer.from(sign(b, NEW_SECRET), "base64").toString("hex"),
        mistake: "hex-digest",
        answer: /not a base64 SHA-256 HMAC/,
      },
      {
        name: "re-serialised body",
        bytes: (p) => JSON.stringify(p, null, 2),
        header: (b) => sign(JSON.stringify(JSON.parse(b)), NEW_SECRET),
        mistake: "reserialised-body",
        answer: /does not match/,
      },
      {
        name: "wrong secret",
        header: (b) => sign(b, "nope"),
        mistake: "wrong-secret",
        answer: /does not match/,
      },
    ];
    for (const m of mistakes) {
      it(`names the likely mistake: ${m.name}`, async () => {
        const p = sms();
        const bytes = m.bytes ? m.bytes(p) : JSON.stringify(p);
        const header = m.header(bytes);
        const r = await postIncoming(base, undefined, undefined, { raw: bytes, header });
        assert.equal(r.status, 401);
        const logged = await lastRequest();
        assert.equal(logged.signature?.mistake, m.mistake);
        assert.equal(logged.signature?.received, header);
        assert.equal(logged.signature?.expected, sign(bytes, NEW_SECRET));
        assert.equal(logged.body, bytes);
        assert.equal(logged.headers["x-reamaze-hmac-sha256"], header);
        assert.match(logged.answer, m.answer);
        const detail = await api<{ request: RequestEntry }>(base, "GET", `/api/requests/${logged.id}`);
        assert.equal(detail.json.request.signature?.mistake, m.mistake);
      });
    }

    it("GET /api/requests/:id answers 404 for an unknown entry", async () => {
      const r = await api(base, "GET", "/api/requests/999999");
      assert.equal(r.status, 404);
      assert.match(String(r.json.error), /no request 999999/);
    });
  });

  describe("idempotency, direction, assignment", () => {
    it("a repeated id on a channel is answered 2xx and stores nothing new", async () => {
      const p = sms();
      const first = await postIncoming(base, p, NEW_SECRET);
      const again = await postIncoming(base, { ...p, body: "changed" }, NEW_SECRET);
      assert.equal(first.status, 201);
      assert.equal(again.status, 200);
      assert.equal(again.json.duplicate, true);
      const c = await conversation(await slugOf(first));
      assert.equal(c.message_count, 1);
      assert.equal(c.messages.length, 1);
      assert.equal(c.messages[0]?.body, "Hello");
    });

    it("the same id on another channel is another message", async () => {
      const id = nextId();
      const a = await postIncoming(base, sms({ id }), NEW_SECRET);
      const b = await postIncoming(base, sms({ id, to: { phone: SALES } }), SALES_SECRET);
      assert.equal(a.status, 201);
      assert.equal(b.status, 201);
      assert.notEqual(await slugOf(a), await slugOf(b));
    });

    it("direction outbound: channel from from.phone, stored staff-side, no webhook", async () => {
      const inbound = await postIncoming(base, sms({ thread_id: "t-out" }), NEW_SECRET);
      const r = await postIncoming(
        base,
        {
          id: nextId(),
          direction: "outbound",
          to: { name: "Customer name", phone: CUSTOMER },
          from: { name: "Support", phone: SUPPORT },
          body: "Sent from the phone app",
          thread_id: "t-out",
        },
        NEW_SECRET,
      );
      assert.equal(r.status, 201, JSON.stringify(r.json));
      assert.equal(await slugOf(r), await slugOf(inbound));
      const c = await conversation(await slugOf(r));
      assert.deepEqual(
        c.messages.map((m) => [m.direction, m.author.kind]),
        [
          ["inbound", "customer"],
          ["outbound", "channel"],
        ],
      );
      assert.equal(receiver.received.length, 0, "no webhook for direction outbound");
    });

    it("direction outbound with an unknown from.phone is 404", async () => {
      const r = await postIncoming(
        base,
        { id: nextId(), direction: "outbound", to: { phone: SUPPORT }, from: { phone: CUSTOMER }, body: "x" },
        NEW_SECRET,
      );
      assert.equal(r.status, 404);
      assert.match(String(r.json.error), /from\.phone/);
    });

    it("assignee: matching email assigns, unknown is ignored and noted, absence never unassigns", async () => {
      const a = await postIncoming(
        base,
        sms({ thread_id: "t-a", assignee: { email: "ANA@example.com" } }),
        NEW_SECRET,
      );
      const slug = await slugOf(a);
      assert.equal((await conversation(slug)).assignee?.email, "ana@example.com");

      const b = await postIncoming(
        base,
        sms({ thread_id: "t-a", assignee: { email: "ghost@example.com" } }),
        NEW_SECRET,
      );
      assert.equal(b.status, 201);
      assert.equal((await conversation(slug)).assignee?.email, "ana@example.com");
      const logged = await lastRequest();
      assert.ok(
        logged.notes.some((n) => n.includes("ghost@example.com is not a staff user")),
        logged.notes.join(" | "),
      );

      await postIncoming(base, sms({ thread_id: "t-a" }), NEW_SECRET);
      assert.equal((await conversation(slug)).assignee?.email, "ana@example.com");

      const other = await postIncoming(
        base,
        sms({ thread_id: "t-a", assignee: { email: "staffemail@example.com" } }),
        NEW_SECRET,
      );
      assert.equal(other.status, 201);
      assert.equal((await conversation(slug)).assignee?.email, "staffemail@example.com");
    });
  });

  describe("threading", () => {
    it("same thread_id groups, another thread_id is another conversation", async () => {
      const a = await postIncoming(base, sms({ thread_id: "t-1" }), NEW_SECRET);
      const b = await postIncoming(base, sms({ thread_id: "t-1" }), NEW_SECRET);
      const c = await postIncoming(base, sms({ thread_id: "t-2" }), NEW_SECRET);
      assert.equal(await slugOf(a), await slugOf(b));
      assert.notEqual(await slugOf(a), await slugOf(c));
      assert.equal((await conversation(await slugOf(a))).message_count, 2);
    });

    it("no thread_id: joins the conversation whose last message is under an hour old; at one hour, a new one", async () => {
      const t0 = Date.parse("2026-03-01T12:00:00Z");
      const at = (ms: number) => api(base, "PUT", "/api/clock", { now: new Date(t0 + ms).toISOString() });
      await at(0);
      const first = await postIncoming(base, sms(), NEW_SECRET);
      await at(60 * 60 * 1000 - 1);
      const within = await postIncoming(base, sms(), NEW_SECRET);
      assert.equal(
        await slugOf(within),
        await slugOf(first),
        "59:59.999 after the last message: same conversation",
      );
      // The window runs from the *last* message: exactly one hour after it is no longer "less than an hour".
      await at(2 * 60 * 60 * 1000 - 1);
      const boundary = await postIncoming(base, sms(), NEW_SECRET);
      assert.notEqual(
        await slugOf(boundary),
        await slugOf(first),
        "one hour after the last message: new conversation",
      );
      const list = await api<Conversations>(base, "GET", "/api/conversations");
      assert.equal(list.json.conversations.length, 2);
    });

    it("advance_ms moves the test clock; the window counts staff replies too", async () => {
      await api(base, "PUT", "/api/clock", { now: "2026-03-01T12:00:00Z" });
      const first = await postIncoming(base, sms(), NEW_SECRET);
      await api(base, "PUT", "/api/clock", { advance_ms: 50 * 60 * 1000 });
      const reply = await api<ReplyAnswer>(
        base,
        "POST",
        `/api/conversations/${await slugOf(first)}/messages`,
        {
          body: "On it",
        },
      );
      assert.equal(reply.json.message.status, "sent");
      const clock = await api<{ clock: { now: string; fixed: boolean } }>(base, "PUT", "/api/clock", {
        advance_ms: 50 * 60 * 1000,
      });
      assert.deepEqual(clock.json.clock, { now: "2026-03-01T13:40:00.000Z", fixed: true });
      const later = await postIncoming(base, sms(), NEW_SECRET);
      assert.equal(await slugOf(later), await slugOf(first), "50 min after the staff reply");
    });

    it("messages are ordered by created_at, not arrival", async () => {
      const a = await postIncoming(
        base,
        sms({ thread_id: "t-o", body: "second", created_at: "2026-01-01T10:05:00Z" }),
        NEW_SECRET,
      );
      await postIncoming(
        base,
        sms({ thread_id: "t-o", body: "first", created_at: "2026-01-01T11:00:00+0200" }),
        NEW_SECRET,
      );
      const c = await conversation(await slugOf(a));
      assert.deepEqual(
        c.messages.map((m) => m.body),
        ["first", "second"],
      );
      assert.equal(c.messages[0]?.created_at, "2026-01-01T11:00:00+0200");
    });

    it("another customer never joins a conversation", async () => {
      const a = await postIncoming(base, sms(), NEW_SECRET);
      const b = await postIncoming(base, sms({ from: { phone: "+15105550000" } }), NEW_SECRET);
      assert.notEqual(await slugOf(a), await slugOf(b));
    });
  });

  describe("staff replies", () => {
    it("fires the signed webhook with the seed's fields and shows sent", async () => {
      const inbound = await postIncoming(
        base,
        sms({ thread_id: "t-r", attachments: ["https://example.com/a.png"] }),
        NEW_SECRET,
      );
      const slug = await slugOf(inbound);
      const r = await api<ReplyAnswer>(base, "POST", `/api/conversations/${slug}/messages`, {
        body: "Thanks, we are on it",
        attachments: ["https://example.com/label.pdf"],
        staff_email: "ana@example.com",
      });
      assert.equal(r.status, 201);
      assert.equal(r.json.message.status, "sent");
      assert.equal(r.json.message.webhook?.status, 201);
      assert.equal(r.json.message.webhook?.body, '{"id":"sent-1"}');
      assert.equal(r.json.message.author.email, "ana@example.com");
      assert.equal(receiver.received.length, 1);
      const got = receiver.received[0];
      assert.ok(got?.verified, "the receiver verified X-Reamaze-Hmac-SHA256 with the channel's first secret");
      const payload = got?.json as Record<string, unknown>;
      assert.deepEqual(Object.keys(payload), [
        "to",
        "from",
        "body",
        "conversation",
        "attachments",
        "created_at",
        "thread_id",
      ]);
      assert.deepEqual(payload.to, { name: "Customer name", phone: CUSTOMER });
      assert.deepEqual(payload.from, { name: "Support", phone: SUPPORT });
      assert.deepEqual(payload.conversation, { slug });
      assert.deepEqual(payload.attachments, ["https://example.com/label.pdf"]);
      assert.equal(payload.thread_id, "t-r");
      assert.equal(payload.created_at, r.json.message.created_at);
      const logged = await lastRequest();
      assert.equal(logged.kind, "webhook");
      assert.equal(logged.status, 201);
      assert.equal(logged.body, got?.bytes.toString("utf8"));
    });

    it("without a thread the webhook's thread_id is null", async () => {
      const slug = await slugOf(await postIncoming(base, sms(), NEW_SECRET));
      await api(base, "POST", `/api/conversations/${slug}/messages`, { body: "x" });
      const sent = receiver.received[0]?.json as { thread_id: unknown } | undefined;
      assert.equal(sent?.thread_id, null);
    });

    const failures: Array<{ name: string; status: number; body: string; error: RegExp }> = [
      { name: "500", status: 500, body: '{"error":"provider down"}', error: /answered 500/ },
      { name: "422", status: 422, body: '{"error":"opted out"}', error: /answered 422/ },
      { name: "202 (only 200/201 mean sent)", status: 202, body: "queued", error: /only 200 or 201/ },
    ];
    for (const f of failures) {
      it(`shows failed with the answer when the webhook answers ${f.name}, and a retry can send it`, async () => {
        const slug = await slugOf(await postIncoming(base, sms(), NEW_SECRET));
        receiver.answer = { status: f.status, body: f.body };
        const r = await api<ReplyAnswer>(base, "POST", `/api/conversations/${slug}/messages`, { body: "Hi" });
        assert.equal(r.json.message.status, "failed");
        assert.equal(r.json.message.webhook?.status, f.status);
        assert.equal(r.json.message.webhook?.body, f.body);
        assert.match(String(r.json.message.webhook?.error), f.error);

        receiver.answer = { status: 200, body: "ok" };
        const retried = await api<ReplyAnswer>(base, "POST", `/api/messages/${r.json.message.id}/retry`);
        assert.equal(retried.status, 200);
        assert.equal(retried.json.message.status, "sent");
        assert.equal(retried.json.message.attempts, 2);
        assert.deepEqual(
          receiver.received[1]?.bytes,
          receiver.received[0]?.bytes,
          "a retry sends the same bytes",
        );

        const again = await api(base, "POST", `/api/messages/${r.json.message.id}/retry`);
        assert.equal(again.status, 409, "a sent message is never sent twice");
      });
    }

    it("fails with the reason when nothing listens at the webhook URL", async () => {
      const down = await startReceiver([NEW_SECRET]);
      await down.close();
      const s = await startSandbox({
        port: 0,
        config: { channels: [{ name: "Down", phone: SUPPORT, secret: NEW_SECRET, webhookUrl: down.url }] },
      });
      try {
        const slug = await slugOf(await postIncoming(s.url, sms(), NEW_SECRET));
        const r = await api<ReplyAnswer>(s.url, "POST", `/api/conversations/${slug}/messages`, {
          body: "Hi",
        });
        assert.equal(r.json.message.status, "failed");
        assert.equal(r.json.message.webhook?.status, null);
        assert.match(String(r.json.message.webhook?.error), /network error|ECONNREFUSED/);
      } finally {
        await s.close();
      }
    });

    it("fails when the channel has no webhook URL", async () => {
      const slug = await slugOf(await postIncoming(base, sms({ to: { phone: SALES } }), SALES_SECRET));
      const r = await api<ReplyAnswer>(base, "POST", `/api/conversations/${slug}/messages`, { body: "Hi" });
      assert.equal(r.json.message.status, "failed");
      assert.match(String(r.json.message.webhook?.error), /no webhookUrl/);
    });

    const bad: Array<{ name: string; body: unknown; status: number; error: RegExp; slug?: string }> = [
      { name: "empty body", body: { body: " " }, status: 422, error: /body: empty/ },
      {
        name: "unknown staff",
        body: { body: "x", staff_email: "x@y.z" },
        status: 422,
        error: /not a staff user/,
      },
      {
        name: "bad attachment",
        body: { body: "x", attachments: ["ftp://x"] },
        status: 422,
        error: /attachments\.0/,
      },
      {
        name: "unknown conversation",
        body: { body: "x" },
        status: 404,
        error: /no conversation nope/,
        slug: "nope",
      },
    ];
    for (const b of bad) {
      it(`rejects a reply: ${b.name}`, async () => {
        const slug = b.slug ?? (await slugOf(await postIncoming(base, sms(), NEW_SECRET)));
        const r = await api(base, "POST", `/api/conversations/${slug}/messages`, b.body);
        assert.equal(r.status, b.status);
        assert.match(String(r.json.error), b.error);
        assert.equal(receiver.received.length, 0);
      });
    }
  });

  describe("API", () => {
    it("GET /api/channels lists channels with webhook URLs and no secrets", async () => {
      const r = await api<{ channels: Array<Record<string, unknown>> }>(base, "GET", "/api/channels");
      assert.deepEqual(r.json.channels[0], {
        id: "support",
        name: "Support",
        phone: SUPPORT,
        webhook_url: receiver.url,
        secrets: 2,
      });
      assert.ok(!JSON.stringify(r.json).includes(NEW_SECRET));
    });

    it("filters conversations by channel, customer, assignee and text", async () => {
      await postIncoming(
        base,
        sms({ body: "Where is my parcel?", assignee: { email: "ana@example.com" } }),
        NEW_SECRET,
      );
      await postIncoming(
        base,
        sms({ from: { name: "Bo", phone: "+447700900123" }, body: "Refund please" }),
        NEW_SECRET,
      );
      await postIncoming(base, sms({ to: { phone: SALES }, body: "Price list?" }), SALES_SECRET);
      const q = async (query: string) =>
        (await api<Conversations>(base, "GET", `/api/conversations?${query}`)).json.conversations.map(
          (c) => c.last_message?.body,
        );
      assert.deepEqual(await q("channel=sales"), ["Price list?"]);
      assert.deepEqual(await q(`channel=${encodeURIComponent(SALES)}`), ["Price list?"]);
      assert.deepEqual(await q("customer=447700900123"), ["Refund please"]);
      assert.deepEqual(await q("assignee=ana@example.com"), ["Where is my parcel?"]);
      assert.deepEqual((await q("assignee=none")).sort(), ["Price list?", "Refund please"]);
      assert.deepEqual(await q("q=parcel"), ["Where is my parcel?"]);
      assert.deepEqual(await q("q=Bo"), ["Refund please"]);
      assert.deepEqual(await q("channel=nope"), []);
      assert.equal((await q("")).length, 3);
    });

    it("PUT /api/conversations/:slug/assignee assigns and unassigns", async () => {
      const slug = await slugOf(await postIncoming(base, sms(), NEW_SECRET));
      const r = await api<{ conversation: ApiConversation }>(
        base,
        "PUT",
        `/api/conversations/${slug}/assignee`,
        {
          email: "ana@example.com",
        },
      );
      assert.equal(r.json.conversation.assignee?.name, "Ana");
      const u = await api<{ conversation: ApiConversation }>(
        base,
        "PUT",
        `/api/conversations/${slug}/assignee`,
        {
          email: null,
        },
      );
      assert.equal(u.json.conversation.assignee, null);
    });

    it("chaos answers the configured status with Retry-After, then stops", async () => {
      const bad = await api(base, "PUT", "/api/chaos", { incoming: { status: 503, probability: 2 } });
      assert.equal(bad.status, 422);
      assert.match(String(bad.json.error), /incoming\.probability/);
      const set = await api(base, "PUT", "/api/chaos", {
        incoming: { status: 503, probability: 1, retry_after: 7 },
      });
      assert.equal(set.status, 200);
      const p = sms();
      const r = await postIncoming(base, p, NEW_SECRET);
      assert.equal(r.status, 503);
      assert.equal(r.headers.get("retry-after"), "7");
      assert.match(String(r.json.error), /chaos/);
      assert.equal((await lastRequest()).chaos, true);
      assert.equal(
        (await api<Conversations>(base, "GET", "/api/conversations")).json.conversations.length,
        0,
      );
      await api(base, "DELETE", "/api/chaos");
      const ok = await postIncoming(base, p, NEW_SECRET);
      assert.equal(ok.status, 201, "the retried request goes through");
    });

    it("chaos with probability 0 never fires", async () => {
      await api(base, "PUT", "/api/chaos", { incoming: { status: 500, probability: 0 } });
      for (let i = 0; i < 5; i++) assert.equal((await postIncoming(base, sms(), NEW_SECRET)).status, 201);
    });

    it("rejects a clock without a time", async () => {
      const r = await api(base, "PUT", "/api/clock", { now: "tomorrow" });
      assert.equal(r.status, 422);
      assert.match(String(r.json.error), /now: not ISO 8601/);
    });

    it("DELETE /api/data empties conversations and the request log", async () => {
      await postIncoming(base, sms(), NEW_SECRET);
      await api(base, "DELETE", "/api/data");
      assert.equal(
        (await api<Conversations>(base, "GET", "/api/conversations")).json.conversations.length,
        0,
      );
      const reqs = await api<{ requests: unknown[] }>(base, "GET", "/api/requests");
      assert.equal(reqs.json.requests.length, 0);
    });

    it("GET /api/events streams every change as Server-Sent Events", async () => {
      const ctl = new AbortController();
      const res = await fetch(`${base}/api/events`, { signal: ctl.signal });
      assert.equal(res.headers.get("content-type"), "text/event-stream; charset=utf-8");
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      let text = "";
      const waitFor = async (what: string) => {
        while (!text.includes(what)) {
          const { value, done } = await reader.read();
          if (done) throw new Error(`stream ended before ${what}`);
          text += Buffer.from(value).toString("utf8");
        }
      };
      await waitFor("event: hello");
      const r = await postIncoming(base, sms({ body: "live!" }), NEW_SECRET);
      await waitFor("event: request.logged");
      await waitFor('"body":"live!"');
      assert.match(text, /event: message\.created\ndata: \{"type":"message\.created"/);
      await api(base, "PUT", "/api/chaos", { incoming: { status: 500 } });
      await waitFor("event: chaos.changed");
      await api(base, "POST", `/api/conversations/${await slugOf(r)}/messages`, { body: "reply" });
      await waitFor("event: message.updated");
      ctl.abort();
    });

    it("serves the inbox UI and its assets at /", async () => {
      for (const [path, type] of [
        ["/", "text/html"],
        ["/assets/app.js", "text/javascript"],
        ["/assets/app.css", "text/css"],
      ] as const) {
        const res = await fetch(`${base}${path}`);
        assert.equal(res.status, 200, path);
        assert.match(String(res.headers.get("content-type")), new RegExp(type));
        assert.ok((await res.text()).length > 100);
      }
      assert.equal((await fetch(`${base}/assets/..%2Fpackage.json`)).status, 404);
      const html = await (await fetch(`${base}/`)).text();
      assert.ok(
        !/https?:\/\/(?!127\.0\.0\.1)[a-z]/i.test(html.replace(/xmlns="[^"]+"/g, "")),
        "no CDN links",
      );
    });

    it("unknown API routes answer JSON 404", async () => {
      const r = await api(base, "GET", "/api/nope");
      assert.equal(r.status, 404);
      assert.match(String(r.json.error), /no route GET \/api\/nope/);
    });
  });
});

describe("sandbox with --db", () => {
  it("keeps conversations, messages, requests and the demo secret across a restart", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sandbox-db-"));
    const dbFile = join(dir, "sandbox.db");
    try {
      const first = await startSandbox({ port: 0, dbFile, env: {} });
      const secret = first.config.channels[0]?.secrets[0] as string;
      const phone = first.config.channels[0]?.phone as string;
      const p = {
        id: "persist-1",
        to: { phone },
        from: { phone: CUSTOMER },
        body: "Still there?",
        thread_id: "t-p",
      };
      assert.equal((await postIncoming(first.url, p, secret)).status, 201);
      await first.close();

      const second = await startSandbox({ port: 0, dbFile, env: {} });
      try {
        assert.equal(second.config.channels[0]?.secrets[0], secret, "the demo secret survives the restart");
        const list = await api<Conversations>(second.url, "GET", "/api/conversations");
        assert.equal(list.json.conversations.length, 1);
        assert.equal(list.json.conversations[0]?.last_message?.body, "Still there?");
        assert.equal(
          (await api<{ requests: unknown[] }>(second.url, "GET", "/api/requests")).json.requests.length,
          1,
        );
        const dup = await postIncoming(second.url, p, secret);
        assert.equal(dup.status, 200, "ids stay idempotent across restarts");
        const more = await postIncoming(second.url, { ...p, id: "persist-2" }, secret);
        assert.equal(await slugOf(more), list.json.conversations[0]?.slug, "thread_id still maps");
      } finally {
        await second.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("without --db each start begins empty", async () => {
    const a = await startSandbox({ port: 0, env: {} });
    const secret = a.config.channels[0]?.secrets[0] as string;
    const phone = a.config.channels[0]?.phone as string;
    await postIncoming(a.url, { id: "m", to: { phone }, from: { phone: CUSTOMER }, body: "x" }, secret);
    await a.close();
    const b = await startSandbox({ port: 0, env: {} });
    try {
      assert.equal(
        (await api<Conversations>(b.url, "GET", "/api/conversations")).json.conversations.length,
        0,
      );
      assert.notEqual(b.config.channels[0]?.secrets[0], secret, "a fresh demo secret per start");
    } finally {
      await b.close();
    }
  });

  it("the demo channel takes its webhook URL and secret from SMSBRIDGE_SANDBOX_* env", async () => {
    const s = await startSandbox({
      port: 0,
      env: {
        SMSBRIDGE_SANDBOX_SECRET: "envsecret",
        SMSBRIDGE_SANDBOX_WEBHOOK_URL: "http://127.0.0.1:9/hook",
      },
    });
    try {
      assert.equal(s.demo, true);
      assert.deepEqual(s.config.channels[0]?.secrets, ["envsecret"]);
      assert.equal(s.config.channels[0]?.webhookUrl, "http://127.0.0.1:9/hook");
      assert.deepEqual(s.config.staff.length, 1);
    } finally {
      await s.close();
    }
  });
});
