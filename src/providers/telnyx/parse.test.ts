import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { createHarness } from "../test-support/harness.js";
import { BadWebhook, type ProviderEvent, type RawRequest } from "../types.js";
import { mapTelnyxStatus, publicKeyBase64, signTelnyxWebhook, telnyxProvider } from "./index.js";

const API_KEY = "KEY01parse_test_api_key_must_never_be_logged";
const { privateKey, publicKey } = generateKeyPairSync("ed25519");
const PUBLIC_KEY = publicKeyBase64(publicKey);

function fixture(name: string): Buffer {
  return readFileSync(new URL(`./testdata/${name}`, import.meta.url));
}

function setup() {
  const h = createHarness();
  const a = telnyxProvider.create(
    telnyxProvider.config.parse({ apiKey: API_KEY, publicKey: PUBLIC_KEY }),
    h.ctx,
  );
  const done = () => {
    h.assertNoSecretsLogged([API_KEY]);
    h.assertNoRealNetwork();
  };
  return { h, a, done };
}

function req(body: Buffer | string, path = "inbound"): RawRequest {
  return {
    method: "POST",
    url: `https://sms.example.com/channels/support/${path}`,
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? Buffer.from(body) : body,
  };
}

const LONG_TEXT = JSON.parse(fixture("inbound-long.json").toString()).data.payload.text as string;

const good: { name: string; file: string; want: ProviderEvent[] }[] = [
  {
    name: "SMS (API reference example)",
    file: "inbound-sms.json",
    want: [
      {
        kind: "message",
        providerMessageId: "7ee4241c-f127-47e5-9c34-3aac291f8058",
        from: "+18665550001",
        to: "+18445550001",
        body: "Hello, World!",
        attachments: [],
        createdAt: "2019-01-23T18:10:02.574Z",
        meta: {
          type: "SMS",
          parts: 1,
          encoding: "GSM-7",
          messagingProfileId: "0f512bda-ae1e-4597-8e11-e5f5686b97d3",
          eventId: "bf6307bd-884d-4c1f-b6ea-c62b8c495d3c",
          carrier: "T-MOBILE USA, INC.",
          lineType: "Wireless",
        },
      },
    ],
  },
  {
    name: "MMS with two media, one without content type",
    file: "inbound-mms.json",
    want: [
      {
        kind: "message",
        providerMessageId: "4031938e-60e4-4235-a8dd-0b1c55a23e7a",
        from: "+18005550101",
        to: "+18005550100",
        body: "Check out this photo!",
        attachments: [
          { url: "https://media.telnyx.com/abc123/image.jpg", contentType: "image/jpeg" },
          { url: "https://media.telnyx.com/abc123/contact.vcf" },
        ],
        createdAt: "2024-05-14T16:02:11.727Z",
        meta: {
          type: "MMS",
          parts: 1,
          encoding: "GSM-7",
          messagingProfileId: "0f512bda-ae1e-4597-8e11-e5f5686b97d3",
          eventId: "0c5a8a8e-3c2b-4a55-9f0e-2f1c9a1c7e21",
          carrier: "T-MOBILE USA, INC.",
          lineType: "Wireless",
        },
      },
    ],
  },
  {
    name: "unicode: emoji and non-Latin, microsecond timestamp",
    file: "inbound-unicode.json",
    want: [
      {
        kind: "message",
        providerMessageId: "b301ed3f-1490-491f-995f-6e64e69674d4",
        from: "+447700900123",
        to: "+16505550100",
        body: "Merci beaucoup 🙏 — Привет! 你好 ✔️",
        attachments: [],
        createdAt: "2025-11-23T03:30:00.011Z",
        meta: {
          type: "SMS",
          parts: 1,
          encoding: "UCS-2",
          messagingProfileId: "0f512bda-ae1e-4597-8e11-e5f5686b97d3",
          eventId: "5d6a0f0e-4a8e-4a39-9c51-7c7c8a9e1d02",
          carrier: "",
          lineType: "Wireless",
        },
      },
    ],
  },
  {
    name: "long message (2 parts, already joined by Telnyx)",
    file: "inbound-long.json",
    want: [
      {
        kind: "message",
        providerMessageId: "2f1d7f1e-7b5d-4e3c-9a0b-6c5d4e3f2a10",
        from: "+15105559999",
        to: "+16501234567",
        body: LONG_TEXT,
        attachments: [],
        createdAt: "2024-02-01T09:15:42.001Z",
        meta: {
          type: "SMS",
          parts: 2,
          encoding: "GSM-7",
          messagingProfileId: "0f512bda-ae1e-4597-8e11-e5f5686b97d3",
          eventId: "9a7c2e1b-6f0d-4c8e-b2a1-3d4e5f607182",
          carrier: "Verizon Wireless",
          lineType: "Wireless",
        },
      },
    ],
  },
  {
    name: "status: message.sent",
    file: "status-sent.json",
    want: [
      {
        kind: "status",
        providerMessageId: "40385f64-5717-4562-b3fc-2c963f66afa6",
        state: "sent",
        providerStatus: "sent",
        at: "2019-01-23T18:10:02.574Z",
      },
    ],
  },
  {
    name: "status: message.finalized delivered (docs example)",
    file: "status-finalized-delivered.json",
    want: [
      {
        kind: "status",
        providerMessageId: "40385f64-5717-4562-b3fc-2c963f66afa6",
        state: "delivered",
        providerStatus: "delivered",
        at: "2019-12-09T21:32:14.148Z",
      },
    ],
  },
  {
    name: "status: message.finalized delivery_failed with error",
    file: "status-finalized-failed.json",
    want: [
      {
        kind: "status",
        providerMessageId: "40385f64-5717-4562-b3fc-2c963f66afa6",
        state: "undelivered",
        providerStatus: "delivery_failed",
        errorCode: "40008",
        errorMessage: "Undeliverable: The recipient carrier did not accept the message.",
        at: "2024-03-05T11:20:31.456Z",
      },
    ],
  },
  {
    name: "status: message.finalized sending_failed",
    file: "status-finalized-sending-failed.json",
    want: [
      {
        kind: "status",
        providerMessageId: "40385f64-5717-4562-b3fc-2c963f66afa6",
        state: "failed",
        providerStatus: "sending_failed",
        errorCode: "40012",
        errorMessage: "Invalid messaging destination number: The destination number is invalid.",
        at: "2024-03-05T10:00:00.000Z",
      },
    ],
  },
  {
    name: "status: message.finalized delivery_unconfirmed",
    file: "status-finalized-unconfirmed.json",
    want: [
      {
        kind: "status",
        providerMessageId: "40385f64-5717-4562-b3fc-2c963f66afa6",
        state: "sent",
        providerStatus: "delivery_unconfirmed",
        at: "2024-03-05T12:20:31.000Z",
      },
    ],
  },
];

