import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import type { ServerResponse } from "node:http";
import { describe, it } from "node:test";
import plivo from "plivo";
import { createHarness, type RecordedRequest, startStandIn } from "../test-support/harness.js";
import type { OutgoingSms, ProviderAdapter, RawRequest, SendResult } from "../types.js";
import {
  classifySend,
  computeV2Signature,
  computeV3Signature,
  MAX_UCS2_CHARS,
  plivoConfig,
  plivoProvider,
  splitBody,
  V2_NONCE,
  V2_SIGNATURE,
  V3_NONCE,
  V3_SIGNATURE,
} from "./index.js";

const AUTH_ID = "MAODUZYTQ0Y2M4ZDEX";
const AUTH_TOKEN = "ZWM3YmU2NzQ2YjUxMjY4NjQ0NGVmMTM5ZDEzODY1";
const BASIC = `Basic ${Buffer.from(`${AUTH_ID}:${AUTH_TOKEN}`).toString("base64")}`;
const SECRETS = [AUTH_TOKEN, BASIC, BASIC.slice(6)];
const fixture = (name: string) => readFileSync(new URL(`./testdata/${name}`, import.meta.url), "utf8");
const STATUS_URL = "https://sms.example.com/channels/support/status";

function adapterFor(apiBaseUrl: string) {
  const h = createHarness();
  const config = plivoConfig.parse({ authId: AUTH_ID, authToken: AUTH_TOKEN, apiBaseUrl });
  return { h, adapter: plivoProvider.create(config, h.ctx) };
}

function sms(over: Partial<OutgoingSms> = {}): OutgoingSms {
  return { from: "+14155556789", to: "+14155551234", body: "Hello from support", mediaUrls: [], ...over };
}

type Answer = (req: RecordedRequest, res: ServerResponse) => void;
const json =
  (status: number, body: string, headers: Record<string, string> = {}): Answer =>
  (_req, res) => {
    res.writeHead(status, { "content-type": "application/json", ...headers }).end(body);
  };

async function withStandIn(
  answers: Answer[],
  run: (adapter: ProviderAdapter, requests: RecordedRequest[]) => Promise<void>,
): Promise<void> {
  const standIn = await startStandIn();
  let n = 0;
  standIn.answer((req, res) => {
    const a = answers[Math.min(n++, answers.length - 1)];
    a?.(req, res);
  });
  const { h, adapter } = adapterFor(standIn.url);
  try {
    await run(adapter, standIn.requests);
  } finally {
    await standIn.close();
  }
  h.assertNoSecretsLogged(SECRETS);
  h.assertNoRealNetwork();
}

const signal = () => AbortSignal.timeout(10_000);
const body = (r: RecordedRequest | undefined) =>
  JSON.parse(r?.body.toString("utf8") ?? "null") as Record<string, unknown>;
const ACCEPTED = fixture("send-accepted.json");
const accepted = (id: string) =>
  json(202, JSON.stringify({ api_id: "a", message: "message(s) queued", message_uuid: [id] }));

