import assert from "node:assert/strict";
import { generateKeyPairSync, type KeyObject, sign as rawSign } from "node:crypto";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import Telnyx from "telnyx";
import { TelnyxWebhook } from "telnyx/lib/webhooks";
import { createHarness } from "../test-support/harness.js";
import type { RawRequest, Verdict } from "../types.js";
import { parsePublicKey, publicKeyBase64, signTelnyxWebhook, telnyxProvider } from "./index.js";

const fixture = readFileSync(new URL("./testdata/inbound-sms.json", import.meta.url));
const API_KEY = "KEY0194C0FFEE_telnyx_test_api_key_never_logged";

function keyPair(): { privateKey: KeyObject; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return { privateKey, publicKey: publicKeyBase64(publicKey) };
}
const signer = keyPair();
const stranger = keyPair();
const privatePem = signer.privateKey.export({ format: "pem", type: "pkcs8" }).toString();

// A fixed clock: signature vectors are deterministic, so "now" must be too.
const NOW = new Date("2026-03-01T12:00:00Z");
const T = Math.floor(NOW.getTime() / 1000);

function adapter(now: () => Date = () => NOW) {
  const h = createHarness({ now });
  const cfg = telnyxProvider.config.parse({ apiKey: API_KEY, publicKey: signer.publicKey });
  return { h, a: telnyxProvider.create(cfg, h.ctx) };
}

function request(
  body: Buffer,
  headers: RawRequest["headers"],
  url = "https://sms.example.com/channels/support/inbound",
) {
  return { method: "POST", url, headers: { "content-type": "application/json", ...headers }, body };
}

/** Ed25519 straight from node:crypto, independent of signTelnyxWebhook. */
function independentSignature(privateKey: KeyObject, ts: string, body: Buffer): string {
  return rawSign(null, Buffer.concat([Buffer.from(`${ts}|`), body]), privateKey).toString("base64");
}

const signed = signTelnyxWebhook(signer.privateKey, fixture, T);

interface Case {
  name: string;
  req: () => RawRequest;
  want: { ok: true } | { ok: false; status: 401 | 403; reason: RegExp };
}

const cases: Case[] = [
  { name: "valid: signed by signTelnyxWebhook", req: () => request(fixture, signed), want: { ok: true } },
  {
    name: "valid: signed by node:crypto directly",
    req: () =>
      request(fixture, {
        "telnyx-timestamp": String(T),
        "telnyx-signature-ed25519": independentSignature(signer.privateKey, String(T), fixture),
      }),
    want: { ok: true },
  },
  {
    name: "valid: unicode body, exact bytes",
    req: () => {
      const body = readFileSync(new URL("./testdata/inbound-unicode.json", import.meta.url));
      return request(body, signTelnyxWebhook(signer.privateKey, body, T));
    },
    want: { ok: true },
  },
  {
    name: "valid: 299 s old is inside the tolerance",
    req: () => request(fixture, signTelnyxWebhook(signer.privateKey, fixture, T - 299)),
    want: { ok: true },
  },
  {
    name: "valid: 299 s in the future is inside the tolerance",
    req: () => request(fixture, signTelnyxWebhook(signer.privateKey, fixture, T + 299)),
    want: { ok: true },
  },
  {
    // The URL is not part of what Telnyx signs: ports, proxies and query strings cannot matter.
    name: "valid: URL with port and query string",
    req: () =>
      request(fixture, signed, "https://sms.example.com:8443/channels/support/inbound?from=telnyx&x=1"),
    want: { ok: true },
  },
  {
    name: "valid: repeated headers, first value used",
    req: () =>
      request(fixture, {
        "telnyx-timestamp": [signed["telnyx-timestamp"], "0"],
        "telnyx-signature-ed25519": [signed["telnyx-signature-ed25519"], "AAAA"],
      }),
    want: { ok: true },
  },
  {
    name: "valid: header names not lower-cased",
    req: () =>
      request(fixture, {
        "Telnyx-Timestamp": signed["telnyx-timestamp"],
        "Telnyx-Signature-Ed25519": signed["telnyx-signature-ed25519"],
      }),
    want: { ok: true },
  },
  {
    name: "tampered body",
    req: () => request(Buffer.from(fixture.toString().replace("Hello, World!", "Hello, World?")), signed),
    want: { ok: false, status: 403, reason: /signature mismatch/ },
  },
  {
    name: "body re-serialised (whitespace differs)",
    req: () => request(Buffer.from(JSON.stringify(JSON.parse(fixture.toString()))), signed),
    want: { ok: false, status: 403, reason: /signature mismatch/ },
  },
  {
    name: "wrong key",
    req: () => request(fixture, signTelnyxWebhook(stranger.privateKey, fixture, T)),
    want: { ok: false, status: 403, reason: /signature mismatch.*publicKey/ },
  },
  {
    name: "timestamp header changed after signing",
    req: () => request(fixture, { ...signed, "telnyx-timestamp": String(T - 10) }),
    want: { ok: false, status: 403, reason: /signature mismatch/ },
  },
  {
    name: "missing signature header",
    req: () => request(fixture, { "telnyx-timestamp": String(T) }),
    want: { ok: false, status: 401, reason: /missing telnyx-signature-ed25519/ },
  },
  {
    name: "missing timestamp header",
    req: () => request(fixture, { "telnyx-signature-ed25519": signed["telnyx-signature-ed25519"] }),
    want: { ok: false, status: 401, reason: /missing telnyx-timestamp/ },
  },
  {
    name: "empty signature header",
    req: () => request(fixture, { ...signed, "telnyx-signature-ed25519": "  " }),
    want: { ok: false, status: 401, reason: /missing telnyx-signature-ed25519/ },
  },
  {
    name: "stale timestamp (301 s old)",
    req: () => request(fixture, signTelnyxWebhook(signer.privateKey, fixture, T - 301)),
    want: { ok: false, status: 403, reason: /stale telnyx-timestamp: signed 301 s ago/ },
  },
  {
    name: "timestamp too far in the future (301 s)",
    req: () => request(fixture, signTelnyxWebhook(signer.privateKey, fixture, T + 301)),
    want: { ok: false, status: 403, reason: /301 s in the future/ },
  },
  {
    name: "timestamp in milliseconds",
    req: () => request(fixture, { ...signed, "telnyx-timestamp": String(T * 1000) }),
    want: { ok: false, status: 403, reason: /in the future/ },
  },
  {
    name: "timestamp not a number",
    req: () => request(fixture, { ...signed, "telnyx-timestamp": "2026-03-01T12:00:00Z" }),
    want: { ok: false, status: 401, reason: /not a Unix time/ },
  },
  {
    name: "signature not base64",
    req: () => request(fixture, { ...signed, "telnyx-signature-ed25519": "not*base64!" }),
    want: { ok: false, status: 401, reason: /not a base64 Ed25519 signature/ },
  },
  {
    name: "signature too short",
    req: () =>
      request(fixture, { ...signed, "telnyx-signature-ed25519": Buffer.alloc(32).toString("base64") }),
    want: { ok: false, status: 401, reason: /64 bytes/ },
  },
];

