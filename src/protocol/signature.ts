import { createHmac, timingSafeEqual } from "node:crypto";

/** The header both directions of the protocol carry. Node lower-cases incoming header names. */
export const SIGNATURE_HEADER = "X-Reamaze-Hmac-SHA256";
export const SIGNATURE_HEADER_LC = "x-reamaze-hmac-sha256";

export type Bytes = Uint8Array | string;

function toBuffer(bytes: Bytes): Buffer {
  // A string is taken as UTF-8 — the encoding JSON travels in. Callers holding received bytes pass them as-is.
  return typeof bytes === "string"
    ? Buffer.from(bytes, "utf8")
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function digest(bytes: Buffer, secret: string): Buffer {
  return createHmac("sha256", secret).update(bytes).digest();
}

/** base64(HMAC-SHA256(secret, bytes)) — the value of `X-Reamaze-Hmac-SHA256` for exactly these bytes. */
export function sign(bytes: Bytes, secret: string): string {
  return digest(toBuffer(bytes), secret).toString("base64");
}

export type VerifyFailure = "missing" | "malformed" | "mismatch" | "no-secrets";
export type VerifyResult = { ok: true; secretIndex: number } | { ok: false; reason: VerifyFailure };

// 32-byte digest → 43 base64 characters and one '=' of padding.
const BASE64_DIGEST = /^[A-Za-z0-9+/]{43}=$/;

/** Decodes a header value to the 32 digest bytes, or undefined when it cannot be one. */
export function decodeSignature(header: string): Buffer | undefined {
  // Ruby's Base64.encode64 without .strip appends "\n"; proxies may add spaces. Whitespace is never part of base64.
  const value = header.trim();
  if (!BASE64_DIGEST.test(value)) return undefined;
  return Buffer.from(value, "base64");
}

/**
 * Checks a received signature against every accepted secret (rotation: new and old both verify).
 * Compares digests in constant time and always computes all of them, so timing says nothing about which
 * secret (if any) was close.
 */
export function verify(
  bytes: Bytes,
  header: string | string[] | null | undefined,
  secrets: readonly string[],
): VerifyResult {
  if (secrets.length === 0) return { ok: false, reason: "no-secrets" };
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined || value === null || value.trim() === "") return { ok: false, reason: "missing" };
  const received = decodeSignature(value);
  if (!received) return { ok: false, reason: "malformed" };
  const body = toBuffer(bytes);
  let matched = -1;
  for (let i = 0; i < secrets.length; i++) {
    if (timingSafeEqual(digest(body, secrets[i] as string), received) && matched === -1) matched = i;
  }
  return matched === -1 ? { ok: false, reason: "mismatch" } : { ok: true, secretIndex: matched };
}

/** Human text for a failed verification, for 401 answers and CLI output. */
export function describeVerifyFailure(reason: VerifyFailure): string {
  switch (reason) {
    case "missing":
      return `missing ${SIGNATURE_HEADER} header`;
    case "malformed":
      return `${SIGNATURE_HEADER} is not a base64 SHA-256 HMAC (expected 44 characters ending in '=')`;
    case "mismatch":
      return `${SIGNATURE_HEADER} does not match the body for any of the channel's secrets`;
    case "no-secrets":
      return "no shared secret is configured for this channel";
  }
}
