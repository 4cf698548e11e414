import { createHmac, timingSafeEqual } from "node:crypto";
import type { Verdict } from "../types.js";

/**
 * Plivo's webhook signatures (https://www.plivo.com/docs/messaging/concepts/signature-validation).
 *
 * V2 — what Plivo documents for messaging: `X-Plivo-Signature-V2` = base64(HMAC-SHA256(authToken,
 * scheme://host[:port]/path + X-Plivo-Signature-V2-Nonce)); the query string is dropped (the official Node and
 * Python SDKs both rebuild the URL from scheme, host, port and path). `X-Plivo-Signature-Ma-V2` is the same with
 * the main account's token, so a subaccount's number can be verified with the main account token too.
 * V2 covers neither the body nor a timestamp: it proves the URL was signed by Plivo, nothing more.
 *
 * V3 — Plivo's newer scheme, which it may also send for message callbacks: HMAC-SHA256 over
 * `url?sorted query` + `.` + sorted POST params (`key` + `value`) + `.` + nonce. It covers the body, so when a
 * request carries V3 headers we hold it to V3 (a valid V2 alone does not rescue a failed V3).
 * Both are implemented exactly as plivo-node's `validateSignature` / `validateV3Signature` compute them.
 *
 * Failures never carry the expected signature: V2 signs only URL + nonce, so handing an unauthenticated caller
 * the signature for its own nonce would let it forge any webhook.
 */

export const V2_SIGNATURE = "x-plivo-signature-v2";
export const V2_MA_SIGNATURE = "x-plivo-signature-ma-v2";
export const V2_NONCE = "x-plivo-signature-v2-nonce";
export const V3_SIGNATURE = "x-plivo-signature-v3";
export const V3_MA_SIGNATURE = "x-plivo-signature-ma-v3";
export const V3_NONCE = "x-plivo-signature-v3-nonce";

type Headers = Record<string, string | string[] | undefined>;
/** Decoded webhook parameters; repeated keys keep every value. */
export type Params = Record<string, string[]>;

function header(headers: Headers, name: string): string | undefined {
  const v = headers[name];
  const s = Array.isArray(v) ? v[0] : v;
  return s?.trim() || undefined;
}

function hmac(authToken: string, message: string): string {
  return createHmac("sha256", authToken).update(message, "utf8").digest("base64");
}

/** scheme://host[:port]/path — the part of the URL both schemes sign, without query or fragment. */
function baseUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

/**
 * The base URL as the provider may have signed it: as given, and with the port toggled (a default port made
 * explicit, an explicit port dropped), because a proxy in front of the bridge may add or strip it (Plivo's Ruby
 * SDK drops the port, its Node and Python SDKs keep it). Strings, because WHATWG URL would drop a default port.
 */
function baseVariants(url: URL): string[] {
  const path = url.pathname;
  if (url.port) return [baseUrl(url), `${url.protocol}//${url.hostname}${path}`];
  const defaultPort = url.protocol === "https:" ? "443" : url.protocol === "http:" ? "80" : undefined;
  return defaultPort
    ? [baseUrl(url), `${url.protocol}//${url.hostname}:${defaultPort}${path}`]
    : [baseUrl(url)];
}

/** The V2 signature Plivo sends for `url` and `nonce`. */
export function computeV2Signature(url: string, nonce: string, authToken: string): string {
  return hmac(authToken, baseUrl(new URL(url)) + nonce);
}

function sortedPairs(params: Params): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  // Default (UTF-16) sort for keys and for each key's values, as plivo-node does.
  for (const key of Object.keys(params).sort()) {
    for (const value of [...(params[key] ?? [])].sort()) out.push([key, value]);
  }
  return out;
}

/** Collects decoded key/value pairs, keeping every value of a repeated key. */
export function paramsFrom(entries: Iterable<[string, string]>): Params {
  const out: Params = {};
  for (const [k, v] of entries) {
    const list = out[k] ?? [];
    list.push(v);
    out[k] = list;
  }
  return out;
}

function queryParams(url: URL): Params {
  return paramsFrom(url.searchParams);
}

