import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import type { ServerResponse } from "node:http";
import { createRequire } from "node:module";
import { after, before, describe, test } from "node:test";
import { createHarness, type RecordedRequest, type StandIn, startStandIn } from "../test-support/harness.js";
import { bodySha256, computeSignature, formParams } from "../twilio/signature.js";
import type { OutgoingSms, ProviderEvent, RawRequest, SendResult } from "../types.js";
import { SIGNALWIRE_MAX_MEDIA, type SignalwireConfig, signalwireProvider } from "./index.js";

const fixture = (name: string) => readFileSync(new URL(`./testdata/${name}`, import.meta.url));

/**
 * The SDK's package "exports" hide its signing helper; the file is the same one its public validateRequest
 * uses, loaded by path so the SDK can sign too (the oracle works both ways).
 */
const require = createRequire(import.meta.url);
const sdkWebhooks = require(
  require
    .resolve("@signalwire/compatibility-api")
    .replace(/dist[\\/]index\.node\.js$/, "lib/webhooks/webhooks.js"),
) as {
  getExpectedTwilioSignature(key: string, url: string, params: Record<string, string | string[]>): string;
};
/** The public entry point (its ESM build ships no type declarations, so it is loaded and typed here). */
const { RestClient } = require("@signalwire/compatibility-api") as {
  RestClient: {
    validateRequest(
      key: string,
      signature: string,
      url: string,
      params: Record<string, string | string[]>,
    ): boolean;
  };
};

const PROJECT = "ea108133-d6b3-407c-9536-9fad8a929a6a";
const API_TOKEN = "PT9f8e7d6c5b4a39281706f5e4d3c2b1a0";
const SIGNING_KEY = "PSK_2f1e0d9c8b7a6f5e4d3c2b1a0";
const SECRETS = [API_TOKEN, SIGNING_KEY, Buffer.from(`${PROJECT}:${API_TOKEN}`).toString("base64")];
const CONFIG: SignalwireConfig = {
  projectId: PROJECT,
  apiToken: API_TOKEN,
  signingKey: SIGNING_KEY,
  spaceUrl: "example.signalwire.com",
};
const INBOUND = "https://sms.example.com/channels/support/inbound";
const FORM = "application/x-www-form-urlencoded";

function sdkParams(body: Buffer | string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of formParams(body)) {
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}

const sms = fixture("inbound-sms.form");
const jsonBody = Buffer.from(
  JSON.stringify({
    MessageSid: "0a059168-ead0-41af-9d1f-343dae832527",
    From: "+15557654321",
    To: "+15551234567",
    Body: "hi",
  }),
);
const jsonUrl = `${INBOUND}?bodySHA256=${bodySha256(jsonBody)}`;

interface VerifyCase {
  name: string;
  url: string;
  body: Buffer | string;
  headers: (body: Buffer | string) => Record<string, string>;
  received?: Buffer | string;
  method?: string;
  expect: true | 401 | 403;
  /** Whether the compatibility SDK's validateRequest covers the case (it knows form bodies only). */
  oracle: boolean;
}

const sdkSign = (url: string, body: Buffer | string, key = SIGNING_KEY) =>
  sdkWebhooks.getExpectedTwilioSignature(key, url, sdkParams(body));

