import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { sign } from "../protocol/signature.js";
import { createSimulatorSignature } from "../providers/simulator/index.js";
import {
  ADMIN_TOKEN,
  CHANNEL_PHONE,
  type Loop,
  REAMAZE_SECRET,
  SIM_SECRET,
  startLoop,
} from "./test-support/loop.js";

const LIMIT = 4096;

function simulatorSigned(body: string, secret = SIM_SECRET, ts = Math.floor(Date.now() / 1000)) {
  return {
    "content-type": "application/json",
    "x-simulator-timestamp": String(ts),
    "x-simulator-signature": createSimulatorSignature(secret, String(ts), body),
  };
}

const goodInbound = JSON.stringify({
  type: "message",
  id: "SMbad1",
  from: "+15105559999",
  to: CHANNEL_PHONE,
  body: "hi",
  media: [],
  sent_at: new Date().toISOString(),
});
const goodReply = JSON.stringify({
  to: { phone: "+15105559999" },
  from: { phone: CHANNEL_PHONE },
  body: "hello",
  conversation: { slug: "c1" },
  attachments: [],
  created_at: "2019-08-06T23:21:15+0000",
  thread_id: null,
});
const big = "x".repeat(LIMIT + 10);

interface Case {
  name: string;
  path: string;
  body: string;
  headers: Record<string, string>;
  status: number;
  error: RegExp;
}

const cases: Case[] = [
  {
    name: "inbound: unknown channel",
    path: "/channels/nope/inbound",
    body: goodInbound,
    headers: simulatorSigned(goodInbound),
    status: 404,
    error: /unknown channel/,
  },
  {
    name: "inbound: no signature",
    path: "/channels/support/inbound",
    body: goodInbound,
    headers: { "content-type": "application/json" },
    status: 401,
    error: /signature|missing/i,
  },
  {
    name: "inbound: wrong secret",
    path: "/channels/support/inbound",
    body: goodInbound,
    headers: simulatorSigned(goodInbound, "not-the-secret"),
    status: 403,
    error: /signature|match/i,
  },
  {
    name: "inbound: tampered body",
    path: "/channels/support/inbound",
    body: goodInbound.replace("hi", "ho"),
    headers: simulatorSigned(goodInbound),
    status: 403,
    error: /./,
  },
  {
    name: "inbound: stale timestamp",
    path: "/channels/support/inbound",
    body: goodInbound,
    headers: simulatorSigned(goodInbound, SIM_SECRET, Math.floor(Date.now() / 1000) - 3600),
    status: 403,
    error: /./,
  },
  {
    name: "inbound: malformed JSON, signed",
    path: "/channels/support/inbound",
    body: "{not json",
    headers: simulatorSigned("{not json"),
    status: 400,
    error: /./,
  },
  {
    name: "inbound: wrong shape, signed",
    path: "/channels/support/inbound",
    body: '{"type":"message"}',
    headers: simulatorSigned('{"type":"message"}'),
    status: 400,
    error: /./,
  },
  {
    name: "inbound: oversized",
    path: "/channels/support/inbound",
    body: big,
    headers: simulatorSigned(big),
    status: 413,
    error: /larger than the limit/,
  },
  {
    name: "status: wrong secret",
    path: "/channels/support/status",
    body: '{"type":"status","id":"SM1","status":"delivered","at":"2026-01-01T00:00:00Z"}',
    headers: simulatorSigned("x", "nope"),
    status: 403,
    error: /./,
  },
  {
    name: "reamaze: unknown channel",
    path: "/channels/nope/reamaze",
    body: goodReply,
    headers: { "content-type": "application/json", "x-reamaze-hmac-sha256": sign(goodReply, REAMAZE_SECRET) },
    status: 404,
    error: /unknown channel/,
  },
  {
    name: "reamaze: no signature",
    path: "/channels/support/reamaze",
    body: goodReply,
    headers: { "content-type": "application/json" },
    status: 401,
    error: /missing X-Reamaze-Hmac-SHA256/,
  },
  {
    name: "reamaze: wrong secret",
    path: "/channels/support/reamaze",
    body: goodReply,
    headers: { "content-type": "application/json", "x-reamaze-hmac-sha256": sign(goodReply, "wrong") },
    status: 401,
    error: /does not match/,
  },
  {
    name: "reamaze: hex signature",
    path: "/channels/support/reamaze",
    body: goodReply,
    headers: { "content-type": "application/json", "x-reamaze-hmac-sha256": "ab".repeat(32) },
    status: 401,
    error: /not a base64/,
  },
  {
    name: "reamaze: malformed JSON",
    path: "/channels/support/reamaze",
    body: "{",
    headers: { "content-type": "application/json", "x-reamaze-hmac-sha256": sign("{", REAMAZE_SECRET) },
    status: 400,
    error: /malformed JSON/,
  },
  {
    name: "reamaze: malformed and wrongly signed → the signature is checked first",
    path: "/channels/support/reamaze",
    body: "{",
    headers: { "content-type": "application/json", "x-reamaze-hmac-sha256": sign("{", "wrong") },
    status: 401,
    error: /does not match/,
  },
  {
    name: "reamaze: schema errors name the fields",
    path: "/channels/support/reamaze",
    body: '{"to":{"phone":"5105559999"},"body":"x","conversation":{}}',
    headers: {
      "content-type": "application/json",
      "x-reamaze-hmac-sha256": sign(
        '{"to":{"phone":"5105559999"},"body":"x","conversation":{}}',
        REAMAZE_SECRET,
      ),
    },
    status: 422,
    error: /to\.phone: not E\.164.*from: required.*conversation\.slug: required/,
  },
  {
    name: "reamaze: not a channel number",
    path: "/channels/support/reamaze",
    body: goodReply.replace(CHANNEL_PHONE, "+14155550000"),
    headers: {
      "content-type": "application/json",
      "x-reamaze-hmac-sha256": sign(goodReply.replace(CHANNEL_PHONE, "+14155550000"), REAMAZE_SECRET),
    },
    status: 422,
    error: /not a number of channel/,
  },
  {
    name: "reamaze: oversized",
    path: "/channels/support/reamaze",
    body: big,
    headers: { "content-type": "application/json", "x-reamaze-hmac-sha256": sign(big, REAMAZE_SECRET) },
    status: 413,
    error: /larger than the limit/,
  },
  {
    name: "api: no token",
    path: "/api/messages",
    body: '{"to":"+15105559999","body":"x"}',
    headers: { "content-type": "application/json" },
    status: 401,
    error: /bearer token/,
  },
  {
    name: "api: bad fields",
    path: "/api/messages",
    body: '{"to":"call me","body":1}',
    headers: { "content-type": "application/json", authorization: `Bearer ${ADMIN_TOKEN}` },
    status: 422,
    error: /body/,
  },
  {
    name: "api: malformed JSON",
    path: "/api/messages",
    body: "{",
    headers: { "content-type": "application/json", authorization: `Bearer ${ADMIN_TOKEN}` },
    status: 400,
    error: /./,
  },
];

