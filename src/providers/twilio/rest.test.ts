import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import type { ServerResponse } from "node:http";
import { after, before, describe, test } from "node:test";
import { countSegments } from "../../core/segments.js";
import { createHarness, type RecordedRequest, type StandIn, startStandIn } from "../test-support/harness.js";
import type { OutgoingSms, SendResult } from "../types.js";
import { TWILIO_MAX_BODY, type TwilioConfig, twilioProvider } from "./index.js";

const fixture = (name: string) => readFileSync(new URL(`./testdata/${name}`, import.meta.url), "utf8");

const TOKEN = "f3a1c0de5e7b4d2a9c8b7a6f5e4d3c2b";
const ACCOUNT = "AC1234567890abcdef1234567890abcdef";
const SERVICE = "MG0123456789abcdef0123456789abcdef";
const BASIC = `Basic ${Buffer.from(`${ACCOUNT}:${TOKEN}`).toString("base64")}`;
const SECRETS = [TOKEN, BASIC, Buffer.from(`${ACCOUNT}:${TOKEN}`).toString("base64")];
const PATH = `/2010-04-01/Accounts/${ACCOUNT}/Messages.json`;
const STATUS_URL = "https://sms.example.com/channels/support/status";
const NOW = new Date("2026-01-02T03:04:05.000Z");

const created = (sid: string) => JSON.stringify({ ...JSON.parse(fixture("message-created.json")), sid });

function reply(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}) {
  res.writeHead(status, { "content-type": "application/json", ...headers }).end(body);
}

function fields(r: RecordedRequest): URLSearchParams {
  return new URLSearchParams(r.body.toString("utf8"));
}

const baseSms: OutgoingSms = {
  from: "+15017122661",
  to: "+15558675310",
  body: "Hello from support",
  mediaUrls: [],
  statusCallbackUrl: STATUS_URL,
};

let standIn: StandIn;
before(async () => {
  standIn = await startStandIn();
});
after(() => standIn.close());

async function send(
  sms: OutgoingSms,
  answer: (req: RecordedRequest, res: ServerResponse, n: number) => void,
  cfg: Partial<TwilioConfig> = {},
  signal?: AbortSignal,
): Promise<{ result: SendResult; requests: RecordedRequest[] }> {
  standIn.requests.length = 0;
  let n = 0;
  standIn.answer((req, res) => answer(req, res, n++));
  const h = createHarness({ now: () => NOW });
  const adapter = twilioProvider.create(
    { accountSid: ACCOUNT, authToken: TOKEN, apiBaseUrl: standIn.url, ...cfg },
    h.ctx,
  );
  const result = await adapter.send(sms, { signal: signal ?? AbortSignal.timeout(10_000) });
  h.assertNoSecretsLogged(SECRETS);
  h.assertNoRealNetwork();
  return { result, requests: [...standIn.requests] };
}

describe("twilio send: the request Twilio receives", () => {
  test("SMS: POST form to Messages.json with Basic auth, To/From/Body/StatusCallback", async () => {
    const { result, requests } = await send(baseSms, (_q, res) =>
      reply(res, 201, fixture("message-created.json")),
    );
    assert.deepEqual(result, { kind: "sent", providerId: "SM0123456789abcdef0123456789abcdef" });
    assert.equal(requests.length, 1);
    const r = requests[0] as RecordedRequest;
    assert.equal(r.method, "POST");
    assert.equal(r.url, PATH);
    assert.equal(r.headers.authorization, BASIC);
    assert.equal(r.headers["content-type"], "application/x-www-form-urlencoded");
    assert.equal(r.headers.accept, "application/json");
    assert.deepEqual(
      [...fields(r)],
      [
        ["To", "+15558675310"],
        ["From", "+15017122661"],
        ["Body", "Hello from support"],
        ["StatusCallback", STATUS_URL],
      ],
    );
  });

  test("messagingServiceSid replaces From", async () => {
    const { requests } = await send(baseSms, (_q, res) => reply(res, 201, created("SMa")), {
      messagingServiceSid: SERVICE,
    });
    const f = fields(requests[0] as RecordedRequest);
    assert.equal(f.get("MessagingServiceSid"), SERVICE);
    assert.equal(f.has("From"), false);
  });

  test("no StatusCallback when the bridge gives none", async () => {
    const { statusCallbackUrl: _omit, ...sms } = baseSms;
    const { requests } = await send(sms, (_q, res) => reply(res, 201, created("SMa")));
    assert.equal(fields(requests[0] as RecordedRequest).has("StatusCallback"), false);
  });

  test("MMS: each attachment is a MediaUrl; an empty body is left out", async () => {
    const media = ["https://cdn.example.com/a.jpg", "https://cdn.example.com/b.pdf"];
    const { result, requests } = await send({ ...baseSms, body: "", mediaUrls: media }, (_q, res) =>
      reply(res, 201, created("MMa")),
    );
    assert.equal(result.kind, "sent");
    const f = fields(requests[0] as RecordedRequest);
    assert.deepEqual(f.getAll("MediaUrl"), media);
    assert.equal(f.has("Body"), false);
  });

  test("more than 10 attachments: 10 as MMS media, the rest as links in the text", async () => {
    const media = Array.from({ length: 12 }, (_, i) => `https://cdn.example.com/${i}.jpg`);
    const { requests } = await send({ ...baseSms, mediaUrls: media }, (_q, res) =>
      reply(res, 201, created("MMa")),
    );
    const f = fields(requests[0] as RecordedRequest);
    assert.deepEqual(f.getAll("MediaUrl"), media.slice(0, 10));
    assert.equal(f.get("Body"), `Hello from support\n${media[10]}\n${media[11]}`);
  });
});

