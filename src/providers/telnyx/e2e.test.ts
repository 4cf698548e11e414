import assert from "node:assert/strict";
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { test } from "node:test";
import { CHANNEL_PHONE, type Loop } from "../../bridge/test-support/loop.js";
import {
  JSON_TYPE,
  messageIn,
  postTo,
  providerE2E,
  REPLY_TEXT,
  type Route,
  readFixture,
} from "../test-support/e2e.js";
import { publicKeyBase64, signTelnyxWebhook } from "./index.js";

/**
 * End to end over real HTTP on loopback (the shared steps in ../test-support/e2e.ts): a Telnyx-signed (Ed25519)
 * webhook → the bridge → the sandbox helpdesk; a staff reply → a stand-in of Telnyx's POST /v2/messages; a signed
 * message.finalized → recorded against the reply. Telnyx media URLs are pre-signed, so MMS attachments pass
 * through unproxied.
 */

const TESTDATA = new URL("./testdata/", import.meta.url);
const API_KEY = "KEY0123E2E_telnyx_api_key_never_logged";
const KEYS = generateKeyPairSync("ed25519");
const OTHER_KEYS = generateKeyPairSync("ed25519");
const ACCEPTED = readFixture(TESTDATA, "send-accepted.json");
const SENT_ID = (JSON.parse(ACCEPTED) as { data: { id: string } }).data.id;

interface Webhook {
  data: {
    payload: { id: string; to: { phone_number: string }[]; [k: string]: unknown };
    [k: string]: unknown;
  };
}

/** A fixture with its payload edited (our channel number, another id), serialised once: these bytes are signed. */
function fixture(name: string, edit: (w: Webhook) => void = () => {}): string {
  const doc = JSON.parse(readFixture(TESTDATA, name)) as Webhook;
  edit(doc);
  return JSON.stringify(doc);
}

const toChannel = (w: Webhook) => {
  w.data.payload.to[0]!.phone_number = CHANNEL_PHONE;
};

/** POSTs JSON as Telnyx does: Ed25519 over "timestamp|body" in telnyx-signature-ed25519 / telnyx-timestamp. */
function postSigned(
  loop: Loop,
  route: Route,
  body: string,
  key: KeyObject | null = KEYS.privateKey,
  at = Date.now(),
): Promise<Response> {
  return postTo(loop, route, body, {
    "content-type": JSON_TYPE,
    ...(key ? signTelnyxWebhook(key, body, at / 1000) : {}),
  });
}

/** The inbound SMS fixture under another id, for the forged webhooks. */
const forgedSms = (id: string) =>
  fixture("inbound-sms.json", (w) => {
    toChannel(w);
    w.data.payload.id = id;
  });

providerE2E({
  title: "telnyx end to end",
  type: "telnyx",
  provider: (apiBaseUrl) => ({
    type: "telnyx",
    apiKey: API_KEY,
    publicKey: publicKeyBase64(KEYS.publicKey),
    apiBaseUrl,
  }),
  standIn: {
    routes: [
      {
        method: "POST",
        path: "/v2/messages",
        status: 200,
        headers: { "content-type": JSON_TYPE },
        body: ACCEPTED,
      },
    ],
    notFound: '{"errors":[{"code":"10005","title":"Resource not found"}]}',
  },
  inbound: {
    title: "a signed message.received is answered 2xx and shows in the sandbox conversation",
    send: (loop) => postSigned(loop, "inbound", fixture("inbound-sms.json", toChannel)),
    ack: { status: 200 },
    customer: "+18665550001",
    providerId: "7ee4241c-f127-47e5-9c34-3aac291f8058",
    body: "Hello, World!",
  },
  reply: {
    title: "a staff reply in the sandbox is sent through POST /v2/messages and marked sent",
    sentId: SENT_ID,
    path: "/v2/messages",
    contentType: JSON_TYPE,
    authorization: `Bearer ${API_KEY}`,
    body: (statusUrl) => ({
      to: "+18665550001",
      from: CHANNEL_PHONE,
      text: REPLY_TEXT,
      webhook_url: statusUrl,
    }),
  },
  statuses: {
    what: "signed delivery report",
    send: (loop, name, id) =>
      postSigned(
        loop,
        "status",
        fixture(name, (w) => {
          w.data.payload.id = id;
        }),
      ),
    ack: { status: 200 },
    rows: [
      { fixture: "status-sent.json", state: "sent", status: "sent", error: null },
      {
        fixture: "status-finalized-failed.json",
        state: "undelivered",
        status: "delivery_failed",
        error: "40008: Undeliverable: The recipient carrier did not accept the message.",
      },
    ],
  },
  failure: { state: "undelivered", error: /40008/ },
  extraTests(e2e) {
    test("an incoming MMS reaches the sandbox with Telnyx's own pre-signed media URLs", async () => {
      const res = await postSigned(e2e.loop, "inbound", fixture("inbound-mms.json", toChannel));
      assert.equal(res.status, 200);
      const m = await messageIn(e2e.loop, "+18005550101", "telnyx:4031938e-60e4-4235-a8dd-0b1c55a23e7a");
      assert.equal(m.body, "Check out this photo!");
      // No proxy: Telnyx's adapter sets no `media`, its URLs need no credentials.
      assert.deepEqual(m.attachments, [
        "https://media.telnyx.com/abc123/image.jpg",
        "https://media.telnyx.com/abc123/contact.vcf",
      ]);
      assert.equal(e2e.loop.bridge.channels.get("support")!.adapter.media, undefined);
    });
  },
  forged: {
    what: "a webhook",
    id: (i) => `00000000-0000-4000-8000-00000000000${i}`,
    rows: [
      {
        name: "signed with another key",
        status: 403,
        send: (loop, id) => postSigned(loop, "inbound", forgedSms(id), OTHER_KEYS.privateKey),
      },
      {
        name: "signed 10 minutes ago (a replay)",
        status: 403,
        send: (loop, id) => postSigned(loop, "inbound", forgedSms(id), KEYS.privateKey, Date.now() - 600_000),
      },
      {
        name: "without telnyx-signature-ed25519",
        status: 401,
        send: (loop, id) => postSigned(loop, "inbound", forgedSms(id), null),
      },
    ],
  },
  secrets: { title: "no Telnyx API key nor the helpdesk secret reached the logs", values: [API_KEY] },
});
