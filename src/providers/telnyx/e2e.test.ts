import assert from "node:assert/strict";
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import {
  CHANNEL_PHONE,
  conversationWith,
  type Loop,
  REAMAZE_SECRET,
  sandboxExternalIds,
  sentByProviderId,
  staffReply,
  startLoop,
} from "../../bridge/test-support/loop.js";
import { type StandIn, startStandIn } from "../test-support/harness.js";
import { publicKeyBase64, signTelnyxWebhook } from "./index.js";

/**
 * End to end over real HTTP on loopback: a Telnyx-signed (Ed25519) webhook → the bridge → the sandbox helpdesk; a
 * staff reply in the sandbox → the bridge → a stand-in of Telnyx's POST /v2/messages; a signed message.finalized
 * → recorded against the reply. Telnyx media URLs are pre-signed, so MMS attachments pass through unproxied.
 */

const API_KEY = "KEY0123E2E_telnyx_api_key_never_logged";
const KEYS = generateKeyPairSync("ed25519");
const OTHER_KEYS = generateKeyPairSync("ed25519");
const ACCEPTED = readFileSync(new URL("./testdata/send-accepted.json", import.meta.url), "utf8");
const SENT_ID = (JSON.parse(ACCEPTED) as { data: { id: string } }).data.id;

interface Webhook {
  data: {
    payload: { id: string; to: { phone_number: string }[]; [k: string]: unknown };
    [k: string]: unknown;
  };
}

/** A fixture with its payload edited (our channel number, another id), serialised once: these bytes are signed. */
function fixture(name: string, edit: (w: Webhook) => void = () => {}): string {
  const doc = JSON.parse(readFileSync(new URL(`./testdata/${name}`, import.meta.url), "utf8")) as Webhook;
  edit(doc);
  return JSON.stringify(doc);
}

const toChannel = (w: Webhook) => {
  w.data.payload.to[0]!.phone_number = CHANNEL_PHONE;
};

