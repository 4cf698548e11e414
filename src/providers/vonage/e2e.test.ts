import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { verifySignature as sdkVerifyJwt } from "@vonage/jwt";
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
import { signWebhookJwt, smsSignature } from "./signature.js";

/**
 * End to end over real HTTP on loopback, for both Vonage APIs: a signed webhook (SMS API `sig`, Messages API JWT) →
 * the bridge → the sandbox helpdesk; a staff reply in the sandbox → the bridge → a stand-in of Vonage's send API;
 * a signed delivery receipt → recorded against the reply.
 */

const API_KEY = "e2eapikey7";
const API_SECRET = "e2e-vonage-api-secret-0123";
const SIGNATURE_SECRET = "e2e-vonage-signature-secret-Zq9v3T1xWm8Kp4Lr";
const APP_ID = "aaaaaaaa-bbbb-cccc-dddd-0123456789ff";
const RSA = generateKeyPairSync("rsa", { modulusLength: 2048 });
const PRIVATE_PEM = RSA.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
const PUBLIC_PEM = RSA.publicKey.export({ type: "spki", format: "pem" }).toString();
/** The channel number as Vonage writes numbers: E.164 without "+". */
const OUR_NUMBER = CHANNEL_PHONE.slice(1);
const CUSTOMER = "+447700900001";

function read(name: string): string {
  return readFileSync(new URL(`./testdata/${name}`, import.meta.url), "utf8");
}

