import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
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
 * End to end over real HTTP on loopback: a Plivo-signed (V2 and V3) message webhook → the bridge → the sandbox
 * helpdesk; a staff reply in the sandbox → the bridge → a stand-in of Plivo's Message API; a signed status callback
 * → recorded against the reply. Plivo media URLs are public, so MMS attachments pass through unproxied.
 */

const AUTH_ID = "MAE2E0TESTACCOUNT000";
const AUTH_TOKEN = "e2e-plivo-auth-token-0123456789abcdef";
const BASIC = `Basic ${Buffer.from(`${AUTH_ID}:${AUTH_TOKEN}`).toString("base64")}`;
const ACCEPTED = readFileSync(new URL("./testdata/send-accepted.json", import.meta.url), "utf8");
const SENT_ID = (JSON.parse(ACCEPTED) as { message_uuid: string[] }).message_uuid[0]!;
/** Plivo writes numbers without "+". */
const OUR_NUMBER = CHANNEL_PHONE.slice(1);

function fixture(name: string, replace: Record<string, string> = {}): string {
  const form = new URLSearchParams(
    readFileSync(new URL(`./testdata/${name}`, import.meta.url), "utf8").trim(),
  );
  for (const [k, v] of Object.entries(replace)) form.set(k, v);
  return form.toString();
}

/** POSTs a form as Plivo does, with both its V2 (URL + nonce) and V3 (URL + parameters + nonce) signatures. */
function postSigned(
  loop: Loop,
  route: "inbound" | "status",
  body: string,
  opts: { token?: string; v3?: boolean; signedBody?: string } = {},
) {
  const ch = loop.bridge.channels.get("support");
  assert.ok(ch);
  const publicUrl = ch.urls[route];
  const token = opts.token ?? AUTH_TOKEN;
  const nonce = randomBytes(10).toString("hex");
  const params = paramsFrom(new URLSearchParams(opts.signedBody ?? body));
  return fetch(toLocal(loop, publicUrl), {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      [V2_SIGNATURE]: computeV2Signature(publicUrl, nonce, token),
      [V2_NONCE]: nonce,
      ...(opts.v3 === false
        ? {}
        : { [V3_SIGNATURE]: computeV3Signature("POST", publicUrl, params, nonce, token), [V3_NONCE]: nonce }),
    },
    body,
  });
}

const PLIVO_XML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>';

