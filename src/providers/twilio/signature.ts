import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { parse as parseLegacyQuery, stringify as stringifyLegacyQuery } from "node:querystring";
import type { RawRequest, Verdict } from "../types.js";

/**
 * Twilio's webhook signature (https://www.twilio.com/docs/usage/webhooks/webhooks-security), shared with
 * SignalWire's LaML, which uses the same scheme keyed with its Signing Key:
 *
 *   X-Twilio-Signature = base64(HMAC-SHA1(key, URL + each POST parameter name immediately followed by its value,
 *                                          parameters sorted by name))
 *
 * GET webhooks carry everything in the URL, so only the URL is signed. JSON bodies are not parameters: Twilio
 * adds `bodySHA256=<hex sha256(raw body)>` to the URL, signs the URL alone and the receiver checks the hash.
 * Whether the signed URL had the default port (:443/:80) varies, so both forms are tried, like the SDKs do.
 */

/** As Twilio spells it; Node gives incoming header names lower-cased. */
export const TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature";

/**
 * How repeated parameters (e.g. several `MediaUrl`) enter the signed string. The twilio SDK sorts and
 * de-duplicates their values; SignalWire's compatibility SDK keeps them in the order they were sent.
 */
export type ArrayMode = "sorted-unique" | "as-sent";

export type Params = ReadonlyArray<readonly [string, string]>;

/**
 * The last few bodies parsed, so verifying and then parsing one webhook decodes its form once. A small ring
 * compared by identity, not a WeakMap keyed by the body: a WeakMap's table lives in the old generation and
 * holds its values until a major GC finds the key dead, so every parsed form was promoted — measured while
 * ingesting at ~7k msg/s, 138 MB of old-generation garbage in 10 s, nearly all of it these arrays and
 * strings. Here a form lives as long as its request; a miss (more than RECENT requests between one's verify
 * and its parse) only parses it again.
 */
const RECENT = 16;
const recentBodies: Array<Buffer | undefined> = new Array(RECENT).fill(undefined);
const recentParams: Array<Params | undefined> = new Array(RECENT).fill(undefined);
let recentNext = 0;

/** The form parameters of a urlencoded body, in the order they were sent. */
export function formParams(body: Buffer | string): Params {
  if (typeof body !== "string") {
    for (let i = 0; i < RECENT; i++) if (recentBodies[i] === body) return recentParams[i] as Params;
  }
  const out: [string, string][] = [];
  new URLSearchParams(typeof body === "string" ? body : body.toString("utf8")).forEach((v, k) => {
    out.push([k, v]);
  });
  if (typeof body !== "string") {
    recentBodies[recentNext] = body;
    recentParams[recentNext] = out;
    recentNext = (recentNext + 1) % RECENT;
  }
  return out;
}

/** The string that is signed: the URL, then the parameters sorted by name (JS code-unit order, as the SDKs). */
export function signedString(url: string, params: Params, arrays: ArrayMode): string {
  return url + signedParamsString(params, arrays);
}

/**
 * The parameters' part of the signed string (the same for every URL form tried). A stable sort by name keeps
 * one name's values in the order they were sent. Every webhook passes here: sorting the pairs themselves takes
 * ~1.1 µs for the bench's 12-field form, grouping them in a Map first took ~1.6 (docs/performance-history.md, round 17).
 */
function signedParamsString(params: Params, arrays: ArrayMode): string {
  const sorted = params.length < 2 ? params : [...params].sort(byName);
  let data = "";
  for (let i = 0; i < sorted.length; ) {
    const name = (sorted[i] as readonly [string, string])[0];
    let end = i + 1;
    while (end < sorted.length && (sorted[end] as readonly [string, string])[0] === name) end++;
    if (arrays === "sorted-unique" && end - i > 1) {
      const values = [...new Set(sorted.slice(i, end).map((p) => p[1]))].sort();
      for (const v of values) data += name + v;
    } else {
      for (let k = i; k < end; k++) data += name + (sorted[k] as readonly [string, string])[1];
    }
    i = end;
  }
  return data;
}

/** JS code-unit order, as `Array.prototype.sort()` orders strings. */
function byName(a: readonly [string, string], b: readonly [string, string]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
}

/** base64(HMAC-SHA1(key, url + sorted params)): the value Twilio puts in `X-Twilio-Signature`. */
export function computeSignature(
  key: string,
  url: string,
  params: Params,
  arrays: ArrayMode = "sorted-unique",
): string {
  return hmacSha1Base64(key, signedString(url, params, arrays));
}

function hmacSha1Base64(key: string, data: string): string {
  return createHmac("sha1", key).update(data, "utf8").digest("base64");
}

/** Lower-case hex SHA-256 of the raw body, the `bodySHA256` query parameter of JSON webhooks. */
export function bodySha256(body: Buffer | string): string {
  return createHash("sha256").update(body).digest("hex");
}

interface UrlParts {
  scheme: string;
  userInfo: string;
  host: string;
  port: string;
  rest: string;
}

/** Splits without normalising (`new URL()` would re-encode characters Twilio signed as they were). */
function splitUrl(url: string): UrlParts | undefined {
  const m = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)/i.exec(url);
  if (!m) return undefined;
  const [prefix, scheme, authority] = m as unknown as [string, string, string];
  const at = authority.lastIndexOf("@");
  const hostPort = authority.slice(at + 1);
  const colon = hostPort.indexOf(":", hostPort.lastIndexOf("]") + 1);
  return {
    scheme,
    userInfo: authority.slice(0, at + 1),
    host: colon === -1 ? hostPort : hostPort.slice(0, colon),
    port: colon === -1 ? "" : hostPort.slice(colon),
    rest: url.slice(prefix.length),
  };
}

