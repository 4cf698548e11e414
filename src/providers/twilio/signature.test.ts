import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import fc from "fast-check";
import twilio from "twilio";
import { createHarness } from "../test-support/harness.js";
import type { RawRequest } from "../types.js";
import { twilioProvider } from "./index.js";
import { bodySha256, candidateUrls, computeSignature, formParams } from "./signature.js";

const fixture = (name: string) => readFileSync(new URL(`./testdata/${name}`, import.meta.url));

const TOKEN = "f3a1c0de5e7b4d2a9c8b7a6f5e4d3c2b";
const OTHER_TOKEN = "0000c0de5e7b4d2a9c8b7a6f5e4d3c2b";
const ACCOUNT = "AC1234567890abcdef1234567890abcdef";
const SECRETS = [TOKEN, OTHER_TOKEN];

/** Params as the twilio SDK takes them: repeated names become arrays. */
function sdkParams(body: Buffer | string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of formParams(body)) {
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}

const FORM = "application/x-www-form-urlencoded";

function request(
  url: string,
  body: Buffer | string,
  headers: Record<string, string>,
  method = "POST",
): RawRequest {
  return { method, url, headers, body: typeof body === "string" ? Buffer.from(body) : body };
}

describe("twilio signature algorithm", () => {
  test("Twilio's documented vector: ours and the SDK's give GvWf1cFY/Q7PnoempGyD5oXAezc=", () => {
    const url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const params = {
      CallSid: "CA1234567890ABCDE",
      Caller: "+14158675310",
      Digits: "1234",
      From: "+14158675310",
      To: "+18005551212",
    };
    const ours = computeSignature("12345", url, Object.entries(params));
    assert.equal(ours, "GvWf1cFY/Q7PnoempGyD5oXAezc=");
    assert.equal(twilio.getExpectedTwilioSignature("12345", url, params), ours);
    assert.ok(twilio.validateRequest("12345", ours, url, params));
  });

  const fixtures = [
    "inbound-sms.form",
    "inbound-mms.form",
    "inbound-unicode.form",
    "inbound-long.form",
    "status-undelivered.form",
  ];
  for (const name of fixtures) {
    test(`${name}: our signature equals the SDK's, and each verifies the other's`, () => {
      const url = "https://sms.example.com/channels/support/inbound";
      const body = fixture(name);
      const ours = computeSignature(TOKEN, url, formParams(body));
      const sdk = twilio.getExpectedTwilioSignature(TOKEN, url, sdkParams(body));
      assert.equal(ours, sdk);
      assert.ok(twilio.validateRequest(TOKEN, ours, url, sdkParams(body)));
    });
  }

  test("repeated parameters are sorted and de-duplicated like the SDK does", () => {
    const url = "https://sms.example.com/x";
    const body = "B=2&A=z&A=y&A=z";
    assert.equal(
      computeSignature(TOKEN, url, formParams(body)),
      twilio.getExpectedTwilioSignature(TOKEN, url, { A: ["z", "y", "z"], B: "2" }),
    );
  });

  test("candidate URLs: with and without the default port, both ways", () => {
    const table: [string, string[]][] = [
      ["https://a.example.com/p?x=1", ["https://a.example.com:443/p?x=1"]],
      ["https://a.example.com:443/p", ["https://a.example.com/p"]],
      ["http://a.example.com/p", ["http://a.example.com:80/p"]],
      ["http://a.example.com:80/p", ["http://a.example.com/p"]],
    ];
    for (const [url, expected] of table) {
      const got = candidateUrls(url);
      assert.equal(got[0], url);
      for (const e of expected) assert.ok(got.includes(e), `${url} → ${e} in ${got.join(", ")}`);
    }
  });
});

interface Case {
  name: string;
  /** The URL Twilio signed. */
  signedUrl: string;
  /** The URL the bridge reconstructed. */
  url: string;
  body: Buffer | string;
  /** Body the bridge received, when it differs from the signed one. */
  receivedBody?: Buffer | string;
  contentType?: string;
  method?: string;
  key?: string;
  omitHeader?: boolean;
  /** Sign as the SDK would for a JSON body (URL only). */
  json?: boolean;
  expect: true | 401 | 403;
  reason?: RegExp;
}

const INBOUND = "https://sms.example.com/channels/support/inbound";
const sms = fixture("inbound-sms.form");
const mms = fixture("inbound-mms.form");
const jsonBody = fixture("inbound-sms.json");
const jsonUrl = `${INBOUND}?bodySHA256=${bodySha256(jsonBody)}`;