/** The string V3 signs before `.nonce`, for one base URL (exported for tests and for debugging a mismatch). */
export function v3SignedString(method: string, base: string, query: Params, params: Params): string {
  const q = sortedPairs(query)
    .map(([k, v]) => `${k}=${v}`)
    .join("&");
  if (method.toUpperCase() === "GET") {
    // For GET the parameters are the query string itself.
    return q ? `${base}?${q}` : base;
  }
  const body = sortedPairs(params)
    .map(([k, v]) => k + v)
    .join("");
  const hasBody = Object.keys(params).length > 0;
  let out = base;
  if (q || hasBody) out += `?${q}`;
  if (q && hasBody) out += ".";
  return out + body;
}

/** The V3 signature Plivo sends for this request. */
export function computeV3Signature(
  method: string,
  url: string,
  params: Params,
  nonce: string,
  authToken: string,
): string {
  const u = new URL(url);
  return hmac(authToken, `${v3SignedString(method, baseUrl(u), queryParams(u), params)}.${nonce}`);
}

function equal(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function anyMatch(candidates: string[], received: Array<string | undefined>): boolean {
  let ok = false;
  // No early exit: every comparison runs, so timing says nothing about which candidate matched.
  for (const r of received) {
    if (!r) continue;
    for (const part of r.split(",")) {
      for (const c of candidates) if (equal(c, part.trim())) ok = true;
    }
  }
  return ok;
}

export interface VerifyInput {
  method: string;
  url: string;
  headers: Headers;
  /** The decoded body parameters (V3 signs them; V2 ignores them). */
  params: Params;
}

/** Verifies a Plivo webhook: V3 when the request carries V3 headers, else V2. */
export function verifyPlivoSignature(req: VerifyInput, authToken: string): Verdict {
  let url: URL;
  try {
    url = new URL(req.url);
  } catch {
    return {
      ok: false,
      status: 401,
      reason: `cannot verify: "${req.url.slice(0, 80)}" is not an absolute URL`,
    };
  }
  const bases = baseVariants(url);
  const v3 = header(req.headers, V3_SIGNATURE);
  const v3ma = header(req.headers, V3_MA_SIGNATURE);
  if (v3 || v3ma) {
    const nonce = header(req.headers, V3_NONCE);
    if (!nonce)
      return { ok: false, status: 401, reason: `missing ${V3_NONCE} header next to ${V3_SIGNATURE}` };
    const query = queryParams(url);
    const candidates = bases.map((b) =>
      hmac(authToken, `${v3SignedString(req.method, b, query, req.params)}.${nonce}`),
    );
    if (anyMatch(candidates, [v3, v3ma])) return { ok: true };
    return {
      ok: false,
      status: 403,
      reason:
        `${V3_SIGNATURE} does not match ${req.method} ${bases[0]} and its parameters: the body was altered, the URL ` +
        "Plivo called differs from the one the bridge computed (check server.publicUrl and the proxy settings), or " +
        "provider.authToken is not the token of the account that owns the number",
    };
  }
  const v2 = header(req.headers, V2_SIGNATURE);
  const v2ma = header(req.headers, V2_MA_SIGNATURE);
  if (!v2 && !v2ma) {
    return {
      ok: false,
      status: 401,
      reason: `missing ${V2_SIGNATURE} header: the request did not come from Plivo, or a proxy removed the header`,
    };
  }
  const nonce = header(req.headers, V2_NONCE);
  if (!nonce) return { ok: false, status: 401, reason: `missing ${V2_NONCE} header next to ${V2_SIGNATURE}` };
  const candidates = bases.map((b) => hmac(authToken, b + nonce));
  if (anyMatch(candidates, [v2, v2ma])) return { ok: true };
  return {
    ok: false,
    status: 403,
    reason:
      `${V2_SIGNATURE} does not match ${bases[0]} + nonce: the URL Plivo called differs from the one the bridge ` +
      "computed (check server.publicUrl and the proxy settings), or provider.authToken is not the token of the " +
      "account (or subaccount) that owns the number",
  };
}