const verifyCases: VerifyCase[] = [
  {
    name: "valid, X-SignalWire-Signature",
    url: INBOUND,
    body: sms,
    headers: (b) => ({ "x-signalwire-signature": sdkSign(INBOUND, b) }),
    expect: true,
    oracle: true,
  },
  {
    name: "valid, X-Twilio-Signature",
    url: INBOUND,
    body: sms,
    headers: (b) => ({ "x-twilio-signature": sdkSign(INBOUND, b) }),
    expect: true,
    oracle: true,
  },
  {
    name: "tampered body",
    url: INBOUND,
    body: sms,
    received: sms.toString().replace("Body=Msg", "Body=Msh"),
    headers: (b) => ({ "x-signalwire-signature": sdkSign(INBOUND, b) }),
    expect: 403,
    oracle: true,
  },
  {
    name: "signed with the API token instead of the Signing Key",
    url: INBOUND,
    body: sms,
    headers: (b) => ({ "x-signalwire-signature": sdkSign(INBOUND, b, API_TOKEN) }),
    expect: 403,
    oracle: true,
  },
  { name: "missing header", url: INBOUND, body: sms, headers: () => ({}), expect: 401, oracle: false },
  {
    name: "signed with :443, received without port",
    url: INBOUND,
    body: sms,
    headers: (b) => ({
      "x-signalwire-signature": sdkSign("https://sms.example.com:443/channels/support/inbound", b),
    }),
    expect: true,
    oracle: true,
  },
  {
    name: "signed without port, received with :443",
    url: "https://sms.example.com:443/channels/support/inbound",
    body: sms,
    headers: (b) => ({ "x-signalwire-signature": sdkSign(INBOUND, b) }),
    expect: true,
    oracle: true,
  },
  {
    name: "query string signed",
    url: `${INBOUND}?channel=support`,
    body: sms,
    headers: (b) => ({ "x-signalwire-signature": sdkSign(`${INBOUND}?channel=support`, b) }),
    expect: true,
    oracle: true,
  },
  {
    name: "query string changed",
    url: `${INBOUND}?channel=other`,
    body: sms,
    headers: (b) => ({ "x-signalwire-signature": sdkSign(`${INBOUND}?channel=support`, b) }),
    expect: 403,
    oracle: true,
  },
  {
    name: "repeated parameters signed in the order sent (not sorted)",
    url: INBOUND,
    body: "MessageSid=1&MediaUrl=https%3A%2F%2Fm%2Fb&MediaUrl=https%3A%2F%2Fm%2Fa",
    headers: (b) => ({ "x-signalwire-signature": sdkSign(INBOUND, b) }),
    expect: true,
    oracle: true,
  },
  {
    name: "repeated parameters signed sorted, as Twilio's SDK would: not SignalWire's signature",
    url: INBOUND,
    body: "MessageSid=1&MediaUrl=https%3A%2F%2Fm%2Fb&MediaUrl=https%3A%2F%2Fm%2Fa",
    headers: (b) => ({
      "x-signalwire-signature": computeSignature(SIGNING_KEY, INBOUND, formParams(b), "sorted-unique"),
    }),
    expect: 403,
    oracle: true,
  },
  {
    name: "JSON body, hex HMAC-SHA1 over URL + raw body",
    url: INBOUND,
    body: jsonBody,
    headers: (b) => ({
      "content-type": "application/json",
      "x-signalwire-signature": createHmac("sha1", SIGNING_KEY).update(`${INBOUND}${b}`).digest("hex"),
    }),
    expect: true,
    oracle: false,
  },
  {
    name: "JSON body, hex signature, body tampered",
    url: INBOUND,
    body: jsonBody,
    received: jsonBody.toString().replace('"hi"', '"ho"'),
    headers: (b) => ({
      "content-type": "application/json",
      "x-signalwire-signature": createHmac("sha1", SIGNING_KEY).update(`${INBOUND}${b}`).digest("hex"),
    }),
    expect: 403,
    oracle: false,
  },
  {
    name: "JSON body with bodySHA256 in the signed URL",
    url: jsonUrl,
    body: jsonBody,
    headers: () => ({
      "content-type": "application/json",
      "x-signalwire-signature": sdkWebhooks.getExpectedTwilioSignature(SIGNING_KEY, jsonUrl, {}),
    }),
    expect: true,
    oracle: false,
  },
];