for (const c of cases) {
  test(`verify: ${c.name}`, async () => {
    const { h, a } = adapter();
    const v: Verdict = await a.verify(c.req());
    if (c.want.ok) assert.deepEqual(v, { ok: true });
    else {
      assert.equal(v.ok, false);
      if (!v.ok) {
        assert.equal(v.status, c.want.status);
        assert.match(v.reason, c.want.reason);
        assert.equal(v.expected, undefined);
        assert.ok(!v.reason.includes(signer.publicKey) && !v.reason.includes(API_KEY));
      }
    }
    h.assertNoSecretsLogged([API_KEY, privatePem]);
    h.assertNoRealNetwork();
  });
}

test("verify: uses ctx.now() as the clock", async () => {
  let now = new Date(NOW);
  const { h, a } = adapter(() => now);
  assert.equal((await a.verify(request(fixture, signed))).ok, true);
  now = new Date(NOW.getTime() + 301_000);
  assert.equal((await a.verify(request(fixture, signed))).ok, false);
  h.assertNoSecretsLogged([API_KEY, privatePem]);
  h.assertNoRealNetwork();
});

// The official SDK (telnyx 7.x) checks against the real clock, so these vectors are signed "now".
interface OracleCase {
  name: string;
  headers: (now: number) => Record<string, string>;
  body: Buffer;
  valid: boolean;
}
const tampered = Buffer.from(fixture.toString().replace("+18665550001", "+18665550002"));
const oracleCases: OracleCase[] = [
  {
    name: "valid",
    headers: (n) => signTelnyxWebhook(signer.privateKey, fixture, n),
    body: fixture,
    valid: true,
  },
  {
    name: "valid, unicode body",
    headers: (n) => signTelnyxWebhook(signer.privateKey, Buffer.from('{"text":"Привет 🙏"}'), n),
    body: Buffer.from('{"text":"Привет 🙏"}'),
    valid: true,
  },
  {
    name: "tampered",
    headers: (n) => signTelnyxWebhook(signer.privateKey, fixture, n),
    body: tampered,
    valid: false,
  },
  {
    name: "wrong key",
    headers: (n) => signTelnyxWebhook(stranger.privateKey, fixture, n),
    body: fixture,
    valid: false,
  },
  {
    name: "stale",
    headers: (n) => signTelnyxWebhook(signer.privateKey, fixture, n - 400),
    body: fixture,
    valid: false,
  },
  {
    name: "future",
    headers: (n) => signTelnyxWebhook(signer.privateKey, fixture, n + 400),
    body: fixture,
    valid: false,
  },
  {
    name: "missing signature",
    headers: (n) => ({ "telnyx-timestamp": String(n) }),
    body: fixture,
    valid: false,
  },
];

