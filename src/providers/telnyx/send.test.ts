import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { after, before, test } from "node:test";
import { countSegments } from "../../core/segments.js";
import { createHarness, type RecordedRequest, type StandIn, startStandIn } from "../test-support/harness.js";
import type { OutgoingSms, SendResult } from "../types.js";
import { classifyTelnyxAnswer, publicKeyBase64, splitTelnyxBody, telnyxProvider } from "./index.js";

const API_KEY = "KEY017A3F_send_test_api_key_never_in_logs";
const PUBLIC_KEY = publicKeyBase64(generateKeyPairSync("ed25519").publicKey);
const PROFILE = "4000eba1-a0c0-4563-9925-b25e842a7cb6";

const text = (name: string) => readFileSync(new URL(`./testdata/${name}`, import.meta.url), "utf8");
const ACCEPTED = text("send-accepted.json");

let standIn: StandIn;
before(async () => {
  standIn = await startStandIn();
});
after(() => standIn.close());

function setup(extra: Record<string, unknown> = {}) {
  standIn.requests.length = 0;
  const h = createHarness();
  const cfg = telnyxProvider.config.parse({
    apiKey: API_KEY,
    publicKey: PUBLIC_KEY,
    messagingProfileId: PROFILE,
    apiBaseUrl: standIn.url,
    ...extra,
  });
  const a = telnyxProvider.create(cfg, h.ctx);
  const done = () => {
    h.assertNoSecretsLogged([API_KEY, `Bearer ${API_KEY}`]);
    h.assertNoRealNetwork();
  };
  return { h, a, done };
}

const SMS: OutgoingSms = {
  from: "+18445550001",
  to: "+18665550001",
  body: "Hello, World!",
  mediaUrls: [],
  statusCallbackUrl: "https://sms.example.com/channels/support/status",
};

function signal() {
  return AbortSignal.timeout(10_000);
}

function json(req: RecordedRequest): Record<string, unknown> {
  return JSON.parse(req.body.toString("utf8"));
}

/** Answers like Telnyx: every accepted part gets its own id. */
function acceptAll(ids: string[] = []) {
  let n = 0;
  standIn.answer((_req, res) => {
    const body = JSON.parse(ACCEPTED);
    body.data.id = ids[n] ?? `part-${n + 1}`;
    n++;
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
  });
}

function answer(status: number, body: string, headers: Record<string, string> = {}) {
  standIn.answer((_req, res) => {
    res.writeHead(status, { "content-type": "application/json", ...headers }).end(body);
  });
}

test("send: accepted SMS, exact request Telnyx receives", async () => {
  const { a, done } = setup();
  acceptAll(["40385f64-5717-4562-b3fc-2c963f66afa6"]);
  const r = await a.send(SMS, { signal: signal() });
  assert.deepEqual(r, { kind: "sent", providerId: "40385f64-5717-4562-b3fc-2c963f66afa6" });
  assert.equal(standIn.requests.length, 1);
  const req = standIn.requests[0]!;
  assert.equal(req.method, "POST");
  assert.equal(req.url, "/v2/messages");
  assert.equal(req.headers.authorization, `Bearer ${API_KEY}`);
  assert.equal(req.headers["content-type"], "application/json");
  assert.equal(req.headers.accept, "application/json");
  assert.deepEqual(json(req), {
    to: "+18665550001",
    from: "+18445550001",
    text: "Hello, World!",
    messaging_profile_id: PROFILE,
    webhook_url: "https://sms.example.com/channels/support/status",
  });
  done();
});

test("send: without statusCallbackUrl or profile, those fields are absent", async () => {
  const { a, done } = setup({ messagingProfileId: undefined });
  acceptAll();
  const { statusCallbackUrl: _omit, ...sms } = SMS;
  assert.equal((await a.send(sms, { signal: signal() })).kind, "sent");
  assert.deepEqual(json(standIn.requests[0]!), { to: SMS.to, from: SMS.from, text: SMS.body });
  done();
});

test("send: apiBaseUrl with a trailing slash", async () => {
  const { a, done } = setup({ apiBaseUrl: `${standIn.url}/` });
  acceptAll();
  assert.equal((await a.send(SMS, { signal: signal() })).kind, "sent");
  assert.equal(standIn.requests[0]!.url, "/v2/messages");
  done();
});