describe("signalwire verify", () => {
  for (const c of verifyCases) {
    test(c.name, () => {
      const h = createHarness();
      const adapter = signalwireProvider.create(CONFIG, h.ctx);
      const received = c.received ?? c.body;
      const headers: Record<string, string> = { "content-type": FORM, ...c.headers(c.body) };
      const req: RawRequest = {
        method: c.method ?? "POST",
        url: c.url,
        headers,
        body: Buffer.from(received),
      };
      const verdict = adapter.verify(req);
      assert.ok(!(verdict instanceof Promise));
      if (c.expect === true) assert.deepEqual(verdict, { ok: true });
      else {
        assert.equal(verdict.ok, false);
        if (!verdict.ok) {
          assert.equal(verdict.status, c.expect);
          assert.ok(!verdict.reason.includes(SIGNING_KEY) && verdict.expected !== SIGNING_KEY);
        }
      }
      if (c.oracle) {
        const sig = headers["x-signalwire-signature"] ?? headers["x-twilio-signature"] ?? "";
        assert.equal(
          RestClient.validateRequest(SIGNING_KEY, sig, c.url, sdkParams(received)),
          c.expect === true,
          "the SignalWire SDK disagrees",
        );
      }
      h.assertNoSecretsLogged(SECRETS);
      h.assertNoRealNetwork();
    });
  }

  test("missing header names both accepted headers", () => {
    const h = createHarness();
    const verdict = signalwireProvider
      .create(CONFIG, h.ctx)
      .verify({ method: "POST", url: INBOUND, headers: {}, body: sms });
    assert.ok(!(verdict instanceof Promise) && !verdict.ok);
    if (!verdict.ok)
      assert.match(verdict.reason, /missing X-SignalWire-Signature or X-Twilio-Signature header/);
    h.assertNoSecretsLogged(SECRETS);
    h.assertNoRealNetwork();
  });

  test("our signature verifies with the SDK", () => {
    for (const body of [sms, fixture("inbound-mms.form"), fixture("status-undelivered.form")]) {
      const sig = computeSignature(SIGNING_KEY, INBOUND, formParams(body), "as-sent");
      assert.equal(sig, sdkSign(INBOUND, body));
      assert.ok(RestClient.validateRequest(SIGNING_KEY, sig, INBOUND, sdkParams(body)));
    }
  });
});

describe("signalwire parse and ack", () => {
  const media = `https://example.signalwire.com/api/laml/2010-04-01/Accounts/${PROJECT}/Messages/0a059168-ead0-41af-9d1f-343dae832527/Media/b3877c40-da60-4998-90ad-b792e98472me`;
  const cases: [string, Buffer, ProviderEvent[]][] = [
    [
      "SMS",
      sms,
      [
        {
          kind: "message",
          providerMessageId: "SMe287d7109a5a925f182f0e07fe5b223b",
          from: "+14133881111",
          to: "+12028831111",
          body: "Msg",
          attachments: [],
          meta: {
            accountSid: PROJECT,
            numSegments: "1",
            numMedia: "0",
            fromCountry: "US",
            toCountry: "US",
            apiVersion: "2010-04-01",
          },
        },
      ],
    ],
    [
      "MMS with emoji",
      fixture("inbound-mms.form"),
      [
        {
          kind: "message",
          providerMessageId: "0a059168-ead0-41af-9d1f-343dae832527",
          from: "+15557654321",
          to: "+15551234567",
          body: "Hello World! 😀",
          attachments: [{ url: media, contentType: "image/jpeg" }],
          meta: { accountSid: PROJECT, numSegments: "1", numMedia: "1", apiVersion: "2010-04-01" },
        },
      ],
    ],
    [
      "status: delivered",
      fixture("status-delivered.form"),
      [
        {
          kind: "status",
          providerMessageId: "0a059168-ead0-41af-9d1f-343dae832527",
          state: "delivered",
          providerStatus: "delivered",
        },
      ],
    ],
    [
      "status: undelivered 30003",
      fixture("status-undelivered.form"),
      [
        {
          kind: "status",
          providerMessageId: "0a059168-ead0-41af-9d1f-343dae832527",
          state: "undelivered",
          providerStatus: "undelivered",
          errorCode: "30003",
          errorMessage: "Unreachable destination handset",
        },
      ],
    ],
    [
      "status: carrier opt-out 30004",
      fixture("status-failed-optout.form"),
      [
        {
          kind: "status",
          providerMessageId: "0a059168-ead0-41af-9d1f-343dae832527",
          state: "undelivered",
          providerStatus: "undelivered",
          errorCode: "30004",
          errorMessage: "Message blocked",
        },
      ],
    ],
  ];
  for (const [name, body, expected] of cases) {
    test(name, () => {
      const h = createHarness();
      const adapter = signalwireProvider.create(CONFIG, h.ctx);
      const events = adapter.parse({ method: "POST", url: INBOUND, headers: { "content-type": FORM }, body });
      assert.deepEqual(events, expected);
      const answer = adapter.ack?.(events);
      assert.equal(answer?.body, '<?xml version="1.0" encoding="UTF-8"?><Response></Response>');
      assert.match(answer?.headers?.["content-type"] ?? "", /^text\/xml/);
      h.assertNoSecretsLogged(SECRETS);
      h.assertNoRealNetwork();
    });
  }
});

