import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { test } from "node:test";
import { verifySignature as sdkVerifyJwt } from "@vonage/jwt";
import { CHANNEL_PHONE, type Loop } from "../../bridge/test-support/loop.js";
import {
  FORM,
  JSON_TYPE,
  messageIn,
  postTo,
  providerE2E,
  publicUrl,
  REPLY_TEXT,
  readFixture,
} from "../test-support/e2e.js";
import { signWebhookJwt, smsSignature } from "./signature.js";

/**
 * End to end over real HTTP on loopback for both Vonage APIs (the shared steps in ../test-support/e2e.ts): a signed
 * webhook (SMS API `sig`, Messages API JWT) → the bridge → the sandbox helpdesk; a staff reply → a stand-in of
 * Vonage's send API; a signed delivery receipt → recorded against the reply.
 */

const TESTDATA = new URL("./testdata/", import.meta.url);
const API_KEY = "e2eapikey7";
const API_SECRET = "e2e-vonage-api-secret-0123";
const SIGNATURE_SECRET = "e2e-vonage-signature-secret-Zq9v3T1xWm8Kp4Lr";
const APP_ID = "aaaaaaaa-bbbb-cccc-dddd-0123456789ff";
const BASIC = `Basic ${Buffer.from(`${API_KEY}:${API_SECRET}`).toString("base64")}`;
const RSA = generateKeyPairSync("rsa", { modulusLength: 2048 });
const PRIVATE_PEM = RSA.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
const PUBLIC_PEM = RSA.publicKey.export({ type: "spki", format: "pem" }).toString();
/** The channel number as Vonage writes numbers: E.164 without "+". */
const OUR_NUMBER = CHANNEL_PHONE.slice(1);
const CUSTOMER = "+447700900001";
const SECRETS = [API_KEY, API_SECRET, SIGNATURE_SECRET, BASIC.slice(6), PRIVATE_PEM.split("\n")[1]!];

const read = (name: string) => readFixture(TESTDATA, name);