test("send: MMS carries media_urls; media without text sends no text", async () => {
  const { a, done } = setup();
  acceptAll();
  const media = ["https://example.com/image1.png", "https://example.com/doc.pdf"];
  assert.equal((await a.send({ ...SMS, mediaUrls: media }, { signal: signal() })).kind, "sent");
  assert.deepEqual(json(standIn.requests[0]!).media_urls, media);
  standIn.requests.length = 0;
  assert.equal((await a.send({ ...SMS, body: "", mediaUrls: media }, { signal: signal() })).kind, "sent");
  const body = json(standIn.requests[0]!);
  assert.deepEqual(body.media_urls, media);
  assert.equal("text" in body, false);
  done();
});

test("send: more than 10 media, the rest become links in the text", async () => {
  const { a, done } = setup();
  acceptAll();
  const media = Array.from({ length: 12 }, (_, i) => `https://example.com/${i}.png`);
  assert.equal((await a.send({ ...SMS, mediaUrls: media }, { signal: signal() })).kind, "sent");
  const body = json(standIn.requests[0]!);
  assert.deepEqual(body.media_urls, media.slice(0, 10));
  assert.equal(body.text, `Hello, World!\nhttps://example.com/10.png\nhttps://example.com/11.png`);
  done();
});

test("send: nothing to send fails without calling Telnyx", async () => {
  const { a, done } = setup();
  acceptAll();
  const r = await a.send({ ...SMS, body: "" }, { signal: signal() });
  assert.equal(r.kind, "failed");
  assert.equal(r.kind === "failed" && r.code, "empty_message");
  assert.equal(standIn.requests.length, 0);
  done();
});

interface ErrorCase {
  name: string;
  status: number;
  body: string;
  headers?: Record<string, string>;
  want: SendResult | ((r: SendResult) => void);
}

