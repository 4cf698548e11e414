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
import { computeSignature, EMPTY_TWIML } from "./index.js";
import { formParams } from "./signature.js";

/**
 * End to end over real HTTP on loopback (the shared steps in ../test-support/e2e.ts): a Twilio-signed webhook → the
 * bridge → the sandbox helpdesk; a staff reply → a stand-in of Twilio's Messages API; a signed status callback →
 * recorded against the reply; MMS media through the bridge's media proxy.
 */

const TESTDATA = new URL("./testdata/", import.meta.url);
const ACCOUNT_SID = "AC1234567890abcdef1234567890abcdef";
const AUTH_TOKEN = "e2e-twilio-auth-token-0123456789abcdef";
const BASIC = `Basic ${Buffer.from(`${ACCOUNT_SID}:${AUTH_TOKEN}`).toString("base64")}`;
const MESSAGES_PATH = `/2010-04-01/Accounts/${ACCOUNT_SID}/Messages.json`;
const CREATED = JSON.parse(readFixture(TESTDATA, "message-created.json")) as { sid: string };

/** POSTs a form exactly as Twilio does: signed over the public URL the bridge is configured with. */
function postSigned(loop: Loop, route: Route, body: string, key = AUTH_TOKEN): Promise<Response> {
  const signature = computeSignature(key, publicUrl(loop, route), formParams(body));
  return postTo(loop, route, body, { "content-type": FORM, "x-twilio-signature": signature });
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
  title: "twilio end to end",
  type: "twilio",
  provider: (apiBaseUrl) => ({ type: "twilio", accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, apiBaseUrl }),
  standIn: {
    routes: [
      // As Twilio answers a create: 201 and the Message resource.
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
    title: "a staff reply in the sandbox is sent through Twilio's Messages API and marked sent",
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
      { fixture: "status-sent.form", state: "sent", status: "sent", error: null },
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
    send: (loop, [url0, url1]) =>
      postSigned(
        loop,
        "inbound",
        formFixture(TESTDATA, "inbound-mms.form", { To: CHANNEL_PHONE, MediaUrl0: url0, MediaUrl1: url1 }),
      ),
    ack: { status: 200 },
    customer: "+14017122661",
    providerId: "MM0123456789abcdef0123456789abcdef",
    body: "Here is the receipt",
    mediaPath: `/2010-04-01/Accounts/${ACCOUNT_SID}/Messages/MM0123456789abcdef0123456789abcdef/Media`,
    mediaIds: ["ME0123456789abcdef0123456789abcdef", "ME1123456789abcdef0123456789abcdef"],
    // Twilio's media URL redirects to a short-lived CDN URL.
    redirect: { status: 307, location: "/cdn/ME0123456789abcdef0123456789abcdef.jpg" },
    hidden: ACCOUNT_SID,
    checkFetches(requests) {
      // Twilio credentials travel only over https; the loopback stand-in is plain http.
      assert.ok(requests.every((r) => r.headers.authorization === undefined));
    },
  },
  forged: {
    what: "a webhook",
    id: (_i, f) => `SM${f.status}00000000000000000000000000000f`,
    rows: [
      {
        name: "signed with another auth token",
        status: 403,
        send: (loop, sid) => postSigned(loop, "inbound", forgedSms(sid), "not-the-auth-token"),
      },
      {
        name: "without X-Twilio-Signature",
        status: 401,
        send: (loop, sid) => postTo(loop, "inbound", forgedSms(sid), { "content-type": FORM }),
      },
    ],
  },
  secrets: {
    title: "no Twilio credential nor the helpdesk secret reached the logs",
    values: [AUTH_TOKEN, BASIC],
  },
});
