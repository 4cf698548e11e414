import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { createHarness, type StandIn, startStandIn } from "../test-support/harness.js";
import { BadWebhook, type ProviderEvent, type RawRequest, type SendResult } from "../types.js";
import { createSimulatorSignature, DEFAULT_SECRET, simulatorProvider } from "./index.js";

const SECRET = "sim-test-secret-9f8e7d";
const NOW = new Date("2026-11-25T16:10:00Z");
const NOW_S = Math.floor(NOW.getTime() / 1000);

const fixture = (name: string) => readFileSync(new URL(`./testdata/${name}`, import.meta.url));

function adapter(config: Record<string, unknown> = { secret: SECRET }) {
  const h = createHarness({ now: () => NOW });
  return { h, a: simulatorProvider.create(simulatorProvider.config.parse(config), h.ctx) };
}

function rawRequest(body: Buffer | string, headers: Record<string, string | string[]> = {}): RawRequest {
  return {
    method: "POST",
    url: "https://sms.example.com/channels/test/inbound",
    headers: { "content-type": "application/json", ...headers },
    body: Buffer.isBuffer(body) ? body : Buffer.from(body),
  };
}

function signed(body: Buffer | string, opts: { secret?: string; ts?: number } = {}): RawRequest {
  const ts = opts.ts ?? NOW_S;
  return rawRequest(body, {
    "x-simulator-timestamp": String(ts),
    "x-simulator-signature": createSimulatorSignature(opts.secret ?? SECRET, ts, body),
  });
}

describe("simulator config", () => {
  test("defaults the secret and derives the carrier API from the inbound URL", async () => {
    const cfg = simulatorProvider.config.parse({});
    assert.equal(cfg.secret, DEFAULT_SECRET);
    assert.equal(simulatorProvider.type, "simulator");
    assert.deepEqual(simulatorProvider.secretKeys, ["secret"]);
    const stand = await startStandIn();
    try {
      const h = createHarness({
        urls: { inbound: `${stand.url}/channels/a/inbound`, status: `${stand.url}/channels/a/status` },
      });
      stand.answer((_r, res) => {
        res.writeHead(201).end('{"id":"SM1","status":"queued"}');
      });
      const a = simulatorProvider.create(cfg, h.ctx);
      const r = await a.send(
        { from: "+15005550006", to: "+16505550100", body: "hi", mediaUrls: [] },
        { signal: AbortSignal.timeout(5000) },
      );
      assert.deepEqual(r, { kind: "sent", providerId: "SM1" });
      assert.equal(stand.requests[0]?.url, "/simulator/provider/messages");
    } finally {
      await stand.close();
    }
  });

  const invalid: Array<[string, Record<string, unknown>, string]> = [
    ["empty secret", { secret: "" }, "secret"],
    ["apiBaseUrl not a URL", { apiBaseUrl: "localhost:8080" }, "apiBaseUrl"],
    ["secret not a string", { secret: 42 }, "secret"],
  ];
  for (const [name, input, path] of invalid) {
    test(`rejects ${name}, naming the field`, () => {
      const r = simulatorProvider.config.safeParse(input);
      assert.equal(r.success, false);
      assert.equal(r.error?.issues[0]?.path.join("."), path);
    });
  }
});

