import { createHash, createHmac, type KeyObject, randomUUID, sign, timingSafeEqual } from "node:crypto";
import type { Verdict } from "../types.js";

/**
 * Vonage's two webhook signing schemes and the JWT its Messages API wants on requests.
 *
 * - SMS API (inbound SMS, delivery receipts): a `sig` parameter over all other parameters, sorted by key and
 *   joined as `&key=value` with `&` and `=` in values replaced by `_`; then md5(string + secret) ("md5hash",
 *   the dashboard default) or hex HMAC-MD5/SHA1/SHA256/SHA512 keyed with the signature secret. Same as
 *   `@vonage/sms` `verifySignature` and developer.vonage.com "Signing messages".
 * - Messages API: `Authorization: Bearer <JWT>`, HS256 with the signature secret, claims iat, jti,
 *   iss "Vonage", api_key, application_id and `payload_hash` = hex sha256 of the body, which we check
 *   (the SDK's `verifySignature` does not).
 */

export type SignatureMethod = "md5hash" | "md5" | "sha1" | "sha256" | "sha512";

/** How far a signed timestamp may be from our clock before the request counts as a replay. */
export const TIMESTAMP_TOLERANCE_SECONDS = 300;

/** The exact string Vonage signs for SMS API webhooks (the `sig` parameter itself excluded). */
export function signingString(params: Record<string, string>): string {
  let out = "";
  for (const key of Object.keys(params).sort()) {
    if (key === "sig") continue;
    out += `&${key}=${(params[key] ?? "").replace(/[&=]/g, "_")}`;
  }
  return out;
}

/** The SMS API `sig` for these parameters, lower-case hex. */
export function smsSignature(
  params: Record<string, string>,
  secret: string,
  method: SignatureMethod,
): string {
  const data = signingString(params);
  if (method === "md5hash")
    return createHash("md5")
      .update(data + secret)
      .digest("hex");
  return createHmac(method, secret).update(data).digest("hex");
}

function hexEqual(a: string, b: string): boolean {
  const x = Buffer.from(a.toLowerCase(), "utf8");
  const y = Buffer.from(b.toLowerCase(), "utf8");
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Verifies an SMS API webhook. `candidates` are the parameter sets the request may have been signed over
 * (e.g. the POST body alone, and body plus query string); one match is enough.
 */
export function verifySmsSignature(
  candidates: Record<string, string>[],
  secret: string,
  method: SignatureMethod,
  nowSeconds: number,
): Verdict {
  const withSig = candidates.find((p) => typeof p.sig === "string" && p.sig !== "");
  if (!withSig) {
    return {
      ok: false,
      status: 401,
      reason:
        "missing sig parameter: Vonage did not sign this request; ask Vonage support to enable signed webhooks for the SMS API",
    };
  }
  const given = withSig.sig ?? "";
  const matched = candidates.find((p) => hexEqual(smsSignature(p, secret, method), given));
  if (!matched) {
    return {
      ok: false,
      status: 401,
      reason: `sig mismatch: the parameters do not match the signature (check signatureSecret and that signatureMethod "${method}" is the method chosen in the Vonage dashboard)`,
    };
  }
  const ts = matched.timestamp;
  if (ts === undefined || !/^\d+$/.test(ts)) {
    return { ok: false, status: 401, reason: "missing timestamp parameter in a signed request" };
  }
  const skew = Math.abs(nowSeconds - Number(ts));
  if (skew > TIMESTAMP_TOLERANCE_SECONDS) {
    return {
      ok: false,
      status: 401,
      reason: `stale timestamp: signed ${skew} s away from our clock (limit ${TIMESTAMP_TOLERANCE_SECONDS} s); check the server clock (NTP)`,
    };
  }
  return { ok: true };
}

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString("base64url");
}

