import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { createHarness } from "../test-support/harness.js";
import { BadWebhook, type ProviderEvent, type RawRequest } from "../types.js";
import { vonageProvider } from "./index.js";

const SECRETS = ["abcd1234", "Vonage-api-secret-0123", "sig-secret-Zq9v3T1xWm8Kp4Lr"];
const URL_BASE = "https://sms.example.com/channels/support/inbound";
const fixture = (name: string) => readFileSync(new URL(`./testdata/${name}`, import.meta.url), "utf8");

function make() {
  const h = createHarness();
  const a = vonageProvider.create(
    vonageProvider.config.parse({ apiKey: SECRETS[0], apiSecret: SECRETS[1], signatureSecret: SECRETS[2] }),
    h.ctx,
  );
  return { h, a };
}

const json = (body: string): RawRequest => ({
  method: "POST",
  url: URL_BASE,
  headers: { "content-type": "application/json" },
  body: Buffer.from(body),
});
const form = (body: string, url = URL_BASE): RawRequest => ({
  method: "POST",
  url,
  headers: { "content-type": "application/x-www-form-urlencoded" },
  body: Buffer.from(body),
});
const get = (query: string): RawRequest => ({
  method: "GET",
  url: `${URL_BASE}?${query}`,
  headers: {},
  body: Buffer.alloc(0),
});
/** The same parameters as a JSON fixture, sent the way the dashboard's GET or POST-form setting sends them. */
const asQuery = (name: string) =>
  new URLSearchParams(JSON.parse(fixture(name)) as Record<string, string>).toString();

const helloWorld: ProviderEvent = {
  kind: "message",
  providerMessageId: "0A0000000123ABCD1",
  from: "+447700900001",
  to: "+447700900000",
  body: "Hello world",
  attachments: [],
  createdAt: "2020-01-01T12:00:00.000Z",
  meta: { type: "text", keyword: "HELLO" },
};

