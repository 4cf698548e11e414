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
import { computeSignature, EMPTY_TWIML } from "./index.js";
import { formParams } from "./signature.js";

/**
 * End to end over real HTTP on loopback: a Twilio-signed webhook → the bridge → the sandbox helpdesk; a staff reply
 * in the sandbox → the bridge → a stand-in of Twilio's Messages API; a signed status callback → recorded against
 * the reply; MMS media through the bridge's media proxy.
 */

const ACCOUNT_SID = "AC1234567890abcdef1234567890abcdef";
const AUTH_TOKEN = "e2e-twilio-auth-token-0123456789abcdef";
const BASIC = `Basic ${Buffer.from(`${ACCOUNT_SID}:${AUTH_TOKEN}`).toString("base64")}`;
const MESSAGES_PATH = `/2010-04-01/Accounts/${ACCOUNT_SID}/Messages.json`;
const CREATED = JSON.parse(
  readFileSync(new URL("./testdata/message-created.json", import.meta.url), "utf8"),
) as { sid: string };
const JPEG = Buffer.concat([
  Buffer.from([0xff, 0xd8, 0xff, 0xe0]),
  Buffer.from("e2e jpeg bytes"),
  Buffer.from([0xff, 0xd9]),
]);
const PDF = Buffer.from("%PDF-1.4\n% e2e receipt\n%%EOF\n");

/** A fixture's form parameters with some replaced (the channel number, media hosts), in the order Twilio sent them. */
function fixture(name: string, replace: Record<string, string> = {}): string {
  const form = new URLSearchParams(
    readFileSync(new URL(`./testdata/${name}`, import.meta.url), "utf8").trim(),
  );
  for (const [k, v] of Object.entries(replace)) form.set(k, v);
  return form.toString();
}

/** POSTs a form exactly as Twilio does: signed over the public URL the bridge is configured with. */
function postSigned(
  loop: Loop,
  route: "inbound" | "status",
  body: string,
  key = AUTH_TOKEN,
): Promise<Response> {
  const ch = loop.bridge.channels.get("support");
  assert.ok(ch);
  const publicUrl = ch.urls[route];
  return fetch(toLocal(loop, publicUrl), {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      "x-twilio-signature": computeSignature(key, publicUrl, formParams(body)),
    },
    body,
  });
}

