import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { createHarness } from "../test-support/harness.js";
import { BadWebhook, type ProviderEvent, type RawRequest } from "../types.js";
import { parsePlivoWebhook, plivoTime } from "./webhook.js";

const fixture = (name: string) => readFileSync(new URL(`./testdata/${name}`, import.meta.url));
const URL_ = "https://sms.example.com/channels/support/inbound";
const FORM = "application/x-www-form-urlencoded";
// Parsing never sees credentials; the harness still proves nothing secret-looking was logged.
const TOKEN = "MzY2ZjRkNTE2YjBhNGQyNzk5ZDZiODZlMGZkNzQ2";

function post(body: Buffer | string, contentType = FORM, url = URL_): RawRequest {
  return { method: "POST", url, headers: { "content-type": contentType }, body: Buffer.from(body) };
}

const MEDIA_A =
  "https://media.plivo.com/Account/MAXXXXXXXXXXXXXXXXXX/Media/801c2056-33ab-499c-80ef-58b574a462a2";
const MEDIA_B =
  "https://media.plivo.com/Account/MAXXXXXXXXXXXXXXXXXX/Media/9c3f2e8a-7b1d-4f6e-a2c5-1d0b3e4f5a6b";
const LONG =
  "This is a long message that the handset sent in several parts; Plivo concatenates multipart messages before forwarding them to the message_url. "
    .repeat(3)
    .trim();

const CASES: Array<{ name: string; req: RawRequest; want: ProviderEvent[] }> = [
  {
    name: "SMS (form)",
    req: post(fixture("inbound-sms.form")),
    want: [
      {
        kind: "message",
        providerMessageId: "7a242edc-2f57-11e7-98c9-06ab0bf64327",
        from: "+14155551234",
        to: "+14155556789",
        body: "Hello, from Plivo",
        attachments: [],
        meta: { Type: "sms", Units: "1", TotalRate: "0", TotalAmount: "0" },
      },
    ],
  },
  {
    name: "SMS via GET (message_method GET: fields in the query string)",
    req: {
      method: "GET",
      url: `${URL_}?${fixture("inbound-sms.form").toString()}`,
      headers: {},
      body: Buffer.alloc(0),
    },
    want: [
      {
        kind: "message",
        providerMessageId: "7a242edc-2f57-11e7-98c9-06ab0bf64327",
        from: "+14155551234",
        to: "+14155556789",
        body: "Hello, from Plivo",
        attachments: [],
        meta: { Type: "sms", Units: "1", TotalRate: "0", TotalAmount: "0" },
      },
    ],
  },
  {
    name: "MMS with Media1, Media2",
    req: post(fixture("inbound-mms.form")),
    want: [
      {
        kind: "message",
        providerMessageId: "0936ec98-7c4c-11ea-9a4f-0242ac110003",
        from: "+14155551234",
        to: "+14155556789",
        body: "Look at this",
        attachments: [{ url: MEDIA_A }, { url: MEDIA_B }],
        meta: { Type: "mms", Units: "1", TotalRate: "0.0100", TotalAmount: "0.0100", MediaCount: "2" },
      },
    ],
  },
  {
    name: "MMS with Media0 and no text",
    req: post(fixture("inbound-mms-media0.form")),
    want: [
      {
        kind: "message",
        providerMessageId: "1a2b3c4d-7c4c-11ea-9a4f-0242ac110003",
        from: "+14155551234",
        to: "+14155556789",
        body: "",
        attachments: [{ url: MEDIA_A }],
        meta: { Type: "mms", Units: "1", TotalRate: "0.0100", TotalAmount: "0.0100", MediaCount: "1" },
      },
    ],
  },
  {
    name: "unicode: emoji, Cyrillic, CJK, Arabic",
    req: post(fixture("inbound-unicode.form")),
    want: [
      {
        kind: "message",
        providerMessageId: "c9a1f3e2-2f57-11e7-98c9-06ab0bf64327",
        from: "+33612345678",
        to: "+447700900123",
        body: "Привет 👋 你好 — ça va ? مرحبا",
        attachments: [],
        meta: { Type: "sms", Units: "1", TotalRate: "0", TotalAmount: "0" },
      },
    ],
  },
  {
    name: "long message, already concatenated by Plivo",
    req: post(fixture("inbound-long.form")),
    want: [
      {
        kind: "message",
        providerMessageId: "4f0c2d1e-2f58-11e7-98c9-06ab0bf64327",
        from: "+14155551234",
        to: "+14155556789",
        body: LONG,
        attachments: [],
        meta: { Type: "sms", Units: "3", TotalRate: "0.0000", TotalAmount: "0.0000" },
      },
    ],
  },
  {
    name: "STOP keeps MessageIntent=optout in meta",
    req: post(fixture("inbound-optout.form")),
    want: [
      {
        kind: "message",
        providerMessageId: "5e6f7a8b-2f57-11e7-98c9-06ab0bf64327",
        from: "+14155551234",
        to: "+14155556789",
        body: "STOP",
        attachments: [],
        meta: { Type: "sms", Units: "1", TotalRate: "0", TotalAmount: "0", MessageIntent: "optout" },
      },
    ],
  },
  {
    name: "JSON body (WhatsApp-style media with MimeType)",
    req: post(
      JSON.stringify({
        From: "14155551234",
        To: "14155556789",
        Type: "whatsapp",
        Body: "photo",
        MessageUUID: "w-1",
        Media0: MEDIA_A,
        MimeType: "image/jpeg",
        MessageTime: "2024-03-04 10:20:30.5",
      }),
      "application/json",
    ),
    want: [
      {
        kind: "message",
        providerMessageId: "w-1",
        from: "+14155551234",
        to: "+14155556789",
        body: "photo",
        attachments: [{ url: MEDIA_A, contentType: "image/jpeg" }],
        createdAt: "2024-03-04T10:20:30.500Z",
        meta: { Type: "whatsapp" },
      },
    ],
  },
  {
    name: "status delivered (ParentMessageUUID, DeliveryReportTime)",
    req: post(fixture("status-delivered.form")),
    want: [
      {
        kind: "status",
        providerMessageId: "83876bdb-2033-4876-bfaf-0ff8693705af",
        state: "delivered",
        providerStatus: "delivered",
        at: "2024-03-04T10:20:35.987Z",
      },
    ],
  },
  {
    name: "status queued",
    req: post(fixture("status-queued.form")),
    want: [
      {
        kind: "status",
        providerMessageId: "db3ce55a-7f1d-11e1-8ea7-1231380bc196",
        state: "queued",
        providerStatus: "queued",
        at: "2024-03-04T10:20:30.200Z",
      },
    ],
  },
  {
    name: "status failed with ErrorCode 200 (recipient opted out)",
    req: post(fixture("status-failed-optout.form")),
    want: [
      {
        kind: "status",
        providerMessageId: "db3ce55a-7f1d-11e1-8ea7-1231380bc196",
        state: "failed",
        providerStatus: "failed",
        errorCode: "200",
        errorMessage: "Source number blocked by STOP from destination number (the recipient opted out)",
        at: "2024-03-04T10:20:30.900Z",
      },
    ],
  },
  {
    name: "status undelivered with ErrorCode 30",
    req: post(fixture("status-undelivered.form")),
    want: [
      {
        kind: "status",
        providerMessageId: "db3ce55a-7f1d-11e1-8ea7-1231380bc196",
        state: "undelivered",
        providerStatus: "undelivered",
        errorCode: "30",
        errorMessage: "Spam detected",
        at: "2024-03-04T10:21:00.000Z",
      },
    ],
  },
  {
    // nyaruka/courier's "Sent Status" capture: a part's callback names the message we sent in ParentMessageUUID.
    name: "status sent for a part: ParentMessageUUID wins",
    req: post("ParentMessageUUID=12345&Status=sent&MessageUUID=123&To=%2B60124361111&From=2020"),
    want: [{ kind: "status", providerMessageId: "12345", state: "sent", providerStatus: "sent" }],
  },
  {
    name: "legacy status rejected → failed",
    req: post(fixture("status-rejected.form")),
    want: [
      {
        kind: "status",
        providerMessageId: "12345",
        state: "failed",
        providerStatus: "rejected",
        errorCode: "100",
        errorMessage: "Prohibited by carrier",
      },
    ],
  },
  {
    name: "status via GET with an unknown word",
    req: {
      method: "GET",
      url: "https://sms.example.com/channels/support/status?MessageUUID=u-9&Status=expired&ErrorCode=000",
      headers: {},
      body: Buffer.alloc(0),
    },
    want: [{ kind: "status", providerMessageId: "u-9", state: "unknown", providerStatus: "expired" }],
  },
];

