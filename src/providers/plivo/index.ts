import { z } from "zod";
import { maskPhone } from "../../core/phone.js";
import { countSegments, splitForProvider } from "../../core/segments.js";
import { parseRetryAfter } from "../../protocol/retry-after.js";
import { isNetworkError } from "../http.js";
import type {
  HttpAnswer,
  OutgoingSms,
  ProviderAdapter,
  ProviderContext,
  ProviderFactory,
  RawRequest,
  SendResult,
} from "../types.js";
import { type Params, verifyPlivoSignature } from "./signature.js";
import { OPTED_OUT_CODE, parsePlivoWebhook, webhookParams } from "./webhook.js";

export {
  computeV2Signature,
  computeV3Signature,
  V2_MA_SIGNATURE,
  V2_NONCE,
  V2_SIGNATURE,
  V3_MA_SIGNATURE,
  V3_NONCE,
  V3_SIGNATURE,
  verifyPlivoSignature,
} from "./signature.js";
export { ERROR_REASONS, OPTED_OUT_CODE, parsePlivoWebhook } from "./webhook.js";

/**
 * Plivo (https://www.plivo.com/docs/messaging/api/messages): incoming SMS/MMS and status callbacks as form posts
 * signed with X-Plivo-Signature-V2 (V3 when Plivo sends it); sending through POST /v1/Account/{authId}/Message/.
 */

export const DEFAULT_API_BASE_URL = "https://api.plivo.com";
/** Plivo's per-request text limit: 1,600 GSM-7 characters or 737 UCS-2 ones (error 110 beyond). */
export const MAX_GSM_CHARS = 1600;
export const MAX_UCS2_CHARS = 737;
/** MMS: at most 10 media per message, US and Canadian numbers only. */
export const MAX_MEDIA = 10;

export const plivoConfig = z.object({
  authId: z
    .string({ error: "required: the Plivo Auth ID (console → Overview), e.g. MAXXXXXXXXXXXXXXXXXX" })
    .trim()
    .min(1, "required: the Plivo Auth ID (console → Overview), e.g. MAXXXXXXXXXXXXXXXXXX")
    .regex(/^[A-Za-z0-9]+$/, "must be letters and digits only, e.g. MAXXXXXXXXXXXXXXXXXX"),
  authToken: z
    .string({ error: `required: the Plivo Auth Token (console → Overview); use \${PLIVO_AUTH_TOKEN}` })
    .min(1, `required: the Plivo Auth Token (console → Overview); use \${PLIVO_AUTH_TOKEN}`),
  apiBaseUrl: z
    .string()
    .regex(/^https?:\/\/[^\s]+$/, "must be an http(s) URL, e.g. https://api.plivo.com")
    .optional(),
});

export type PlivoConfig = z.infer<typeof plivoConfig>;

/** Plivo documents numbers without '+' (14155551234); alphanumeric sender ids pass unchanged. */
function plivoNumber(v: string): string {
  return /^\+\d+$/.test(v) ? v.slice(1) : v;
}