describe("signalwire config and media", () => {
  test("spaceUrl is taken with or without scheme and trailing slash", () => {
    for (const v of [
      "example.signalwire.com",
      "https://example.signalwire.com/",
      " example.signalwire.com ",
    ]) {
      assert.equal(
        signalwireProvider.config.parse({ ...CONFIG, spaceUrl: v }).spaceUrl,
        "example.signalwire.com",
      );
    }
  });

  const invalid: [string, Record<string, unknown>, string][] = [
    ["project id that is not a UUID", { ...CONFIG, projectId: "my-project" }, "projectId"],
    ["no API token", { ...CONFIG, apiToken: undefined }, "apiToken"],
    ["empty signing key", { ...CONFIG, signingKey: "" }, "signingKey"],
    ["space URL with a path", { ...CONFIG, spaceUrl: "example.signalwire.com/api" }, "spaceUrl"],
  ];
  for (const [name, input, path] of invalid) {
    test(`rejects ${name}, naming ${path}`, () => {
      const r = signalwireProvider.config.safeParse(input);
      assert.equal(r.success, false);
      if (!r.success)
        assert.ok(
          r.error.issues.some((i) => i.path.join(".") === path),
          JSON.stringify(r.error.issues),
        );
    });
  }

  test("secrets are the API token and the Signing Key", () => {
    assert.deepEqual(signalwireProvider.secretKeys, ["apiToken", "signingKey"]);
  });

  test("media: project credentials only for SignalWire hosts over HTTPS", () => {
    const h = createHarness();
    const m = signalwireProvider.create(CONFIG, h.ctx).media;
    assert.ok(m);
    const basic = `Basic ${Buffer.from(`${PROJECT}:${API_TOKEN}`).toString("base64")}`;
    const table: [string, Record<string, string>][] = [
      [
        `https://example.signalwire.com/api/laml/2010-04-01/Accounts/${PROJECT}/Messages/x/Media/y`,
        { authorization: basic },
      ],
      ["https://files.signalwire.com/abc/def.jpg", { authorization: basic }],
      ["http://example.signalwire.com/x", {}],
      ["https://signalwire.com.evil.example/x", {}],
    ];
    for (const [url, headers] of table) assert.deepEqual(m.headers(new URL(url)), headers, url);
    h.assertNoSecretsLogged(SECRETS);
    h.assertNoRealNetwork();
  });
});

