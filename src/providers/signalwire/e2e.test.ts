import assert from "node:assert/strict";
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
  toLocal,
} from "../../bridge/test-support/loop.js";
import { type StandIn, startStandIn } from "../test-support/harness.js";
import { EMPTY_TWIML } from "../twilio/index.js";
import { computeSignature, formParams } from "../twilio/signature.js";

/**
 * End to end over real HTTP on loopback: a SignalWire-signed LaML webhook → the bridge → the sandbox helpdesk; a staff
 * reply in the sandbox → the bridge → a stand-in of SignalWire's Compatibility Messages API; a signed status callback
 * → recorded against the reply; MMS media through the bridge's media proxy.
 */

const PROJECT_ID = "ea108133-d6b3-407c-9536-9fad8a929a6a";
const API_TOKEN = "PTe2e-signalwire-api-token-0123456789abcdef";
const SIGNING_KEY = "PSKe2e-signalwire-signing-key-0123456789";
const BASIC = `Basic ${Buffer.from(`${PROJECT_ID}:${API_TOKEN}`).toString("base64")}`;
const MESSAGES_PATH = `/api/laml/2010-04-01/Accounts/${PROJECT_ID}/Messages.json`;
const MMS_SID = "1b16a9f2-4c3e-4d5a-9b8c-7d6e5f4a3b2c";
const MEDIA_0 = "b3877c40-da60-4998-90ad-b792e98472me";
const MEDIA_1 = "c4988d51-eb71-4aa9-a1be-c803fa9583nf";
const CREATED = JSON.parse(
  readFileSync(new URL("./testdata/message-created.json", import.meta.url), "utf8"),
) as { sid: string };
const JPEG = Buffer.concat([
  Buffer.from([0xff, 0xd8, 0xff, 0xe0]),
  Buffer.from("e2e jpeg bytes"),
  Buffer.from([0xff, 0xd9]),
]);
const PDF = Buffer.from("%PDF-1.4\n% e2e receipt\n%%EOF\n");

/** A fixture's form parameters with some replaced (the channel number, media hosts), in the order SignalWire sent them. */
function fixture(name: string, replace: Record<string, string> = {}): string {
  const form = new URLSearchParams(
    readFileSync(new URL(`./testdata/${name}`, import.meta.url), "utf8").trim(),
  );
  for (const [k, v] of Object.entries(replace)) form.set(k, v);
  return form.toString();
}

/** POSTs a form exactly as SignalWire does: signed with the Signing Key over the public URL, parameters as sent. */
function postSigned(
  loop: Loop,
  route: "inbound" | "status",
  body: string,
  key = SIGNING_KEY,
): Promise<Response> {
  const ch = loop.bridge.channels.get("support");
  assert.ok(ch);
  const publicUrl = ch.urls[route];
  return fetch(toLocal(loop, publicUrl), {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      "x-signalwire-signature": computeSignature(key, publicUrl, formParams(body), "as-sent"),
    },
    body,
  });
}

