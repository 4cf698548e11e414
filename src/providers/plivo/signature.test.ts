import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { describe, it } from "node:test";
import plivo from "plivo";
import { createHarness } from "../test-support/harness.js";
import {
  computeV2Signature,
  computeV3Signature,
  type Params,
  V2_MA_SIGNATURE,
  V2_NONCE,
  V2_SIGNATURE,
  V3_NONCE,
  V3_SIGNATURE,
  verifyPlivoSignature,
} from "./signature.js";

const TOKEN = "MzY2ZjRkNTE2YjBhNGQyNzk5ZDZiODZlMGZkNzQ2";
const MAIN_TOKEN = "ZTNiMmU4NjAxYTRkNDI3ZjkzOTk0ZWM4YTZmOGI4";
const WRONG = "Y2NmNjAzMDU0NTVjNDFkZDg4ZmJhMWQzMWRjZmI2";
const URL_ = "https://sms.example.com/channels/support/inbound";
const NONCE = "05429567804466091622";

interface V2Case {
  name: string;
  /** URL Plivo signed (as configured in the console). */
  signedUrl: string;
  /** URL the bridge reconstructed for the request. */
  requestUrl: string;
  headers: (sig: string, maSig: string) => Record<string, string>;
  signKey?: string;
  want: { ok: true } | { ok: false; status: 401 | 403; reason: RegExp };
  /** What plivo-node's validateSignature says for (requestUrl, nonce, header sig); undefined when it cannot be asked. */
  sdk?: boolean;
}

const v2Headers = (sig: string) => ({ [V2_SIGNATURE]: sig, [V2_NONCE]: NONCE });

const V2_CASES: V2Case[] = [
  { name: "valid", signedUrl: URL_, requestUrl: URL_, headers: v2Headers, want: { ok: true }, sdk: true },
  {
    name: "valid: Plivo's docs example URL with a trailing slash",
    signedUrl: "https://example.com/answer/",
    requestUrl: "https://example.com/answer/",
    headers: v2Headers,
    want: { ok: true },
    sdk: true,
  },
  {
    name: "valid: query string is not signed (request URL carries one)",
    signedUrl: URL_,
    requestUrl: `${URL_}?channel=1&b=2`,
    headers: v2Headers,
    want: { ok: true },
    sdk: true,
  },
  {
    name: "valid: signed with an explicit port, request URL has the same port",
    signedUrl: "https://sms.example.com:8443/channels/support/inbound",
    requestUrl: "https://sms.example.com:8443/channels/support/inbound",
    headers: v2Headers,
    want: { ok: true },
    sdk: true,
  },
  {
    name: "valid: signed without port, proxy added one to the request URL",
    signedUrl: URL_,
    requestUrl: "https://sms.example.com:8443/channels/support/inbound",
    headers: v2Headers,
    want: { ok: true },
    sdk: false,
  },
  {
    name: "valid: signed with :443, request URL has none",
    signedUrl: "https://sms.example.com:443/channels/support/inbound",
    requestUrl: URL_,
    headers: v2Headers,
    want: { ok: true },
  },
  {
    name: "valid: only X-Plivo-Signature-Ma-V2 (main account token)",
    signedUrl: URL_,
    requestUrl: URL_,
    headers: (_sig, ma) => ({ [V2_MA_SIGNATURE]: ma, [V2_NONCE]: NONCE }),
    signKey: MAIN_TOKEN,
    want: { ok: true },
  },
  {
    name: "valid: subaccount signature wrong, main-account one right",
    signedUrl: URL_,
    requestUrl: URL_,
    headers: (_sig, ma) => ({ [V2_SIGNATURE]: "bm90IGl0", [V2_MA_SIGNATURE]: ma, [V2_NONCE]: NONCE }),
    signKey: MAIN_TOKEN,
    want: { ok: true },
  },
  {
    name: "wrong key",
    signedUrl: URL_,
    requestUrl: URL_,
    headers: v2Headers,
    signKey: WRONG,
    want: {
      ok: false,
      status: 403,
      reason: /does not match https:\/\/sms\.example\.com\/channels\/support\/inbound/,
    },
    sdk: false,
  },
  {
    name: "other path",
    signedUrl: "https://sms.example.com/channels/other/inbound",
    requestUrl: URL_,
    headers: v2Headers,
    want: { ok: false, status: 403, reason: /publicUrl/ },
    sdk: false,
  },
  {
    name: "other host",
    signedUrl: "https://evil.example.com/channels/support/inbound",
    requestUrl: URL_,
    headers: v2Headers,
    want: { ok: false, status: 403, reason: /does not match/ },
    sdk: false,
  },
  {
    name: "http vs https",
    signedUrl: "http://sms.example.com/channels/support/inbound",
    requestUrl: URL_,
    headers: v2Headers,
    want: { ok: false, status: 403, reason: /does not match/ },
    sdk: false,
  },
  {
    name: "nonce replaced",
    signedUrl: URL_,
    requestUrl: URL_,
    headers: (sig) => ({ [V2_SIGNATURE]: sig, [V2_NONCE]: "99999999999999999999" }),
    want: { ok: false, status: 403, reason: /does not match/ },
  },
  {
    name: "missing signature header",
    signedUrl: URL_,
    requestUrl: URL_,
    headers: () => ({ [V2_NONCE]: NONCE }),
    want: { ok: false, status: 401, reason: /missing x-plivo-signature-v2 header/ },
  },
  {
    name: "missing nonce header",
    signedUrl: URL_,
    requestUrl: URL_,
    headers: (sig) => ({ [V2_SIGNATURE]: sig }),
    want: { ok: false, status: 401, reason: /missing x-plivo-signature-v2-nonce/ },
  },
  {
    name: "empty signature header",
    signedUrl: URL_,
    requestUrl: URL_,
    headers: () => ({ [V2_SIGNATURE]: "  ", [V2_NONCE]: NONCE }),
    want: { ok: false, status: 401, reason: /missing/ },
  },
];