const cases: Case[] = [
  { name: "valid SMS form", signedUrl: INBOUND, url: INBOUND, body: sms, expect: true },
  { name: "valid MMS form", signedUrl: INBOUND, url: INBOUND, body: mms, expect: true },
  {
    name: "tampered body",
    signedUrl: INBOUND,
    url: INBOUND,
    body: sms,
    receivedBody: sms.toString().replace("Body=Msg", "Body=Msh"),
    expect: 403,
    reason: /does not match/,
  },
  {
    name: "extra parameter added",
    signedUrl: INBOUND,
    url: INBOUND,
    body: sms,
    receivedBody: `${sms}&X=1`,
    expect: 403,
  },
  { name: "wrong auth token", signedUrl: INBOUND, url: INBOUND, body: sms, key: OTHER_TOKEN, expect: 403 },
  {
    name: "missing header",
    signedUrl: INBOUND,
    url: INBOUND,
    body: sms,
    omitHeader: true,
    expect: 401,
    reason: /missing X-Twilio-Signature/,
  },
  {
    name: "signed with :443, received without port",
    signedUrl: "https://sms.example.com:443/channels/support/inbound",
    url: INBOUND,
    body: sms,
    expect: true,
  },
  {
    name: "signed without port, received with :443",
    signedUrl: INBOUND,
    url: "https://sms.example.com:443/channels/support/inbound",
    body: sms,
    expect: true,
  },
  {
    name: "http: signed with :80, received without",
    signedUrl: "http://sms.example.com:80/channels/support/inbound",
    url: "http://sms.example.com/channels/support/inbound",
    body: sms,
    expect: true,
  },
  {
    name: "non-standard port must be the one signed",
    signedUrl: "https://sms.example.com:8443/channels/support/inbound",
    url: "https://sms.example.com:8443/channels/support/inbound",
    body: sms,
    expect: true,
  },
  {
    name: "other host",
    signedUrl: "https://evil.example.com/channels/support/inbound",
    url: INBOUND,
    body: sms,
    expect: 403,
  },
  {
    name: "other path",
    signedUrl: "https://sms.example.com/channels/other/inbound",
    url: INBOUND,
    body: sms,
    expect: 403,
  },
  {
    name: "query string signed as part of the URL",
    signedUrl: `${INBOUND}?channel=support&v=2`,
    url: `${INBOUND}?channel=support&v=2`,
    body: sms,
    expect: true,
  },
  {
    name: "query string changed",
    signedUrl: `${INBOUND}?channel=support&v=2`,
    url: `${INBOUND}?channel=support&v=3`,
    body: sms,
    expect: 403,
  },
  {
    name: "query string dropped by a proxy",
    signedUrl: `${INBOUND}?channel=support`,
    url: INBOUND,
    body: sms,
    expect: 403,
  },
  {
    name: "query parameters reordered",
    signedUrl: `${INBOUND}?a=1&b=2`,
    url: `${INBOUND}?b=2&a=1`,
    body: sms,
    expect: 403,
  },
  {
    name: "GET webhook: parameters in the URL, only the URL is signed",
    signedUrl: `${INBOUND}?${sms}`,
    url: `${INBOUND}?${sms}`,
    body: "",
    method: "GET",
    expect: true,
  },
  {
    name: "GET webhook with a changed query parameter",
    signedUrl: `${INBOUND}?${sms}`,
    url: `${INBOUND}?${sms.toString().replace("Body=Msg", "Body=Msh")}`,
    body: "",
    method: "GET",
    expect: 403,
  },
  {
    name: "JSON body with bodySHA256",
    signedUrl: jsonUrl,
    url: jsonUrl,
    body: jsonBody,
    json: true,
    expect: true,
  },
  {
    name: "JSON body tampered (hash no longer matches)",
    signedUrl: jsonUrl,
    url: jsonUrl,
    body: jsonBody,
    receivedBody: jsonBody.toString().replace('"Msg"', '"Msh"'),
    json: true,
    expect: 403,
    reason: /bodySHA256/,
  },
  {
    name: "JSON body without bodySHA256 in the URL",
    signedUrl: INBOUND,
    url: INBOUND,
    body: jsonBody,
    json: true,
    expect: 403,
    reason: /no bodySHA256/,
  },
];

