import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { createHarness } from "../test-support/harness.js";
import { BadWebhook, type ProviderEvent, type RawRequest } from "../types.js";
import { twilioProvider } from "./index.js";
import { EMPTY_TWIML, mapStatus } from "./webhook.js";

const fixture = (name: string) => readFileSync(new URL(`./testdata/${name}`, import.meta.url));

const TOKEN = "f3a1c0de5e7b4d2a9c8b7a6f5e4d3c2b";
const ACCOUNT = "AC1234567890abcdef1234567890abcdef";
const INBOUND = "https://sms.example.com/channels/support/inbound";
const MEDIA = `https://api.twilio.com/2010-04-01/Accounts/${ACCOUNT}/Messages/MM0123456789abcdef0123456789abcdef/Media`;

function form(body: Buffer | string, url = INBOUND): RawRequest {
  return {
    method: "POST",
    url,
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: typeof body === "string" ? Buffer.from(body) : body,
  };
}

const sms = fixture("inbound-sms.form").toString();

interface Case {
  name: string;
  req: RawRequest;
  expect: ProviderEvent[];
}

const cases: Case[] = [
  {
    name: "SMS (form)",
    req: form(sms),
    expect: [
      {
        kind: "message",
        providerMessageId: "SMe287d7109a5a925f182f0e07fe5b223b",
        from: "+14133881111",
        to: "+12028831111",
        body: "Msg",
        attachments: [],
        meta: {
          accountSid: ACCOUNT,
          numSegments: "1",
          numMedia: "0",
          fromCountry: "US",
          toCountry: "US",
          apiVersion: "2010-04-01",
        },
      },
    ],
  },
  {
    name: "MMS with two media and their content types",
    req: form(fixture("inbound-mms.form")),
    expect: [
      {
        kind: "message",
        providerMessageId: "MM0123456789abcdef0123456789abcdef",
        from: "+14017122661",
        to: "+15558675310",
        body: "Here is the receipt",
        attachments: [
          { url: `${MEDIA}/ME0123456789abcdef0123456789abcdef`, contentType: "image/jpeg" },
          { url: `${MEDIA}/ME1123456789abcdef0123456789abcdef`, contentType: "application/pdf" },
        ],
        meta: {
          accountSid: ACCOUNT,
          messagingServiceSid: "MG0123456789abcdef0123456789abcdef",
          numSegments: "1",
          numMedia: "2",
          fromCountry: "US",
          toCountry: "US",
          apiVersion: "2010-04-01",
        },
      },
    ],
  },
  {
    name: "status callback: delivered",
    req: form(fixture("status-delivered.form")),
    expect: [
      {
        kind: "status",
        providerMessageId: "SM0123456789abcdef0123456789abcdef",
        state: "delivered",
        providerStatus: "delivered",
      },
    ],
  },
  {
    name: "status callback: sent",
    req: form(fixture("status-sent.form")),
    expect: [
      {
        kind: "status",
        providerMessageId: "SM0123456789abcdef0123456789abcdef",
        state: "sent",
        providerStatus: "sent",
      },
    ],
  },
  {
    name: "status callback: undelivered with error code and text",
    req: form(fixture("status-undelivered.form")),
    expect: [
      {
        kind: "status",
        providerMessageId: "SM0123456789abcdef0123456789abcdef",
        state: "undelivered",
        providerStatus: "undelivered",
        errorCode: "30003",
        errorMessage: "Unreachable destination handset",
      },
    ],
  },
  {
    name: "status callback: failed because the recipient opted out",
    req: form(fixture("status-failed-optout.form")),
    expect: [
      {
        kind: "status",
        providerMessageId: "SM0123456789abcdef0123456789abcdef",
        state: "failed",
        providerStatus: "failed",
        errorCode: "21610",
      },
    ],
  },
  {
    name: "status callback: read (WhatsApp/RCS)",
    req: form(fixture("status-read.form")),
    expect: [
      {
        kind: "status",
        providerMessageId: "SM0123456789abcdef0123456789abcdef",
        state: "read",
        providerStatus: "read",
      },
    ],
  },
  {
    name: "status callback with a status word Twilio added later",
    req: form("MessageSid=SM1&MessageStatus=partially_delivered"),
    expect: [
      { kind: "status", providerMessageId: "SM1", state: "unknown", providerStatus: "partially_delivered" },
    ],
  },
];