describe("simulator verify", () => {
  const body = fixture("message.json");
  const cases: Array<{ name: string; req: RawRequest; status?: 401 | 403; reason?: RegExp }> = [
    { name: "valid signature", req: signed(body) },
    { name: "valid, 299 s old", req: signed(body, { ts: NOW_S - 299 }) },
    {
      name: "valid, header given twice (first wins)",
      req: (() => {
        const r = signed(body);
        r.headers["x-simulator-signature"] = [r.headers["x-simulator-signature"] as string, "junk"];
        return r;
      })(),
    },
    {
      name: "no headers",
      req: rawRequest(body),
      status: 401,
      reason: /missing x-simulator-timestamp and x-simulator-signature/,
    },
    {
      name: "no signature",
      req: rawRequest(body, { "x-simulator-timestamp": String(NOW_S) }),
      status: 401,
      reason: /missing x-simulator-signature/,
    },
    {
      name: "no timestamp",
      req: rawRequest(body, { "x-simulator-signature": createSimulatorSignature(SECRET, NOW_S, body) }),
      status: 401,
      reason: /missing x-simulator-timestamp/,
    },
    { name: "other secret", req: signed(body, { secret: "wrong" }), status: 403, reason: /does not match/ },
    {
      name: "body changed after signing",
      req: { ...signed(body), body: Buffer.from(body.toString().replace("#1234", "#9999")) },
      status: 403,
      reason: /does not match/,
    },
    { name: "stale (301 s old)", req: signed(body, { ts: NOW_S - 301 }), status: 403, reason: /301 s away/ },
    {
      name: "from the future",
      req: signed(body, { ts: NOW_S + 3600 }),
      status: 403,
      reason: /tolerance 300 s/,
    },
    {
      name: "timestamp in milliseconds",
      req: signed(body, { ts: NOW.getTime() }),
      status: 403,
      reason: /must be unix seconds/,
    },
    {
      name: "timestamp not a number",
      req: rawRequest(body, { "x-simulator-timestamp": "yesterday", "x-simulator-signature": "abc" }),
      status: 403,
      reason: /unix seconds/,
    },
    {
      name: "signature truncated",
      req: rawRequest(body, {
        "x-simulator-timestamp": String(NOW_S),
        "x-simulator-signature": createSimulatorSignature(SECRET, NOW_S, body).slice(0, 20),
      }),
      status: 403,
      reason: /does not match/,
    },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const { h, a } = adapter();
      const v = await a.verify(c.req);
      if (!c.status) assert.deepEqual(v, { ok: true });
      else {
        assert.equal(v.ok, false);
        if (v.ok) return;
        assert.equal(v.status, c.status);
        assert.match(v.reason, c.reason ?? /./);
      }
      h.assertNoSecretsLogged([SECRET]);
    });
  }
});

describe("simulator parse", () => {
  const ok: Array<[string, ProviderEvent[]]> = [
    [
      "message.json",
      [
        {
          kind: "message",
          providerMessageId: "SIM5f2c0e7a9b1d4c3e8f6a2b10",
          from: "+16505550100",
          to: "+15005550006",
          body: "Hi, is my order #1234 shipped?",
          attachments: [],
          createdAt: "2026-11-25T16:08:58.961Z",
        },
      ],
    ],
    [
      "message-mms.json",
      [
        {
          kind: "message",
          providerMessageId: "SIMc41a9e02b7d35f6e1a8c9d77",
          from: "+447700900123",
          to: "+15005550006",
          body: "Here is a photo of the damaged box",
          attachments: [{ url: "https://example.com/photos/box.jpg", contentType: "image/jpeg" }],
          createdAt: "2026-11-25T16:09:12.004Z",
        },
      ],
    ],
    [
      "status-delivered.json",
      [
        {
          kind: "status",
          providerMessageId: "SMdc0d5b6ef25b8d48ca08506813d4d832",
          state: "delivered",
          providerStatus: "delivered",
          at: "2026-11-25T16:08:59.031Z",
        },
      ],
    ],
    [
      "status-undelivered.json",
      [
        {
          kind: "status",
          providerMessageId: "SM0b7e41f2c9a3d8e6f5a4b3c2d1e0f9a8",
          state: "undelivered",
          providerStatus: "undelivered",
          errorCode: "30003",
          errorMessage: "simulated: the handset is unreachable (faults.undelivered)",
          at: "2026-11-25T16:10:02.517Z",
        },
      ],
    ],
  ];
  for (const [name, expected] of ok) {
    test(`parses ${name}`, () => {
      const { a } = adapter();
      assert.deepEqual(a.parse(signed(fixture(name))), expected);
    });
  }

  test("normalises loosely written numbers to E.164", () => {
    const { a } = adapter();
    const body = JSON.stringify({
      type: "message",
      id: "SIM1",
      from: "16505550100",
      to: "+1 (500) 555-0006",
      body: "x",
    });
    const [e] = a.parse(signed(body));
    assert.equal(e?.kind, "message");
    if (e?.kind === "message")
      assert.deepEqual([e.from, e.to, e.attachments], ["+16505550100", "+15005550006", []]);
  });

  const bad: Array<[string, string, RegExp]> = [
    ["not JSON", "{type: message", /not JSON/],
    ["an array", "[]", /invalid/],
    ["unknown type", '{"type":"call","id":"1"}', /type/],
    ["message without id", '{"type":"message","from":"+16505550100","to":"+15005550006","body":"x"}', /id/],
    [
      "message with a bad phone",
      '{"type":"message","id":"1","from":"hello","to":"+15005550006","body":"x"}',
      /from: from must be a phone number/,
    ],
    [
      "message body not a string",
      '{"type":"message","id":"1","from":"+16505550100","to":"+15005550006","body":5}',
      /body/,
    ],
    [
      "media without url",
      '{"type":"message","id":"1","from":"+16505550100","to":"+15005550006","body":"","media":[{}]}',
      /media\.0\.url/,
    ],
    ["status with an unknown state", '{"type":"status","id":"SM1","status":"exploded"}', /status/],
  ];
  for (const [name, body, message] of bad) {
    test(`throws BadWebhook for ${name}`, () => {
      const { a } = adapter();
      assert.throws(
        () => a.parse(signed(body)),
        (e: unknown) => e instanceof BadWebhook && message.test(e.message),
      );
    });
  }
});

