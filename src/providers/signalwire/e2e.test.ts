import assert from "node:assert/strict";
import { CHANNEL_PHONE, type Loop } from "../../bridge/test-support/loop.js";
import {
  FORM,
  formFixture,
  postTo,
  providerE2E,
  publicUrl,
  REPLY_TEXT,
  type Route,
  readFixture,
} from "../test-support/e2e.js";
import { EMPTY_TWIML } from "../twilio/index.js";
import { computeSignature, formParams } from "../twilio/signature.js";

/**
 * End to end over real HTTP on loopback (the shared steps in ../test-support/e2e.ts): a SignalWire-signed LaML
 * webhook → the bridge → the sandbox helpdesk; a staff reply → a stand-in of SignalWire's Compatibility Messages
 * API; a signed status callback → recorded against the reply; MMS media through the bridge's media proxy.
 */

const TESTDATA = new URL("./testdata/", import.meta.url);
const PROJECT_ID = "ea108133-d6b3-407c-9536-9fad8a929a6a";
const API_TOKEN = "PTe2e-signalwire-api-token-0123456789abcdef";
const SIGNING_KEY = "PSKe2e-signalwire-signing-key-0123456789";
const BASIC = `Basic ${Buffer.from(`${PROJECT_ID}:${API_TOKEN}`).toString("base64")}`;
const MESSAGES_PATH = `/api/laml/2010-04-01/Accounts/${PROJECT_ID}/Messages.json`;
const CREATED = JSON.parse(readFixture(TESTDATA, "message-created.json")) as { sid: string };
const MMS_SID = "1b16a9f2-4c3e-4d5a-9b8c-7d6e5f4a3b2c";

/** POSTs a form exactly as SignalWire does: signed with the Signing Key over the public URL, parameters as sent. */
function postSigned(loop: Loop, route: Route, body: string, key = SIGNING_KEY): Promise<Response> {
  const signature = computeSignature(key, publicUrl(loop, route), formParams(body), "as-sent");
  return postTo(loop, route, body, { "content-type": FORM, "x-signalwire-signature": signature });
}

/** The inbound SMS fixture under another sid, for the forged webhooks. */
const forgedSms = (sid: string) =>
  formFixture(TESTDATA, "inbound-sms.form", {
    To: CHANNEL_PHONE,
    MessageSid: sid,
    SmsSid: sid,
    SmsMessageSid: sid,
  });

providerE2E({
  title: "signalwire end to end",
  type: "signalwire",
  // The space is the stand-in, so its host is one of the adapter's media hosts like a real space would be.
  provider: (apiBaseUrl) => ({
    type: "signalwire",
    projectId: PROJECT_ID,
    apiToken: API_TOKEN,
    signingKey: SIGNING_KEY,
    spaceUrl: new URL(apiBaseUrl).host,
    apiBaseUrl,
  }),
  standIn: {
    routes: [
      // As the Compatibility API answers a create: 201 and the Message object.
      {
        method: "POST",
        path: MESSAGES_PATH,
        status: 201,
        headers: { "content-type": "application/json" },
        body: JSON.stringify(CREATED),
      },
    ],
    notFound: '{"code":20404,"message":"not found","status":404}',
  },
  inbound: {
    title: "a signed incoming SMS is answered with empty TwiML and shows in the sandbox conversation",
    send: (loop) =>
      postSigned(loop, "inbound", formFixture(TESTDATA, "inbound-sms.form", { To: CHANNEL_PHONE })),
    ack: { status: 200, contentType: /^text\/xml/, body: EMPTY_TWIML },
    customer: "+14133881111",
    providerId: "SMe287d7109a5a925f182f0e07fe5b223b",
    body: "Msg",
  },
  reply: {
    title:
      "a staff reply in the sandbox is sent through the Compatibility API's Messages resource and marked sent",
    sentId: CREATED.sid,
    path: MESSAGES_PATH,
    contentType: FORM,
    authorization: BASIC,
    body: (statusUrl) => ({
      To: "+14133881111",
      From: CHANNEL_PHONE,
      Body: REPLY_TEXT,
      StatusCallback: statusUrl,
    }),
  },
  statuses: {
    what: "signed status callback",
    send: (loop, fixture, sid) =>
      postSigned(loop, "status", formFixture(TESTDATA, fixture, { MessageSid: sid, SmsSid: sid })),
    ack: { status: 200, body: EMPTY_TWIML },
    rows: [
      { fixture: "status-delivered.form", state: "delivered", status: "delivered", error: null },
      {
        fixture: "status-undelivered.form",
        state: "undelivered",
        status: "undelivered",
        error: "30003: Unreachable destination handset",
      },
    ],
  },
  failure: { state: "undelivered", error: /30003/ },
  proxiedMms: {
    // The fixture's sid is the one the send answer uses too; an inbound message gets its own.
    send: (loop, [url0, url1]) =>
      postSigned(
        loop,
        "inbound",
        formFixture(TESTDATA, "inbound-mms.form", {
          MessageSid: MMS_SID,
          SmsSid: MMS_SID,
          SmsMessageSid: MMS_SID,
          To: CHANNEL_PHONE,
          MediaUrl0: url0,
          NumMedia: "2",
          MediaUrl1: url1,
          MediaContentType1: "application/pdf",
        }),
      ),
    ack: { status: 200 },
    customer: "+15557654321",
    providerId: MMS_SID,
    body: "Hello World! 😀",
    mediaPath: `/api/laml/2010-04-01/Accounts/${PROJECT_ID}/Messages/${MMS_SID}/Media`,
    mediaIds: ["b3877c40-da60-4998-90ad-b792e98472me", "c4988d51-eb71-4aa9-a1be-c803fa9583nf"],
    // Media may be served from a storage host; follow the redirect like any client.
    redirect: { status: 302, location: "/files/b3877c40-da60-4998-90ad-b792e98472me.jpg" },
    hidden: PROJECT_ID,
    checkFetches(requests) {
      // Project credentials travel only over https; the loopback stand-in is plain http.
      assert.ok(requests.every((r) => r.headers.authorization === undefined));
    },
  },
  forged: {
    what: "a webhook",
    id: (_i, f) => `SM${f.status}00000000000000000000000000000f`,
    rows: [
      {
        name: "signed with the API token instead of the Signing Key",
        status: 403,
        send: (loop, sid) => postSigned(loop, "inbound", forgedSms(sid), API_TOKEN),
      },
      {
        name: "without X-SignalWire-Signature",
        status: 401,
        send: (loop, sid) => postTo(loop, "inbound", forgedSms(sid), { "content-type": FORM }),
      },
    ],
  },
  secrets: {
    title: "no SignalWire credential nor the helpdesk secret reached the logs",
    values: [API_TOKEN, SIGNING_KEY, BASIC],
  },
});