function jsonFixture(name: string, replace: Record<string, unknown>): string {
  return JSON.stringify({ ...(JSON.parse(read(name)) as Record<string, unknown>), ...replace });
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

// ---- SMS API: `sig` over the sorted parameters --------------------------------------------------------------

const SMS_SEND = JSON.parse(read("sms-send-responses.json")) as {
  accepted: { messages: { "message-id": string }[] };
};

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

/** POSTs SMS API inbound parameters as JSON (their signature travels inside). */
function postJson(loop: Loop, params: Record<string, string>): Promise<Response> {
  return postTo(loop, "inbound", JSON.stringify(params), { "content-type": JSON_TYPE });
}

providerE2E({
  title: "vonage end to end, api: sms",
  type: "vonage",
  provider: (apiBaseUrl) => ({
    type: "vonage",
    apiKey: API_KEY,
    apiSecret: API_SECRET,
    signatureSecret: SIGNATURE_SECRET,
    apiBaseUrl,
  }),
  standIn: {
    routes: [
      {
        method: "POST",
        path: "/sms/json",
        status: 200,
        headers: { "content-type": JSON_TYPE },
        body: JSON.stringify(SMS_SEND.accepted),
      },
    ],
    notFound: "{}",
  },
  inbound: {
    title: "a signed inbound SMS (JSON) is answered 204 and shows in the sandbox conversation",
    send: (loop) => postJson(loop, signed(inboundParams("0A0000000123ABCD1"))),
    ack: { status: 204 },
    customer: CUSTOMER,
    providerId: "0A0000000123ABCD1",
    body: "Hello world",
  },
  reply: {
    title: "a staff reply in the sandbox is sent through POST /sms/json and marked sent",
    sentId: SMS_SEND.accepted.messages[0]!["message-id"],
    path: "/sms/json",
    contentType: JSON_TYPE,
    authorization: BASIC,
    body: (statusUrl) => ({ from: OUR_NUMBER, to: CUSTOMER.slice(1), text: REPLY_TEXT, callback: statusUrl }),
  },
  statuses: {
    what: "signed delivery receipt",
    send: (loop, fixture, messageId) => {
      const dlr = Object.fromEntries(new URLSearchParams(read(fixture).trim()));
      const params = signed({ ...dlr, "api-key": API_KEY, messageId, msisdn: CUSTOMER.slice(1) });
      return postTo(loop, "status", new URLSearchParams(params).toString(), { "content-type": FORM });
    },
    ack: { status: 204 },
    rows: [
      {
        fixture: "sms-dlr-expired-form.txt",
        state: "undelivered",
        status: "expired",
        error: "2: Absent Subscriber - Temporary",
      },
    ],
  },
  failure: { state: "undelivered", error: /^2: Absent Subscriber/ },
  forged: {
    what: "an inbound SMS",
    id: (i) => `0A00000000000F0${i}`,
    rows: [
      {
        name: "signed with another signature secret",
        status: 401,
        send: (loop, id) => postJson(loop, signed(inboundParams(id), "not-the-secret")),
      },
      {
        name: "with a timestamp 10 minutes old (a replay)",
        status: 401,
        send: (loop, id) => {
          const p = { ...inboundParams(id), timestamp: String(nowSeconds() - 600) };
          return postJson(loop, { ...p, sig: smsSignature(p, SIGNATURE_SECRET, "md5hash") });
        },
      },
      {
        name: "without sig",
        status: 401,
        send: (loop, id) => postJson(loop, { ...inboundParams(id), timestamp: String(nowSeconds()) }),
      },
    ],
  },
  secrets: { title: "no Vonage credential nor the helpdesk secret reached the logs", values: SECRETS },
});

// ---- Messages API: JWT-signed webhooks, application JWT on sends --------------------------------------------

const MESSAGES_SEND = JSON.parse(read("messages-send-responses.json")) as {
  accepted: { message_uuid: string };
};
const INBOUND_ID = "aaaaaaaa-bbbb-cccc-dddd-0123456789a1";

/** Messages API webhooks: JSON, `Authorization: Bearer` HS256 JWT with the body's sha256 (payload_hash). */
function jwtHeaders(body: string, secret = SIGNATURE_SECRET, iat = nowSeconds()): Record<string, string> {
  return {
    "content-type": JSON_TYPE,
    authorization: `Bearer ${signWebhookJwt(body, secret, { iat, applicationId: APP_ID })}`,
  };
}

/** The inbound SMS fixture under another uuid, for the forged webhooks. */
const forgedSms = (id: string) =>
  jsonFixture("messages-inbound-sms.json", { message_uuid: id, to: OUR_NUMBER });

providerE2E({
  title: "vonage end to end, api: messages",
  type: "vonage",
  provider: (apiBaseUrl) => ({
    type: "vonage",
    api: "messages",
    apiKey: API_KEY,
    apiSecret: API_SECRET,
    signatureSecret: SIGNATURE_SECRET,
    applicationId: APP_ID,
    privateKey: PRIVATE_PEM,
    apiBaseUrl,
  }),
  standIn: {
    routes: [
      {
        method: "POST",
        path: "/v1/messages",
        status: 202,
        headers: { "content-type": JSON_TYPE },
        body: JSON.stringify(MESSAGES_SEND.accepted),
      },
    ],
    notFound: "{}",
  },
  inbound: {
    title: "a JWT-signed inbound SMS is answered 204 and shows in the sandbox conversation",
    send: (loop) => {
      const body = jsonFixture("messages-inbound-sms.json", { message_uuid: INBOUND_ID, to: OUR_NUMBER });
      return postTo(loop, "inbound", body, jwtHeaders(body));
    },
    ack: { status: 204 },
    customer: CUSTOMER,
    providerId: INBOUND_ID,
    body: "Hello From Vonage!",
  },
  reply: {
    title: "a staff reply in the sandbox is sent through POST /v1/messages with an application JWT",
    sentId: MESSAGES_SEND.accepted.message_uuid,
    path: "/v1/messages",
    contentType: JSON_TYPE,
    check(req, sent) {
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
      assert.match(String(sent.client_ref), /^[0-9a-f]{64}$/, "the reply's idempotency key");
      delete sent.client_ref;
    },
    body: (statusUrl) => ({
      from: OUR_NUMBER,
      to: CUSTOMER.slice(1),
      channel: "sms",
      message_type: "text",
      text: REPLY_TEXT,
      webhook_url: statusUrl,
    }),
  },
  statuses: {
    what: "JWT-signed status",
    send: (loop, fixture, uuid) => {
      const body = jsonFixture(fixture, { message_uuid: uuid });
      return postTo(loop, "status", body, jwtHeaders(body));
    },
    ack: { status: 204 },
    rows: [
      { fixture: "messages-status-submitted.json", state: "sent", status: "submitted", error: null },
      {
        fixture: "messages-status-rejected.json",
        state: "failed",
        status: "rejected",
        error:
          "1000: Throttled - You have exceeded the submission capacity allowed on this account. Please wait and retry",
      },
    ],
  },
  failure: { state: "failed", error: /^1000: Throttled/ },
  extraTests(e2e) {
    test("an inbound MMS image reaches the sandbox as a signed media-proxy link to Vonage's media URL", async () => {
      const { loop } = e2e;
      const body = jsonFixture("messages-inbound-mms-image.json", { to: OUR_NUMBER });
      const res = await postTo(loop, "inbound", body, jwtHeaders(body));
      assert.equal(res.status, 204);
      const m = await messageIn(loop, "+14155550101", "vonage:aaaaaaaa-bbbb-cccc-dddd-0123456789ac");
      assert.equal(m.body, "Look at this 📷");
      assert.equal(m.attachments.length, 1);
      const link = new URL(m.attachments[0]!);
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
  },
  forged: {
    what: "an inbound message",
    id: (i) => `00000000-0000-4000-8000-0000000000f${i}`,
    rows: [
      {
        name: "signed with another signature secret",
        status: 401,
        send: (loop, id) =>
          postTo(loop, "inbound", forgedSms(id), jwtHeaders(forgedSms(id), "not-the-secret")),
      },
      {
        name: "whose JWT is 10 minutes old (a replay)",
        status: 401,
        send: (loop, id) =>
          postTo(
            loop,
            "inbound",
            forgedSms(id),
            jwtHeaders(forgedSms(id), SIGNATURE_SECRET, nowSeconds() - 600),
          ),
      },
      {
        name: "whose body changed after signing",
        status: 401,
        send: (loop, id) =>
          postTo(loop, "inbound", forgedSms(id), jwtHeaders(forgedSms(id).replace("Hello", "Hullo"))),
      },
      {
        name: "without Authorization",
        status: 401,
        send: (loop, id) => postTo(loop, "inbound", forgedSms(id), { "content-type": JSON_TYPE }),
      },
    ],
  },
  secrets: {
    title: "no Vonage credential, private key nor the helpdesk secret reached the logs",
    values: SECRETS,
  },
});