for (const c of good) {
  test(`parse: ${c.name}`, async () => {
    const { a, done } = setup();
    const body = fixture(c.file);
    // The whole path the bridge takes: verify the signed bytes, then parse them.
    const signed = { ...req(body), headers: { ...signTelnyxWebhook(privateKey, body, Date.now() / 1000) } };
    assert.deepEqual(await a.verify(signed), { ok: true });
    assert.deepEqual(a.parse(signed), c.want);
    done();
  });
}

function variant(
  file: string,
  edit: (d: Record<string, unknown> & { payload: Record<string, unknown> }) => void,
) {
  const json = JSON.parse(fixture(file).toString());
  edit(json.data);
  return JSON.stringify(json);
}

const variants: { name: string; body: string; check: (events: ProviderEvent[]) => void }[] = [
  {
    name: "to as a single string (WhatsApp-shaped) is still read",
    body: variant("inbound-sms.json", (d) => {
      d.payload.to = "+18445550001";
    }),
    check: (e) => assert.equal(e[0]?.kind === "message" && e[0].to, "+18445550001"),
  },
  {
    name: "MMS without text has an empty body",
    body: variant("inbound-mms.json", (d) => {
      d.payload.text = null;
    }),
    check: (e) => assert.equal(e[0]?.kind === "message" && e[0].body, ""),
  },
  {
    name: "short code sender stays a short code",
    body: variant("inbound-sms.json", (d) => {
      d.payload.from = { phone_number: "22395" };
    }),
    check: (e) => assert.equal(e[0]?.kind === "message" && e[0].from, "22395"),
  },
  {
    name: "numbers without + are normalised to E.164",
    body: variant("inbound-sms.json", (d) => {
      d.payload.from = { phone_number: "18665550001" };
      d.payload.to = [{ phone_number: "1 (844) 555-0001" }];
    }),
    check: (e) => {
      assert.equal(e[0]?.kind === "message" && e[0].from, "+18665550001");
      assert.equal(e[0]?.kind === "message" && e[0].to, "+18445550001");
    },
  },
  {
    name: "no received_at: occurred_at is the time",
    body: variant("inbound-sms.json", (d) => {
      delete d.payload.received_at;
      d.occurred_at = "2020-02-02T02:02:02.000+01:00";
    }),
    check: (e) => assert.equal(e[0]?.kind === "message" && e[0].createdAt, "2020-02-02T01:02:02.000Z"),
  },
  {
    name: "unreadable time: no createdAt, message kept",
    body: variant("inbound-sms.json", (d) => {
      d.payload.received_at = "yesterday";
      d.occurred_at = null;
    }),
    check: (e) => {
      assert.equal(e[0]?.kind, "message");
      assert.equal(e[0]?.kind === "message" && "createdAt" in e[0], false);
    },
  },
  {
    name: "STOP keeps autoresponse_type in meta",
    body: variant("inbound-sms.json", (d) => {
      d.payload.text = "STOP";
      d.payload.autoresponse_type = "STOP";
    }),
    check: (e) => assert.equal(e[0]?.kind === "message" && e[0].meta?.autoresponseType, "STOP"),
  },
  {
    name: "RCS message is acknowledged, not forwarded",
    body: variant("inbound-sms.json", (d) => {
      d.payload.type = "RCS";
    }),
    check: (e) => assert.equal(e[0]?.kind, "ignored"),
  },
  {
    name: "message.read is a read receipt",
    body: variant("status-sent.json", (d) => {
      d.event_type = "message.read";
      d.payload.to = [{ phone_number: "+18665550001", status: "read" }];
    }),
    check: (e) => assert.equal(e[0]?.kind === "status" && e[0].state, "read"),
  },
  {
    name: "numeric error code becomes a string",
    body: variant("status-finalized-failed.json", (d) => {
      d.payload.errors = [{ code: 40002, title: "Blocked as spam - temporary" }];
    }),
    check: (e) => {
      assert.equal(e[0]?.kind === "status" && e[0].errorCode, "40002");
      assert.equal(e[0]?.kind === "status" && e[0].errorMessage, "Blocked as spam - temporary");
    },
  },
  {
    name: "unknown event type is ignored",
    body: JSON.stringify({
      data: { event_type: "call.initiated", id: "x", payload: { call_control_id: "v3:abc" } },
    }),
    check: (e) => assert.match(e[0]?.kind === "ignored" ? e[0].reason : "", /call\.initiated/),
  },
];