describe("plivo send", () => {
  it("accepted: the exact request Plivo receives", async () => {
    await withStandIn([json(202, ACCEPTED)], async (adapter, requests) => {
      const result = await adapter.send(sms({ statusCallbackUrl: STATUS_URL }), { signal: signal() });
      assert.deepEqual(result, { kind: "sent", providerId: "db3ce55a-7f1d-11e1-8ea7-1231380bc196" });
      assert.equal(requests.length, 1);
      const r = requests[0];
      assert.equal(r?.method, "POST");
      assert.equal(r?.url, `/v1/Account/${AUTH_ID}/Message/`);
      assert.equal(r?.headers.authorization, BASIC);
      assert.equal(r?.headers["content-type"], "application/json");
      assert.deepEqual(body(r), {
        src: "14155556789",
        dst: "14155551234",
        text: "Hello from support",
        type: "sms",
        url: STATUS_URL,
        method: "POST",
      });
    });
  });

  it("status callback defaults to the channel's status route", async () => {
    await withStandIn([json(202, ACCEPTED)], async (adapter, requests) => {
      await adapter.send(sms(), { signal: signal() });
      // createHarness()'s channel is "test".
      assert.equal(body(requests[0]).url, "https://sms.example.com/channels/test/status");
    });
  });

  it("MMS to a US number: type mms with media_urls", async () => {
    const media = ["https://cdn.example.com/a.png", "https://cdn.example.com/b.jpg"];
    await withStandIn([json(202, ACCEPTED)], async (adapter, requests) => {
      const result = await adapter.send(sms({ mediaUrls: media, statusCallbackUrl: STATUS_URL }), {
        signal: signal(),
      });
      assert.equal(result.kind, "sent");
      assert.deepEqual(body(requests[0]), {
        src: "14155556789",
        dst: "14155551234",
        text: "Hello from support",
        type: "mms",
        media_urls: media,
        url: STATUS_URL,
        method: "POST",
      });
    });
  });

  it("media outside US/Canada travel as links in an SMS", async () => {
    await withStandIn([json(202, ACCEPTED)], async (adapter, requests) => {
      await adapter.send(sms({ to: "+447700900123", mediaUrls: ["https://cdn.example.com/a.png"] }), {
        signal: signal(),
      });
      const b = body(requests[0]);
      assert.equal(b.type, "sms");
      assert.equal(b.text, "Hello from support\nhttps://cdn.example.com/a.png");
      assert.equal(b.media_urls, undefined);
      assert.equal(b.dst, "447700900123");
    });
  });

  it("more than 10 media: 10 as MMS, the rest as links", async () => {
    const media = Array.from({ length: 12 }, (_, i) => `https://cdn.example.com/${i}.png`);
    await withStandIn([json(202, ACCEPTED)], async (adapter, requests) => {
      await adapter.send(sms({ mediaUrls: media }), { signal: signal() });
      const b = body(requests[0]);
      assert.deepEqual(b.media_urls, media.slice(0, 10));
      assert.equal(b.text, `Hello from support\n${media[10]}\n${media[11]}`);
    });
  });

  it("a long unicode body is split on segment boundaries and sent in order", async () => {
    const text = "Привет 👋 ".repeat(120); // UCS-2, 1,080 code units > 737
    await withStandIn([accepted("p1"), accepted("p2")], async (adapter, requests) => {
      const result = await adapter.send(sms({ body: text }), { signal: signal() });
      assert.deepEqual(result, { kind: "sent", providerId: "p1", providerIds: ["p1", "p2"] });
      const texts = requests.map((r) => String(body(r).text));
      assert.equal(texts.length, 2);
      assert.equal(texts.join(""), text);
      for (const t of texts) assert.ok(t.length <= MAX_UCS2_CHARS, `part of ${t.length} code units`);
      // 11 segments of at most 67 code units (a segment ends early rather than split an emoji's surrogate pair).
      assert.ok((texts[0]?.length ?? 0) > 700, "the first part is nearly full");
    });
  });

  it("a later part failing after an accepted one: failed, 'sent 1 of 2 parts', no resend", async () => {
    const text = "a".repeat(2000);
    await withStandIn(
      [accepted("p1"), json(503, '{"api_id":"x","error":"service unavailable"}')],
      async (adapter, requests) => {
        const result = await adapter.send(sms({ body: text }), { signal: signal() });
        assert.equal(result.kind, "failed");
        if (result.kind === "failed") {
          assert.match(
            result.reason,
            /^sent 1 of 2 parts; part 2 failed: Plivo answered 503: service unavailable/,
          );
          assert.equal(result.code, "http_503");
        }
        assert.equal(requests.length, 2, "the accepted part is never sent again");
      },
    );
  });

  const ERRORS: Array<{ name: string; answer: Answer; want: SendResult }> = [
    {
      name: "429 with Retry-After",
      answer: json(429, fixture("error-rate-limit.json"), { "retry-after": "7" }),
      want: {
        kind: "retryable",
        code: "http_429",
        reason: "Plivo answered 429: rate_limit_exceeded",
        retryAfterMs: 7000,
      },
    },
    {
      name: "500",
      answer: json(500, '{"api_id":"x","error":"internal error"}'),
      want: { kind: "retryable", code: "http_500", reason: "Plivo answered 500: internal error" },
    },
    {
      name: "502 with an HTML body",
      answer: (_r, res) => {
        res.writeHead(502, { "content-type": "text/html" }).end("<html>Bad Gateway</html>");
      },
      want: { kind: "retryable", code: "http_502", reason: "Plivo answered 502: <html>Bad Gateway</html>" },
    },
    {
      name: "400 invalid number (body from plivo-node issue #222)",
      answer: json(400, fixture("error-invalid-number.json")),
      want: {
        kind: "failed",
        code: "http_400",
        reason: "Plivo answered 400: '1111111' is not a valid phone number.",
      },
    },
    {
      name: "401 wrong credentials",
      answer: json(401, fixture("error-auth.json")),
      want: {
        kind: "failed",
        code: "authentication_failed",
        reason: "Plivo refused the credentials (401); check provider.authId and provider.authToken",
      },
    },
    {
      name: "400 naming an opt-out (synthetic: Plivo usually reports ErrorCode 200 in the status callback)",
      answer: json(400, fixture("error-opted-out.synthetic.json")),
      want: {
        kind: "optedOut",
        code: "200",
        reason:
          "the recipient opted out: destination number has opted out of messages from this source number",
      },
    },
    {
      name: "202 without message_uuid is not retried",
      answer: json(202, '{"api_id":"x","message":"message(s) queued","message_uuid":[]}'),
      want: { kind: "failed", code: "bad_response", reason: "Plivo answered 202 without a message_uuid" },
    },
    {
      name: "202 listing the destination as invalid",
      answer: json(
        202,
        '{"api_id":"x","message":"message(s) queued","message_uuid":[],"invalid_number":["1111111"]}',
      ),
      want: {
        kind: "failed",
        code: "invalid_number",
        reason: "Plivo rejected the destination number 1111111",
      },
    },
  ];
  for (const c of ERRORS) {
    it(c.name, async () => {
      await withStandIn([c.answer], async (adapter, requests) => {
        assert.deepEqual(await adapter.send(sms(), { signal: signal() }), c.want);
        assert.equal(requests.length, 1);
      });
    });
  }

  it("network error (closed port) is retryable", async () => {
    const standIn = await startStandIn();
    const url = standIn.url;
    await standIn.close();
    const { h, adapter } = adapterFor(url);
    const result = await adapter.send(sms(), { signal: signal() });
    assert.equal(result.kind, "retryable");
    if (result.kind === "retryable") {
      assert.equal(result.code, "network");
      assert.match(result.reason, /could not reach Plivo at http:\/\/127\.0\.0\.1:\d+/);
    }
    h.assertNoSecretsLogged(SECRETS);
    h.assertNoRealNetwork();
  });

  it("deadline: the signal aborts a request Plivo has not answered", async () => {
    const deadline = new AbortController();
    // Abort once Plivo has the request and has not answered: the deadline passed while waiting.
    await withStandIn(
      [
        () => {
          deadline.abort();
        },
      ],
      async (adapter, requests) => {
        const result = await adapter.send(sms(), { signal: deadline.signal });
        assert.deepEqual(result, {
          kind: "retryable",
          code: "timeout",
          reason: "Plivo did not answer before the send deadline",
        });
        assert.equal(requests.length, 1);
      },
    );
  });

  it("real api.plivo.com is the default and is never reached from tests", async () => {
    const h = createHarness();
    const adapter = plivoProvider.create(
      plivoConfig.parse({ authId: AUTH_ID, authToken: AUTH_TOKEN }),
      h.ctx,
    );
    const result = await adapter.send(sms(), { signal: signal() });
    assert.equal(result.kind, "failed");
    assert.deepEqual(h.forbidden, [`https://api.plivo.com/v1/Account/${AUTH_ID}/Message/`]);
    h.assertNoSecretsLogged(SECRETS);
  });
});

