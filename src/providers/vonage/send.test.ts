import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import type { ServerResponse } from "node:http";
import { after, before, describe, test } from "node:test";
import { verifySignature as sdkVerifyJwt } from "@vonage/jwt";
import { SMS } from "@vonage/sms";
import { createHarness, type RecordedRequest, type StandIn, startStandIn } from "../test-support/harness.js";
import type { OutgoingSms, SendResult } from "../types.js";
import { vonageProvider } from "./index.js";

const API_KEY = "abcd1234";
const API_SECRET = "Vonage-api-secret-0123";
const SIG_SECRET = "sig-secret-Zq9v3T1xWm8Kp4Lr";
const APP_ID = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab";
const keys = generateKeyPairSync("rsa", { modulusLength: 2048 });
const PRIVATE_PEM = keys.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
const PUBLIC_PEM = keys.publicKey.export({ type: "spki", format: "pem" }).toString();
// The key as people put it in an env var: one line with literal \n.
const PRIVATE_ONE_LINE = PRIVATE_PEM.trim().replace(/\n/g, "\\n");
const PEM_BODY = PRIVATE_PEM.split("\n")[1]!;
const SECRETS = [
  API_KEY,
  API_SECRET,
  SIG_SECRET,
  PEM_BODY,
  Buffer.from(`${API_KEY}:${API_SECRET}`).toString("base64"),
];
const STATUS_URL = "https://sms.example.com/channels/support/status";

const fixture = (name: string) =>
  JSON.parse(readFileSync(new URL(`./testdata/${name}`, import.meta.url), "utf8"));
const SMS_ANSWERS = fixture("sms-send-responses.json") as Record<string, unknown>;
const MSG_ANSWERS = fixture("messages-send-responses.json") as Record<string, unknown>;

let stand: StandIn;
before(async () => {
  stand = await startStandIn();
});
after(async () => {
  await stand.close();
});

type Answer = { status?: number; headers?: Record<string, string>; body: unknown };
/** Answers the n-th request with answers[n] (the last one repeats). */
function answerWith(...answers: Answer[]) {
  stand.requests.length = 0;
  let n = 0;
  stand.answer((_req: RecordedRequest, res: ServerResponse) => {
    const a = answers[Math.min(n++, answers.length - 1)]!;
    res
      .writeHead(a.status ?? 200, { "content-type": "application/json", ...a.headers })
      .end(JSON.stringify(a.body));
  });
}

function make(api: "sms" | "messages", baseUrl = stand.url) {
  const h = createHarness();
  const cfg = vonageProvider.config.parse({
    apiKey: API_KEY,
    apiSecret: API_SECRET,
    signatureSecret: SIG_SECRET,
    api,
    applicationId: APP_ID,
    privateKey: PRIVATE_ONE_LINE,
    apiBaseUrl: baseUrl,
  });
  return { h, a: vonageProvider.create(cfg, h.ctx) };
}

const sms = (over: Partial<OutgoingSms> = {}): OutgoingSms => ({
  from: "+447700900001",
  to: "+447700900000",
  body: "Hello from support",
  mediaUrls: [],
  statusCallbackUrl: STATUS_URL,
  ...over,
});

const body = (r: RecordedRequest) => JSON.parse(r.body.toString("utf8")) as Record<string, unknown>;
const signal = () => AbortSignal.timeout(10_000);
const BASIC = `Basic ${Buffer.from(`${API_KEY}:${API_SECRET}`).toString("base64")}`;

