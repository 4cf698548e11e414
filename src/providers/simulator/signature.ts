import { createHmac, timingSafeEqual } from "node:crypto";
import type { Verdict } from "../types.js";

/**
 * The simulator signs its webhooks the way real providers do (Stripe, Telnyx, Standard Webhooks): a timestamp
 * header plus an HMAC over `${timestamp}.${rawBody}`, so a captured request cannot be replayed after five
 * minutes. Both the phone network (signing) and the adapter (verifying) use this module.
 */

export const TIMESTAMP_HEADER = "x-simulator-timestamp";
export const SIGNATURE_HEADER = "x-simulator-signature";
export const TOLERANCE_SECONDS = 300;

/** base64(HMAC-SHA256(secret, `${timestamp}.${body}`)); `body` is taken as the exact bytes sent. */
export function createSimulatorSignature(
  secret: string,
  timestamp: number | string,
  body: Buffer | string,
): string {
  return createHmac("sha256", secret).update(`${timestamp}.`).update(body).digest("base64");
}

/** Headers for a signed simulator webhook carrying exactly `body`. */
export function signedHeaders(secret: string, body: Buffer | string, now: Date): Record<string, string> {
  const timestamp = Math.floor(now.getTime() / 1000);
  return {
    "content-type": "application/json",
    [TIMESTAMP_HEADER]: String(timestamp),
    [SIGNATURE_HEADER]: createSimulatorSignature(secret, timestamp, body),
  };
}

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = headers[name];
  const s = Array.isArray(v) ? v[0] : v;
  return s?.trim() || undefined;
}

/** Checks a webhook's timestamp and signature against the raw body, in constant time. */
export function verifySimulatorSignature(
  secret: string,
  headers: Record<string, string | string[] | undefined>,
  body: Buffer,
  now: Date,
): Verdict {
  const ts = header(headers, TIMESTAMP_HEADER);
  const sig = header(headers, SIGNATURE_HEADER);
  if (!ts || !sig) {
    const missing = [!ts && TIMESTAMP_HEADER, !sig && SIGNATURE_HEADER].filter(Boolean).join(" and ");
    return { ok: false, status: 401, reason: `missing ${missing} header` };
  }
  if (!/^\d{1,12}$/.test(ts)) {
    return {
      ok: false,
      status: 403,
      reason: `${TIMESTAMP_HEADER} must be unix seconds, got "${ts.slice(0, 20)}"`,
    };
  }
  const skew = Math.abs(Math.floor(now.getTime() / 1000) - Number(ts));
  if (skew > TOLERANCE_SECONDS) {
    return {
      ok: false,
      status: 403,
      reason: `${TIMESTAMP_HEADER} is ${skew} s away from now (tolerance ${TOLERANCE_SECONDS} s): stale or replayed request, or a clock is wrong`,
    };
  }
  const expected = Buffer.from(createSimulatorSignature(secret, ts, body), "base64");
  const received = Buffer.from(sig, "base64");
  if (received.length !== expected.length || !timingSafeEqual(received, expected)) {
    return {
      ok: false,
      status: 403,
      reason: `${SIGNATURE_HEADER} does not match the body; check that both sides use the same simulator secret`,
    };
  }
  return { ok: true };
}