describe("twilio end to end", () => {
  let standIn: StandIn;
  let loop: Loop;
  let slug = "";
  const customer = "+14133881111";

  before(async () => {
    standIn = await startStandIn();
    standIn.answer((req, res) => {
      if (req.method === "POST" && req.url === MESSAGES_PATH) {
        // As Twilio answers a create: 201 and the Message resource.
        res.writeHead(201, { "content-type": "application/json" }).end(JSON.stringify(CREATED));
      } else if (req.method === "GET" && req.url.endsWith("/Media/ME0123456789abcdef0123456789abcdef")) {
        // Twilio's media URL redirects to a short-lived CDN URL.
        res.writeHead(307, { location: "/cdn/ME0123456789abcdef0123456789abcdef.jpg" }).end();
      } else if (req.method === "GET" && req.url === "/cdn/ME0123456789abcdef0123456789abcdef.jpg") {
        res.writeHead(200, { "content-type": "image/jpeg", "content-length": String(JPEG.length) }).end(JPEG);
      } else if (req.method === "GET" && req.url.endsWith("/Media/ME1123456789abcdef0123456789abcdef")) {
        res.writeHead(200, { "content-type": "application/pdf" }).end(PDF);
      } else {
        res
          .writeHead(404, { "content-type": "application/json" })
          .end('{"code":20404,"message":"not found","status":404}');
      }
    });
    loop = await startLoop({
      provider: { type: "twilio", accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, apiBaseUrl: standIn.url },
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

    const conv = await conversationWith(loop, customer, "twilio:SMe287d7109a5a925f182f0e07fe5b223b");
    slug = conv.slug;
    assert.equal(conv.customer.phone, customer);
    assert.equal(conv.channel.phone, CHANNEL_PHONE);
    const m = conv.messages.find((x) => x.external_id === "twilio:SMe287d7109a5a925f182f0e07fe5b223b");
    assert.equal(m?.direction, "inbound");
    assert.equal(m?.body, "Msg");
    assert.deepEqual(m?.attachments, []);
  });

  test("a staff reply in the sandbox is sent through Twilio's Messages API and marked sent", async () => {
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

    const rec = await sentByProviderId(loop, "twilio", CREATED.sid);
    assert.equal(rec?.direction, "reply");
    assert.equal(rec?.customer, customer);
    assert.equal(rec?.delivery_state, "sent");
  });

  const statuses = [
    { fixture: "status-sent.form", state: "sent", status: "sent", error: null },
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
      const rec = await sentByProviderId(loop, "twilio", CREATED.sid);
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
    const mediaBase = `${standIn.url}/2010-04-01/Accounts/${ACCOUNT_SID}/Messages/MM0123456789abcdef0123456789abcdef/Media`;
    const body = fixture("inbound-mms.form", {
      To: CHANNEL_PHONE,
      MediaUrl0: `${mediaBase}/ME0123456789abcdef0123456789abcdef`,
      MediaUrl1: `${mediaBase}/ME1123456789abcdef0123456789abcdef`,
    });
    const res = await postSigned(loop, "inbound", body);
    assert.equal(res.status, 200);
    const conv = await conversationWith(loop, "+14017122661", "twilio:MM0123456789abcdef0123456789abcdef");
    const m = conv.messages.find((x) => x.external_id === "twilio:MM0123456789abcdef0123456789abcdef");
    assert.equal(m?.body, "Here is the receipt");
    assert.equal(m?.attachments.length, 2);
    const publicBase = new URL(loop.bridge.channels.get("support")!.urls.inbound).origin;
    for (const a of m?.attachments ?? []) {
      assert.ok(a.startsWith(`${publicBase}/media/`), `${a} is a media-proxy URL on the public origin`);
      assert.ok(!a.includes(ACCOUNT_SID), "the provider's URL is not exposed");
    }

    standIn.requests.length = 0;
    const image = await fetch(toLocal(loop, m!.attachments[0]!));
    assert.equal(image.status, 200);
    assert.equal(image.headers.get("content-type"), "image/jpeg");
    assert.deepEqual(Buffer.from(await image.arrayBuffer()), JPEG);
    // The media URL, then the CDN it redirected to.
    assert.deepEqual(
      standIn.requests.map((r) => r.url),
      [
        `${new URL(mediaBase).pathname}/ME0123456789abcdef0123456789abcdef`,
        "/cdn/ME0123456789abcdef0123456789abcdef.jpg",
      ],
    );
    // Twilio credentials travel only over https; the loopback stand-in is plain http.
    assert.ok(standIn.requests.every((r) => r.headers.authorization === undefined));

    const pdf = await fetch(toLocal(loop, m!.attachments[1]!));
    assert.equal(pdf.status, 200);
    assert.equal(pdf.headers.get("content-type"), "application/pdf");
    assert.deepEqual(Buffer.from(await pdf.arrayBuffer()), PDF);
  });

  const forged = [
    { name: "signed with another auth token", key: "not-the-auth-token", sign: true, status: 403 },
    { name: "without X-Twilio-Signature", key: AUTH_TOKEN, sign: false, status: 401 },
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
      assert.ok(!(await sandboxExternalIds(loop)).includes(`twilio:${sid}`));
    });
  }

  test("no Twilio credential nor the helpdesk secret reached the logs", () => {
    const logs = loop.logs();
    assert.ok(logs.length > 0, "logs were captured");
    for (const secret of [AUTH_TOKEN, BASIC, REAMAZE_SECRET]) {
      assert.ok(!logs.includes(secret), `a secret (${secret.slice(0, 4)}…) appeared in the logs`);
    }
  });
});