describe("plivo V2 signature", () => {
  it("matches Plivo's documented construction: base64 HMAC-SHA256(token, URL + nonce)", () => {
    const h = createHarness();
    const manual = createHmac("sha256", TOKEN).update(`https://example.com/answer/${NONCE}`).digest("base64");
    assert.equal(computeV2Signature("https://example.com/answer/", NONCE, TOKEN), manual);
    h.assertNoSecretsLogged([TOKEN, MAIN_TOKEN, WRONG]);
    h.assertNoRealNetwork();
  });

  for (const c of V2_CASES) {
    it(c.name, () => {
      const h = createHarness();
      const key = c.signKey ?? TOKEN;
      const sig = computeV2Signature(c.signedUrl, NONCE, key);
      const headers = c.headers(sig, computeV2Signature(c.signedUrl, NONCE, MAIN_TOKEN));
      const accepted = c.signKey === MAIN_TOKEN ? MAIN_TOKEN : TOKEN;
      const verdict = verifyPlivoSignature(
        { method: "POST", url: c.requestUrl, headers, params: {} },
        accepted,
      );
      if (c.want.ok) {
        assert.deepEqual(verdict, { ok: true });
      } else {
        assert.equal(verdict.ok, false);
        if (!verdict.ok) {
          assert.equal(verdict.status, c.want.status);
          assert.match(verdict.reason, c.want.reason);
          assert.equal(verdict.expected, undefined, "a failed verdict must not hand out a valid signature");
          assert.ok(!verdict.reason.includes(TOKEN));
        }
      }
      if (c.sdk !== undefined) {
        // Independent oracle: plivo-node's own validator on the same request.
        assert.equal(Boolean(plivo.validateSignature(c.requestUrl, NONCE, sig, TOKEN)), c.sdk);
      }
      h.assertNoSecretsLogged([TOKEN, MAIN_TOKEN, WRONG]);
      h.assertNoRealNetwork();
    });
  }

  it("a tampered body still verifies: V2 signs only URL + nonce (why V3 is preferred when present)", () => {
    const h = createHarness();
    const sig = computeV2Signature(URL_, NONCE, TOKEN);
    const req = { method: "POST", url: URL_, headers: v2Headers(sig) };
    assert.deepEqual(verifyPlivoSignature({ ...req, params: { Text: ["hello"] } }, TOKEN), { ok: true });
    assert.deepEqual(verifyPlivoSignature({ ...req, params: { Text: ["tampered"] } }, TOKEN), { ok: true });
    h.assertNoSecretsLogged([TOKEN]);
    h.assertNoRealNetwork();
  });
});