function jsonFixture(name: string, replace: Record<string, unknown>): string {
  return JSON.stringify({ ...(JSON.parse(read(name)) as Record<string, unknown>), ...replace });
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

function publicUrl(loop: Loop, route: "inbound" | "status"): string {
  const ch = loop.bridge.channels.get("support");
  assert.ok(ch);
  return ch.urls[route];
}

function post(loop: Loop, route: "inbound" | "status", body: string, headers: Record<string, string>) {
  return fetch(`${loop.bridge.url}/channels/support/${route}`, { method: "POST", headers, body });
}

async function notStored(loop: Loop, providerMessageId: string) {
  const stored = await loop.bridge.store.db
    .selectFrom("messages")
    .select("id")
    .where("provider_message_id", "=", providerMessageId)
    .executeTakeFirst();
  assert.equal(stored, undefined, "nothing stored");
  assert.ok(!(await sandboxExternalIds(loop)).includes(`vonage:${providerMessageId}`));
}

function assertNoSecretsLogged(loop: Loop) {
  const logs = loop.logs();
  assert.ok(logs.length > 0, "logs were captured");
  const basic = Buffer.from(`${API_KEY}:${API_SECRET}`).toString("base64");
  for (const secret of [
    API_KEY,
    API_SECRET,
    SIGNATURE_SECRET,
    basic,
    PRIVATE_PEM.split("\n")[1]!,
    REAMAZE_SECRET,
  ]) {
    assert.ok(!logs.includes(secret), `a secret (${secret.slice(0, 4)}…) appeared in the logs`);
  }
}

describe("vonage end to end, api: sms", () => {
  const SEND = JSON.parse(read("sms-send-responses.json")) as {
    accepted: { messages: { "message-id": string }[] };
  };
  const SENT_ID = SEND.accepted.messages[0]!["message-id"];
  let standIn: StandIn;
  let loop: Loop;
  let slug = "";

  /** SMS API parameters signed as Vonage does: `sig` over the sorted parameters, with a fresh timestamp. */
  function signed(params: Record<string, string>, secret = SIGNATURE_SECRET): Record<string, string> {
    const p = { ...params, timestamp: String(nowSeconds()) };
    return { ...p, sig: smsSignature(p, secret, "md5hash") };
  }

  function inboundParams(messageId: string): Record<string, string> {
    return {
      ...(JSON.parse(read("sms-inbound.json")) as Record<string, string>),
      "api-key": API_KEY,
      to: OUR_NUMBER,
      messageId,
    };
  }

  before(async () => {
    standIn = await startStandIn();
    standIn.answer((req, res) => {
      if (req.method === "POST" && req.url === "/sms/json") {
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(SEND.accepted));
      } else {
        res.writeHead(404, { "content-type": "application/json" }).end("{}");
      }
    });
    loop = await startLoop({
      provider: {
        type: "vonage",
        apiKey: API_KEY,
        apiSecret: API_SECRET,
        signatureSecret: SIGNATURE_SECRET,
        apiBaseUrl: standIn.url,
      },
      publicUrl: "https://sms.example.test:{port}",
    });
  });
  after(async () => {
    await loop?.close();
    await standIn?.close();
  });

  test("a signed inbound SMS (JSON) is answered 204 and shows in the sandbox conversation", async () => {
    const res = await post(loop, "inbound", JSON.stringify(signed(inboundParams("0A0000000123ABCD1"))), {
      "content-type": "application/json",
    });
    assert.equal(res.status, 204);
    const conv = await conversationWith(loop, CUSTOMER, "vonage:0A0000000123ABCD1");
    slug = conv.slug;
    assert.equal(conv.customer.phone, CUSTOMER);
    assert.equal(conv.channel.phone, CHANNEL_PHONE);
    const m = conv.messages.find((x) => x.external_id === "vonage:0A0000000123ABCD1");
    assert.equal(m?.direction, "inbound");
    assert.equal(m?.body, "Hello world");
  });

  test("a staff reply in the sandbox is sent through POST /sms/json and marked sent", async () => {
    assert.ok(slug, "needs the conversation of the previous test");
    standIn.requests.length = 0;
    const sent = await staffReply(loop, slug, "Thanks! We're on it.");
    assert.equal(sent.status, "sent", `webhook outcome: ${JSON.stringify(sent.webhook)}`);
    assert.equal(sent.webhook?.status, 201);
    assert.deepEqual(JSON.parse(sent.webhook?.body ?? "{}"), { id: SENT_ID });

    assert.equal(standIn.requests.length, 1);
    const req = standIn.requests[0]!;
    assert.equal(req.method, "POST");
    assert.equal(req.url, "/sms/json");
    assert.equal(
      req.headers.authorization,
      `Basic ${Buffer.from(`${API_KEY}:${API_SECRET}`).toString("base64")}`,
    );
    assert.equal(req.headers["content-type"], "application/json");
    assert.match(publicUrl(loop, "status"), /^https:\/\/sms\.example\.test:\d+\/channels\/support\/status$/);
    assert.deepEqual(JSON.parse(req.body.toString("utf8")), {
      from: OUR_NUMBER,
      to: CUSTOMER.slice(1),
      text: "Thanks! We're on it.",
      callback: publicUrl(loop, "status"),
    });
    const rec = await sentByProviderId(loop, "vonage", SENT_ID);
    assert.equal(rec?.direction, "reply");
    assert.equal(rec?.customer, CUSTOMER);
    assert.equal(rec?.delivery_state, "sent");
  });

  test("a signed delivery receipt (form, expired, err-code 2) is recorded against the staff reply", async () => {
    const dlr = Object.fromEntries(new URLSearchParams(read("sms-dlr-expired-form.txt").trim()));
    const body = new URLSearchParams(
      signed({ ...dlr, "api-key": API_KEY, messageId: SENT_ID, msisdn: CUSTOMER.slice(1) }),
    ).toString();
    const res = await post(loop, "status", body, { "content-type": "application/x-www-form-urlencoded" });
    assert.equal(res.status, 204);
    const rec = await sentByProviderId(loop, "vonage", SENT_ID);
    assert.equal(rec?.delivery_state, "undelivered");
    assert.equal(rec?.delivery_status, "expired");
    assert.equal(rec?.delivery_error, "2: Absent Subscriber - Temporary");
    const failures = await loop.bridge.store.deliveryFailures({ since: 0, channelId: "support" });
    const f = failures.find((x) => x.providerMessageId === SENT_ID);
    assert.equal(f?.direction, "reply");
    assert.equal(f?.body, "Thanks! We're on it.");
  });

  const forged = [
    {
      name: "signed with another signature secret",
      params: (id: string) => signed(inboundParams(id), "not-the-secret"),
    },
    {
      name: "with a timestamp 10 minutes old (a replay)",
      params: (id: string) => {
        const p = { ...inboundParams(id), timestamp: String(nowSeconds() - 600) };
        return { ...p, sig: smsSignature(p, SIGNATURE_SECRET, "md5hash") };
      },
    },
    {
      name: "without sig",
      params: (id: string) => ({ ...inboundParams(id), timestamp: String(nowSeconds()) }),
    },
  ];
  for (const [i, f] of forged.entries()) {
    test(`an inbound SMS ${f.name} is refused (401) and nothing reaches the sandbox`, async () => {
      const id = `0A00000000000F0${i}`;
      const res = await post(loop, "inbound", JSON.stringify(f.params(id)), {
        "content-type": "application/json",
      });
      assert.equal(res.status, 401);
      await notStored(loop, id);
    });
  }

  test("no Vonage credential nor the helpdesk secret reached the logs", () => {
    assertNoSecretsLogged(loop);
  });
});