describe("vonage SMS API send", () => {
  test("the request matches what the official @vonage/sms SDK sends", async () => {
    answerWith({ body: SMS_ANSWERS.accepted });
    const sdk = new SMS({ apiKey: API_KEY, apiSecret: API_SECRET }, { restHost: stand.url });
    await sdk.send({
      from: "447700900001",
      to: "447700900000",
      text: "Hello from support",
      callback: STATUS_URL,
    });
    const theirs = stand.requests[0]!;
    const { h, a } = make("sms");
    const result = await a.send(sms(), { signal: signal() });
    const ours = stand.requests[1]!;
    assert.deepEqual(result, { kind: "sent", providerId: "0C000000217B7F02" });
    assert.equal(ours.method, theirs.method);
    assert.equal(ours.url, theirs.url);
    assert.equal(ours.url, "/sms/json");
    assert.equal(ours.headers.authorization, theirs.headers.authorization);
    assert.equal(ours.headers.authorization, BASIC);
    assert.match(String(ours.headers["content-type"]), /^application\/json/);
    assert.match(String(theirs.headers["content-type"]), /^application\/json/);
    assert.deepEqual(body(ours), body(theirs));
    h.assertNoSecretsLogged(SECRETS);
    h.assertNoRealNetwork();
  });

  const cases: {
    name: string;
    message?: Partial<OutgoingSms>;
    answers: Answer[];
    result: SendResult;
    requests?: (reqs: RecordedRequest[]) => void;
  }[] = [
    {
      name: "unicode body is sent as type=unicode",
      message: { body: "Привет 👋" },
      answers: [{ body: SMS_ANSWERS.accepted }],
      result: { kind: "sent", providerId: "0C000000217B7F02" },
      requests: (r) => {
        assert.deepEqual(body(r[0]!), {
          from: "447700900001",
          to: "447700900000",
          text: "Привет 👋",
          type: "unicode",
          callback: STATUS_URL,
        });
      },
    },
    {
      name: "no MMS on the SMS API: media become links; alphanumeric sender stays; idempotency key as client-ref",
      message: { from: "ACME", mediaUrls: ["https://cdn.example.com/a.png"], idempotencyKey: "reply-123" },
      answers: [{ body: SMS_ANSWERS.accepted }],
      result: { kind: "sent", providerId: "0C000000217B7F02" },
      requests: (r) => {
        assert.deepEqual(body(r[0]!), {
          from: "ACME",
          to: "447700900000",
          text: "Hello from support\nhttps://cdn.example.com/a.png",
          callback: STATUS_URL,
          "client-ref": "reply-123",
        });
      },
    },
    {
      name: "Vonage concatenates: one request, one id per SMS",
      answers: [{ body: SMS_ANSWERS.acceptedConcatenated }],
      result: {
        kind: "sent",
        providerId: "0C000000217B7F03",
        providerIds: ["0C000000217B7F03", "0C000000217B7F04"],
      },
    },
    {
      name: "body over 3200 characters: two requests, in order, on segment boundaries",
      message: { body: "a".repeat(3300) },
      answers: [{ body: SMS_ANSWERS.accepted }, { body: SMS_ANSWERS.acceptedConcatenated }],
      result: {
        kind: "sent",
        providerId: "0C000000217B7F02",
        providerIds: ["0C000000217B7F02", "0C000000217B7F03", "0C000000217B7F04"],
      },
      requests: (r) => {
        assert.equal(r.length, 2);
        const first = String(body(r[0]!).text);
        const second = String(body(r[1]!).text);
        assert.equal(first + second, "a".repeat(3300));
        assert.ok(first.length <= 3200 && first.length % 153 === 0, "cut between 153-character segments");
      },
    },
    {
      name: "later part fails after the first was sent: failed, sent 1 of 2, never retried",
      message: { body: "b".repeat(3300) },
      answers: [{ body: SMS_ANSWERS.accepted }, { body: SMS_ANSWERS.throttled }],
      result: {
        kind: "failed",
        code: "1",
        reason:
          "sent 1 of 2 parts; part 2 of 2 failed: Vonage status 1 (Throttled: sending faster than the account limit): Throughput Rate Exceeded - please wait [ 100 ] and retry",
      },
      requests: (r) => assert.equal(r.length, 2),
    },
    {
      name: "status 1 throttled is retryable, honouring Retry-After",
      answers: [{ headers: { "retry-after": "3" }, body: SMS_ANSWERS.throttled }],
      result: {
        kind: "retryable",
        code: "1",
        retryAfterMs: 3000,
        reason:
          "Vonage status 1 (Throttled: sending faster than the account limit): Throughput Rate Exceeded - please wait [ 100 ] and retry",
      },
    },
    {
      name: "status 5 internal error is retryable",
      answers: [{ body: SMS_ANSWERS.internalError }],
      result: {
        kind: "retryable",
        code: "5",
        reason: "Vonage status 5 (Internal Error at Vonage): Internal Error",
      },
    },
    {
      name: "HTTP 429 with Retry-After",
      answers: [{ status: 429, headers: { "retry-after": "7" }, body: {} }],
      result: {
        kind: "retryable",
        code: "http_429",
        retryAfterMs: 7000,
        reason: "Vonage SMS API answered HTTP 429",
      },
    },
    {
      name: "HTTP 503",
      answers: [{ status: 503, body: {} }],
      result: { kind: "retryable", code: "http_503", reason: "Vonage SMS API answered HTTP 503" },
    },
    {
      name: "status 6 invalid message (unrecognised number) fails",
      answers: [{ body: SMS_ANSWERS.invalidMessage }],
      result: {
        kind: "failed",
        code: "6",
        reason:
          "Vonage status 6 (Invalid Message: for example an unrecognised number prefix): Unroutable message - rejected",
      },
    },
    {
      name: "status 7 number barred is an opt-out",
      answers: [{ body: SMS_ANSWERS.barred }],
      result: {
        kind: "optedOut",
        code: "7",
        reason:
          "Vonage status 7 (Number Barred: the recipient is on the block list (opted out)): Number barred.",
      },
    },
    {
      name: "status 9 partner quota fails",
      answers: [{ body: SMS_ANSWERS.quota }],
      result: {
        kind: "failed",
        code: "9",
        reason: "Vonage status 9 (Partner Quota Violation: not enough credit): Quota Exceeded - rejected",
      },
    },
    {
      name: "status 15 illegal sender fails",
      answers: [{ body: SMS_ANSWERS.illegalSender }],
      result: {
        kind: "failed",
        code: "15",
        reason:
          "Vonage status 15 (Invalid Sender Address: this sender id is not allowed here (North America needs a Vonage number)): Illegal Sender Address - rejected",
      },
    },
    {
      name: "status 29 non-whitelisted destination fails",
      answers: [{ body: SMS_ANSWERS.nonWhitelisted }],
      result: {
        kind: "failed",
        code: "29",
        reason:
          "Vonage status 29 (Non-Whitelisted Destination: the account is in demo mode; add the number to the test numbers or top up): Non White-listed Destination - rejected",
      },
    },
    {
      name: "Vonage split the text and only some SMS left: failed, not retryable",
      answers: [{ body: SMS_ANSWERS.partial }],
      result: {
        kind: "failed",
        code: "5",
        reason:
          "sent 1 of 2 SMS of this request; then Vonage status 5 (Internal Error at Vonage): Internal Error",
      },
    },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      answerWith(...c.answers);
      const { h, a } = make("sms");
      assert.deepEqual(await a.send(sms(c.message), { signal: signal() }), c.result);
      for (const r of stand.requests) {
        assert.equal(r.method, "POST");
        assert.equal(r.url, "/sms/json");
        assert.equal(r.headers.authorization, BASIC);
      }
      c.requests?.(stand.requests);
      h.assertNoSecretsLogged(SECRETS);
      h.assertNoRealNetwork();
    });
  }

  test("network error (closed port) is retryable", async () => {
    const closed = await startStandIn();
    const url = closed.url;
    await closed.close();
    const { h, a } = make("sms", url);
    const r = await a.send(sms(), { signal: signal() });
    assert.equal(r.kind, "retryable");
    assert.equal(r.kind === "retryable" && r.code, "network");
    h.assertNoSecretsLogged(SECRETS);
    h.assertNoRealNetwork();
  });

  test("deadline via AbortSignal while Vonage is silent is retryable", async () => {
    const ctl = new AbortController();
    stand.requests.length = 0;
    stand.answer(() => {
      ctl.abort(); // the deadline passes while the request is in flight; never answer
    });
    const { h, a } = make("sms");
    assert.deepEqual(await a.send(sms(), { signal: ctl.signal }), {
      kind: "retryable",
      reason: "Vonage did not answer before the deadline",
      code: "timeout",
    });
    h.assertNoSecretsLogged(SECRETS);
    h.assertNoRealNetwork();
  });

  test("an already passed deadline sends nothing", async () => {
    answerWith({ body: SMS_ANSWERS.accepted });
    const { h, a } = make("sms");
    const r = await a.send(sms(), { signal: AbortSignal.abort() });
    assert.equal(r.kind, "retryable");
    assert.equal(stand.requests.length, 0);
    h.assertNoSecretsLogged(SECRETS);
    h.assertNoRealNetwork();
  });

  test("a real Vonage host is never reached from tests (the guard refuses it)", async () => {
    const h = createHarness();
    const a = vonageProvider.create(
      vonageProvider.config.parse({ apiKey: API_KEY, apiSecret: API_SECRET, signatureSecret: SIG_SECRET }),
      h.ctx,
    );
    const r = await a.send(sms(), { signal: signal() });
    assert.equal(r.kind, "failed");
    assert.deepEqual(h.forbidden, ["https://rest.nexmo.com/sms/json"]);
    h.assertNoSecretsLogged(SECRETS);
  });
});