function readJson(text: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Plivo's error answers are `{api_id, error}` where error is a sentence or, for some fields, an object. */
function errorText(text: string): string | undefined {
  const j = readJson(text);
  if (j) {
    const e = j.error ?? j.message;
    if (typeof e === "string") return e.slice(0, 300);
    return e && typeof e === "object" ? JSON.stringify(e).slice(0, 300) : undefined;
  }
  // Not JSON (a proxy's error page): a short excerpt helps more than nothing.
  return text.trim() ? text.trim().slice(0, 200) : undefined;
}

const OPT_OUT_TEXT = /opt(?:ed)?[\s_-]*out|unsubscribed|blocked by stop/i;

/** Maps one answer of POST /Message/ to a SendResult (exported for tests and the docs' table). */
export function classifySend(
  status: number,
  text: string,
  retryAfter: string | string[] | undefined,
  now: Date,
): SendResult {
  if (status >= 200 && status < 300) {
    const j = readJson(text);
    const ids = Array.isArray(j?.message_uuid)
      ? j.message_uuid.filter((x): x is string => typeof x === "string")
      : [];
    const [first] = ids;
    if (first) return { kind: "sent", providerId: first, ...(ids.length > 1 ? { providerIds: ids } : {}) };
    const invalid = Array.isArray(j?.invalid_number) ? j.invalid_number.map(String).join(", ") : "";
    if (invalid) {
      return {
        kind: "failed",
        code: "invalid_number",
        reason: `Plivo rejected the destination number ${invalid}`,
      };
    }
    // Accepted without an id: retrying could send twice, so this is a permanent failure for a person to look at.
    return {
      kind: "failed",
      code: "bad_response",
      reason: `Plivo answered ${status} without a message_uuid`,
    };
  }
  const err = errorText(text);
  const detail = err ? `: ${err}` : "";
  if (status === 429 || status === 408 || status >= 500) {
    const retryAfterMs = parseRetryAfter(retryAfter, now.getTime());
    return {
      kind: "retryable",
      code: `http_${status}`,
      reason: `Plivo answered ${status}${detail}`,
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    };
  }
  if (status === 401) {
    return {
      kind: "failed",
      code: "authentication_failed",
      reason: "Plivo refused the credentials (401); check provider.authId and provider.authToken",
    };
  }
  if (err && OPT_OUT_TEXT.test(err)) {
    return { kind: "optedOut", code: OPTED_OUT_CODE, reason: `the recipient opted out${detail}` };
  }
  return { kind: "failed", code: `http_${status}`, reason: `Plivo answered ${status}${detail}` };
}

/** Splits on segment boundaries so every request stays within Plivo's per-request limit. */
export function splitBody(body: string): string[] {
  const limit = countSegments(body).encoding === "GSM-7" ? MAX_GSM_CHARS : MAX_UCS2_CHARS;
  // GSM-7 extension characters (€ [ ] …) cost two septets; shrink the cut until every part fits in septets too.
  for (let max = limit; max > 0; max -= 153) {
    const parts = splitForProvider(body, max);
    if (parts.every((p) => countSegments(p).units <= limit || countSegments(p).encoding === "UCS-2"))
      return parts;
  }
  return splitForProvider(body, 153);
}

/** MMS needs a US/Canadian destination and a +1 long code or toll-free sender. */
function canMms(sms: OutgoingSms): boolean {
  return sms.to.startsWith("+1") && sms.from.startsWith("+1");
}

export function createPlivoAdapter(config: PlivoConfig, ctx: ProviderContext): ProviderAdapter {
  const apiBaseUrl = (config.apiBaseUrl ?? DEFAULT_API_BASE_URL).replace(/\/+$/, "");
  const sendUrl = `${apiBaseUrl}/v1/Account/${encodeURIComponent(config.authId)}/Message/`;
  const authorization = `Basic ${Buffer.from(`${config.authId}:${config.authToken}`).toString("base64")}`;
  const log = ctx.log.child({ provider: "plivo" });

  async function post(payload: Record<string, unknown>, signal: AbortSignal): Promise<SendResult> {
    try {
      const res = await ctx.http.request({
        method: "POST",
        url: sendUrl,
        headers: { authorization, "content-type": "application/json", accept: "application/json" },
        body: JSON.stringify(payload),
        signal,
      });
      return classifySend(res.status, res.text, res.headers["retry-after"], ctx.now());
    } catch (e) {
      if (signal.aborted) {
        return {
          kind: "retryable",
          code: "timeout",
          reason: "Plivo did not answer before the send deadline",
        };
      }
      const message = (e as Error).message;
      return isNetworkError(e)
        ? { kind: "retryable", code: "network", reason: `could not reach Plivo at ${apiBaseUrl}: ${message}` }
        : { kind: "failed", code: "forbidden_host", reason: message };
    }
  }

  return {
    type: "plivo",
    // No maxBodyLength: send() splits itself, by encoding (1,600 GSM-7 / 737 UCS-2), and reports partial sends.
    verify(req: RawRequest) {
      let params: Params = {};
      // GET webhooks and empty bodies carry their fields in the query, which V3 signs as the query.
      if (req.method.toUpperCase() !== "GET" && req.body.length > 0) {
        try {
          params = webhookParams(req);
        } catch {
          // An unreadable body cannot match a V3 signature; V2 does not look at it. parse() reports it.
        }
      }
      return verifyPlivoSignature(
        { method: req.method, url: req.url, headers: req.headers, params },
        config.authToken,
      );
    },
    parse(req: RawRequest) {
      return parsePlivoWebhook(req);
    },
    ack(): HttpAnswer {
      // Plivo reads the message_url's answer as Plivo XML; an empty <Response> means "no reply".
      return {
        status: 200,
        headers: { "content-type": "application/xml" },
        body: '<?xml version="1.0" encoding="UTF-8"?><Response></Response>',
      };
    },
    async send(sms, opts) {
      const mms = sms.mediaUrls.length > 0 && canMms(sms);
      const attached = mms ? sms.mediaUrls.slice(0, MAX_MEDIA) : [];
      // Media Plivo cannot carry (non-US/CA, or beyond 10) travel as links in the text.
      const links = sms.mediaUrls.filter((u) => !attached.includes(u));
      const text = links.length > 0 ? [sms.body, ...links].filter((s) => s !== "").join("\n") : sms.body;
      const parts = text === "" ? [""] : splitBody(text);
      const ids: string[] = [];
      const base = { src: plivoNumber(sms.from), dst: plivoNumber(sms.to) };
      // Delivery reports for every part come back to the channel's status route.
      const callback = { url: sms.statusCallbackUrl ?? ctx.urls.status, method: "POST" };
      let result: SendResult | undefined;
      for (const [i, part] of parts.entries()) {
        const payload =
          i === 0 && mms
            ? { ...base, ...(part ? { text: part } : {}), type: "mms", media_urls: attached, ...callback }
            : { ...base, text: part, type: "sms", ...callback };
        const r = await post(payload, opts.signal);
        if (r.kind === "sent") {
          ids.push(r.providerId);
          continue;
        }
        // Parts already accepted will be delivered; never resend them, report how far we got instead.
        result =
          i === 0
            ? r
            : {
                kind: "failed",
                code: r.code ?? "partial",
                reason: `sent ${i} of ${parts.length} parts; part ${i + 1} failed: ${r.reason}`,
              };
        break;
      }
      result ??= { kind: "sent", providerId: ids[0] ?? "", ...(ids.length > 1 ? { providerIds: ids } : {}) };
      log.info(
        {
          to: maskPhone(sms.to),
          parts: parts.length,
          mms,
          result: result.kind,
          ...(result.kind === "sent" ? { providerId: result.providerId } : { reason: result.reason }),
        },
        "plivo send",
      );
      return result;
    },
  };
}

export const plivoProvider: ProviderFactory<typeof plivoConfig> = {
  type: "plivo",
  config: plivoConfig,
  secretKeys: ["authToken"],
  create: createPlivoAdapter,
};

export default plivoProvider;
