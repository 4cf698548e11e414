import { maskPhone } from "../../core/phone.js";
import { countSegments, encodingOf, splitForProvider, splitSegments } from "../../core/segments.js";
import { parseRetryAfter } from "../../protocol/retry-after.js";
import { ForbiddenHost, type HttpResponse } from "../http.js";
import type { OutgoingSms, ProviderContext, SendOptions, SendResult } from "../types.js";

/**
 * Outbound through `POST {apiBaseUrl}/v2/messages` (Bearer API key, JSON) → `{data:{id,…}}`; errors are
 * `{errors:[{code,title,detail}]}` (developers.telnyx.com/docs/messaging/messages/error-codes).
 */

export const DEFAULT_API_BASE = "https://api.telnyx.com";

/** Carriers reject concatenated SMS beyond 10 parts; Telnyx answers 40302 "Message too large" (SMS chunking doc). */
export const MAX_PARTS = 10;
/** MMS carries at most 10 media URLs (send-receive-mms doc); more would be rejected with 40317. */
export const MAX_MEDIA = 10;

/** 40300 "Blocked due to STOP message": the recipient texted STOP/END/QUIT… to this profile. */
const OPTED_OUT_CODES = new Set(["40300"]);
/** 10007 unexpected error, 10008 request timeout, 10011 too many requests, 40318 message queue full. */
const RETRYABLE_CODES = new Set(["10007", "10008", "10011", "40318"]);
/** Codes that mean the API key is wrong; the reason then says where to fix it. */
const AUTH_CODES = new Set(["10009", "10010", "20002", "20006"]);

export interface SenderConfig {
  apiKey: string;
  messagingProfileId?: string;
  apiBaseUrl: string;
}

/**
 * Cuts a body into requests of at most 10 SMS parts, between segments so the handset joins them cleanly.
 * GSM-7 text allows 10 × 153 characters per request, UCS-2 10 × 67 code units.
 */
export function splitTelnyxBody(text: string): string[] {
  if (countSegments(text).segments <= MAX_PARTS) return [text];
  const perRequest = (encodingOf(text) === "GSM-7" ? 153 : 67) * MAX_PARTS;
  const out: string[] = [];
  for (const chunk of splitForProvider(text, perRequest)) {
    if (countSegments(chunk).segments <= MAX_PARTS) {
      out.push(chunk);
      continue;
    }
    // Extension characters (€ [ ] …) cost two septets, so a chunk short in characters can still exceed 10 parts.
    const segs = splitSegments(chunk);
    for (let i = 0; i < segs.length; i += MAX_PARTS) out.push(segs.slice(i, i + MAX_PARTS).join(""));
  }
  return out;
}

interface TelnyxError {
  code?: string;
  title?: string;
  detail?: string;
}

function firstError(text: string): TelnyxError {
  try {
    const json = JSON.parse(text) as { errors?: unknown };
    const e = Array.isArray(json.errors)
      ? (json.errors[0] as Record<string, unknown> | undefined)
      : undefined;
    if (!e || typeof e !== "object") return {};
    const str = (v: unknown) => (typeof v === "string" || typeof v === "number" ? String(v) : undefined);
    return { code: str(e.code), title: str(e.title), detail: str(e.detail) };
  } catch {
    return {};
  }
}