describe("vonage Messages API send", () => {
  const cases: {
    name: string;
    message?: Partial<OutgoingSms>;
    answers: Answer[];
    result: SendResult;
    requests?: (reqs: RecordedRequest[]) => void;
  }[] = [
    {
      name: "SMS accepted: 202 message_uuid; RS256 application JWT; webhook_url per message",
      answers: [{ status: 202, body: MSG_ANSWERS.accepted }],
      result: { kind: "sent", providerId: "aaaaaaaa-bbbb-cccc-dddd-0123456789ab" },
      requests: (r) => {
        assert.deepEqual(body(r[0]!), {
          from: "447700900001",
          to: "447700900000",
          webhook_url: STATUS_URL,
          channel: "sms",
          message_type: "text",
          text: "Hello from support",
        });
      },
    },
    {
      name: "MMS to a US number: the image with the text as caption, other media as links",
      message: {
        from: "+14155550100",
        to: "+14155550101",
        mediaUrls: ["https://cdn.example.com/photo.JPG", "https://cdn.example.com/invoice.pdf"],
      },
      answers: [{ status: 202, body: MSG_ANSWERS.accepted }],
      result: { kind: "sent", providerId: "aaaaaaaa-bbbb-cccc-dddd-0123456789ab" },
      requests: (r) => {
        assert.equal(r.length, 1);
        assert.deepEqual(body(r[0]!), {
          from: "14155550100",
          to: "14155550101",
          webhook_url: STATUS_URL,
          channel: "mms",
          message_type: "image",
          image: {
            url: "https://cdn.example.com/photo.JPG",
            caption: "Hello from support\nhttps://cdn.example.com/invoice.pdf",
          },
        });
      },
    },
    {
      name: "two images: one MMS each, in order",
      message: {
        to: "+14155550101",
        from: "+14155550100",
        mediaUrls: ["https://c.example/1.png", "https://c.example/2.gif"],
      },
      answers: [
        { status: 202, body: { message_uuid: "u-1" } },
        { status: 202, body: { message_uuid: "u-2" } },
      ],
      result: { kind: "sent", providerId: "u-1", providerIds: ["u-1", "u-2"] },
      requests: (r) => {
        assert.deepEqual(
          r.map((x) => body(x).image),
          [
            { url: "https://c.example/1.png", caption: "Hello from support" },
            { url: "https://c.example/2.gif" },
          ],
        );
      },
    },
    {
      name: "image to a non-US number becomes a link in an SMS",
      message: { mediaUrls: ["https://cdn.example.com/photo.png"] },
      answers: [{ status: 202, body: MSG_ANSWERS.accepted }],
      result: { kind: "sent", providerId: "aaaaaaaa-bbbb-cccc-dddd-0123456789ab" },
      requests: (r) => {
        assert.equal(body(r[0]!).channel, "sms");
        assert.equal(body(r[0]!).text, "Hello from support\nhttps://cdn.example.com/photo.png");
      },
    },
    {
      name: "over 1000 characters: split; the second part fails; sent 1 of 2",
      message: { body: "c".repeat(1100) },
      answers: [
        { status: 202, body: { message_uuid: "u-1" } },
        { status: 422, body: MSG_ANSWERS.invalidParams },
      ],
      result: {
        kind: "failed",
        code: "1020",
        reason:
          "sent 1 of 2 parts; part 2 of 2 (text) failed: Vonage Messages API answered HTTP 422: Invalid params: The value of one or more parameters is invalid.",
      },
      requests: (r) => {
        assert.equal(r.length, 2);
        assert.equal(String(body(r[0]!).text) + String(body(r[1]!).text), "c".repeat(1100));
      },
    },
    {
      name: "429 throttled with Retry-After",
      answers: [{ status: 429, headers: { "retry-after": "2" }, body: MSG_ANSWERS.throttled }],
      result: {
        kind: "retryable",
        code: "1000",
        retryAfterMs: 2000,
        reason:
          "Vonage Messages API answered HTTP 429: Throttled: You have exceeded the submission capacity allowed on this account. Please wait and retry",
      },
    },
    {
      name: "500",
      answers: [{ status: 500, body: {} }],
      result: { kind: "retryable", code: "http_500", reason: "Vonage Messages API answered HTTP 500" },
    },
    {
      name: "1050 number barred is an opt-out",
      answers: [{ status: 422, body: MSG_ANSWERS.barred }],
      result: {
        kind: "optedOut",
        code: "1050",
        reason:
          "Vonage Messages API answered HTTP 422: Number barred: The number you are trying to submit to is blacklisted and may not receive messages.",
      },
    },
    {
      name: "1120 illegal sender fails",
      answers: [{ status: 422, body: MSG_ANSWERS.invalidSender }],
      result: {
        kind: "failed",
        code: "1120",
        reason:
          "Vonage Messages API answered HTTP 422: Illegal Sender Address - rejected: Due to local regulations, the SenderID you set in from in the request was not accepted.",
      },
    },
    {
      name: "401 unauthorized fails",
      answers: [{ status: 401, body: MSG_ANSWERS.unauthorized }],
      result: {
        kind: "failed",
        code: "unauthorized",
        reason:
          "Vonage Messages API answered HTTP 401: Unauthorized: You did not provide correct credentials.",
      },
    },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      answerWith(...c.answers);
      const { h, a } = make("messages");
      assert.deepEqual(await a.send(sms(c.message), { signal: signal() }), c.result);
      for (const r of stand.requests) {
        assert.equal(r.method, "POST");
        assert.equal(r.url, "/v1/messages");
        assert.match(String(r.headers["content-type"]), /^application\/json/);
        const token = String(r.headers.authorization).replace(/^Bearer /, "");
        assert.equal(
          sdkVerifyJwt(token, PUBLIC_PEM),
          true,
          "application JWT verifies with the public key (@vonage/jwt)",
        );
        const claims = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()) as Record<
          string,
          unknown
        >;
        assert.equal(claims.application_id, APP_ID);
      }
      c.requests?.(stand.requests);
      h.assertNoSecretsLogged(SECRETS);
      h.assertNoRealNetwork();
    });
  }
});