const cases: { name: string; req: RawRequest; events: ProviderEvent[] }[] = [
  {
    name: "SMS API inbound, POST JSON (API reference example)",
    req: json(fixture("sms-inbound.json")),
    events: [helloWorld],
  },
  { name: "SMS API inbound, GET query", req: get(asQuery("sms-inbound.json")), events: [helloWorld] },
  { name: "SMS API inbound, POST form", req: form(asQuery("sms-inbound.json")), events: [helloWorld] },
  {
    name: "SMS API inbound, form as captured from Vonage (+ for spaces, %21)",
    req: form(fixture("sms-inbound-form.txt")),
    events: [
      {
        kind: "message",
        providerMessageId: "030000000926C4C2",
        from: "+14155550101",
        to: "+14155550100",
        body: "Hello!",
        attachments: [],
        createdAt: "2016-08-14T10:13:54.000Z",
        meta: { type: "text", keyword: "HELLO!" },
      },
    ],
  },
  {
    name: "SMS API inbound unicode (Cyrillic, emoji, CJK, & and =)",
    req: get(asQuery("sms-inbound-unicode.json")),
    events: [
      {
        kind: "message",
        providerMessageId: "0A0000000123ABCD2",
        from: "+79161234567",
        to: "+447700900000",
        body: "Привет 👋 你好 & =",
        attachments: [],
        createdAt: "2020-01-01T12:00:05.000Z",
        meta: { type: "unicode", keyword: "ПРИВЕТ" },
      },
    ],
  },
  {
    name: "SMS API concatenated part 1 of 2 is its own message, concat info in meta",
    req: json(fixture("sms-inbound-concat-1.json")),
    events: [
      {
        kind: "message",
        providerMessageId: "0A0000000123ABCD3",
        from: "+447700900001",
        to: "+447700900000",
        body: JSON.parse(fixture("sms-inbound-concat-1.json")).text,
        attachments: [],
        createdAt: "2020-01-01T12:01:00.000Z",
        meta: { type: "text", keyword: "THIS", concat: { ref: "1", total: 2, part: 1 } },
      },
    ],
  },
  {
    name: "SMS API concatenated part 2 of 2",
    req: form(asQuery("sms-inbound-concat-2.json")),
    events: [
      {
        kind: "message",
        providerMessageId: "0A0000000123ABCD4",
        from: "+447700900001",
        to: "+447700900000",
        body: "and this is the second part.",
        attachments: [],
        createdAt: "2020-01-01T12:01:00.000Z",
        meta: { type: "text", keyword: "AND", concat: { ref: "1", total: 2, part: 2 } },
      },
    ],
  },
  {
    name: "SMS API binary SMS is acknowledged and ignored",
    req: json(fixture("sms-inbound-binary.json")),
    events: [{ kind: "ignored", reason: "Vonage binary SMS 0A0000000123ABCD5 has no text to forward" }],
  },
  {
    name: "SMS API delivery receipt: delivered",
    req: json(fixture("sms-dlr-delivered.json")),
    events: [
      {
        kind: "status",
        providerMessageId: "0B00000127FDBC63",
        state: "delivered",
        providerStatus: "delivered",
        at: "2018-10-25T12:10:29.000Z",
      },
    ],
  },
  {
    name: "SMS API delivery receipt: recipient opted out (err-code 9)",
    req: get(asQuery("sms-dlr-opted-out.json")),
    events: [
      {
        kind: "status",
        providerMessageId: "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
        state: "failed",
        providerStatus: "failed",
        errorCode: "9",
        errorMessage:
          "Illegal Number: the recipient asked not to receive messages from this sender (opted out)",
        at: "2020-01-01T12:00:00.000Z",
      },
    ],
  },
  {
    name: "SMS API delivery receipt: expired, POST form",
    req: form(fixture("sms-dlr-expired-form.txt")),
    events: [
      {
        kind: "status",
        providerMessageId: "0A0000001234567B",
        state: "undelivered",
        providerStatus: "expired",
        errorCode: "2",
        errorMessage: "Absent Subscriber - Temporary",
        at: "2020-01-01T12:00:00.000Z",
      },
    ],
  },
  {
    name: "Messages API inbound SMS",
    req: json(fixture("messages-inbound-sms.json")),
    events: [
      {
        kind: "message",
        providerMessageId: "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
        from: "+447700900001",
        to: "+447700900000",
        body: "Hello From Vonage!",
        attachments: [],
        createdAt: "2020-01-01T14:00:00.000Z",
        meta: { channel: "sms", messageType: "text", numMessages: 2, keyword: "HELLO" },
      },
    ],
  },
  {
    name: "Messages API inbound MMS image with caption",
    req: json(fixture("messages-inbound-mms-image.json")),
    events: [
      {
        kind: "message",
        providerMessageId: "aaaaaaaa-bbbb-cccc-dddd-0123456789ac",
        from: "+14155550101",
        to: "+14155550100",
        body: "Look at this 📷",
        attachments: [{ url: "https://api-us.nexmo.com/v3/media/1b456509-974c-458b-aafa-45fc48a4d976" }],
        createdAt: "2023-01-01T14:00:00.000Z",
        meta: { channel: "mms", messageType: "image" },
      },
    ],
  },
  {
    name: "Messages API inbound MMS vCard",
    req: json(fixture("messages-inbound-mms-vcard.json")),
    events: [
      {
        kind: "message",
        providerMessageId: "aaaaaaaa-bbbb-cccc-dddd-0123456789ad",
        from: "+14155550101",
        to: "+14155550100",
        body: "",
        attachments: [{ url: "https://api-us.nexmo.com/v3/media/2c567610-085d-569c-bbfb-56fd59b5e087" }],
        createdAt: "2020-01-01T15:43:21.000Z",
        meta: { channel: "mms", messageType: "vcard" },
      },
    ],
  },
  {
    name: "Messages API message on another channel is ignored",
    req: json(fixture("messages-inbound-messenger.json")),
    events: [
      {
        kind: "ignored",
        reason:
          "Vonage messenger channel message aaaaaaaa-bbbb-cccc-dddd-0123456789ab: only sms and mms are bridged",
      },
    ],
  },
  {
    name: "Messages API status: submitted",
    req: json(fixture("messages-status-submitted.json")),
    events: [
      {
        kind: "status",
        providerMessageId: "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
        state: "sent",
        providerStatus: "submitted",
        at: "2023-05-01T14:00:00.000Z",
      },
    ],
  },
  {
    name: "Messages API status: rejected with RFC 7807 error",
    req: json(fixture("messages-status-rejected.json")),
    events: [
      {
        kind: "status",
        providerMessageId: "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
        state: "failed",
        providerStatus: "rejected",
        errorCode: "1000",
        errorMessage:
          "Throttled - You have exceeded the submission capacity allowed on this account. Please wait and retry",
        at: "2020-01-01T14:00:03.010Z",
      },
    ],
  },
  {
    name: "Messages API status: undeliverable",
    req: json(fixture("messages-status-undeliverable.json")),
    events: [
      {
        kind: "status",
        providerMessageId: "aaaaaaaa-bbbb-cccc-dddd-0123456789ae",
        state: "undelivered",
        providerStatus: "undeliverable",
        at: "2020-01-08T15:43:21.000Z",
      },
    ],
  },
];