describe("signalwire end to end", () => {
  let standIn: StandIn;
  let loop: Loop;
  let slug = "";
  const customer = "+14133881111";

  before(async () => {
    standIn = await startStandIn();
    standIn.answer((req, res) => {
      if (req.method === "POST" && req.url === MESSAGES_PATH) {
        // As the Compatibility API answers a create: 201 and the Message object.
        res.writeHead(201, { "content-type": "application/json" }).end(JSON.stringify(CREATED));
      } else if (req.method === "GET" && req.url.endsWith(`/Media/${MEDIA_0}`)) {
        // Media may be served from a storage host; follow the redirect like any client.
        res.writeHead(302, { location: `/files/${MEDIA_0}.jpg` }).end();
      } else if (req.method === "GET" && req.url === `/files/${MEDIA_0}.jpg`) {
        res.writeHead(200, { "content-type": "image/jpeg", "content-length": String(JPEG.length) }).end(JPEG);
      } else if (req.method === "GET" && req.url.endsWith(`/Media/${MEDIA_1}`)) {
        res.writeHead(200, { "content-type": "application/pdf" }).end(PDF);
      } else {
        res
          .writeHead(404, { "content-type": "application/json" })
          .end('{"code":20404,"message":"not found","status":404}');
      }
    });
    loop = await startLoop({
      // The space is the stand-in, so its host is one of the adapter's media hosts like a real space would be.
      provider: {
        type: "signalwire",
        projectId: PROJECT_ID,
        apiToken: API_TOKEN,
        signingKey: SIGNING_KEY,
        spaceUrl: new URL(standIn.url).host,
        apiBaseUrl: standIn.url,
      },
      publicUrl: "https://sms.example.test:{port}",
    });
  });
  after(async () => {
    await loop?.close();
    await standIn?.close();
  });

  test("a signed incoming SMS is answered with empty TwiML and shows in the sandbox conversation", async () => {
    const res = await postSigned(loop, "inbound", fixture("inbound-sms.form", { To: CHANNEL_PHONE }));
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/xml/);
    assert.equal(await res.text(), EMPTY_TWIML);

    const conv = await conversationWith(loop, customer, "signalwire:SMe287d7109a5a925f182f0e07fe5b223b");
    slug = conv.slug;
    assert.equal(conv.customer.phone, customer);
    assert.equal(conv.channel.phone, CHANNEL_PHONE);
    const m = conv.messages.find((x) => x.external_id === "signalwire:SMe287d7109a5a925f182f0e07fe5b223b");
    assert.equal(m?.direction, "inbound");
    assert.equal(m?.body, "Msg");
    assert.deepEqual(m?.attachments, []);
  });

  test("a staff reply in the sandbox is sent through the Compatibility API's Messages resource and marked sent", async () => {
    assert.ok(slug, "needs the conversation of the previous test");
    standIn.requests.length = 0;
    const sent = await staffReply(loop, slug, "Thanks! We're on it.");
    assert.equal(sent.status, "sent", `webhook outcome: ${JSON.stringify(sent.webhook)}`);
    assert.equal(sent.webhook?.status, 201);
    assert.deepEqual(JSON.parse(sent.webhook?.body ?? "{}"), { id: CREATED.sid });

    assert.equal(standIn.requests.length, 1);
    const req = standIn.requests[0]!;
    assert.equal(req.method, "POST");
    assert.equal(req.url, MESSAGES_PATH);
    assert.equal(req.headers.authorization, BASIC);
    assert.equal(req.headers["content-type"], "application/x-www-form-urlencoded");
    assert.deepEqual(Object.fromEntries(new URLSearchParams(req.body.toString("utf8"))), {
      To: customer,
      From: CHANNEL_PHONE,
      Body: "Thanks! We're on it.",
      StatusCallback: loop.bridge.channels.get("support")!.urls.status,
    });
    assert.match(
      loop.bridge.channels.get("support")!.urls.status,
      /^https:\/\/sms\.example\.test:\d+\/channels\/support\/status$/,
    );

    const rec = await sentByProviderId(loop, "signalwire", CREATED.sid);
    assert.equal(rec?.direction, "reply");
    assert.equal(rec?.customer, customer);
    assert.equal(rec?.delivery_state, "sent");
  });

  const statuses = [
    { fixture: "status-delivered.form", state: "delivered", status: "delivered", error: null },
    {
      fixture: "status-undelivered.form",
      state: "undelivered",
      status: "undelivered",
      error: "30003: Unreachable destination handset",
    },
  ];
  for (const s of statuses) {
    test(`a signed status callback (${s.fixture}) is recorded against the staff reply`, async () => {
      const res = await postSigned(
        loop,
        "status",
        fixture(s.fixture, { MessageSid: CREATED.sid, SmsSid: CREATED.sid }),
      );
      assert.equal(res.status, 200);
      assert.equal(await res.text(), EMPTY_TWIML);
      const rec = await sentByProviderId(loop, "signalwire", CREATED.sid);
      assert.equal(rec?.delivery_state, s.state);
      assert.equal(rec?.delivery_status, s.status);
      assert.equal(rec?.delivery_error, s.error);
    });
  }

  test("the delivery failure is listed for operators against the staff reply", async () => {
    const failures = await loop.bridge.store.deliveryFailures({ since: 0, channelId: "support" });
    const f = failures.find((x) => x.providerMessageId === CREATED.sid);
    assert.ok(f, "the undelivered reply is listed");
    assert.equal(f.direction, "reply");
    assert.equal(f.state, "undelivered");
    assert.equal(f.body, "Thanks! We're on it.");
    assert.match(f.error ?? "", /30003/);
  });

  test("an incoming MMS reaches the sandbox as media-proxy links that stream the provider's files", async () => {
    const mediaBase = `${standIn.url}/api/laml/2010-04-01/Accounts/${PROJECT_ID}/Messages/${MMS_SID}/Media`;
    // The fixture's sid is the one the send answer uses too; an inbound message gets its own.
    const body = fixture("inbound-mms.form", {
      MessageSid: MMS_SID,
      SmsSid: MMS_SID,
      SmsMessageSid: MMS_SID,
      To: CHANNEL_PHONE,
      MediaUrl0: `${mediaBase}/${MEDIA_0}`,
      NumMedia: "2",
      MediaUrl1: `${mediaBase}/${MEDIA_1}`,
      MediaContentType1: "application/pdf",
    });
    const res = await postSigned(loop, "inbound", body);
    assert.equal(res.status, 200);
    const conv = await conversationWith(loop, "+15557654321", `signalwire:${MMS_SID}`);
    const m = conv.messages.find((x) => x.external_id === `signalwire:${MMS_SID}`);
    assert.equal(m?.body, "Hello World! 😀");
    assert.equal(m?.attachments.length, 2);
    const publicBase = new URL(loop.bridge.channels.get("support")!.urls.inbound).origin;
    for (const a of m?.attachments ?? []) {
      assert.ok(a.startsWith(`${publicBase}/media/`), `${a} is a media-proxy URL on the public origin`);
      assert.ok(!a.includes(PROJECT_ID), "the provider's URL is not exposed");
    }

    standIn.requests.length = 0;
    const image = await fetch(toLocal(loop, m!.attachments[0]!));
    assert.equal(image.status, 200);
    assert.equal(image.headers.get("content-type"), "image/jpeg");
    assert.deepEqual(Buffer.from(await image.arrayBuffer()), JPEG);
    // The media URL, then the CDN it redirected to.
    assert.deepEqual(
      standIn.requests.map((r) => r.url),
      [`${new URL(mediaBase).pathname}/${MEDIA_0}`, `/files/${MEDIA_0}.jpg`],
    );
    // Project credentials travel only over https; the loopback stand-in is plain http.
    assert.ok(standIn.requests.every((r) => r.headers.authorization === undefined));

    const pdf = await fetch(toLocal(loop, m!.attachments[1]!));
    assert.equal(pdf.status, 200);
    assert.equal(pdf.headers.get("content-type"), "application/pdf");
    assert.deepEqual(Buffer.from(await pdf.arrayBuffer()), PDF);
  });

  const forged = [
    { name: "signed with the API token instead of the Signing Key", key: API_TOKEN, sign: true, status: 403 },
    { name: "without X-SignalWire-Signature", key: SIGNING_KEY, sign: false, status: 401 },
  ];
  for (const f of forged) {
    test(`a webhook ${f.name} is refused (${f.status}) and nothing reaches the sandbox`, async () => {
      const sid = `SM${f.status}00000000000000000000000000000f`;
      const body = fixture("inbound-sms.form", {
        To: CHANNEL_PHONE,
        MessageSid: sid,
        SmsSid: sid,
        SmsMessageSid: sid,
      });
      const res = f.sign
        ? await postSigned(loop, "inbound", body, f.key)
        : await fetch(`${loop.bridge.url}/channels/support/inbound`, {
            method: "POST",
            headers: { "content-type": "application/x-www-form-urlencoded" },
            body,
          });
      assert.equal(res.status, f.status);
      const stored = await loop.bridge.store.db
        .selectFrom("messages")
        .select("id")
        .where("provider_message_id", "=", sid)
        .executeTakeFirst();
      assert.equal(stored, undefined, "nothing stored");
      assert.ok(!(await sandboxExternalIds(loop)).includes(`signalwire:${sid}`));
    });
  }

  test("no SignalWire credential nor the helpdesk secret reached the logs", () => {
    const logs = loop.logs();
    assert.ok(logs.length > 0, "logs were captured");
    for (const secret of [API_TOKEN, SIGNING_KEY, BASIC, REAMAZE_SECRET]) {
      assert.ok(!logs.includes(secret), `a secret (${secret.slice(0, 4)}…) appeared in the logs`);
    }
  });
});