export function withoutPort(url: string): string {
  const p = splitUrl(url);
  return p ? p.scheme + p.userInfo + p.host + p.rest : url;
}

export function withDefaultPort(url: string): string {
  const p = splitUrl(url);
  if (!p || p.port) return url;
  const port = p.scheme.toLowerCase() === "https://" ? ":443" : ":80";
  return p.scheme + p.userInfo + p.host + port + p.rest;
}

function withLegacyQuery(url: string): string {
  const q = url.indexOf("?");
  if (q === -1 || q === url.length - 1) return url;
  return `${url.slice(0, q)}?${stringifyLegacyQuery(parseLegacyQuery(url.slice(q + 1)))}`;
}

/**
 * Every URL form the signature may have been computed over, most likely first: as received with and without
 * the default port, then (for proxies that decoded or re-encoded the path) the WHATWG-normalised URL and its
 * legacy-querystring form, the same fallbacks the twilio SDK applies.
 */
export function candidateUrls(url: string): string[] {
  const out = [url, withoutPort(url), withDefaultPort(url)];
  let normalised: string | undefined;
  try {
    normalised = new URL(url).href;
  } catch {
    // Not a parseable URL: only the literal forms can match.
  }
  if (normalised !== undefined) {
    for (const u of [withoutPort(normalised), withDefaultPort(normalised)]) out.push(u, withLegacyQuery(u));
  }
  return [...new Set(out)];
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, "utf8");
  const y = Buffer.from(b, "utf8");
  return x.length === y.length && timingSafeEqual(x, y);
}

export function header(req: RawRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export function isJson(req: RawRequest): boolean {
  return /^application\/([\w.+-]*\+)?json\b/i.test(header(req, "content-type") ?? "");
}

/** The POST parameters that are part of the signature: form fields of a POST body, none for GET or JSON. */
export function signedParams(req: RawRequest): Params {
  if (req.method.toUpperCase() === "GET" || req.body.length === 0 || isJson(req)) return [];
  return formParams(req.body);
}

function queryParam(url: string, name: string): string | undefined {
  const q = url.indexOf("?");
  if (q === -1) return undefined;
  return new URLSearchParams(url.slice(q + 1).split("#")[0]).get(name) ?? undefined;
}

export interface VerifyOptions {
  /** The signing key: Twilio's Auth Token, SignalWire's Signing Key. */
  key: string;
  /** Header names to read the signature from, in order, spelled as the provider documents them. */
  headers: readonly string[];
  arrays: ArrayMode;
  /** SignalWire also signs JSON bodies as hex(HMAC-SHA1(key, URL + raw body)). */
  acceptHexBodySignature?: boolean;
  /** How the provider is named in reasons, e.g. "Twilio". */
  provider: string;
}

/** Verifies a Twilio-style signature over the full public URL and the raw body. Never returns the key. */
export function verifyTwilioStyle(req: RawRequest, opts: VerifyOptions): Verdict {
  let received: string | undefined;
  for (const name of opts.headers) {
    received = header(req, name.toLowerCase())?.trim();
    if (received) break;
  }
  const names = opts.headers;
  if (!received) {
    return {
      ok: false,
      status: 401,
      reason: `missing ${names.join(" or ")} header; is this request from ${opts.provider}?`,
    };
  }

  let hex: string | undefined;
  if (opts.acceptHexBodySignature) {
    hex = createHmac("sha1", opts.key).update(Buffer.from(req.url, "utf8")).update(req.body).digest("hex");
    if (safeEqual(hex, received)) return { ok: true };
  }

  const json = isJson(req);
  const claimedHash = queryParam(req.url, "bodySHA256");
  if (json && claimedHash === undefined && req.body.length > 0) {
    if (hex !== undefined) {
      return {
        ok: false,
        status: 403,
        reason: `${names[0]} does not match the JSON body and URL: check the ${opts.provider} signing key and that the URL configured at ${opts.provider} is exactly ${req.url}`,
        expected: hex,
      };
    }
    return {
      ok: false,
      status: 403,
      reason: `JSON body but no bodySHA256 in the URL: ${opts.provider} signs JSON bodies through that query parameter, so the body cannot be checked`,
    };
  }

  const params = signedParams(req);
  const suffix = signedParamsString(params, opts.arrays);
  // The URL as received matches almost always; the other forms are built only when it does not. Which form
  // matched is no secret (each is derived from the request itself) and each comparison is constant-time, so
  // this stops at the first match, as the twilio SDK does.
  const matches = (url: string) => safeEqual(hmacSha1Base64(opts.key, url + suffix), received);
  if (!matches(req.url) && !candidateUrls(req.url).slice(1).some(matches)) {
    return {
      ok: false,
      status: 403,
      reason: `${names[0]} does not match the request: check that the ${opts.provider} credential is right and that the URL configured at ${opts.provider} is exactly ${req.url} (scheme, host, path and query)`,
      expected: computeSignature(opts.key, req.url, params, opts.arrays),
    };
  }
  // With form parameters the body is covered by the signature itself; otherwise only the hash covers it.
  if (claimedHash !== undefined && params.length === 0) {
    const actual = bodySha256(req.body);
    if (!safeEqual(actual, claimedHash.toLowerCase())) {
      return {
        ok: false,
        status: 403,
        reason: "body does not match the bodySHA256 in the signed URL: the body was changed after signing",
        expected: actual,
      };
    }
  }
  return { ok: true };
}