describe("vonage parse", () => {
  for (const c of cases) {
    test(c.name, () => {
      const { h, a } = make();
      assert.deepEqual(a.parse(c.req), c.events);
      h.assertNoSecretsLogged(SECRETS);
      h.assertNoRealNetwork();
    });
  }

  const bad: { name: string; req: RawRequest; message: RegExp }[] = [
    { name: "empty GET", req: get(""), message: /not a Vonage webhook/ },
    { name: "broken JSON", req: json('{"msisdn": "4477'), message: /not valid JSON/ },
    { name: "JSON array", req: json("[1,2]"), message: /not an object/ },
    {
      name: "inbound without msisdn",
      req: get("messageId=1&to=447700900000&text=hi"),
      message: /without msisdn/,
    },
    {
      name: "inbound without text",
      req: get("messageId=1&msisdn=447700900001&to=447700900000&type=text"),
      message: /without text/,
    },
    {
      name: "DLR without messageId",
      req: get("status=delivered&msisdn=447700900000"),
      message: /delivery receipt without messageId/,
    },
    {
      name: "Messages API SMS without from",
      req: json('{"channel":"sms","message_uuid":"u1","to":"447700900000","message_type":"text","text":"x"}'),
      message: /without from\/to/,
    },
    {
      name: "Messages API MMS image without url",
      req: json(
        '{"channel":"mms","message_uuid":"u2","to":"1","from":"2","message_type":"image","image":{}}',
      ),
      message: /without url/,
    },
    {
      name: "Messages API SMS with neither text nor media",
      req: json(
        '{"channel":"sms","message_uuid":"u3","to":"14155550100","from":"14155550101","message_type":"text"}',
      ),
      message: /neither text nor media/,
    },
  ];
  for (const c of bad) {
    test(`BadWebhook: ${c.name}`, () => {
      const { h, a } = make();
      assert.throws(
        () => a.parse(c.req),
        (e: unknown) => e instanceof BadWebhook && c.message.test(e.message),
      );
      h.assertNoSecretsLogged(SECRETS);
      h.assertNoRealNetwork();
    });
  }

  test("ack is what Vonage expects (204, else it resends for 24 h)", () => {
    const { h, a } = make();
    assert.deepEqual(a.ack?.([]), { status: 204 });
    h.assertNoSecretsLogged(SECRETS);
    h.assertNoRealNetwork();
  });
});