describe("twilio send: long bodies", () => {
  const cases: [string, string][] = [
    [
      "GSM-7, 3500 characters",
      "Thanks for waiting. Your refund has been approved and will arrive in 3-5 days. ".repeat(45),
    ],
    ["UCS-2 with emoji, 2000 characters", "Спасибо за ожидание 🙏 ваш возврат одобрен. ".repeat(46)],
  ];
  for (const [name, body] of cases) {
    test(`${name}: split on segment boundaries into ≤${TWILIO_MAX_BODY}-character requests, in order`, async () => {
      const { result, requests } = await send(
        { ...baseSms, body, mediaUrls: ["https://cdn.example.com/a.jpg"] },
        (_q, res, n) => reply(res, 201, created(`SM${n}`)),
      );
      assert.ok(requests.length > 1);
      const parts = requests.map((r) => fields(r).get("Body") ?? "");
      assert.equal(parts.join(""), body);
      for (const p of parts.slice(0, -1)) {
        assert.ok(p.length <= TWILIO_MAX_BODY);
        // Each request but the last fills whole concatenated segments, so the handset joins them cleanly.
        const info = countSegments(p);
        assert.equal(info.units % info.perSegment, 0, "a part ends mid-segment");
      }
      assert.deepEqual(
        requests.map((r) => fields(r).getAll("MediaUrl").length),
        requests.map((_r, i) => (i === 0 ? 1 : 0)),
      );
      for (const r of requests) assert.equal(fields(r).get("StatusCallback"), STATUS_URL);
      const ids = requests.map((_r, i) => `SM${i}`);
      assert.deepEqual(result, { kind: "sent", providerId: "SM0", providerIds: ids });
    });
  }

  const failures: [string, number, string][] = [
    ["opted out", 400, fixture("error-21610.json")],
    ["server error", 500, fixture("error-20500.json")],
  ];
  for (const [name, status, body] of failures) {
    test(`part 2 fails (${name}): failed "sent 1 of N parts", nothing re-sent, nothing more sent`, async () => {
      const long = "x".repeat(TWILIO_MAX_BODY * 2 + 10);
      const { result, requests } = await send({ ...baseSms, body: long }, (_q, res, n) =>
        n === 0 ? reply(res, 201, created("SM0")) : reply(res, status, body),
      );
      assert.equal(requests.length, 2);
      assert.equal(result.kind, "failed");
      if (result.kind === "failed") {
        assert.match(result.reason, /^sent 1 of 3 parts; part 2 failed/);
        assert.equal(result.code, JSON.parse(body).code.toString());
      }
    });
  }
});