describe("vonage end to end, api: messages", () => {
  const SEND = JSON.parse(read("messages-send-responses.json")) as { accepted: { message_uuid: string } };
  const SENT_ID = SEND.accepted.message_uuid;
  const INBOUND_ID = "aaaaaaaa-bbbb-cccc-dddd-0123456789a1";
  let standIn: StandIn;
  let loop: Loop;
  let slug = "";

  /** Messages API webhooks: JSON, `Authorization: Bearer` HS256 JWT with the body's sha256 (payload_hash). */
  function jwtHeaders(body: string, secret = SIGNATURE_SECRET, iat = nowSeconds()): Record<string, string> {
    return {
      "content-type": "application/json",
      authorization: `Bearer ${signWebhookJwt(body, secret, { iat, applicationId: APP_ID })}`,
    };
  }

  before(async () => {
    standIn = await startStandIn();
    standIn.answer((req, res) => {
      if (req.method === "POST" && req.url === "/v1/messages") {
        res.writeHead(202, { "content-type": "application/json" }).end(JSON.stringify(SEND.accepted));
      } else {
        res.writeHead(404, { "content-type": "application/json" }).end("{}");
      }
    });
    loop = await startLoop({
      provider: {
        type: "vonage",
        api: "messages",
        apiKey: API_KEY,
        apiSecret: API_SECRET,
        signatureSecret: SIGNATURE_SECRET,
        applicationId: APP_ID,
        privateKey: PRIVATE_PEM,
        apiBaseUrl: standIn.url,
      },
      publicUrl: "https://sms.example.test:{port}",
    });
  });
  after(async () => {
    await loop?.close();
    await standIn?.close();
  });

  test("a JWT-signed inbound SMS is answered 204 and shows in the sandbox conversation", async () => {
    const body = jsonFixture("messages-inbound-sms.json", { message_uuid: INBOUND_ID, to: OUR_NUMBER });
    const res = await post(loop, "inbound", body, jwtHeaders(body));
    assert.equal(res.status, 204);
    const conv = await conversationWith(loop, CUSTOMER, `vonage:${INBOUND_ID}`);
    slug = conv.slug;
    assert.equal(conv.channel.phone, CHANNEL_PHONE);
    const m = conv.messages.find((x) => x.external_id === `vonage:${INBOUND_ID}`);
    assert.equal(m?.direction, "inbound");
    assert.equal(m?.body, "Hello From Vonage!");
  });

  test("a staff reply in the sandbox is sent through POST /v1/messages with an application JWT", async () => {
    assert.ok(slug, "needs the conversation of the previous test");
    standIn.requests.length = 0;
    const sent = await staffReply(loop, slug, "Thanks! We're on it.");
    assert.equal(sent.status, "sent", `webhook outcome: ${JSON.stringify(sent.webhook)}`);
    assert.equal(sent.webhook?.status, 201);
    assert.deepEqual(JSON.parse(sent.webhook?.body ?? "{}"), { id: SENT_ID });

    assert.equal(standIn.requests.length, 1);
    const req = standIn.requests[0]!;
    assert.equal(req.method, "POST");
    assert.equal(req.url, "/v1/messages");
    assert.equal(req.headers["content-type"], "application/json");
    const token = String(req.headers.authorization).replace(/^Bearer /, "");
    assert.equal(
      sdkVerifyJwt(token, PUBLIC_PEM),
      true,
      "the application JWT verifies with the public key (@vonage/jwt)",
    );
    const claims = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString("utf8")) as Record<
      string,
      unknown
    >;
    assert.equal(claims.application_id, APP_ID);
    const sentBody = JSON.parse(req.body.toString("utf8")) as Record<string, unknown>;
    assert.match(String(sentBody.client_ref), /^[0-9a-f]{64}$/, "the reply's idempotency key");
    delete sentBody.client_ref;
    assert.deepEqual(sentBody, {
      from: OUR_NUMBER,
      to: CUSTOMER.slice(1),
      channel: "sms",
      message_type: "text",
      text: "Thanks! We're on it.",
      webhook_url: publicUrl(loop, "status"),
    });
    const rec = await sentByProviderId(loop, "vonage", SENT_ID);
    assert.equal(rec?.direction, "reply");
    assert.equal(rec?.delivery_state, "sent");
  });

  const statuses = [
    { fixture: "messages-status-submitted.json", state: "sent", status: "submitted", error: null },
    {
      fixture: "messages-status-rejected.json",
      state: "failed",
      status: "rejected",
      error:
        "1000: Throttled - You have exceeded the submission capacity allowed on this account. Please wait and retry",
    },
  ];
  for (const s of statuses) {
    test(`a JWT-signed status (${s.fixture}) is recorded against the staff reply`, async () => {
      const body = jsonFixture(s.fixture, { message_uuid: SENT_ID });
      const res = await post(loop, "status", body, jwtHeaders(body));
      assert.equal(res.status, 204);
      const rec = await sentByProviderId(loop, "vonage", SENT_ID);
      assert.equal(rec?.delivery_state, s.state);
      assert.equal(rec?.delivery_status, s.status);
      assert.equal(rec?.delivery_error, s.error);
    });
  }

  test("the delivery failure is listed for operators against the staff reply", async () => {
    const failures = await loop.bridge.store.deliveryFailures({ since: 0, channelId: "support" });
    const f = failures.find((x) => x.providerMessageId === SENT_ID);
    assert.equal(f?.direction, "reply");
    assert.equal(f?.state, "failed");
    assert.match(f?.error ?? "", /^1000: Throttled/);
  });

  test("an inbound MMS image reaches the sandbox as a signed media-proxy link to Vonage's media URL", async () => {
    const id = "aaaaaaaa-bbbb-cccc-dddd-0123456789ac";
    const body = jsonFixture("messages-inbound-mms-image.json", { to: OUR_NUMBER });
    const res = await post(loop, "inbound", body, jwtHeaders(body));
    assert.equal(res.status, 204);
    const conv = await conversationWith(loop, "+14155550101", `vonage:${id}`);
    const m = conv.messages.find((x) => x.external_id === `vonage:${id}`);
    assert.equal(m?.body, "Look at this 📷");
    assert.equal(m?.attachments.length, 1);
    const link = new URL(m!.attachments[0]!);
    assert.equal(link.origin, new URL(publicUrl(loop, "inbound")).origin);
    const token = /^\/media\/(.+)$/.exec(link.pathname)?.[1] ?? "";
    // The claims name the channel and Vonage's URL; the MAC after the dot is what makes them trustworthy.
    const claims = JSON.parse(Buffer.from(token.split(".")[0]!, "base64url").toString("utf8")) as Record<
      string,
      unknown
    >;
    assert.equal(claims.c, "support");
    assert.equal(claims.u, "https://api-us.nexmo.com/v3/media/1b456509-974c-458b-aafa-45fc48a4d976");
    assert.ok(Number(claims.x) > nowSeconds(), "the link expires in the future");
    // Not fetched: the proxy would go to api-us.nexmo.com; src/bridge/media-proxy.test.ts covers the streaming.
  });

  const forged = [
    { name: "signed with another signature secret", headers: (b: string) => jwtHeaders(b, "not-the-secret") },
    {
      name: "whose JWT is 10 minutes old (a replay)",
      headers: (b: string) => jwtHeaders(b, SIGNATURE_SECRET, nowSeconds() - 600),
    },
    {
      name: "whose body changed after signing",
      headers: (b: string) => jwtHeaders(b.replace("Hello", "Hullo")),
    },
    { name: "without Authorization", headers: () => ({ "content-type": "application/json" }) },
  ];
  for (const [i, f] of forged.entries()) {
    test(`an inbound message ${f.name} is refused (401) and nothing reaches the sandbox`, async () => {
      const id = `00000000-0000-4000-8000-0000000000f${i}`;
      const body = jsonFixture("messages-inbound-sms.json", { message_uuid: id, to: OUR_NUMBER });
      const res = await post(loop, "inbound", body, f.headers(body));
      assert.equal(res.status, 401);
      await notStored(loop, id);
    });
  }

  test("no Vonage credential, private key nor the helpdesk secret reached the logs", () => {
    assertNoSecretsLogged(loop);
  });
});
