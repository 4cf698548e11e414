import { createPublicKey, sign as edSign, verify as edVerify, type KeyObject } from "node:crypto";
import type { RawRequest, Verdict } from "../types.js";

/**
 * Telnyx API v2 webhook signatures: Ed25519 over the bytes `"{telnyx-timestamp}|{raw body}"`, the signature
 * base64 in `telnyx-signature-ed25519`, the Unix time in seconds in `telnyx-timestamp`. The URL is not signed,
 * so ports, proxies and query strings cannot break verification. Telnyx (and its SDKs) allow 300 s of skew
 * either way.
 */
export const SIGNATURE_HEADER = "telnyx-signature-ed25519";
export const TIMESTAMP_HEADER = "telnyx-timestamp";
export const TOLERANCE_SECONDS = 300;

/** DER prefix of an Ed25519 SubjectPublicKeyInfo; the 32 raw key bytes follow it. */
const SPKI_ED25519_PREFIX = Buffer.from("302a300506032b6570032100", "hex");
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

function strictBase64(value: string): Buffer | undefined {
  const v = value.trim();
  if (v.length % 4 !== 0 || !BASE64.test(v)) return undefined;
  return Buffer.from(v, "base64");
}

/**
 * Reads the public key as the Mission Control Portal shows it (base64 of the 32 raw bytes). A base64 SPKI
 * (what `openssl pkey -pubout -outform DER | base64` prints) is accepted too. Throws with a message meant
 * for the person editing the config.
 */
export function parsePublicKey(value: string): KeyObject {
  const raw = strictBase64(value);
  if (!raw) {
    throw new Error(
      "publicKey is not base64; paste the Public Key from Telnyx Mission Control Portal → Keys & Credentials → Public Key",
    );
  }
  let der: Buffer;
  if (raw.length === 32) der = Buffer.concat([SPKI_ED25519_PREFIX, raw]);
  else if (raw.length === 44 && raw.subarray(0, 12).equals(SPKI_ED25519_PREFIX)) der = raw;
  else {
    throw new Error(
      `publicKey decodes to ${raw.length} bytes but an Ed25519 public key is 32; paste the Public Key from Telnyx Mission Control Portal → Keys & Credentials (not the API key)`,
    );
  }
  return createPublicKey({ key: der, format: "der", type: "spki" });
}

function header(headers: RawRequest["headers"], name: string): string | undefined {
  let v = headers[name];
  if (v === undefined) {
    // Node lower-cases names, but a hand-built RawRequest (tests, other servers) may not.
    const key = Object.keys(headers).find((k) => k.toLowerCase() === name);
    v = key === undefined ? undefined : headers[key];
  }
  const first = Array.isArray(v) ? v[0] : v;
  return first?.trim() || undefined;
}

/** Checks a webhook's Telnyx signature against the configured public key, with `now` as the clock. */
export function verifyTelnyxSignature(
  key: KeyObject,
  req: Pick<RawRequest, "headers" | "body">,
  now: Date,
): Verdict {
  const signature = header(req.headers, SIGNATURE_HEADER);
  if (!signature) {
    return {
      ok: false,
      status: 401,
      reason: `missing ${SIGNATURE_HEADER} header: Telnyx API v2 signs every webhook; check that the messaging profile's webhook API version is 2`,
    };
  }
  const timestamp = header(req.headers, TIMESTAMP_HEADER);
  if (!timestamp) return { ok: false, status: 401, reason: `missing ${TIMESTAMP_HEADER} header` };
  if (!/^\d{1,15}$/.test(timestamp)) {
    return { ok: false, status: 401, reason: `${TIMESTAMP_HEADER} is not a Unix time in seconds` };
  }
  const age = Math.floor(now.getTime() / 1000) - Number(timestamp);
  if (age > TOLERANCE_SECONDS) {
    return {
      ok: false,
      status: 403,
      reason: `stale ${TIMESTAMP_HEADER}: signed ${age} s ago, more than the ${TOLERANCE_SECONDS} s allowed (a replayed request, or this server's clock is wrong)`,
    };
  }
  if (age < -TOLERANCE_SECONDS) {
    return {
      ok: false,
      status: 403,
      reason: `${TIMESTAMP_HEADER} is ${-age} s in the future, more than the ${TOLERANCE_SECONDS} s allowed (check this server's clock)`,
    };
  }
  const sig = strictBase64(signature);
  if (sig?.length !== 64) {
    return {
      ok: false,
      status: 401,
      reason: `${SIGNATURE_HEADER} is not a base64 Ed25519 signature (64 bytes)`,
    };
  }
  // Verify the received bytes exactly: re-encoding a parsed body would change them.
  const signed = Buffer.concat([Buffer.from(`${timestamp}|`, "utf8"), req.body]);
  if (!edVerify(null, signed, key, sig)) {
    return {
      ok: false,
      status: 403,
      reason: `signature mismatch: ${SIGNATURE_HEADER} does not verify over "${TIMESTAMP_HEADER}|body" with the configured publicKey (wrong publicKey, or the body was changed on the way)`,
    };
  }
  return { ok: true };
}

/**
 * Signs a body the way Telnyx does and returns the two headers. For tests, the simulator and anyone who
 * needs to replay a Telnyx webhook against the bridge with their own Ed25519 key pair.
 */
export function signTelnyxWebhook(
  privateKey: KeyObject,
  body: Buffer | string,
  timestampSeconds: number,
): Record<typeof SIGNATURE_HEADER | typeof TIMESTAMP_HEADER, string> {
  const ts = String(Math.floor(timestampSeconds));
  const bytes = typeof body === "string" ? Buffer.from(body, "utf8") : body;
  const sig = edSign(null, Buffer.concat([Buffer.from(`${ts}|`, "utf8"), bytes]), privateKey);
  return { [SIGNATURE_HEADER]: sig.toString("base64"), [TIMESTAMP_HEADER]: ts };
}

/** The base64 of the raw 32-byte public key, as the Telnyx portal shows it. */
export function publicKeyBase64(key: KeyObject): string {
  const der = key.export({ format: "der", type: "spki" });
  return der.subarray(SPKI_ED25519_PREFIX.length).toString("base64");
}