describe("plivo classifySend / splitBody", () => {
  it("Retry-After as an HTTP date", () => {
    const h = createHarness();
    const now = new Date("2024-03-04T10:00:00Z");
    const r = classifySend(429, "{}", "Mon, 04 Mar 2024 10:00:30 GMT", now);
    assert.deepEqual(r, {
      kind: "retryable",
      code: "http_429",
      reason: "Plivo answered 429",
      retryAfterMs: 30_000,
    });
    h.assertNoSecretsLogged(SECRETS);
    h.assertNoRealNetwork();
  });

  it("splits GSM-7 at 1,600 and never exceeds 1,600 septets with extension characters", () => {
    const h = createHarness();
    const table: Array<[string, number]> = [
      ["a".repeat(1600), 1],
      ["a".repeat(1601), 2],
      ["€".repeat(1000), 2], // 2,000 septets
    ];
    for (const [text, parts] of table) {
      const out = splitBody(text);
      assert.equal(out.length, parts, `${text.length} chars`);
      assert.equal(out.join(""), text);
    }
    h.assertNoSecretsLogged(SECRETS);
    h.assertNoRealNetwork();
  });
});

describe("plivo adapter webhooks", () => {
  const INBOUND = "https://sms.example.com/channels/support/inbound";
  const NONCE = "12345678901234567890";
  const form = fixture("inbound-sms.form");

  function request(headers: Record<string, string>, rawBody = form, url = INBOUND): RawRequest {
    return {
      method: "POST",
      url,
      headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
      body: Buffer.from(rawBody),
    };
  }

  const formParams = (raw: string) => {
    const out: Record<string, string[]> = {};
    for (const [k, v] of new URLSearchParams(raw)) out[k] = [...(out[k] ?? []), v];
    return out;
  };

  const CASES: Array<{ name: string; req: () => RawRequest; ok: boolean; status?: number }> = [
    {
      name: "V2 valid",
      req: () =>
        request({ [V2_SIGNATURE]: computeV2Signature(INBOUND, NONCE, AUTH_TOKEN), [V2_NONCE]: NONCE }),
      ok: true,
    },
    {
      name: "V2 wrong key",
      req: () =>
        request({ [V2_SIGNATURE]: computeV2Signature(INBOUND, NONCE, "other-token"), [V2_NONCE]: NONCE }),
      ok: false,
      status: 403,
    },
    { name: "no signature", req: () => request({}), ok: false, status: 401 },
    {
      name: "V3 valid over the form body",
      req: () =>
        request({
          [V3_SIGNATURE]: computeV3Signature("POST", INBOUND, formParams(form), NONCE, AUTH_TOKEN),
          [V3_NONCE]: NONCE,
        }),
      ok: true,
    },
    {
      name: "V3 with a tampered body",
      req: () =>
        request(
          {
            [V3_SIGNATURE]: computeV3Signature("POST", INBOUND, formParams(form), NONCE, AUTH_TOKEN),
            [V3_NONCE]: NONCE,
          },
          form.replace("Hello", "Goodbye"),
        ),
      ok: false,
      status: 403,
    },
    {
      name: "V3 valid on a GET status callback (fields in the query)",
      req: () => {
        const url = "https://sms.example.com/channels/support/status?MessageUUID=u-1&Status=delivered";
        return {
          method: "GET",
          url,
          headers: {
            [V3_SIGNATURE]: computeV3Signature("GET", url, {}, NONCE, AUTH_TOKEN),
            [V3_NONCE]: NONCE,
          },
          body: Buffer.alloc(0),
        };
      },
      ok: true,
    },
  ];
  for (const c of CASES) {
    it(`verify: ${c.name}`, async () => {
      const { h, adapter } = adapterFor("http://127.0.0.1:9");
      const verdict = await adapter.verify(c.req());
      assert.equal(verdict.ok, c.ok);
      if (!verdict.ok) assert.equal(verdict.status, c.status);
      h.assertNoSecretsLogged(SECRETS);
      h.assertNoRealNetwork();
    });
  }

  it("the SDK validates a request our adapter accepts (V2, sign with ours → verify with plivo-node)", async () => {
    const { h, adapter } = adapterFor("http://127.0.0.1:9");
    const sig = computeV2Signature(INBOUND, NONCE, AUTH_TOKEN);
    assert.equal(Boolean(plivo.validateSignature(INBOUND, NONCE, sig, AUTH_TOKEN)), true);
    assert.deepEqual(await adapter.verify(request({ [V2_SIGNATURE]: sig, [V2_NONCE]: NONCE })), { ok: true });
    h.assertNoSecretsLogged(SECRETS);
    h.assertNoRealNetwork();
  });

  it("parse + ack: one message, an empty Plivo XML <Response>", () => {
    const { h, adapter } = adapterFor("http://127.0.0.1:9");
    const events = adapter.parse(request({}));
    assert.equal(events.length, 1);
    assert.equal(events[0]?.kind, "message");
    assert.deepEqual(adapter.ack?.(events), {
      status: 200,
      headers: { "content-type": "application/xml" },
      body: '<?xml version="1.0" encoding="UTF-8"?><Response></Response>',
    });
    assert.equal(adapter.media, undefined, "Plivo media URLs are public");
    h.assertNoSecretsLogged(SECRETS);
    h.assertNoRealNetwork();
  });
});