interface V3Case {
  name: string;
  method: "GET" | "POST";
  signedUrl: string;
  signedParams: Params;
  requestUrl: string;
  requestParams: Params;
  key?: string;
  headers?: (sig: string) => Record<string, string>;
  want: { ok: true } | { ok: false; status: 401 | 403; reason: RegExp };
}

const FORM: Params = {
  From: ["14155551234"],
  To: ["14155556789"],
  Text: ["Hello 👋 Привет"],
  Type: ["sms"],
  MessageUUID: ["7a242edc-2f57-11e7-98c9-06ab0bf64327"],
};

const V3_CASES: V3Case[] = [
  {
    name: "valid POST form",
    method: "POST",
    signedUrl: URL_,
    signedParams: FORM,
    requestUrl: URL_,
    requestParams: FORM,
    want: { ok: true },
  },
  {
    name: "valid POST with a query string and repeated values",
    method: "POST",
    signedUrl: `${URL_}?b=2&a=1&a=0`,
    signedParams: { ...FORM, Media: ["https://x/2", "https://x/1"] },
    requestUrl: `${URL_}?b=2&a=1&a=0`,
    requestParams: { ...FORM, Media: ["https://x/2", "https://x/1"] },
    want: { ok: true },
  },
  {
    name: "valid GET (status callback with method GET)",
    method: "GET",
    signedUrl: `${URL_}?Status=delivered&MessageUUID=abc`,
    signedParams: {},
    requestUrl: `${URL_}?Status=delivered&MessageUUID=abc`,
    requestParams: {},
    want: { ok: true },
  },
  {
    name: "valid: port added by a proxy",
    method: "POST",
    signedUrl: URL_,
    signedParams: FORM,
    requestUrl: "https://sms.example.com:8443/channels/support/inbound",
    requestParams: FORM,
    want: { ok: true },
  },
  {
    name: "comma-separated list of signatures, one matches",
    method: "POST",
    signedUrl: URL_,
    signedParams: FORM,
    requestUrl: URL_,
    requestParams: FORM,
    headers: (sig) => ({ [V3_SIGNATURE]: `bm9wZQ==,${sig}`, [V3_NONCE]: NONCE }),
    want: { ok: true },
  },
  {
    name: "tampered body",
    method: "POST",
    signedUrl: URL_,
    signedParams: FORM,
    requestUrl: URL_,
    requestParams: { ...FORM, Text: ["send me your password"] },
    want: { ok: false, status: 403, reason: /body was altered/ },
  },
  {
    name: "tampered query",
    method: "POST",
    signedUrl: `${URL_}?a=1`,
    signedParams: FORM,
    requestUrl: `${URL_}?a=2`,
    requestParams: FORM,
    want: { ok: false, status: 403, reason: /does not match/ },
  },
  {
    name: "wrong key",
    method: "POST",
    signedUrl: URL_,
    signedParams: FORM,
    requestUrl: URL_,
    requestParams: FORM,
    key: WRONG,
    want: { ok: false, status: 403, reason: /authToken/ },
  },
  {
    name: "valid V2 does not rescue a failed V3",
    method: "POST",
    signedUrl: URL_,
    signedParams: FORM,
    requestUrl: URL_,
    requestParams: { ...FORM, Text: ["tampered"] },
    headers: (sig) => ({
      [V3_SIGNATURE]: sig,
      [V3_NONCE]: NONCE,
      [V2_SIGNATURE]: computeV2Signature(URL_, NONCE, TOKEN),
      [V2_NONCE]: NONCE,
    }),
    want: { ok: false, status: 403, reason: /x-plivo-signature-v3 does not match/ },
  },
  {
    name: "missing V3 nonce",
    method: "POST",
    signedUrl: URL_,
    signedParams: FORM,
    requestUrl: URL_,
    requestParams: FORM,
    headers: (sig) => ({ [V3_SIGNATURE]: sig }),
    want: { ok: false, status: 401, reason: /missing x-plivo-signature-v3-nonce/ },
  },
];