/** POSTs JSON as Telnyx does: Ed25519 over "timestamp|body" in telnyx-signature-ed25519 / telnyx-timestamp. */
function postSigned(
  loop: Loop,
  route: "inbound" | "status",
  body: string,
  key: KeyObject | null = KEYS.privateKey,
  at = Date.now(),
) {
  return fetch(`${loop.bridge.url}/channels/support/${route}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(key ? signTelnyxWebhook(key, body, at / 1000) : {}) },
    body,
  });
}

describe("telnyx end to end", () => {
  let standIn: StandIn;
  let loop: Loop;
  let slug = "";
  const customer = "+18665550001";

  before(async () => {
    standIn = await startStandIn();
    standIn.answer((req, res) => {
      if (req.method === "POST" && req.url === "/v2/messages") {
        res.writeHead(200, { "content-type": "application/json" }).end(ACCEPTED);
      } else {
        res
          .writeHead(404, { "content-type": "application/json" })
          .end('{"errors":[{"code":"10005","title":"Resource not found"}]}');
      }
    });
    loop = await startLoop({
      provider: {
        type: "telnyx",
        apiKey: API_KEY,
        publicKey: publicKeyBase64(KEYS.publicKey),
        apiBaseUrl: standIn.url,
      },
      publicUrl: "https://sms.example.test:{port}",
    });
  });
  after(async () => {
    await loop?.close();
    await standIn?.close();
  });

  test("a signed message.received is answered 2xx and shows in the sandbox conversation", async () => {
    const res = await postSigned(loop, "inbound", fixture("inbound-sms.json", toChannel));
    assert.equal(res.status, 200);

    const id = "telnyx:7ee4241c-f127-47e5-9c34-3aac291f8058";
    const conv = await conversationWith(loop, customer, id);
    slug = conv.slug;
    assert.equal(conv.customer.phone, customer);
    assert.equal(conv.channel.phone, CHANNEL_PHONE);
    const m = conv.messages.find((x) => x.external_id === id);
    assert.equal(m?.direction, "inbound");
    assert.equal(m?.body, "Hello, World!");
    assert.deepEqual(m?.attachments, []);
  });

  test("a staff reply in the sandbox is sent through POST /v2/messages and marked sent", async () => {
    assert.ok(slug, "needs the conversation of the previous test");
    standIn.requests.length = 0;
    const sent = await staffReply(loop, slug, "Thanks! We're on it.");
    assert.equal(sent.status, "sent", `webhook outcome: ${JSON.stringify(sent.webhook)}`);
    assert.equal(sent.webhook?.status, 201);
    assert.deepEqual(JSON.parse(sent.webhook?.body ?? "{}"), { id: SENT_ID });

    assert.equal(standIn.requests.length, 1);
    const req = standIn.requests[0]!;
    assert.equal(req.method, "POST");
    assert.equal(req.url, "/v2/messages");
    assert.equal(req.headers.authorization, `Bearer ${API_KEY}`);
    assert.equal(req.headers["content-type"], "application/json");
    const statusUrl = loop.bridge.channels.get("support")!.urls.status;
    assert.match(statusUrl, /^https:\/\/sms\.example\.test:\d+\/channels\/support\/status$/);
    assert.deepEqual(JSON.parse(req.body.toString("utf8")), {
      to: customer,
      from: CHANNEL_PHONE,
      text: "Thanks! We're on it.",
      webhook_url: statusUrl,
    });

    const rec = await sentByProviderId(loop, "telnyx", SENT_ID);
    assert.equal(rec?.direction, "reply");
    assert.equal(rec?.customer, customer);
    assert.equal(rec?.delivery_state, "sent");
  });

  const statuses = [
    { fixture: "status-sent.json", state: "sent", status: "sent", error: null },
    {
      fixture: "status-finalized-failed.json",
      state: "undelivered",
      status: "delivery_failed",
      error: "40008: Undeliverable: The recipient carrier did not accept the message.",
    },
  ];
  for (const s of statuses) {
    test(`a signed delivery report (${s.fixture}) is recorded against the staff reply`, async () => {
      const body = fixture(s.fixture, (w) => {
        w.data.payload.id = SENT_ID;
      });
      const res = await postSigned(loop, "status", body);
      assert.equal(res.status, 200);
      const rec = await sentByProviderId(loop, "telnyx", SENT_ID);
      assert.equal(rec?.delivery_state, s.state);
      assert.equal(rec?.delivery_status, s.status);
      assert.equal(rec?.delivery_error, s.error);
    });
  }

  test("the delivery failure is listed for operators against the staff reply", async () => {
    const failures = await loop.bridge.store.deliveryFailures({ since: 0, channelId: "support" });
    const f = failures.find((x) => x.providerMessageId === SENT_ID);
    assert.ok(f, "the undelivered reply is listed");
    assert.equal(f.direction, "reply");
    assert.equal(f.state, "undelivered");
    assert.equal(f.body, "Thanks! We're on it.");
    assert.match(f.error ?? "", /40008/);
  });

  test("an incoming MMS reaches the sandbox with Telnyx's own pre-signed media URLs", async () => {
    const res = await postSigned(loop, "inbound", fixture("inbound-mms.json", toChannel));
    assert.equal(res.status, 200);
    const id = "telnyx:4031938e-60e4-4235-a8dd-0b1c55a23e7a";
    const conv = await conversationWith(loop, "+18005550101", id);
    const m = conv.messages.find((x) => x.external_id === id);
    assert.equal(m?.body, "Check out this photo!");
    // No proxy: Telnyx's adapter sets no `media`, its URLs need no credentials.
    assert.deepEqual(m?.attachments, [
      "https://media.telnyx.com/abc123/image.jpg",
      "https://media.telnyx.com/abc123/contact.vcf",
    ]);
    assert.equal(loop.bridge.channels.get("support")!.adapter.media, undefined);
  });

  const forged = [
    { name: "signed with another key", key: OTHER_KEYS.privateKey, age: 0, status: 403 },
    { name: "signed 10 minutes ago (a replay)", key: KEYS.privateKey, age: 600_000, status: 403 },
    { name: "without telnyx-signature-ed25519", key: null, age: 0, status: 401 },
  ];
  for (const [i, f] of forged.entries()) {
    test(`a webhook ${f.name} is refused (${f.status}) and nothing reaches the sandbox`, async () => {
      const pid = `00000000-0000-4000-8000-00000000000${i}`;
      const body = fixture("inbound-sms.json", (w) => {
        toChannel(w);
        w.data.payload.id = pid;
      });
      const res = await postSigned(loop, "inbound", body, f.key, Date.now() - f.age);
      assert.equal(res.status, f.status);
      const stored = await loop.bridge.store.db
        .selectFrom("messages")
        .select("id")
        .where("provider_message_id", "=", pid)
        .executeTakeFirst();
      assert.equal(stored, undefined, "nothing stored");
      assert.ok(!(await sandboxExternalIds(loop)).includes(`telnyx:${pid}`));
    });
  }

  test("no Telnyx API key nor the helpdesk secret reached the logs", () => {
    const logs = loop.logs();
    assert.ok(logs.length > 0, "logs were captured");
    for (const secret of [API_KEY, REAMAZE_SECRET]) {
      assert.ok(!logs.includes(secret), `a secret (${secret.slice(0, 4)}…) appeared in the logs`);
    }
  });
});