const errorCases: ErrorCase[] = [
  {
    name: "429 with Retry-After",
    status: 429,
    body: text("error-10011-rate-limited.json"),
    headers: { "retry-after": "7" },
    want: {
      kind: "retryable",
      code: "10011",
      retryAfterMs: 7000,
      reason:
        "Telnyx answered HTTP 429 (error 10011): Too many requests: You have exceeded the maximum number of allowed requests.",
    },
  },
  {
    name: "429 with only x-ratelimit-reset (what Telnyx documents)",
    status: 429,
    body: text("error-10011-rate-limited.json"),
    headers: { "x-ratelimit-limit": "100", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "3" },
    want: (r) => {
      assert.equal(r.kind, "retryable");
      assert.equal(r.kind === "retryable" && r.retryAfterMs, 3000);
    },
  },
  {
    name: "429 without any hint",
    status: 429,
    body: text("error-10011-rate-limited.json"),
    want: (r) => {
      assert.equal(r.kind, "retryable");
      assert.equal(r.kind === "retryable" && "retryAfterMs" in r, false);
    },
  },
  {
    name: "500 unexpected error",
    status: 500,
    body: text("error-10007-unexpected.json"),
    want: (r) => assert.deepEqual([r.kind, r.kind === "retryable" && r.code], ["retryable", "10007"]),
  },
  {
    name: "503 with an HTML body",
    status: 503,
    body: "<html><body>Service Unavailable</body></html>",
    want: {
      kind: "retryable",
      code: "http_503",
      reason: "Telnyx answered HTTP 503: no error details",
    },
  },
  {
    name: "invalid 'to' number",
    status: 400,
    body: text("error-40310-invalid-to.json"),
    want: {
      kind: "failed",
      code: "40310",
      reason:
        "Telnyx answered HTTP 400 (error 40310): Invalid 'to' address: The 'to' address should be a string containing a valid phone number.",
    },
  },
  {
    name: "opted out (40300, HTTP 409 per the error page)",
    status: 409,
    body: text("error-40300-opted-out.json"),
    want: (r) => {
      assert.equal(r.kind, "optedOut");
      assert.equal(r.kind === "optedOut" && r.code, "40300");
      assert.match(
        r.kind === "optedOut" ? r.reason : "",
        /opted out by texting STOP.*Blocked due to STOP message/,
      );
    },
  },
  {
    name: "opted out answered with 403",
    status: 403,
    body: text("error-40300-opted-out.json"),
    want: (r) => assert.equal(r.kind, "optedOut"),
  },
  {
    name: "wrong API key",
    status: 401,
    body: text("error-10009-auth.json"),
    want: (r) => {
      assert.equal(r.kind, "failed");
      assert.equal(r.kind === "failed" && r.code, "10009");
      assert.match(r.kind === "failed" ? r.reason : "", /check the channel's provider\.apiKey/);
    },
  },
  {
    name: "message too large (40302)",
    status: 400,
    body: JSON.stringify({
      errors: [
        {
          code: "40302",
          title: "Message too large",
          detail: "The SMS message would be divided into 11 parts.",
        },
      ],
    }),
    want: (r) => assert.deepEqual([r.kind, r.kind === "failed" && r.code], ["failed", "40302"]),
  },
  {
    name: "200 without a message id is never retried",
    status: 200,
    body: '{"data":{}}',
    want: (r) => {
      assert.equal(r.kind, "failed");
      assert.match(r.kind === "failed" ? r.reason : "", /may have been sent/);
    },
  },
];

for (const c of errorCases) {
  test(`send: ${c.name}`, async () => {
    const { a, done } = setup();
    answer(c.status, c.body, c.headers);
    const r = await a.send(SMS, { signal: signal() });
    if (typeof c.want === "function") c.want(r);
    else assert.deepEqual(r, c.want);
    assert.equal(standIn.requests.length, 1, "one request, no hidden retries");
    done();
  });
}

test("send: network error (closed port) is retryable", async () => {
  // Take a free port and release it, so nothing listens there.
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const { a, done } = setup({ apiBaseUrl: `http://127.0.0.1:${port}` });
  const r = await a.send(SMS, { signal: signal() });
  assert.equal(r.kind, "retryable");
  assert.equal(r.kind === "retryable" && r.code, "network");
  assert.match(r.kind === "retryable" ? r.reason : "", /could not reach Telnyx at 127\.0\.0\.1/);
  done();
});

test("send: deadline via AbortSignal while Telnyx is silent", async () => {
  const { a, done } = setup();
  const deadline = new AbortController();
  // Abort once Telnyx has the request and never answer: deterministic, no timing involved.
  standIn.answer(() => deadline.abort());
  const r = await a.send(SMS, { signal: deadline.signal });
  assert.equal(r.kind, "retryable");
  assert.equal(r.kind === "retryable" && r.code, "deadline");
  done();
});

test("send: a real (non-loopback) host is refused by the harness, not called", async () => {
  const h = createHarness();
  const a = telnyxProvider.create(
    telnyxProvider.config.parse({ apiKey: API_KEY, publicKey: PUBLIC_KEY }),
    h.ctx,
  );
  const r = await a.send(SMS, { signal: signal() });
  assert.equal(r.kind, "failed");
  assert.equal(r.kind === "failed" && r.code, "forbidden_host");
  assert.deepEqual(h.forbidden, ["https://api.telnyx.com/v2/messages"]);
  h.assertNoSecretsLogged([API_KEY]);
});

const GSM_LONG = Array.from({ length: 50 }, (_, i) => `Line ${i + 1}: your order is on its way.`).join(" ");
const UCS_LONG = "Привет! Ваш заказ в пути 🚚. ".repeat(30);

test("split: bodies over 10 parts are cut on segment boundaries", () => {
  const { done } = setup();
  const table: { name: string; body: string; requests: number }[] = [
    { name: "short", body: "hi", requests: 1 },
    { name: "exactly 10 GSM-7 parts", body: "a".repeat(1530), requests: 1 },
    { name: "just over 10 GSM-7 parts", body: "a".repeat(1531), requests: 2 },
    { name: "GSM-7 long", body: GSM_LONG, requests: 2 },
    { name: "UCS-2 long (emoji, Cyrillic)", body: UCS_LONG, requests: 2 },
    { name: "GSM-7 with extension characters", body: "€".repeat(800), requests: 2 },
  ];
  for (const c of table) {
    const parts = splitTelnyxBody(c.body);
    assert.equal(parts.length, c.requests, c.name);
    assert.equal(parts.join(""), c.body, `${c.name}: nothing lost or reordered`);
    for (const p of parts)
      assert.ok(countSegments(p).segments <= 10, `${c.name}: ${countSegments(p).segments} parts`);
  }
  done();
});

test("send: long body goes out as several requests, in order", async () => {
  const { a, done } = setup();
  acceptAll(["id-1", "id-2"]);
  const r = await a.send(
    { ...SMS, body: UCS_LONG, mediaUrls: ["https://example.com/a.png"] },
    { signal: signal() },
  );
  assert.deepEqual(r, { kind: "sent", providerId: "id-1", providerIds: ["id-1", "id-2"] });
  assert.equal(standIn.requests.length, 2);
  const bodies = standIn.requests.map(json);
  assert.equal(bodies.map((b) => b.text).join(""), UCS_LONG);
  assert.deepEqual(bodies[0]!.media_urls, ["https://example.com/a.png"]);
  assert.equal("media_urls" in bodies[1]!, false, "media only once");
  for (const b of bodies) assert.equal(b.webhook_url, SMS.statusCallbackUrl);
  done();
});

test("send: a later part failing reports 'sent N of M' and never resends earlier parts", async () => {
  const { a, done } = setup();
  let n = 0;
  standIn.answer((_req, res) => {
    n++;
    if (n === 1) res.writeHead(200, { "content-type": "application/json" }).end(ACCEPTED);
    else res.writeHead(500, { "content-type": "application/json" }).end(text("error-10007-unexpected.json"));
  });
  const r = await a.send({ ...SMS, body: GSM_LONG }, { signal: signal() });
  assert.equal(r.kind, "failed");
  assert.match(
    r.kind === "failed" ? r.reason : "",
    /^sent 1 of 2 parts; part 2 was not accepted: Telnyx answered HTTP 500/,
  );
  assert.equal(r.kind === "failed" && r.code, "10007");
  assert.equal(standIn.requests.length, 2);
  done();
});

test("send: the first part failing returns that result unchanged", async () => {
  const { a, done } = setup();
  answer(409, text("error-40300-opted-out.json"));
  const r = await a.send({ ...SMS, body: GSM_LONG }, { signal: signal() });
  assert.equal(r.kind, "optedOut");
  assert.equal(standIn.requests.length, 1, "no second part after the first was refused");
  done();
});

test("send: deadline passing during a later part reports what was sent", async () => {
  const { a, done } = setup();
  const deadline = new AbortController();
  let n = 0;
  standIn.answer((_req, res) => {
    n++;
    // Part 1 accepted; part 2 reaches Telnyx, then the deadline passes with no answer.
    if (n === 1) res.writeHead(200, { "content-type": "application/json" }).end(ACCEPTED);
    else deadline.abort();
  });
  const r = await a.send({ ...SMS, body: GSM_LONG }, { signal: deadline.signal });
  assert.equal(r.kind, "failed");
  assert.match(
    r.kind === "failed" ? r.reason : "",
    /^sent 1 of 2 parts; part 2 was not accepted: the send deadline passed/,
  );
  assert.equal(r.kind === "failed" && r.code, "deadline");
  assert.equal(standIn.requests.length, 2);
  done();
});

test("send: logs are useful and carry no secret or whole number", async () => {
  const { h, a, done } = setup();
  acceptAll(["40385f64-5717-4562-b3fc-2c963f66afa6"]);
  await a.send(SMS, { signal: signal() });
  const logs = h.logs();
  assert.match(logs, /telnyx: sent/);
  assert.match(logs, /40385f64-5717-4562-b3fc-2c963f66afa6/);
  assert.ok(!logs.includes(SMS.to), "recipient number is masked");
  assert.ok(!/authorization/i.test(logs));
  done();
});

test("classify: Retry-After as an HTTP date", () => {
  const { done } = setup();
  const now = Date.parse("2026-03-01T12:00:00Z");
  const r = classifyTelnyxAnswer(
    {
      status: 429,
      headers: { "retry-after": "Sun, 01 Mar 2026 12:00:30 GMT" },
      text: text("error-10011-rate-limited.json"),
    },
    now,
  );
  assert.deepEqual([r.kind, r.kind === "retryable" && r.retryAfterMs], ["retryable", 30_000]);
  done();
});