describe("plivo end to end", () => {
  let standIn: StandIn;
  let loop: Loop;
  let slug = "";
  const customer = "+14155551234";

  before(async () => {
    standIn = await startStandIn();
    standIn.answer((req, res) => {
      if (req.method === "POST" && req.url === `/v1/Account/${AUTH_ID}/Message/`) {
        // As Plivo answers a send: 202 and the queued message uuids.
        res.writeHead(202, { "content-type": "application/json" }).end(ACCEPTED);
      } else {
        res.writeHead(404, { "content-type": "application/json" }).end('{"api_id":"x","error":"not found"}');
      }
    });
    loop = await startLoop({
      provider: { type: "plivo", authId: AUTH_ID, authToken: AUTH_TOKEN, apiBaseUrl: standIn.url },
      publicUrl: "https://sms.example.test:{port}",
    });
  });
  after(async () => {
    await loop?.close();
    await standIn?.close();
  });

  test("a signed incoming SMS is answered with empty Plivo XML and shows in the sandbox conversation", async () => {
    const res = await postSigned(loop, "inbound", fixture("inbound-sms.form", { To: OUR_NUMBER }));
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^application\/xml/);
    assert.equal(await res.text(), PLIVO_XML);

    const id = "plivo:7a242edc-2f57-11e7-98c9-06ab0bf64327";
    const conv = await conversationWith(loop, customer, id);
    slug = conv.slug;
    assert.equal(conv.customer.phone, customer);
    assert.equal(conv.channel.phone, CHANNEL_PHONE);
    const m = conv.messages.find((x) => x.external_id === id);
    assert.equal(m?.direction, "inbound");
    assert.equal(m?.body, "Hello, from Plivo");
    assert.deepEqual(m?.attachments, []);
  });

  test("a staff reply in the sandbox is sent through Plivo's Message API and marked sent", async () => {
    assert.ok(slug, "needs the conversation of the previous test");
    standIn.requests.length = 0;
    const sent = await staffReply(loop, slug, "Thanks! We're on it.");
    assert.equal(sent.status, "sent", `webhook outcome: ${JSON.stringify(sent.webhook)}`);
    assert.equal(sent.webhook?.status, 201);
    assert.deepEqual(JSON.parse(sent.webhook?.body ?? "{}"), { id: SENT_ID });

    assert.equal(standIn.requests.length, 1);
    const req = standIn.requests[0]!;
    assert.equal(req.method, "POST");
    assert.equal(req.url, `/v1/Account/${AUTH_ID}/Message/`);
    assert.equal(req.headers.authorization, BASIC);
    assert.equal(req.headers["content-type"], "application/json");
    const statusUrl = loop.bridge.channels.get("support")!.urls.status;
    assert.match(statusUrl, /^https:\/\/sms\.example\.test:\d+\/channels\/support\/status$/);
    assert.deepEqual(JSON.parse(req.body.toString("utf8")), {
      src: OUR_NUMBER,
      dst: customer.slice(1),
      text: "Thanks! We're on it.",
      type: "sms",
      url: statusUrl,
      method: "POST",
    });

    const rec = await sentByProviderId(loop, "plivo", SENT_ID);
    assert.equal(rec?.direction, "reply");
    assert.equal(rec?.customer, customer);
    assert.equal(rec?.delivery_state, "sent");
  });

  const statuses = [
    { fixture: "status-queued.form", state: "queued", status: "queued", error: null },
    {
      fixture: "status-undelivered.form",
      state: "undelivered",
      status: "undelivered",
      error: "30: Spam detected",
    },
  ];
  for (const s of statuses) {
    test(`a signed status callback (${s.fixture}) is recorded against the staff reply`, async () => {
      const res = await postSigned(
        loop,
        "status",
        fixture(s.fixture, { MessageUUID: SENT_ID, ParentMessageUUID: SENT_ID }),
      );
      assert.equal(res.status, 200);
      const rec = await sentByProviderId(loop, "plivo", SENT_ID);
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
    assert.match(f.error ?? "", /^30: /);
  });

  test("an incoming MMS reaches the sandbox with Plivo's media URLs", async () => {
    const res = await postSigned(loop, "inbound", fixture("inbound-mms.form", { To: OUR_NUMBER }));
    assert.equal(res.status, 200);
    const id = "plivo:0936ec98-7c4c-11ea-9a4f-0242ac110003";
    const conv = await conversationWith(loop, customer, id);
    const m = conv.messages.find((x) => x.external_id === id);
    assert.equal(m?.body, "Look at this");
    // No proxy: Plivo's adapter sets no `media`.
    assert.equal(loop.bridge.channels.get("support")!.adapter.media, undefined);
    assert.deepEqual(m?.attachments, [
      "https://media.plivo.com/Account/MAXXXXXXXXXXXXXXXXXX/Media/801c2056-33ab-499c-80ef-58b574a462a2",
      "https://media.plivo.com/Account/MAXXXXXXXXXXXXXXXXXX/Media/9c3f2e8a-7b1d-4f6e-a2c5-1d0b3e4f5a6b",
    ]);
  });

  const forged = [
    { name: "signed with another auth token", opts: { token: "not-the-auth-token" }, status: 403 },
    {
      name: "whose body changed after signing (V3)",
      opts: { signedBody: "Text=something+else" },
      status: 403,
    },
    {
      name: "signed V2 only, with another auth token",
      opts: { token: "not-the-auth-token", v3: false },
      status: 403,
    },
    { name: "without signatures", opts: null, status: 401 },
  ];
  for (const [i, f] of forged.entries()) {
    test(`a webhook ${f.name} is refused (${f.status}) and nothing reaches the sandbox`, async () => {
      const uuid = `00000000-0000-4000-8000-0000000000f${i}`;
      const body = fixture("inbound-sms.form", { To: OUR_NUMBER, MessageUUID: uuid });
      const res = f.opts
        ? await postSigned(loop, "inbound", body, f.opts)
        : await fetch(`${loop.bridge.url}/channels/support/inbound`, {
            method: "POST",
            headers: { "content-type": "application/x-www-form-urlencoded" },
            body,
          });
      assert.equal(res.status, f.status);
      const stored = await loop.bridge.store.db
        .selectFrom("messages")
        .select("id")
        .where("provider_message_id", "=", uuid)
        .executeTakeFirst();
      assert.equal(stored, undefined, "nothing stored");
      assert.ok(!(await sandboxExternalIds(loop)).includes(`plivo:${uuid}`));
    });
  }

  test("no Plivo credential nor the helpdesk secret reached the logs", () => {
    const logs = loop.logs();
    assert.ok(logs.length > 0, "logs were captured");
    for (const secret of [AUTH_TOKEN, BASIC, REAMAZE_SECRET]) {
      assert.ok(!logs.includes(secret), `a secret (${secret.slice(0, 4)}…) appeared in the logs`);
    }
  });
});
