import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { CHANNEL_PHONE, type Loop } from "../../bridge/test-support/loop.js";
import {
  FORM,
  formFixture,
  JSON_TYPE,
  messageIn,
  postTo,
  providerE2E,
  publicUrl,
  REPLY_TEXT,
  type Route,
  readFixture,
} from "../test-support/e2e.js";
import {
  computeV2Signature,
  computeV3Signature,
  V2_NONCE,
  V2_SIGNATURE,
  V3_NONCE,
  V3_SIGNATURE,
} from "./index.js";
import { paramsFrom } from "./signature.js";

/**
 * End to end over real HTTP on loopback (the shared steps in ../test-support/e2e.ts): a Plivo-signed (V2 and V3)
 * message webhook → the bridge → the sandbox helpdesk; a staff reply → a stand-in of Plivo's Message API; a signed
 * status callback → recorded against the reply. Plivo media URLs are public, so MMS attachments pass through
 * unproxied.
 */

const TESTDATA = new URL("./testdata/", import.meta.url);
const AUTH_ID = "MAE2E0TESTACCOUNT000";
const AUTH_TOKEN = "e2e-plivo-auth-token-0123456789abcdef";
const BASIC = `Basic ${Buffer.from(`${AUTH_ID}:${AUTH_TOKEN}`).toString("base64")}`;
const ACCEPTED = readFixture(TESTDATA, "send-accepted.json");
const SENT_ID = (JSON.parse(ACCEPTED) as { message_uuid: string[] }).message_uuid[0]!;
const MESSAGE_PATH = `/v1/Account/${AUTH_ID}/Message/`;
/** Plivo writes numbers without "+". */
const OUR_NUMBER = CHANNEL_PHONE.slice(1);
const CUSTOMER = "+14155551234";
const PLIVO_XML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>';

/** POSTs a form as Plivo does, with both its V2 (URL + nonce) and V3 (URL + parameters + nonce) signatures. */
function postSigned(
  loop: Loop,
  route: Route,
  body: string,
  opts: { token?: string; v3?: boolean; signedBody?: string } = {},
): Promise<Response> {
  const url = publicUrl(loop, route);
  const token = opts.token ?? AUTH_TOKEN;
  const nonce = randomBytes(10).toString("hex");
  const params = paramsFrom(new URLSearchParams(opts.signedBody ?? body));
  return postTo(loop, route, body, {
    "content-type": FORM,
    [V2_SIGNATURE]: computeV2Signature(url, nonce, token),
    [V2_NONCE]: nonce,
    ...(opts.v3 === false
      ? {}
      : { [V3_SIGNATURE]: computeV3Signature("POST", url, params, nonce, token), [V3_NONCE]: nonce }),
  });
}

/** The inbound SMS fixture under another uuid, for the forged webhooks. */
const forgedSms = (uuid: string) =>
  formFixture(TESTDATA, "inbound-sms.form", { To: OUR_NUMBER, MessageUUID: uuid });

providerE2E({
  title: "plivo end to end",
  type: "plivo",
  provider: (apiBaseUrl) => ({ type: "plivo", authId: AUTH_ID, authToken: AUTH_TOKEN, apiBaseUrl }),
  standIn: {
    // As Plivo answers a send: 202 and the queued message uuids.
    routes: [
      {
        method: "POST",
        path: MESSAGE_PATH,
        status: 202,
        headers: { "content-type": JSON_TYPE },
        body: ACCEPTED,
      },
    ],
    notFound: '{"api_id":"x","error":"not found"}',
  },
  inbound: {
    title: "a signed incoming SMS is answered with empty Plivo XML and shows in the sandbox conversation",
    send: (loop) =>
      postSigned(loop, "inbound", formFixture(TESTDATA, "inbound-sms.form", { To: OUR_NUMBER })),
    ack: { status: 200, contentType: /^application\/xml/, body: PLIVO_XML },
    customer: CUSTOMER,
    providerId: "7a242edc-2f57-11e7-98c9-06ab0bf64327",
    body: "Hello, from Plivo",
  },
  reply: {
    title: "a staff reply in the sandbox is sent through Plivo's Message API and marked sent",
    sentId: SENT_ID,
    path: MESSAGE_PATH,
    contentType: JSON_TYPE,
    authorization: BASIC,
    body: (statusUrl) => ({
      src: OUR_NUMBER,
      dst: CUSTOMER.slice(1),
      text: REPLY_TEXT,
      type: "sms",
      url: statusUrl,
      method: "POST",
    }),
  },
  statuses: {
    what: "signed status callback",
    send: (loop, fixture, uuid) =>
      postSigned(
        loop,
        "status",
        formFixture(TESTDATA, fixture, { MessageUUID: uuid, ParentMessageUUID: uuid }),
      ),
    ack: { status: 200 },
    rows: [
      { fixture: "status-queued.form", state: "queued", status: "queued", error: null },
      {
        fixture: "status-undelivered.form",
        state: "undelivered",
        status: "undelivered",
        error: "30: Spam detected",
      },
    ],
  },
  failure: { state: "undelivered", error: /^30: / },
  extraTests(e2e) {
    test("an incoming MMS reaches the sandbox with Plivo's media URLs", async () => {
      const res = await postSigned(
        e2e.loop,
        "inbound",
        formFixture(TESTDATA, "inbound-mms.form", { To: OUR_NUMBER }),
      );
      assert.equal(res.status, 200);
      const m = await messageIn(e2e.loop, CUSTOMER, "plivo:0936ec98-7c4c-11ea-9a4f-0242ac110003");
      assert.equal(m.body, "Look at this");
      // No proxy: Plivo's adapter sets no `media`.
      assert.equal(e2e.loop.bridge.channels.get("support")!.adapter.media, undefined);
      assert.deepEqual(m.attachments, [
        "https://media.plivo.com/Account/MAXXXXXXXXXXXXXXXXXX/Media/801c2056-33ab-499c-80ef-58b574a462a2",
        "https://media.plivo.com/Account/MAXXXXXXXXXXXXXXXXXX/Media/9c3f2e8a-7b1d-4f6e-a2c5-1d0b3e4f5a6b",
      ]);
    });
  },
  forged: {
    what: "a webhook",
    id: (i) => `00000000-0000-4000-8000-0000000000f${i}`,
    rows: [
      {
        name: "signed with another auth token",
        status: 403,
        send: (loop, id) => postSigned(loop, "inbound", forgedSms(id), { token: "not-the-auth-token" }),
      },
      {
        name: "whose body changed after signing (V3)",
        status: 403,
        send: (loop, id) => postSigned(loop, "inbound", forgedSms(id), { signedBody: "Text=something+else" }),
      },
      {
        name: "signed V2 only, with another auth token",
        status: 403,
        send: (loop, id) =>
          postSigned(loop, "inbound", forgedSms(id), { token: "not-the-auth-token", v3: false }),
      },
      {
        name: "without signatures",
        status: 401,
        send: (loop, id) => postTo(loop, "inbound", forgedSms(id), { "content-type": FORM }),
      },
    ],
  },
  secrets: {
    title: "no Plivo credential nor the helpdesk secret reached the logs",
    values: [AUTH_TOKEN, BASIC],
  },
});