describe("plivo V3 signature", () => {
  for (const c of V3_CASES) {
    it(c.name, () => {
      const h = createHarness();
      const sig = computeV3Signature(c.method, c.signedUrl, c.signedParams, NONCE, c.key ?? TOKEN);
      const headers = c.headers ? c.headers(sig) : { [V3_SIGNATURE]: sig, [V3_NONCE]: NONCE };
      const verdict = verifyPlivoSignature(
        { method: c.method, url: c.requestUrl, headers, params: c.requestParams },
        TOKEN,
      );
      if (c.want.ok) {
        assert.deepEqual(verdict, { ok: true });
      } else {
        assert.equal(verdict.ok, false);
        if (!verdict.ok) {
          assert.equal(verdict.status, c.want.status);
          assert.match(verdict.reason, c.want.reason);
          assert.equal(verdict.expected, undefined);
        }
      }
      h.assertNoSecretsLogged([TOKEN, WRONG]);
      h.assertNoRealNetwork();
    });
  }

  // Independent oracle: plivo-node's validateV3Signature agrees with our signer, and rejects what we reject.
  const SDK_CASES: Array<{
    name: string;
    method: "GET" | "POST";
    url: string;
    params: Params;
    check?: Params;
    want: boolean;
  }> = [
    { name: "POST form", method: "POST", url: URL_, params: FORM, want: true },
    { name: "POST with query", method: "POST", url: `${URL_}?b=2&a=1`, params: FORM, want: true },
    {
      name: "POST with repeated values",
      method: "POST",
      url: URL_,
      params: { ...FORM, M: ["z", "a", "m"] },
      want: true,
    },
    { name: "POST without params", method: "POST", url: `${URL_}?x=1`, params: {}, want: true },
    {
      name: "GET with query",
      method: "GET",
      url: `${URL_}?Status=sent&MessageUUID=u1`,
      params: {},
      want: true,
    },
    { name: "GET without query", method: "GET", url: URL_, params: {}, want: true },
    {
      name: "tampered body",
      method: "POST",
      url: URL_,
      params: FORM,
      check: { ...FORM, Text: ["x"] },
      want: false,
    },
  ];
  for (const c of SDK_CASES) {
    it(`plivo-node validateV3Signature agrees: ${c.name}`, () => {
      const h = createHarness();
      const sig = computeV3Signature(c.method, c.url, c.params, NONCE, TOKEN);
      // The SDK takes single values as strings and repeated ones as arrays, as a form parser gives them.
      const sdkParams = Object.fromEntries(
        Object.entries(c.check ?? c.params).map(([k, v]) => [k, v.length === 1 ? v[0] : v]),
      );
      assert.equal(Boolean(plivo.validateV3Signature(c.method, c.url, NONCE, TOKEN, sig, sdkParams)), c.want);
      const ours = verifyPlivoSignature(
        {
          method: c.method,
          url: c.url,
          headers: { [V3_SIGNATURE]: sig, [V3_NONCE]: NONCE },
          params: c.check ?? c.params,
        },
        TOKEN,
      );
      assert.equal(ours.ok, c.want);
      h.assertNoSecretsLogged([TOKEN]);
      h.assertNoRealNetwork();
    });
  }
});
