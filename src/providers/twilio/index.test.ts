import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createHarness } from "../test-support/harness.js";
import { TWILIO_MAX_BODY, twilioProvider } from "./index.js";

const TOKEN = "f3a1c0de5e7b4d2a9c8b7a6f5e4d3c2b";
const ACCOUNT = "AC1234567890abcdef1234567890abcdef";
const BASIC = `Basic ${Buffer.from(`${ACCOUNT}:${TOKEN}`).toString("base64")}`;

describe("twilio config", () => {
  const valid: [string, Record<string, unknown>][] = [
    ["account and token", { accountSid: ACCOUNT, authToken: TOKEN }],
    [
      "with a messaging service",
      { accountSid: ACCOUNT, authToken: TOKEN, messagingServiceSid: "MG0123456789abcdef0123456789abcdef" },
    ],
    [
      "with an API base for a stand-in",
      { accountSid: ACCOUNT, authToken: TOKEN, apiBaseUrl: "http://127.0.0.1:4010" },
    ],
  ];
  for (const [name, input] of valid) {
    test(`accepts ${name}`, () => {
      assert.deepEqual(twilioProvider.config.parse(input), input);
    });
  }

  const invalid: [string, Record<string, unknown>, string, RegExp][] = [
    ["no auth token", { accountSid: ACCOUNT }, "authToken", /./],
    ["empty auth token", { accountSid: ACCOUNT, authToken: "" }, "authToken", /Auth Token/],
    [
      "an API key sid instead of the account sid",
      { accountSid: "SK1234567890abcdef1234567890abcdef", authToken: TOKEN },
      "accountSid",
      /AC followed by 32 hex/,
    ],
    [
      "a bad messaging service sid",
      { accountSid: ACCOUNT, authToken: TOKEN, messagingServiceSid: "PN123" },
      "messagingServiceSid",
      /MG followed/,
    ],
    [
      "an API base that is not a URL",
      { accountSid: ACCOUNT, authToken: TOKEN, apiBaseUrl: "api.twilio.com" },
      "apiBaseUrl",
      /http\(s\) URL/,
    ],
  ];
  for (const [name, input, path, message] of invalid) {
    test(`rejects ${name}, naming ${path}`, () => {
      const r = twilioProvider.config.safeParse(input);
      assert.equal(r.success, false);
      if (!r.success) {
        const issue = r.error.issues.find((i) => i.path.join(".") === path);
        assert.ok(issue, `no issue for ${path}: ${JSON.stringify(r.error.issues)}`);
        assert.match(issue.message, message);
      }
    });
  }

  test("a misspelt key is refused, not ignored", () => {
    const r = twilioProvider.config.safeParse({
      accountSid: ACCOUNT,
      authToken: TOKEN,
      messagingServiceSID: "MG1",
    });
    assert.equal(r.success, false);
    if (!r.success) assert.match(JSON.stringify(r.error.issues), /messagingServiceSID/);
  });

  test("the auth token is the secret", () => {
    assert.deepEqual(twilioProvider.secretKeys, ["authToken"]);
    assert.equal(twilioProvider.type, "twilio");
  });
});

describe("twilio adapter", () => {
  test("type and per-request body limit", () => {
    const h = createHarness();
    const adapter = twilioProvider.create({ accountSid: ACCOUNT, authToken: TOKEN }, h.ctx);
    assert.equal(adapter.type, "twilio");
    assert.equal(adapter.maxBodyLength, TWILIO_MAX_BODY);
    assert.equal(TWILIO_MAX_BODY, 1600);
    h.assertNoSecretsLogged([TOKEN]);
    h.assertNoRealNetwork();
  });

  test("media: Basic credentials only for Twilio's API over HTTPS, never for the CDN it redirects to", () => {
    const h = createHarness();
    const adapter = twilioProvider.create({ accountSid: ACCOUNT, authToken: TOKEN }, h.ctx);
    const media = adapter.media;
    assert.ok(media);
    assert.ok(media.hosts.includes("api.twilio.com"));
    assert.ok(media.hosts.includes(".twiliocdn.com"));
    const table: [string, Record<string, string>][] = [
      [
        `https://api.twilio.com/2010-04-01/Accounts/${ACCOUNT}/Messages/MM1/Media/ME1`,
        { authorization: BASIC },
      ],
      [
        `https://api.dublin.ie1.twilio.com/2010-04-01/Accounts/${ACCOUNT}/Messages/MM1/Media/ME1`,
        { authorization: BASIC },
      ],
      ["https://mms.twiliocdn.com/AC1/abc?Expires=1&Signature=x", {}],
      ["https://s3-external-1.amazonaws.com/media.twiliocdn.com/AC1/abc", {}],
      [`http://api.twilio.com/2010-04-01/Accounts/${ACCOUNT}/Messages/MM1/Media/ME1`, {}],
      ["https://api.twilio.com.evil.example/x", {}],
    ];
    for (const [url, headers] of table) assert.deepEqual(media.headers(new URL(url)), headers, url);
    h.assertNoSecretsLogged([TOKEN, BASIC]);
    h.assertNoRealNetwork();
  });
});