describe("twilio parse", () => {
  for (const c of cases) {
    test(c.name, () => {
      const h = createHarness();
      const adapter = twilioProvider.create({ accountSid: ACCOUNT, authToken: TOKEN }, h.ctx);
      assert.deepEqual(adapter.parse(c.req), c.expect);
      h.assertNoSecretsLogged([TOKEN]);
      h.assertNoRealNetwork();
    });
  }

  const bodies: [string, string, string][] = [
    ["unicode: emoji and non-Latin scripts", "inbound-unicode.form", "Привет 👋 — 你好, ça va? 🇫🇷"],
    [
      "long message reassembled by Twilio",
      "inbound-long.form",
      "Hello, I ordered a blue jacket last week (order 44821) and it still has not arrived. "
        .repeat(5)
        .trim(),
    ],
  ];
  for (const [name, file, body] of bodies) {
    test(name, () => {
      const h = createHarness();
      const adapter = twilioProvider.create({ accountSid: ACCOUNT, authToken: TOKEN }, h.ctx);
      const [event] = adapter.parse(form(fixture(file)));
      assert.equal(event?.kind, "message");
      if (event?.kind === "message") assert.equal(event.body, body);
      h.assertNoSecretsLogged([TOKEN]);
      h.assertNoRealNetwork();
    });
  }

  test("STOP with Advanced Opt-Out keeps OptOutType in meta", () => {
    const h = createHarness();
    const adapter = twilioProvider.create({ accountSid: ACCOUNT, authToken: TOKEN }, h.ctx);
    const [event] = adapter.parse(form(fixture("inbound-stop.form")));
    assert.ok(event?.kind === "message");
    assert.equal(event.body, "STOP");
    assert.equal(event.meta?.optOutType, "STOP");
    h.assertNoSecretsLogged([TOKEN]);
    h.assertNoRealNetwork();
  });

  test("the same message as a GET webhook (parameters in the query string) and as JSON", () => {
    const h = createHarness();
    const adapter = twilioProvider.create({ accountSid: ACCOUNT, authToken: TOKEN }, h.ctx);
    const viaForm = adapter.parse(form(sms));
    const viaGet = adapter.parse({
      method: "GET",
      url: `${INBOUND}?${sms}`,
      headers: {},
      body: Buffer.alloc(0),
    });
    const viaJson = adapter.parse({
      method: "POST",
      url: `${INBOUND}?bodySHA256=abc`,
      headers: { "content-type": "application/json; charset=utf-8" },
      body: fixture("inbound-sms.json"),
    });
    assert.deepEqual(viaGet, viaForm);
    assert.deepEqual(viaJson, viaForm);
    h.assertNoSecretsLogged([TOKEN]);
    h.assertNoRealNetwork();
  });

  test("a JSON timestamp becomes createdAt", () => {
    const h = createHarness();
    const adapter = twilioProvider.create({ accountSid: ACCOUNT, authToken: TOKEN }, h.ctx);
    const doc = {
      ...JSON.parse(fixture("inbound-sms.json").toString()),
      timestamp: "2025-01-01T10:00:00.000+02:00",
    };
    const [event] = adapter.parse({
      method: "POST",
      url: INBOUND,
      headers: { "content-type": "application/json" },
      body: Buffer.from(JSON.stringify(doc)),
    });
    assert.ok(event?.kind === "message");
    assert.equal(event.createdAt, "2025-01-01T08:00:00.000Z");
    h.assertNoSecretsLogged([TOKEN]);
    h.assertNoRealNetwork();
  });

  const bad: [string, RawRequest, RegExp][] = [
    ["empty body", form(""), /neither MessageSid nor MessageStatus/],
    ["no From", form(sms.replace(/&From=[^&]*/, "")), /missing From/],
    ["no To", form(sms.replace(/&To=[^&]*/, "")), /missing To/],
    ["NumMedia not a number", form(sms.replace("NumMedia=0", "NumMedia=two")), /NumMedia/],
    ["NumMedia=1 without MediaUrl0", form(sms.replace("NumMedia=0", "NumMedia=1")), /MediaUrl0 is missing/],
    ["status callback without MessageSid", form("MessageStatus=delivered"), /missing MessageSid/],
    [
      "JSON that does not parse",
      {
        method: "POST",
        url: INBOUND,
        headers: { "content-type": "application/json" },
        body: Buffer.from("{nope"),
      },
      /not valid JSON/,
    ],
    [
      "JSON that is not an object",
      {
        method: "POST",
        url: INBOUND,
        headers: { "content-type": "application/json" },
        body: Buffer.from("[1]"),
      },
      /must be an object/,
    ],
  ];
  for (const [name, req, reason] of bad) {
    test(`BadWebhook: ${name}`, () => {
      const h = createHarness();
      const adapter = twilioProvider.create({ accountSid: ACCOUNT, authToken: TOKEN }, h.ctx);
      assert.throws(
        () => adapter.parse(req),
        (e: unknown) => e instanceof BadWebhook && reason.test(e.message),
      );
      h.assertNoSecretsLogged([TOKEN]);
      h.assertNoRealNetwork();
    });
  }
});

describe("twilio ack and status words", () => {
  test("ack is an empty TwiML document as text/xml", () => {
    const h = createHarness();
    const adapter = twilioProvider.create({ accountSid: ACCOUNT, authToken: TOKEN }, h.ctx);
    const answer = adapter.ack?.(adapter.parse(form(sms)));
    assert.equal(answer?.status, 200);
    assert.equal(answer?.body, '<?xml version="1.0" encoding="UTF-8"?><Response></Response>');
    assert.equal(answer?.body, EMPTY_TWIML);
    assert.match(answer?.headers?.["content-type"] ?? "", /^text\/xml/);
    h.assertNoSecretsLogged([TOKEN]);
    h.assertNoRealNetwork();
  });

  test("every status of Twilio's Message resource maps to a state", () => {
    const table: [string, string][] = [
      ["queued", "queued"],
      ["accepted", "queued"],
      ["scheduled", "queued"],
      ["sending", "sending"],
      ["sent", "sent"],
      ["delivered", "delivered"],
      ["undelivered", "undelivered"],
      ["failed", "failed"],
      ["canceled", "failed"],
      ["read", "read"],
      ["receiving", "unknown"],
      ["received", "unknown"],
      ["partially_delivered", "unknown"],
      ["DELIVERED", "delivered"],
    ];
    for (const [word, state] of table) assert.equal(mapStatus(word), state, word);
  });
});
