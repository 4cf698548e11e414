import type { KeyObject } from "node:crypto";
import { parsePhoneNumberFromString } from "libphonenumber-js/max";
import { maskPhone } from "../../core/phone.js";
import { encodingOf, splitForProvider } from "../../core/segments.js";
import { parseRetryAfter } from "../../protocol/retry-after.js";
import { ForbiddenHost, type HttpResponse } from "../http.js";
import type { OutgoingSms, ProviderContext, SendOptions, SendResult } from "../types.js";
import { applicationJwt } from "./signature.js";

/** Longest text one request takes: SMS API 3200 characters (Vonage concatenates), Messages API SMS 1000. */
export const SMS_API_MAX = 3200;
export const MESSAGES_API_MAX = 1000;
/** Messages API MMS image caption limit. */
const CAPTION_MAX = 2000;

export interface SendConfig {
  api: "sms" | "messages";
  apiKey: string;
  apiSecret: string;
  applicationId?: string;
  privateKey?: KeyObject;
  baseUrl: string;
}

/** SMS API `messages[].status` values (developer.vonage.com/api-errors/sms). */
const SMS_STATUS: Record<string, string> = {
  "1": "Throttled: sending faster than the account limit",
  "2": "Missing Parameters",
  "3": "Invalid Parameters",
  "4": "Invalid Credentials: check apiKey and apiSecret",
  "5": "Internal Error at Vonage",
  "6": "Invalid Message: for example an unrecognised number prefix",
  "7": "Number Barred: the recipient is on the block list (opted out)",
  "8": "Partner Account Barred: the Vonage account is suspended",
  "9": "Partner Quota Violation: not enough credit",
  "10": "Too Many Existing Binds",
  "11": "Account Not Enabled For HTTP",
  "12": "Message Too Long",
  "14": "Invalid Signature",
  "15": "Invalid Sender Address: this sender id is not allowed here (North America needs a Vonage number)",
  "22": "Invalid Network Code",
  "23": "Invalid Callback Url",
  "29": "Non-Whitelisted Destination: the account is in demo mode; add the number to the test numbers or top up",
  "32": "Signature And API Secret Disallowed",
  "33": "Number De-activated",
};
/** Throttled, internal error and too many binds: Vonage says back off and retry. */
const SMS_RETRYABLE = new Set(["1", "5", "10"]);
const SMS_OPTED_OUT = new Set(["7"]);

/** Messages API codes (developer.vonage.com/api-errors/messages) that mean "try again later" or "blocked". */
const MESSAGES_RETRYABLE = new Set(["1000", "1030", "1100"]);
const MESSAGES_OPTED_OUT = new Set(["1050"]);

type PartResult = { ok: true; ids: string[] } | { ok: false; result: Exclude<SendResult, { kind: "sent" }> };

interface Part {
  describe: string;
  body: Record<string, unknown>;
}

/** E.164 "+447700900000" → "447700900000"; Vonage wants numbers without '+'. Sender ids pass unchanged. */
function vonageNumber(v: string): string {
  return v.startsWith("+") ? v.slice(1) : v;
}

function isImageUrl(url: string): boolean {
  try {
    return /\.(jpe?g|png|gif)$/i.test(new URL(url).pathname);
  } catch {
    return false;
  }
}

function withLinks(body: string, links: string[]): string {
  if (links.length === 0) return body;
  return [body, ...links].filter((s) => s !== "").join("\n");
}

function smsApiParts(sms: OutgoingSms): Part[] {
  const text = withLinks(sms.body, sms.mediaUrls);
  return splitForProvider(text, SMS_API_MAX).map((chunk, i, all) => {
    const body: Record<string, unknown> = {
      from: vonageNumber(sms.from),
      to: vonageNumber(sms.to),
      text: chunk,
    };
    // Without type=unicode Vonage sends GSM-7 and non-Latin text arrives garbled.
    if (encodingOf(chunk) === "UCS-2") body.type = "unicode";
    if (sms.statusCallbackUrl) body.callback = sms.statusCallbackUrl;
    if (sms.idempotencyKey && sms.idempotencyKey.length <= 40) body["client-ref"] = sms.idempotencyKey;
    return { describe: `part ${i + 1} of ${all.length}`, body };
  });
}