function decodeJsonPart(part: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
    return v !== null && typeof v === "object" && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** Verifies a Messages API webhook: the HS256 JWT in `Authorization`, its age, and its payload_hash. */
export function verifyWebhookJwt(
  authorization: string | undefined,
  body: Buffer,
  secret: string,
  nowSeconds: number,
): Verdict {
  const m = /^Bearer\s+(\S+)$/i.exec(authorization?.trim() ?? "");
  if (!m) return { ok: false, status: 401, reason: "missing Authorization: Bearer JWT" };
  const parts = m[1]!.split(".");
  if (parts.length !== 3)
    return { ok: false, status: 401, reason: "Authorization bearer token is not a JWT" };
  const [h, p, s] = parts as [string, string, string];
  const header = decodeJsonPart(h);
  const claims = decodeJsonPart(p);
  if (!header || !claims) return { ok: false, status: 401, reason: "JWT header or payload is not JSON" };
  // Only HS256: accepting "none" or an RSA algorithm here would let anyone forge webhooks.
  if (header.alg !== "HS256") {
    return {
      ok: false,
      status: 401,
      reason: `JWT algorithm ${String(header.alg)} not accepted, expected HS256`,
    };
  }
  const expected = createHmac("sha256", secret).update(`${h}.${p}`).digest();
  const given = Buffer.from(s, "base64url");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return {
      ok: false,
      status: 401,
      reason:
        "JWT signature mismatch: check signatureSecret (Vonage dashboard → API settings → signature secret)",
    };
  }
  const iat = claims.iat;
  if (typeof iat !== "number") return { ok: false, status: 401, reason: "JWT has no iat claim" };
  if (typeof claims.exp === "number" && nowSeconds > claims.exp + TIMESTAMP_TOLERANCE_SECONDS) {
    return { ok: false, status: 401, reason: "JWT expired" };
  }
  const skew = Math.abs(nowSeconds - iat);
  if (skew > TIMESTAMP_TOLERANCE_SECONDS) {
    return {
      ok: false,
      status: 401,
      reason: `stale JWT: issued ${skew} s away from our clock (limit ${TIMESTAMP_TOLERANCE_SECONDS} s); check the server clock (NTP)`,
    };
  }
  if (typeof claims.payload_hash !== "string") {
    return { ok: false, status: 401, reason: "JWT has no payload_hash claim" };
  }
  const bodyHash = createHash("sha256").update(body).digest("hex");
  if (!hexEqual(claims.payload_hash, bodyHash)) {
    return {
      ok: false,
      status: 401,
      reason: "payload_hash mismatch: the body was changed after Vonage signed it",
    };
  }
  return { ok: true };
}

/** Signs a Messages API style webhook (used by tests and local simulators; Vonage does this in production). */
export function signWebhookJwt(
  body: Buffer | string,
  secret: string,
  claims: { iat: number; apiKey?: string; applicationId?: string },
): string {
  const header = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const payload = b64url(
    JSON.stringify({
      iat: claims.iat,
      jti: randomUUID(),
      iss: "Vonage",
      payload_hash: createHash("sha256").update(body).digest("hex"),
      api_key: claims.apiKey,
      application_id: claims.applicationId,
    }),
  );
  const sig = createHmac("sha256", secret).update(`${header}.${payload}`).digest("base64url");
  return `${header}.${payload}.${sig}`;
}

/** The RS256 application JWT the Messages API (and secured inbound media) expects, as `@vonage/jwt` makes it. */
export function applicationJwt(
  applicationId: string,
  privateKey: KeyObject,
  nowSeconds: number,
  ttl = 900,
): string {
  const header = b64url(JSON.stringify({ alg: "RS256", typ: "JWT" }));
  const payload = b64url(
    JSON.stringify({
      application_id: applicationId,
      iat: nowSeconds,
      jti: randomUUID(),
      exp: nowSeconds + ttl,
    }),
  );
  const sig = sign("RSA-SHA256", Buffer.from(`${header}.${payload}`), privateKey).toString("base64url");
  return `${header}.${payload}.${sig}`;
}