for (const c of variants) {
  test(`parse variant: ${c.name}`, () => {
    const { a, done } = setup();
    c.check(a.parse(req(c.body)));
    done();
  });
}

const bad: { name: string; body: string; reason: RegExp }[] = [
  { name: "empty body", body: "", reason: /empty body/ },
  {
    name: "form-encoded (API v1 / TeXML profile)",
    body: "From=%2B15105559999&To=%2B16501234567&Body=hi",
    reason: /not JSON.*webhook API version to 2/,
  },
  {
    name: "JSON without data",
    body: '{"sms_id":"abc","body":"hi"}',
    reason: /not a Telnyx API v2 webhook.*data/,
  },
  { name: "JSON array", body: "[]", reason: /not a Telnyx API v2 webhook/ },
  {
    name: "missing payload id",
    body: variant("inbound-sms.json", (d) => {
      delete d.payload.id;
    }),
    reason: /data\.payload\.id/,
  },
  {
    name: "missing sender",
    body: variant("inbound-sms.json", (d) => {
      d.payload.from = {};
    }),
    reason: /from\.phone_number is missing/,
  },
  {
    name: "no recipients",
    body: variant("inbound-sms.json", (d) => {
      d.payload.to = [];
    }),
    reason: /to\[0\]\.phone_number is missing/,
  },
  {
    name: "text is not a string",
    body: variant("inbound-sms.json", (d) => {
      d.payload.text = 42;
    }),
    reason: /data\.payload\.text/,
  },
  {
    name: "media item without url",
    body: variant("inbound-mms.json", (d) => {
      d.payload.media = [{ content_type: "image/png" }];
    }),
    reason: /data\.payload\.media\.0\.url/,
  },
  {
    name: "status without recipient status",
    body: variant("status-sent.json", (d) => {
      d.payload.to = [{ phone_number: "+18665550001" }];
    }),
    reason: /to\[0\]\.status is missing/,
  },
];

for (const c of bad) {
  test(`parse rejects: ${c.name}`, () => {
    const { a, done } = setup();
    assert.throws(
      () => a.parse(req(c.body)),
      (e: unknown) => e instanceof BadWebhook && c.reason.test(e.message),
    );
    done();
  });
}

const statuses: [string, string][] = [
  ["queued", "queued"],
  ["sending", "sending"],
  ["sent", "sent"],
  ["delivered", "delivered"],
  ["delivery_unconfirmed", "sent"],
  ["delivery_failed", "undelivered"],
  ["expired", "undelivered"],
  ["sending_failed", "failed"],
  ["read", "read"],
  ["something_new", "unknown"],
];

test("status mapping covers every Telnyx recipient status", () => {
  const { done } = setup();
  for (const [telnyx, ours] of statuses) assert.equal(mapTelnyxStatus(telnyx), ours, telnyx);
  done();
});

test("ack: Telnyx only needs a 2xx, the bridge default answers", () => {
  const { a, done } = setup();
  assert.equal(a.ack, undefined);
  assert.equal(a.media, undefined);
  done();
});