function messagesApiParts(sms: OutgoingSms): Part[] {
  // MMS exists on the Messages API for US numbers only, one image per request; anything else becomes a link.
  const us = parsePhoneNumberFromString(sms.to)?.country === "US";
  const images = us ? sms.mediaUrls.filter(isImageUrl) : [];
  const links = sms.mediaUrls.filter((u) => !images.includes(u));
  const text = withLinks(sms.body, links);
  const common: Record<string, unknown> = { from: vonageNumber(sms.from), to: vonageNumber(sms.to) };
  if (sms.statusCallbackUrl) common.webhook_url = sms.statusCallbackUrl;
  if (sms.idempotencyKey && sms.idempotencyKey.length <= 100) common.client_ref = sms.idempotencyKey;
  const parts: Part[] = [];
  const captionFits = images.length > 0 && text !== "" && text.length <= CAPTION_MAX;
  if (text !== "" && !captionFits) {
    for (const chunk of splitForProvider(text, MESSAGES_API_MAX)) {
      parts.push({
        describe: "text",
        body: { ...common, channel: "sms", message_type: "text", text: chunk },
      });
    }
  }
  images.forEach((url, i) => {
    const image: Record<string, string> = { url };
    if (i === 0 && captionFits) image.caption = text;
    parts.push({ describe: "image", body: { ...common, channel: "mms", message_type: "image", image } });
  });
  return parts.map((p, i, all) => ({ ...p, describe: `part ${i + 1} of ${all.length} (${p.describe})` }));
}