describe("plivo config", () => {
  const CASES: Array<{ name: string; input: unknown; error?: RegExp }> = [
    { name: "minimal", input: { authId: AUTH_ID, authToken: AUTH_TOKEN } },
    {
      name: "with apiBaseUrl",
      input: { authId: AUTH_ID, authToken: AUTH_TOKEN, apiBaseUrl: "http://127.0.0.1:1" },
    },
    { name: "missing authToken", input: { authId: AUTH_ID }, error: /authToken.*Auth Token/s },
    { name: "empty authId", input: { authId: "", authToken: AUTH_TOKEN }, error: /authId.*Auth ID/s },
    {
      name: "authId with spaces inside",
      input: { authId: "MA 123", authToken: AUTH_TOKEN },
      error: /letters and digits/,
    },
    {
      name: "apiBaseUrl not a URL",
      input: { authId: AUTH_ID, authToken: AUTH_TOKEN, apiBaseUrl: "api.plivo.com" },
      error: /http\(s\) URL/,
    },
  ];
  for (const c of CASES) {
    it(c.name, () => {
      const h = createHarness();
      const r = plivoConfig.safeParse(c.input);
      if (c.error) {
        assert.equal(r.success, false);
        const text = r.error?.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ") ?? "";
        assert.match(text, c.error);
        assert.ok(!text.includes(AUTH_TOKEN), "validation errors never echo the token");
      } else {
        assert.equal(r.success, true);
      }
      h.assertNoSecretsLogged(SECRETS);
      h.assertNoRealNetwork();
    });
  }

  it("declares authToken as the secret", () => {
    const h = createHarness();
    assert.deepEqual(plivoProvider.secretKeys, ["authToken"]);
    assert.equal(plivoProvider.type, "plivo");
    h.assertNoSecretsLogged(SECRETS);
    h.assertNoRealNetwork();
  });
});