describe("simulator send", () => {
  let stand: StandIn;
  before(async () => {
    stand = await startStandIn();
  });
  after(() => stand.close());

  const sms = {
    from: "+15005550006",
    to: "+16505550100",
    body: "Your order shipped today.",
    mediaUrls: ["https://example.com/label.pdf"],
  };

  const cases: Array<{
    name: string;
    status: number;
    body: string;
    headers?: Record<string, string>;
    expect: SendResult;
  }> = [
    {
      name: "201 queued",
      status: 201,
      body: '{"id":"SMabc","status":"queued"}',
      expect: { kind: "sent", providerId: "SMabc" },
    },
    {
      name: "2xx without an id",
      status: 200,
      body: "{}",
      expect: { kind: "failed", code: "bad_response", reason: "simulator answered 200 without a message id" },
    },
    {
      name: "503 retryable fault with Retry-After",
      status: 503,
      body: '{"code":"unavailable","message":"simulated temporary failure (faults.retryable); retry later"}',
      headers: { "retry-after": "1" },
      expect: {
        kind: "retryable",
        code: "unavailable",
        reason: "simulator answered 503: simulated temporary failure (faults.retryable); retry later",
        retryAfterMs: 1000,
      },
    },
    {
      name: "429 with an HTTP-date Retry-After",
      status: 429,
      body: "slow down",
      headers: { "retry-after": new Date(NOW.getTime() + 30_000).toUTCString() },
      expect: { kind: "retryable", reason: "simulator answered 429", retryAfterMs: 30_000 },
    },
    {
      name: "500 without a body",
      status: 500,
      body: "",
      expect: { kind: "retryable", reason: "simulator answered 500" },
    },
    {
      name: "400 invalid_number",
      status: 400,
      body: '{"code":"invalid_number","message":"to \\"123\\" is not a valid phone number"}',
      expect: {
        kind: "failed",
        code: "invalid_number",
        reason: 'simulator answered 400: to "123" is not a valid phone number',
      },
    },
    {
      name: "400 rejected",
      status: 400,
      body: '{"code":"rejected","message":"simulated permanent rejection (faults.permanent)"}',
      expect: {
        kind: "failed",
        code: "rejected",
        reason: "simulator answered 400: simulated permanent rejection (faults.permanent)",
      },
    },
    {
      name: "403 opted_out",
      status: 403,
      body: '{"code":"opted_out","message":"stop"}',
      expect: { kind: "optedOut", code: "opted_out", reason: "the customer opted out: stop" },
    },
    {
      name: "401 wrong secret",
      status: 401,
      body: '{"code":"unauthorized","message":"wrong Bearer secret"}',
      expect: {
        kind: "failed",
        code: "unauthorized",
        reason:
          "the simulator refused the channel's secret; set provider.secret to the simulator channel's secret",
      },
    },
    {
      name: "404",
      status: 404,
      body: "not here",
      expect: { kind: "failed", code: "http_404", reason: "simulator answered 404" },
    },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      stand.requests.length = 0;
      stand.answer((_r, res) => {
        res.writeHead(c.status, { "content-type": "application/json", ...c.headers }).end(c.body);
      });
      const { h, a } = adapter({ secret: SECRET, apiBaseUrl: `${stand.url}/carrier/` });
      const r = await a.send({ ...sms, idempotencyKey: "reply-42" }, { signal: AbortSignal.timeout(5000) });
      assert.deepEqual(r, c.expect);
      const req = stand.requests[0];
      assert.ok(req, "the adapter called the carrier API");
      assert.equal(req.method, "POST");
      assert.equal(req.url, "/carrier/messages");
      assert.equal(req.headers.authorization, `Bearer ${SECRET}`);
      assert.equal(req.headers["idempotency-key"], "reply-42");
      assert.deepEqual(JSON.parse(req.body.toString()), {
        from: sms.from,
        to: sms.to,
        body: sms.body,
        media_urls: sms.mediaUrls,
        status_callback: "https://sms.example.com/channels/test/status",
      });
      h.assertNoSecretsLogged([SECRET]);
      h.assertNoRealNetwork();
    });
  }

  test("uses the status callback URL it is given", async () => {
    stand.requests.length = 0;
    stand.answer((_r, res) => {
      res.writeHead(201).end('{"id":"SM2"}');
    });
    const { a } = adapter({ secret: SECRET, apiBaseUrl: stand.url });
    await a.send(
      { ...sms, statusCallbackUrl: "http://127.0.0.1:1/cb" },
      { signal: AbortSignal.timeout(5000) },
    );
    assert.equal(
      JSON.parse(stand.requests[0]?.body.toString() ?? "{}").status_callback,
      "http://127.0.0.1:1/cb",
    );
  });

  test("a carrier that cannot be reached is retryable", async () => {
    const gone = await startStandIn();
    await gone.close();
    const { h, a } = adapter({ secret: SECRET, apiBaseUrl: gone.url });
    const r = await a.send(sms, { signal: AbortSignal.timeout(5000) });
    assert.equal(r.kind, "retryable");
    assert.match(r.kind === "retryable" ? r.reason : "", /could not reach the simulator/);
    h.assertNoSecretsLogged([SECRET]);
  });

  test("an aborted send stops waiting and is retryable", async () => {
    stand.answer(() => new Promise(() => {})); // never answers
    const { a } = adapter({ secret: SECRET, apiBaseUrl: stand.url });
    const ctl = new AbortController();
    const pending = a.send(sms, { signal: ctl.signal });
    setTimeout(() => ctl.abort(new Error("deadline")), 50);
    const r = await pending;
    assert.equal(r.kind, "retryable");
  });

  test("never calls a host off loopback in tests", async () => {
    const { h, a } = adapter({ secret: SECRET, apiBaseUrl: "https://carrier.example.net/api" });
    const r = await a.send(sms, { signal: AbortSignal.timeout(5000) });
    assert.equal(r.kind, "failed");
    assert.deepEqual(h.forbidden, ["https://carrier.example.net/api/messages"]);
  });
});