function json(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function httpFailure(res: HttpResponse, what: string, code?: string, detail?: string): PartResult {
  const reason = `${what} answered HTTP ${res.status}${detail ? `: ${detail}` : ""}`;
  if (res.status === 429 || res.status >= 500 || (code !== undefined && MESSAGES_RETRYABLE.has(code))) {
    const retryAfterMs = parseRetryAfter(res.headers["retry-after"]);
    const result: SendResult = { kind: "retryable", reason, code: code ?? `http_${res.status}` };
    if (retryAfterMs !== undefined) result.retryAfterMs = retryAfterMs;
    return { ok: false, result };
  }
  if (code !== undefined && MESSAGES_OPTED_OUT.has(code)) {
    return { ok: false, result: { kind: "optedOut", reason, code } };
  }
  return { ok: false, result: { kind: "failed", reason, code: code ?? `http_${res.status}` } };
}

function classifySmsApi(res: HttpResponse): PartResult {
  if (res.status !== 200) return httpFailure(res, "Vonage SMS API");
  const data = json(res.text) as {
    messages?: { status?: unknown; "message-id"?: unknown; "error-text"?: unknown }[];
  };
  const messages = Array.isArray(data?.messages) ? data.messages : [];
  if (messages.length === 0) {
    return {
      ok: false,
      result: {
        kind: "retryable",
        reason: "Vonage SMS API answered 200 without messages[]",
        code: "bad_answer",
      },
    };
  }
  const ids: string[] = [];
  for (const m of messages) {
    const status = String(m.status ?? "");
    if (status === "0") {
      ids.push(String(m["message-id"] ?? ""));
      continue;
    }
    const text = typeof m["error-text"] === "string" ? m["error-text"] : "";
    const meaning = SMS_STATUS[status] ?? "unknown status";
    const reason = `Vonage status ${status} (${meaning})${text ? `: ${text}` : ""}`;
    // Vonage split the text itself and some SMS already left: never retry those (no double SMS).
    if (ids.length > 0) {
      return {
        ok: false,
        result: {
          kind: "failed",
          code: status,
          reason: `sent ${ids.length} of ${messages.length} SMS of this request; then ${reason}`,
        },
      };
    }
    if (SMS_RETRYABLE.has(status)) {
      const result: SendResult = { kind: "retryable", reason, code: status };
      const retryAfterMs = parseRetryAfter(res.headers["retry-after"]);
      if (retryAfterMs !== undefined) result.retryAfterMs = retryAfterMs;
      return { ok: false, result };
    }
    if (SMS_OPTED_OUT.has(status)) return { ok: false, result: { kind: "optedOut", reason, code: status } };
    return { ok: false, result: { kind: "failed", reason, code: status } };
  }
  return { ok: true, ids };
}

function classifyMessagesApi(res: HttpResponse): PartResult {
  const data = json(res.text) as Record<string, unknown> | undefined;
  if (res.status >= 200 && res.status < 300) {
    const uuid = data?.message_uuid;
    if (typeof uuid === "string") return { ok: true, ids: [uuid] };
    return {
      ok: false,
      result: {
        kind: "retryable",
        reason: `Vonage Messages API answered ${res.status} without message_uuid`,
        code: "bad_answer",
      },
    };
  }
  // RFC 7807: type ".../api-errors/messages#1050", title, detail.
  const type = typeof data?.type === "string" ? data.type : "";
  const code = type.includes("#") ? type.slice(type.lastIndexOf("#") + 1) : undefined;
  const detail = [data?.title, data?.detail].filter((v) => typeof v === "string" && v !== "").join(": ");
  return httpFailure(res, "Vonage Messages API", code, detail || undefined);
}

export function createSender(cfg: SendConfig, ctx: ProviderContext) {
  const smsUrl = `${cfg.baseUrl}/sms/json`;
  const messagesUrl = `${cfg.baseUrl}/v1/messages`;
  const basic = `Basic ${Buffer.from(`${cfg.apiKey}:${cfg.apiSecret}`).toString("base64")}`;

  function authorization(): string {
    if (cfg.api === "messages") {
      return `Bearer ${applicationJwt(cfg.applicationId!, cfg.privateKey!, Math.floor(ctx.now().getTime() / 1000))}`;
    }
    return basic;
  }

  async function sendPart(part: Part, opts: SendOptions): Promise<PartResult> {
    let res: HttpResponse;
    try {
      res = await ctx.http.request({
        method: "POST",
        url: cfg.api === "messages" ? messagesUrl : smsUrl,
        headers: {
          authorization: authorization(),
          "content-type": "application/json",
          accept: "application/json",
        },
        body: JSON.stringify(part.body),
        signal: opts.signal,
      });
    } catch (err) {
      if (err instanceof ForbiddenHost)
        return { ok: false, result: { kind: "failed", reason: err.message, code: "forbidden_host" } };
      if (opts.signal.aborted) {
        return {
          ok: false,
          result: { kind: "retryable", reason: "Vonage did not answer before the deadline", code: "timeout" },
        };
      }
      const message = err instanceof Error ? err.message : String(err);
      return {
        ok: false,
        result: { kind: "retryable", reason: `could not reach Vonage: ${message}`, code: "network" },
      };
    }
    return cfg.api === "messages" ? classifyMessagesApi(res) : classifySmsApi(res);
  }

  return async function send(sms: OutgoingSms, opts: SendOptions): Promise<SendResult> {
    const parts = cfg.api === "messages" ? messagesApiParts(sms) : smsApiParts(sms);
    const log = ctx.log.child({ provider: "vonage", api: cfg.api, to: maskPhone(sms.to) });
    if (parts.length === 0)
      return { kind: "failed", reason: "nothing to send: empty body and no media", code: "empty" };
    const ids: string[] = [];
    for (const [i, part] of parts.entries()) {
      const done = ids.length > 0;
      const r: PartResult = opts.signal.aborted
        ? {
            ok: false,
            result: { kind: "retryable", reason: "deadline passed before sending", code: "timeout" },
          }
        : await sendPart(part, opts);
      if (r.ok) {
        ids.push(...r.ids);
        log.debug({ part: i + 1, parts: parts.length }, "vonage accepted part");
        continue;
      }
      log.warn(
        { part: i + 1, parts: parts.length, result: r.result.kind, code: r.result.code },
        "vonage send failed",
      );
      if (!done) return r.result;
      // Earlier parts are on their way to the handset: report, never retry (no double SMS).
      return {
        kind: "failed",
        code: r.result.code ?? "partial",
        reason: `sent ${i} of ${parts.length} parts; ${part.describe} failed: ${r.result.reason}`,
      };
    }
    log.info({ parts: parts.length, ids: ids.length }, "vonage accepted message");
    const result: SendResult = { kind: "sent", providerId: ids[0]! };
    if (ids.length > 1) result.providerIds = ids;
    return result;
  };
}