describe("bad input on every route", () => {
  let loop: Loop;
  before(async () => {
    loop = await startLoop({ bodyLimit: LIMIT });
  });
  after(() => loop.close());

  for (const c of cases) {
    test(`${c.name} → ${c.status}`, async () => {
      const res = await fetch(`${loop.bridge.url}${c.path}`, {
        method: "POST",
        headers: c.headers,
        body: c.body,
      });
      const text = await res.text();
      assert.equal(res.status, c.status, text);
      const body = JSON.parse(text) as { error?: string; message?: string };
      assert.match(body.error ?? body.message ?? "", c.error);
    });
  }

  test("nothing was stored, nothing sent, and no secret reached the logs", async () => {
    const db = loop.bridge.store.db;
    const count = async (t: "messages" | "outbox" | "replies") =>
      Number(
        (
          await db
            .selectFrom(t)
            .select((eb) => eb.fn.countAll<number>().as("n"))
            .executeTakeFirstOrThrow()
        ).n,
      );
    assert.equal(await count("messages"), 0);
    assert.equal(await count("outbox"), 0);
    assert.equal(await count("replies"), 0);
    const convs = (await (await fetch(`${loop.sandbox.url}/api/conversations`)).json()) as {
      conversations: unknown[];
    };
    assert.equal(convs.conversations.length, 0);
    const logs = loop.logs();
    assert.match(logs, /failed verification/, "the rejections were logged");
    for (const secret of [REAMAZE_SECRET, SIM_SECRET, ADMIN_TOKEN])
      assert.ok(!logs.includes(secret), `secret ${secret.slice(0, 8)}… in logs`);
  });
});