describe("twilio verify", () => {
  for (const c of cases) {
    test(c.name, () => {
      const h = createHarness();
      const adapter = twilioProvider.create(
        twilioProvider.config.parse({ accountSid: ACCOUNT, authToken: TOKEN }),
        h.ctx,
      );
      const key = c.key ?? TOKEN;
      const sdkSig = c.json
        ? twilio.getExpectedTwilioSignature(key, c.signedUrl, {})
        : c.method === "GET"
          ? twilio.getExpectedTwilioSignature(key, c.signedUrl, {})
          : twilio.getExpectedTwilioSignature(key, c.signedUrl, sdkParams(c.body));
      const received = c.receivedBody ?? c.body;
      const headers: Record<string, string> = { "content-type": c.json ? "application/json" : FORM };
      if (!c.omitHeader) headers["x-twilio-signature"] = sdkSig;
      const verdict = adapter.verify(request(c.url, received, headers, c.method));
      assert.ok(!(verdict instanceof Promise));
      if (c.expect === true) {
        assert.deepEqual(verdict, { ok: true });
      } else {
        assert.equal(verdict.ok, false);
        if (!verdict.ok) {
          assert.equal(verdict.status, c.expect);
          if (c.reason) assert.match(verdict.reason, c.reason);
          assert.ok(!verdict.reason.includes(TOKEN) && verdict.expected !== TOKEN);
        }
      }
      // The SDK is the oracle: it must agree on every case it covers (a missing header is just "invalid" to it).
      const sdkVerdict = c.omitHeader
        ? false
        : c.json
          ? twilio.validateRequestWithBody(TOKEN, sdkSig, c.url, received.toString())
          : twilio.validateRequest(TOKEN, sdkSig, c.url, c.method === "GET" ? {} : sdkParams(received));
      assert.equal(sdkVerdict, c.expect === true, "the twilio SDK disagrees");
      h.assertNoSecretsLogged(SECRETS);
      h.assertNoRealNetwork();
    });
  }

  test("a failure's `expected` is the signature for the URL as received, usable for debugging", () => {
    const h = createHarness();
    const adapter = twilioProvider.create({ accountSid: ACCOUNT, authToken: TOKEN }, h.ctx);
    const verdict = adapter.verify(
      request(INBOUND, sms, { "content-type": FORM, "x-twilio-signature": "AAAA" }),
    );
    assert.ok(!(verdict instanceof Promise) && !verdict.ok);
    if (!verdict.ok)
      assert.equal(verdict.expected, twilio.getExpectedTwilioSignature(TOKEN, INBOUND, sdkParams(sms)));
    h.assertNoSecretsLogged(SECRETS);
    h.assertNoRealNetwork();
  });
});

describe("formParams: a webhook's form is decoded once for verify and parse", () => {
  test("the same body buffer gives the same parsed list; a body parsed long ago is parsed again, equal", () => {
    const body = Buffer.from("Body=hi&From=%2B15550001111&MediaUrl0=a&MediaUrl0=b");
    const first = formParams(body);
    assert.equal(formParams(body), first, "verify then parse: one decode");
    assert.deepEqual(first, [
      ["Body", "hi"],
      ["From", "+15550001111"],
      ["MediaUrl0", "a"],
      ["MediaUrl0", "b"],
    ]);
    // An equal body in another buffer is another request: never answered from the cache by content.
    assert.notEqual(formParams(Buffer.from(body)), first);
    for (let i = 0; i < 64; i++) formParams(Buffer.from(`n=${i}`));
    const again = formParams(body);
    assert.notEqual(again, first, "the cache holds recent requests only");
    assert.deepEqual(again, first);
  });
});

describe("computeSignature over any form, against the twilio SDK", () => {
  // Names from a small alphabet, so repeated names (several MediaUrl) and ties in the sort are common.
  const pair = fc.tuple(
    fc.constantFrom("A", "B", "Body", "MediaUrl", "a", "É", "_"),
    fc.string({ maxLength: 6 }),
  );
  test("sorted by name, repeated values sorted and de-duplicated: as the SDK signs", () => {
    fc.assert(
      fc.property(fc.array(pair, { maxLength: 12 }), (params) => {
        const sdk: Record<string, string | string[]> = {};
        for (const [k, v] of params) {
          const prev = sdk[k];
          sdk[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
        }
        assert.equal(
          computeSignature(TOKEN, INBOUND, params, "sorted-unique"),
          twilio.getExpectedTwilioSignature(TOKEN, INBOUND, sdk),
        );
      }),
      { numRuns: 2000 },
    );
  });

  test("as-sent: one name's values in the order they came, names sorted", () => {
    fc.assert(
      fc.property(fc.array(pair, { maxLength: 12 }), (params) => {
        const names = [...new Set(params.map(([k]) => k))].sort();
        let data = INBOUND;
        for (const n of names) for (const [k, v] of params) if (k === n) data += k + v;
        const expected = createHmac("sha1", TOKEN).update(data, "utf8").digest("base64");
        assert.equal(computeSignature(TOKEN, INBOUND, params, "as-sent"), expected);
      }),
      { numRuns: 2000 },
    );
  });
});