describe("signalwire send", () => {
  let standIn: StandIn;
  before(async () => {
    standIn = await startStandIn();
  });
  after(() => standIn.close());

  const base: OutgoingSms = {
    from: "+15551234567",
    to: "+15557654321",
    body: "Hello World!",
    mediaUrls: [],
    statusCallbackUrl: "https://sms.example.com/channels/support/status",
  };

  async function send(
    sms: OutgoingSms,
    answer: (res: ServerResponse, n: number) => void,
  ): Promise<{ result: SendResult; requests: RecordedRequest[] }> {
    standIn.requests.length = 0;
    let n = 0;
    standIn.answer((_q, res) => answer(res, n++));
    const h = createHarness();
    const adapter = signalwireProvider.create({ ...CONFIG, apiBaseUrl: standIn.url }, h.ctx);
    const result = await adapter.send(sms, { signal: AbortSignal.timeout(10_000) });
    h.assertNoSecretsLogged(SECRETS);
    h.assertNoRealNetwork();
    return { result, requests: [...standIn.requests] };
  }
  const json = (
    res: ServerResponse,
    status: number,
    body: Buffer | string,
    headers: Record<string, string> = {},
  ) => res.writeHead(status, { "content-type": "application/json", ...headers }).end(body);

  test("POST form to the space's LaML Messages.json with Basic projectId:apiToken", async () => {
    const { result, requests } = await send(base, (res) => json(res, 201, fixture("message-created.json")));
    assert.deepEqual(result, { kind: "sent", providerId: "0a059168-ead0-41af-9d1f-343dae832527" });
    const r = requests[0] as RecordedRequest;
    assert.equal(r.method, "POST");
    assert.equal(r.url, `/api/laml/2010-04-01/Accounts/${PROJECT}/Messages.json`);
    assert.equal(
      r.headers.authorization,
      `Basic ${Buffer.from(`${PROJECT}:${API_TOKEN}`).toString("base64")}`,
    );
    assert.equal(r.headers["content-type"], FORM);
    assert.deepEqual(Object.fromEntries(new URLSearchParams(r.body.toString())), {
      To: base.to,
      From: base.from,
      Body: base.body,
      StatusCallback: base.statusCallbackUrl,
    });
  });

  test(`more than ${SIGNALWIRE_MAX_MEDIA} attachments: ${SIGNALWIRE_MAX_MEDIA} as media, the rest as links`, async () => {
    const media = Array.from({ length: 9 }, (_, i) => `https://cdn.example.com/${i}.png`);
    const { requests } = await send({ ...base, mediaUrls: media }, (res) =>
      json(res, 201, fixture("message-created.json")),
    );
    const f = new URLSearchParams((requests[0] as RecordedRequest).body.toString());
    assert.deepEqual(f.getAll("MediaUrl"), media.slice(0, 8));
    assert.equal(f.get("Body"), `Hello World!\n${media[8]}`);
  });

  const table: [string, (res: ServerResponse) => void, (r: SendResult) => boolean][] = [
    [
      "21610 → optedOut",
      (res) => json(res, 400, fixture("error-21610.json")),
      (r) => r.kind === "optedOut" && r.code === "21610",
    ],
    [
      "21211 → failed",
      (res) => json(res, 400, fixture("error-21211.json")),
      (r) => r.kind === "failed" && r.code === "21211",
    ],
    [
      "{errors:[…]} answer → failed with its code and message",
      (res) => json(res, 422, fixture("error-errors-array.json")),
      (r) =>
        r.kind === "failed" && r.code === "missing_required_parameter" && /blank or empty/.test(r.reason),
    ],
    [
      "429 → retryable with Retry-After",
      (res) => json(res, 429, "{}", { "retry-after": "3" }),
      (r) => r.kind === "retryable" && r.retryAfterMs === 3000,
    ],
    ["500 → retryable", (res) => json(res, 500, "{}"), (r) => r.kind === "retryable"],
  ];
  for (const [name, answer, check] of table) {
    test(name, async () => {
      const { result } = await send(base, (res) => answer(res));
      assert.ok(check(result), JSON.stringify(result));
    });
  }

  test("the default API base is https://{spaceUrl}", async () => {
    const h = createHarness();
    const result = await signalwireProvider
      .create(CONFIG, h.ctx)
      .send(base, { signal: AbortSignal.timeout(10_000) });
    assert.equal(result.kind, "failed");
    assert.deepEqual(h.forbidden, [
      `https://example.signalwire.com/api/laml/2010-04-01/Accounts/${PROJECT}/Messages.json`,
    ]);
    h.assertNoSecretsLogged(SECRETS);
  });

  test("network error (closed port) → retryable", async () => {
    const closed = await startStandIn();
    await closed.close();
    const h = createHarness();
    const result = await signalwireProvider
      .create({ ...CONFIG, apiBaseUrl: closed.url }, h.ctx)
      .send(base, { signal: AbortSignal.timeout(10_000) });
    assert.equal(result.kind, "retryable");
    h.assertNoSecretsLogged(SECRETS);
    h.assertNoRealNetwork();
  });
});
