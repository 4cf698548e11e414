import assert from "node:assert/strict";
import { createHmac, generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { AlgorithmTypes } from "@vonage/auth";
import { verifySignature as sdkVerifyJwt, tokenGenerate } from "@vonage/jwt";
import { SMS } from "@vonage/sms";
import { createHarness } from "../test-support/harness.js";
import type { RawRequest } from "../types.js";
import { vonageProvider } from "./index.js";
import { applicationJwt, type SignatureMethod, signWebhookJwt, smsSignature } from "./signature.js";

const API_KEY = "abcd1234";
const API_SECRET = "Vonage-api-secret-0123";
const SIG_SECRET = "sig-secret-Zq9v3T1xWm8Kp4Lr";
const OTHER_SECRET = "some-other-secret-7b2c";
const SECRETS = [API_KEY, API_SECRET, SIG_SECRET];
const NOW = 1577880000; // 2020-01-01T12:00:00Z, the timestamp in the docs' inbound example
const URL_BASE = "https://sms.example.com/channels/support/inbound";

const fixture = (name: string) => readFileSync(new URL(`./testdata/${name}`, import.meta.url), "utf8");
const inbound = JSON.parse(fixture("sms-inbound.json")) as Record<string, string>;
const unicode = JSON.parse(fixture("sms-inbound-unicode.json")) as Record<string, string>;
const dlr = JSON.parse(fixture("sms-dlr-opted-out.json")) as Record<string, string>;

const SDK_ALGORITHM: Record<SignatureMethod, AlgorithmTypes> = {
  md5hash: AlgorithmTypes.md5hash,
  md5: AlgorithmTypes.md5hmac,
  sha1: AlgorithmTypes.sha1hmac,
  sha256: AlgorithmTypes.sha256hmac,
  sha512: AlgorithmTypes.sha512hmac,
};
const sdk = new SMS({ apiKey: API_KEY, apiSecret: API_SECRET });

function adapter(signatureMethod: SignatureMethod, now = NOW) {
  const h = createHarness({ now: () => new Date(now * 1000) });
  const a = vonageProvider.create(
    vonageProvider.config.parse({
      apiKey: API_KEY,
      apiSecret: API_SECRET,
      signatureSecret: SIG_SECRET,
      signatureMethod,
    }),
    h.ctx,
  );
  return { h, a };
}

type Transport = "query" | "form" | "json";

function request(params: Record<string, string>, transport: Transport, urlQuery = ""): RawRequest {
  const qs = new URLSearchParams(params).toString();
  if (transport === "query") {
    return {
      method: "GET",
      url: `${URL_BASE}?${urlQuery ? `${urlQuery}&` : ""}${qs}`,
      headers: {},
      body: Buffer.alloc(0),
    };
  }
  const url = urlQuery ? `${URL_BASE}?${urlQuery}` : URL_BASE;
  if (transport === "form") {
    return {
      method: "POST",
      url,
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: Buffer.from(qs),
    };
  }
  return {
    method: "POST",
    url,
    headers: { "content-type": "application/json" },
    body: Buffer.from(JSON.stringify(params)),
  };
}

function signed(
  params: Record<string, string>,
  method: SignatureMethod,
  secret = SIG_SECRET,
  timestamp = NOW,
) {
  const p = { ...params, timestamp: String(timestamp) };
  return { ...p, sig: smsSignature(p, secret, method) };
}

const METHODS: SignatureMethod[] = ["md5hash", "md5", "sha1", "sha256", "sha512"];
const TRANSPORTS: Transport[] = ["query", "form", "json"];

describe("vonage SMS API signature (sig parameter)", () => {
  test("our signature is accepted by the @vonage/sms verifySignature oracle, for every method", () => {
    for (const method of METHODS) {
      for (const params of [inbound, unicode, dlr]) {
        const p = signed(params, method);
        assert.equal(sdk.verifySignature(p.sig, p, SIG_SECRET, SDK_ALGORITHM[method]), true, method);
        // And upper-case, as Vonage sends it.
        assert.equal(sdk.verifySignature(p.sig.toUpperCase(), p, SIG_SECRET, SDK_ALGORITHM[method]), true);
        // The oracle rejects what we would reject.
        const tampered = { ...p, text: "tampered" };
        assert.equal(sdk.verifySignature(p.sig, tampered, SIG_SECRET, SDK_ALGORITHM[method]), false);
      }
    }
  });

  const cases: {
    name: string;
    method: SignatureMethod;
    transport: Transport;
    build: (m: SignatureMethod) => Record<string, string>;
    urlQuery?: string;
    ok: boolean;
    reason?: RegExp;
  }[] = [];
  for (const method of METHODS) {
    for (const transport of TRANSPORTS) {
      cases.push(
        { name: "valid", method, transport, build: (m) => signed(inbound, m), ok: true },
        {
          name: "valid unicode with & and = in the text",
          method,
          transport,
          build: (m) => signed(unicode, m),
          ok: true,
        },
        { name: "valid delivery receipt", method, transport, build: (m) => signed(dlr, m), ok: true },
        {
          name: "tampered text",
          method,
          transport,
          build: (m) => ({ ...signed(inbound, m), text: "Send me money" }),
          ok: false,
          reason: /sig mismatch/,
        },
        {
          name: "wrong key",
          method,
          transport,
          build: (m) => signed(inbound, m, OTHER_SECRET),
          ok: false,
          reason: /sig mismatch/,
        },
        {
          name: "missing sig",
          method,
          transport,
          build: () => ({ ...inbound, timestamp: String(NOW) }),
          ok: false,
          reason: /missing sig/,
        },
        {
          name: "stale timestamp",
          method,
          transport,
          build: (m) => signed(inbound, m, SIG_SECRET, NOW - 301),
          ok: false,
          reason: /stale timestamp/,
        },
        {
          name: "timestamp within tolerance",
          method,
          transport,
          build: (m) => signed(inbound, m, SIG_SECRET, NOW - 299),
          ok: true,
        },
      );
    }
  }
  // Query-string cases: a token in the configured URL's query is not part of what Vonage signed on POST.
  for (const transport of ["form", "json"] as const) {
    cases.push({
      name: "POST with an unsigned token in the URL query",
      method: "sha256",
      transport,
      urlQuery: "token=abc",
      build: (m) => signed(inbound, m),
      ok: true,
    });
  }
  cases.push({
    name: "GET with an extra unsigned query parameter",
    method: "sha256",
    transport: "query",
    urlQuery: "token=abc",
    build: (m) => signed(inbound, m),
    ok: false,
    reason: /sig mismatch/,
  });
  cases.push({
    name: "GET whose URL query was signed along with the rest",
    method: "sha256",
    transport: "query",
    build: (m) => signed({ ...inbound, token: "abc" }, m),
    ok: true,
  });
  cases.push({
    name: "signed with another method than configured",
    method: "sha256",
    transport: "form",
    build: () => signed(inbound, "sha512"),
    ok: false,
    reason: /sig mismatch.*sha256/,
  });

  for (const c of cases) {
    test(`${c.method} ${c.transport}: ${c.name}`, async () => {
      const { h, a } = adapter(c.method);
      const v = await a.verify(request(c.build(c.method), c.transport, c.urlQuery));
      if (c.ok) assert.deepEqual(v, { ok: true });
      else {
        assert.equal(v.ok, false);
        if (!v.ok) {
          assert.equal(v.status, 401);
          assert.match(v.reason, c.reason!);
          assert.equal(v.expected, undefined, "never hand out a valid signature");
        }
      }
      h.assertNoSecretsLogged(SECRETS);
      h.assertNoRealNetwork();
    });
  }
});

describe("vonage Messages API signature (JWT)", () => {
  const body = Buffer.from(fixture("messages-inbound-sms.json"));
  const jsonReq = (authorization: string | undefined, b: Buffer = body): RawRequest => ({
    method: "POST",
    url: URL_BASE,
    headers:
      authorization === undefined
        ? { "content-type": "application/json" }
        : { "content-type": "application/json", authorization },
    body: b,
  });

  test("our webhook JWT is accepted by the @vonage/jwt verifySignature oracle", () => {
    const token = signWebhookJwt(body, SIG_SECRET, { iat: Math.floor(Date.now() / 1000), apiKey: API_KEY });
    assert.equal(sdkVerifyJwt(token, SIG_SECRET), true);
    assert.equal(sdkVerifyJwt(token, OTHER_SECRET), false);
  });

  test("our application JWT (RS256) verifies with @vonage/jwt and has the SDK's claims", () => {
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const now = Math.floor(Date.now() / 1000);
    const ours = applicationJwt("app-id-1", privateKey, now);
    assert.equal(sdkVerifyJwt(ours, publicKey.export({ type: "spki", format: "pem" })), true);
    const theirs = tokenGenerate("app-id-1", privateKey.export({ type: "pkcs8", format: "pem" }));
    const claims = (t: string) =>
      JSON.parse(Buffer.from(t.split(".")[1]!, "base64url").toString()) as Record<string, unknown>;
    const header = (t: string) =>
      JSON.parse(Buffer.from(t.split(".")[0]!, "base64url").toString()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(claims(ours)).sort(), Object.keys(claims(theirs)).sort());
    assert.deepEqual(header(ours), header(theirs));
    assert.equal(claims(ours).application_id, "app-id-1");
  });

  const hs = (b64header: object, claims: object, secret = SIG_SECRET) => {
    const h = Buffer.from(JSON.stringify(b64header)).toString("base64url");
    const p = Buffer.from(JSON.stringify(claims)).toString("base64url");
    return `${h}.${p}.${createHmac("sha256", secret).update(`${h}.${p}`).digest("base64url")}`;
  };

  const cases: {
    name: string;
    auth: () => string | undefined;
    body?: Buffer;
    ok: boolean;
    reason?: RegExp;
  }[] = [
    {
      name: "valid",
      auth: () => `Bearer ${signWebhookJwt(body, SIG_SECRET, { iat: NOW, apiKey: API_KEY })}`,
      ok: true,
    },
    {
      name: "tampered body",
      auth: () => `Bearer ${signWebhookJwt(body, SIG_SECRET, { iat: NOW })}`,
      body: Buffer.from(body.toString().replace("Hello From Vonage!", "Hello From Mallory")),
      ok: false,
      reason: /payload_hash mismatch/,
    },
    {
      name: "wrong key",
      auth: () => `Bearer ${signWebhookJwt(body, OTHER_SECRET, { iat: NOW })}`,
      ok: false,
      reason: /signature mismatch/,
    },
    { name: "missing header", auth: () => undefined, ok: false, reason: /missing Authorization: Bearer/ },
    { name: "not a JWT", auth: () => "Bearer abc.def", ok: false, reason: /not a JWT/ },
    {
      name: "stale iat",
      auth: () => `Bearer ${signWebhookJwt(body, SIG_SECRET, { iat: NOW - 301 })}`,
      ok: false,
      reason: /stale JWT/,
    },
    {
      name: "alg none is refused",
      auth: () => {
        const t = signWebhookJwt(body, SIG_SECRET, { iat: NOW }).split(".");
        return `Bearer ${Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url")}.${t[1]}.`;
      },
      ok: false,
      reason: /algorithm none/,
    },
    {
      name: "no payload_hash claim",
      auth: () => `Bearer ${hs({ alg: "HS256", typ: "JWT" }, { iat: NOW, iss: "Vonage" })}`,
      ok: false,
      reason: /no payload_hash/,
    },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const { h, a } = adapter("md5hash");
      const v = await a.verify(jsonReq(c.auth(), c.body));
      if (c.ok) assert.deepEqual(v, { ok: true });
      else {
        assert.equal(v.ok, false);
        if (!v.ok) {
          assert.equal(v.status, 401);
          assert.match(v.reason, c.reason!);
        }
      }
      h.assertNoSecretsLogged(SECRETS);
      h.assertNoRealNetwork();
    });
  }
});