describe("vonage config and media", () => {
  test("media proxy: Vonage hosts, with an application JWT when an application is configured", () => {
    const { h, a } = make("messages");
    assert.deepEqual(a.media?.hosts, [".nexmo.com", ".vonage.com"]);
    const auth = a.media?.headers(new URL("https://api-us.nexmo.com/v3/media/1b45")).authorization ?? "";
    assert.equal(sdkVerifyJwt(auth.replace(/^Bearer /, ""), PUBLIC_PEM), true);
    const plain = createHarness();
    const b = vonageProvider.create(
      vonageProvider.config.parse({ apiKey: API_KEY, apiSecret: API_SECRET, signatureSecret: SIG_SECRET }),
      plain.ctx,
    );
    assert.deepEqual(b.media?.headers(new URL("https://api-us.nexmo.com/v3/media/1b45")), {});
    assert.equal(a.maxBodyLength, 1000);
    assert.equal(b.maxBodyLength, 3200);
    h.assertNoSecretsLogged(SECRETS);
    h.assertNoRealNetwork();
  });

  const bad: { name: string; input: Record<string, unknown>; path: string; message: RegExp }[] = [
    {
      name: "signatureSecret is required",
      input: { apiKey: "k", apiSecret: "s" },
      path: "signatureSecret",
      message: /./,
    },
    {
      name: "messages needs applicationId",
      input: { apiKey: "k", apiSecret: "s", signatureSecret: "x", api: "messages", privateKey: PRIVATE_PEM },
      path: "applicationId",
      message: /required when api is messages/,
    },
    {
      name: "messages needs privateKey",
      input: { apiKey: "k", apiSecret: "s", signatureSecret: "x", api: "messages", applicationId: APP_ID },
      path: "privateKey",
      message: /required when api is messages/,
    },
    {
      name: "privateKey must be a PEM key, and the error does not repeat it",
      input: { apiKey: "k", apiSecret: "s", signatureSecret: "x", privateKey: "not-a-key-SECRETVALUE" },
      path: "privateKey",
      message: /^not a PEM private key/,
    },
    {
      name: "unknown signatureMethod",
      input: { apiKey: "k", apiSecret: "s", signatureSecret: "x", signatureMethod: "sha384" },
      path: "signatureMethod",
      message: /./,
    },
  ];
  for (const c of bad) {
    test(`config: ${c.name}`, () => {
      const h = createHarness();
      const r = vonageProvider.config.safeParse(c.input);
      assert.equal(r.success, false);
      const issue = r.error?.issues.find((i) => i.path.join(".") === c.path);
      assert.ok(issue, `an issue at ${c.path}`);
      assert.match(issue.message, c.message);
      assert.ok(!JSON.stringify(r.error?.issues).includes("SECRETVALUE"));
      h.assertNoSecretsLogged(SECRETS);
      h.assertNoRealNetwork();
    });
  }

  test("config defaults: api sms, signatureMethod md5hash; secretKeys cover every secret", () => {
    const h = createHarness();
    const c = vonageProvider.config.parse({ apiKey: "k", apiSecret: "s", signatureSecret: "x" });
    assert.equal(c.api, "sms");
    assert.equal(c.signatureMethod, "md5hash");
    assert.deepEqual(vonageProvider.secretKeys, ["apiKey", "apiSecret", "signatureSecret", "privateKey"]);
    h.assertNoSecretsLogged(SECRETS);
    h.assertNoRealNetwork();
  });
});