describe("plivo webhook parsing", () => {
  for (const c of CASES) {
    it(c.name, () => {
      const h = createHarness();
      assert.deepEqual(parsePlivoWebhook(c.req), c.want);
      h.assertNoSecretsLogged([TOKEN]);
      h.assertNoRealNetwork();
    });
  }

  const BAD: Array<{ name: string; req: RawRequest; reason: RegExp }> = [
    { name: "empty body, no query", req: post(""), reason: /carries no fields/ },
    {
      name: "missing MessageUUID",
      req: post("From=14155551234&To=14155556789&Text=hi"),
      reason: /missing MessageUUID/,
    },
    { name: "missing From and To", req: post("MessageUUID=x&Text=hi"), reason: /missing From, To/ },
    {
      name: "To is not a number",
      req: post("MessageUUID=x&From=14155551234&To=ACME&Text=hi"),
      reason: /"To" is not a phone/,
    },
    { name: "status without MessageUUID", req: post("Status=delivered&To=1"), reason: /no MessageUUID/ },
    { name: "invalid JSON", req: post("{not json", "application/json"), reason: /not valid JSON/ },
    { name: "JSON array", req: post("[1,2]", "application/json"), reason: /must be an object/ },
    {
      name: "MediaCount not a number",
      req: post("MessageUUID=x&From=14155551234&To=14155556789&MediaCount=two"),
      reason: /MediaCount must be a number/,
    },
  ];
  for (const c of BAD) {
    it(`BadWebhook: ${c.name}`, () => {
      const h = createHarness();
      assert.throws(
        () => parsePlivoWebhook(c.req),
        (e: unknown) => e instanceof BadWebhook && c.reason.test(e.message),
      );
      h.assertNoSecretsLogged([TOKEN]);
      h.assertNoRealNetwork();
    });
  }

  it("reads Plivo timestamps as UTC unless they carry an offset", () => {
    const table: Array<[string | undefined, string | undefined]> = [
      ["2024-03-04 10:20:30.123456", "2024-03-04T10:20:30.123Z"],
      ["2024-03-04 10:20:30", "2024-03-04T10:20:30.000Z"],
      ["2024-03-04 10:20:30+05:30", "2024-03-04T04:50:30.000Z"],
      ["2024-03-04 10:20:30.1-0100", "2024-03-04T11:20:30.100Z"],
      ["yesterday", undefined],
      [undefined, undefined],
    ];
    const h = createHarness();
    for (const [raw, want] of table) assert.equal(plivoTime(raw), want, String(raw));
    h.assertNoSecretsLogged([TOKEN]);
    h.assertNoRealNetwork();
  });
});