describe("twilio send: classification", () => {
  const table: [
    string,
    (req: RecordedRequest, res: ServerResponse) => void,
    SendResult | ((r: SendResult) => void),
  ][] = [
    [
      "429 with Retry-After seconds → retryable",
      (_q, res) => reply(res, 429, fixture("error-20429.json"), { "retry-after": "7" }),
      {
        kind: "retryable",
        reason: "Twilio answered 429: Too Many Requests",
        retryAfterMs: 7000,
        code: "20429",
      },
    ],
    [
      "503 with Retry-After as an HTTP date → retryable, delay from now",
      (_q, res) =>
        reply(res, 503, fixture("error-20500.json"), { "retry-after": "Fri, 02 Jan 2026 03:05:05 GMT" }),
      {
        kind: "retryable",
        reason: "Twilio answered 503: Internal Server Error",
        retryAfterMs: 60_000,
        code: "20500",
      },
    ],
    [
      "500 → retryable",
      (_q, res) => reply(res, 500, fixture("error-20500.json")),
      { kind: "retryable", reason: "Twilio answered 500: Internal Server Error", code: "20500" },
    ],
    [
      "502 from a proxy, not JSON → retryable",
      (_q, res) => res.writeHead(502, { "content-type": "text/html" }).end("<html>Bad Gateway</html>"),
      { kind: "retryable", reason: "Twilio answered 502" },
    ],
    [
      "21211 invalid number → failed with Twilio's code and text",
      (_q, res) => reply(res, 400, fixture("error-21211.json")),
      {
        kind: "failed",
        code: "21211",
        reason: "Twilio rejected the message (HTTP 400): The 'To' number +1555 is not a valid phone number.",
      },
    ],
    [
      "21610 → optedOut",
      (_q, res) => reply(res, 400, fixture("error-21610.json")),
      {
        kind: "optedOut",
        code: "21610",
        reason: "the recipient opted out (replied STOP): Attempt to send to unsubscribed recipient",
      },
    ],
    [
      "21606 sender not usable → failed",
      (_q, res) => reply(res, 400, fixture("error-21606.json")),
      (r) =>
        assert.ok(r.kind === "failed" && r.code === "21606" && /not a valid, SMS-capable/.test(r.reason)),
    ],
    [
      "20003 bad credentials → failed, says what to check",
      (_q, res) => reply(res, 401, fixture("error-20003.json")),
      (r) =>
        assert.ok(r.kind === "failed" && r.code === "20003" && /check the Twilio credentials/.test(r.reason)),
    ],
    [
      "201 without a sid → failed, never retried (it may have been sent)",
      (_q, res) => reply(res, 201, "{}"),
      { kind: "failed", code: "no_sid", reason: "Twilio answered 201 without a message sid" },
    ],
  ];
  for (const [name, answer, expected] of table) {
    test(name, async () => {
      const { result, requests } = await send(baseSms, answer);
      assert.equal(requests.length, 1);
      if (typeof expected === "function") expected(result);
      else assert.deepEqual(result, expected);
    });
  }

  test("network error (closed port) → retryable", async () => {
    const closed = await startStandIn();
    await closed.close();
    const h = createHarness();
    const adapter = twilioProvider.create(
      { accountSid: ACCOUNT, authToken: TOKEN, apiBaseUrl: closed.url },
      h.ctx,
    );
    const result = await adapter.send(baseSms, { signal: AbortSignal.timeout(10_000) });
    assert.equal(result.kind, "retryable");
    if (result.kind === "retryable") {
      assert.equal(result.code, "network");
      assert.match(result.reason, /could not reach Twilio/);
    }
    h.assertNoSecretsLogged(SECRETS);
    h.assertNoRealNetwork();
  });

  test("deadline: the signal fires while Twilio has not answered → retryable deadline", async () => {
    const ctl = new AbortController();
    const { result, requests } = await send(
      baseSms,
      () => {
        // Twilio got the request but the bridge's deadline passes before the answer.
        ctl.abort();
      },
      {},
      ctl.signal,
    );
    assert.equal(requests.length, 1);
    assert.equal(result.kind, "retryable");
    if (result.kind === "retryable") assert.equal(result.code, "deadline");
  });

  test("deadline already passed: no request is made", async () => {
    const { result, requests } = await send(
      baseSms,
      (_q, res) => reply(res, 201, created("SMa")),
      {},
      AbortSignal.abort(),
    );
    assert.equal(requests.length, 0);
    assert.equal(result.kind, "retryable");
  });

  test("the default API base is Twilio's (and a test could not reach it)", async () => {
    const h = createHarness();
    const adapter = twilioProvider.create({ accountSid: ACCOUNT, authToken: TOKEN }, h.ctx);
    const result = await adapter.send(baseSms, { signal: AbortSignal.timeout(10_000) });
    assert.equal(result.kind, "failed");
    assert.deepEqual(h.forbidden, [`https://api.twilio.com${PATH}`]);
    h.assertNoSecretsLogged(SECRETS);
  });
});