function headerValue(res: HttpResponse, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

type PartResult = { kind: "accepted"; id: string } | Exclude<SendResult, { kind: "sent" }>;

/** Reads Telnyx's answer to one `POST /v2/messages`. */
export function classifyTelnyxAnswer(res: HttpResponse, now: number): PartResult {
  if (res.status >= 200 && res.status < 300) {
    let id: unknown;
    try {
      id = (JSON.parse(res.text) as { data?: { id?: unknown } }).data?.id;
    } catch {
      id = undefined;
    }
    if (typeof id === "string" && id) return { kind: "accepted", id };
    // Never retry this: Telnyx said yes, so the SMS may be on its way already.
    return {
      kind: "failed",
      code: "bad_response",
      reason: `Telnyx answered HTTP ${res.status} without a message id; the SMS may have been sent, check the Telnyx message logs before resending`,
    };
  }
  const err = firstError(res.text);
  const what = [err.title, err.detail].filter(Boolean).join(": ") || "no error details";
  let reason = `Telnyx answered HTTP ${res.status}${err.code ? ` (error ${err.code})` : ""}: ${what}`;
  const code = err.code ?? `http_${res.status}`;
  if (res.status === 429 || err.code === "10011") {
    const reset = headerValue(res, "x-ratelimit-reset");
    const retryAfterMs =
      parseRetryAfter(res.headers["retry-after"], now) ??
      (reset && /^\d+$/.test(reset.trim()) ? Number(reset.trim()) * 1000 : undefined);
    return retryAfterMs === undefined
      ? { kind: "retryable", reason, code }
      : { kind: "retryable", reason, code, retryAfterMs };
  }
  if (err.code && OPTED_OUT_CODES.has(err.code)) {
    return { kind: "optedOut", code: err.code, reason: `the recipient opted out by texting STOP; ${reason}` };
  }
  if (res.status >= 500 || res.status === 408 || (err.code && RETRYABLE_CODES.has(err.code))) {
    return { kind: "retryable", reason, code };
  }
  if (res.status === 401 || res.status === 403 || (err.code && AUTH_CODES.has(err.code))) {
    reason += "; check the channel's provider.apiKey (Telnyx Mission Control Portal → API Keys)";
  }
  return { kind: "failed", code, reason };
}

export function createTelnyxSender(cfg: SenderConfig, ctx: ProviderContext) {
  const endpoint = `${cfg.apiBaseUrl.replace(/\/+$/, "")}/v2/messages`;

  async function sendPart(body: Record<string, unknown>, signal: AbortSignal): Promise<PartResult> {
    let res: HttpResponse;
    try {
      res = await ctx.http.request({
        method: "POST",
        url: endpoint,
        headers: {
          authorization: `Bearer ${cfg.apiKey}`,
          "content-type": "application/json",
          accept: "application/json",
        },
        body: JSON.stringify(body),
        signal,
      });
    } catch (e) {
      if (e instanceof ForbiddenHost) return { kind: "failed", code: "forbidden_host", reason: e.message };
      if (signal.aborted) {
        return {
          kind: "retryable",
          code: "deadline",
          reason: "the send deadline passed before Telnyx answered; the SMS may or may not have been sent",
        };
      }
      const msg = e instanceof Error ? e.message : String(e);
      return {
        kind: "retryable",
        code: "network",
        reason: `could not reach Telnyx at ${new URL(endpoint).host}: ${msg}`,
      };
    }
    return classifyTelnyxAnswer(res, ctx.now().getTime());
  }

  return async function send(sms: OutgoingSms, opts: SendOptions): Promise<SendResult> {
    const media = sms.mediaUrls.slice(0, MAX_MEDIA);
    const overflow = sms.mediaUrls.slice(MAX_MEDIA);
    // Media beyond the MMS limit still reach the customer, as links.
    const text = [sms.body, ...overflow].filter(Boolean).join("\n");
    if (!text && media.length === 0) {
      return {
        kind: "failed",
        code: "empty_message",
        reason: "nothing to send: the body is empty and there are no attachments",
      };
    }
    const parts = text ? splitTelnyxBody(text) : [""];
    const ids: string[] = [];
    const log = ctx.log.child({ provider: "telnyx", to: maskPhone(sms.to), parts: parts.length });
    for (const [i, part] of parts.entries()) {
      if (i > 0 && opts.signal.aborted) {
        log.warn({ sent: i }, "telnyx: deadline passed between parts");
        return {
          kind: "failed",
          code: "deadline",
          reason: `sent ${i} of ${parts.length} parts; the deadline passed before the rest (not retried, to avoid sending the first parts twice)`,
        };
      }
      const body: Record<string, unknown> = { to: sms.to };
      if (sms.from) body.from = sms.from;
      if (part) body.text = part;
      if (i === 0 && media.length > 0) body.media_urls = media;
      if (cfg.messagingProfileId) body.messaging_profile_id = cfg.messagingProfileId;
      if (sms.statusCallbackUrl) body.webhook_url = sms.statusCallbackUrl;
      const r = await sendPart(body, opts.signal);
      if (r.kind === "accepted") {
        ids.push(r.id);
        continue;
      }
      log.warn({ part: i + 1, result: r.kind, code: r.code }, "telnyx: send not accepted");
      if (i === 0) return r;
      // Earlier parts are on their way: never retry them (no double SMS), report what happened instead.
      return {
        kind: "failed",
        code: r.code ?? r.kind,
        reason: `sent ${i} of ${parts.length} parts; part ${i + 1} was not accepted: ${r.reason}`,
      };
    }
    log.info({ providerId: ids[0], media: media.length }, "telnyx: sent");
    const first = ids[0] ?? "";
    return ids.length > 1
      ? { kind: "sent", providerId: first, providerIds: ids }
      : { kind: "sent", providerId: first };
  };
}