for (const c of oracleCases) {
  test(`oracle: official telnyx SDK agrees with ours (${c.name})`, async () => {
    const { h, a } = adapter(() => new Date());
    const now = Math.floor(Date.now() / 1000);
    const headers = c.headers(now);
    const ours = await a.verify(request(c.body, headers));
    assert.equal(ours.ok, c.valid, `ours: ${JSON.stringify(ours)}`);

    // Started lazily, one at a time: a rejection nobody awaits yet would count as unhandled.
    const sdkVerify = () => new TelnyxWebhook(signer.publicKey).verify(c.body.toString("utf8"), headers);
    const client = new Telnyx({ apiKey: API_KEY, publicKey: signer.publicKey });
    const sdkUnwrap = () => client.webhooks.unwrap(c.body.toString("utf8"), { headers });
    if (c.valid) {
      await sdkVerify();
      const event = (await sdkUnwrap()) as { data?: { id?: string } };
      assert.equal(event.data?.id, JSON.parse(c.body.toString()).data?.id);
    } else {
      await assert.rejects(sdkVerify);
      await assert.rejects(sdkUnwrap);
    }
    h.assertNoSecretsLogged([API_KEY, privatePem]);
    h.assertNoRealNetwork();
  });
}

test("oracle: the SDK accepts the public key exactly as we print it, and so do we", () => {
  const h = createHarness();
  const key = publicKeyBase64(parsePublicKey(signer.publicKey));
  assert.equal(key, signer.publicKey);
  assert.doesNotThrow(() => new TelnyxWebhook(key));
  // The SDK's own doc example key (32 bytes, base64) must be accepted by our config too.
  const docKey = "eu2zvPjhY6odxV34Z/EsRiERvTodkev4Fq0SlK90Izg=";
  assert.doesNotThrow(() => new TelnyxWebhook(docKey));
  assert.equal(telnyxProvider.config.safeParse({ apiKey: API_KEY, publicKey: docKey }).success, true);
  h.assertNoSecretsLogged([API_KEY, privatePem]);
  h.assertNoRealNetwork();
});

const configCases: { name: string; input: Record<string, unknown>; error?: RegExp }[] = [
  { name: "minimal", input: { apiKey: API_KEY, publicKey: signer.publicKey } },
  {
    name: "all fields",
    input: {
      apiKey: API_KEY,
      publicKey: signer.publicKey,
      messagingProfileId: "4000eba1-a0c0-4563-9925-b25e842a7cb6",
      apiBaseUrl: "http://127.0.0.1:9999",
    },
  },
  {
    name: "SPKI base64 public key",
    input: {
      apiKey: API_KEY,
      publicKey: parsePublicKey(signer.publicKey).export({ format: "der", type: "spki" }).toString("base64"),
    },
  },
  {
    name: "type: telnyx in the block is tolerated",
    input: { type: "telnyx", apiKey: API_KEY, publicKey: signer.publicKey },
  },
  {
    name: "another type is not",
    input: { type: "twilio", apiKey: API_KEY, publicKey: signer.publicKey },
    error: /telnyx/,
  },
  { name: "missing apiKey", input: { publicKey: signer.publicKey }, error: /apiKey is required/ },
  { name: "empty apiKey", input: { apiKey: "", publicKey: signer.publicKey }, error: /apiKey is empty/ },
  { name: "missing publicKey", input: { apiKey: API_KEY }, error: /publicKey is required/ },
  { name: "publicKey not base64", input: { apiKey: API_KEY, publicKey: "-----BEGIN" }, error: /not base64/ },
  {
    name: "publicKey wrong length (an API key pasted by mistake)",
    input: { apiKey: API_KEY, publicKey: Buffer.alloc(48).toString("base64") },
    error: /48 bytes but an Ed25519 public key is 32/,
  },
  {
    name: "apiBaseUrl not a URL",
    input: { apiKey: API_KEY, publicKey: signer.publicKey, apiBaseUrl: "api.telnyx.com" },
    error: /apiBaseUrl must be an http\(s\) URL/,
  },
  {
    name: "unknown key (typo)",
    input: { apiKey: API_KEY, publicKey: signer.publicKey, messagingProfileID: "x" },
    error: /messagingProfileID/,
  },
];

for (const c of configCases) {
  test(`config: ${c.name}`, () => {
    const h = createHarness();
    const r = telnyxProvider.config.safeParse(c.input);
    if (!c.error) assert.equal(r.success, true, r.error?.message);
    else {
      assert.equal(r.success, false);
      assert.match(JSON.stringify(r.error?.issues.map((i) => i.message)), c.error);
      assert.ok(!r.error?.message.includes(API_KEY), "config errors must not echo the API key");
    }
    h.assertNoSecretsLogged([API_KEY, privatePem]);
    h.assertNoRealNetwork();
  });
}

test("config: only apiKey is a secret", () => {
  const h = createHarness();
  assert.deepEqual(telnyxProvider.secretKeys, ["apiKey"]);
  assert.equal(telnyxProvider.type, "telnyx");
  h.assertNoSecretsLogged([API_KEY, privatePem]);
  h.assertNoRealNetwork();
});
