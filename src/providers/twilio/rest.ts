import { maskPhone } from "../../core/phone.js";
import { splitForProvider } from "../../core/segments.js";
import { parseRetryAfter } from "../../protocol/retry-after.js";
import { type HttpResponse, isNetworkError } from "../http.js";
import type { OutgoingSms, ProviderContext, SendOptions, SendResult } from "../types.js";

/**
 * Sending through Twilio's Messages resource (POST /2010-04-01/Accounts/{Sid}/Messages.json, form-encoded,
 * HTTP Basic; https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource) and
 * SignalWire's LaML copy of it. Answers: 201 `{sid, status, ...}`; errors `{code, message, more_info, status}`.
 */

/** Twilio 21610: the recipient replied STOP (https://www.twilio.com/docs/api/errors/21610). */
export const TWILIO_OPT_OUT_CODES: readonly string[] = ["21610"];

export interface LamlSendConfig {
  /** Provider name for reasons and logs, e.g. "Twilio". */
  provider: string;
  /** Full URL of the Messages.json collection. */
  messagesUrl: string;
  /** HTTP Basic user and password (Account SID + Auth Token, Project ID + API token). */
  username: string;
  password: string;
  /** When set, sent as MessagingServiceSid instead of From. */
  messagingServiceSid?: string;
  /** Media URLs one message may carry; more are appended to the text as links. */
  maxMedia: number;
  /** Longest Body one request accepts, in characters. */
  maxBody: number;
  optOutCodes: readonly string[];
}

interface ProviderError {
  code?: string;
  message?: string;
}

/** Reads both `{code, message}` (Twilio, LaML) and `{errors: [{code, message}]}` (SignalWire's newer APIs). */
export function readError(text: string): ProviderError {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return {};
  }
  if (typeof doc !== "object" || doc === null) return {};
  const d = doc as Record<string, unknown>;
  const first = Array.isArray(d.errors) ? (d.errors[0] as Record<string, unknown> | undefined) : undefined;
  const src = d.code !== undefined || d.message !== undefined ? d : (first ?? {});
  const out: ProviderError = {};
  if (typeof src.code === "string" || typeof src.code === "number") out.code = String(src.code);
  const msg = src.message ?? src.detail;
  if (typeof msg === "string" && msg) out.message = msg;
  return out;
}

function readSid(text: string): string | undefined {
  try {
    const doc = JSON.parse(text) as { sid?: unknown };
    return typeof doc.sid === "string" && doc.sid ? doc.sid : undefined;
  } catch {
    return undefined;
  }
}

/** What one request's answer means. Exported for tests. */
export function classify(res: HttpResponse, cfg: LamlSendConfig, now: number = Date.now()): SendResult {
  if (res.status >= 200 && res.status < 300) {
    const sid = readSid(res.text);
    if (sid) return { kind: "sent", providerId: sid };
    // Accepted but unreadable: retrying could send the SMS twice, so this is final.
    return {
      kind: "failed",
      code: "no_sid",
      reason: `${cfg.provider} answered ${res.status} without a message sid`,
    };
  }
  const err = readError(res.text);
  const said = err.message ? `: ${err.message}` : "";
  const code = err.code;
  if (res.status === 429 || res.status >= 500) {
    const result: SendResult = {
      kind: "retryable",
      reason: `${cfg.provider} answered ${res.status}${said}`,
    };
    const after = parseRetryAfter(res.headers["retry-after"], now);
    if (after !== undefined) result.retryAfterMs = after;
    if (code) result.code = code;
    return result;
  }
  if (code && cfg.optOutCodes.includes(code)) {
    return { kind: "optedOut", code, reason: `the recipient opted out (replied STOP)${said}` };
  }
  let hint = "";
  if (res.status === 401) hint = `; check the ${cfg.provider} credentials in the channel's provider block`;
  if (res.status === 404) hint = `; check the account/project id and apiBaseUrl`;
  return {
    kind: "failed",
    code: code ?? `http_${res.status}`,
    reason: `${cfg.provider} rejected the message (HTTP ${res.status})${said}${hint}`,
  };
}

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`, "utf8").toString("base64")}`;
}

/**
 * Sends one SMS/MMS, split into requests of at most `maxBody` characters on segment boundaries and sent in
 * order. Media ride on the first request. A part that was accepted is never sent again: when a later part
 * fails, the answer is `failed` with "sent N of M parts" so nobody retries the whole message.
 */
export async function sendLaml(
  sms: OutgoingSms,
  opts: SendOptions,
  cfg: LamlSendConfig,
  ctx: ProviderContext,
): Promise<SendResult> {
  const media = sms.mediaUrls.slice(0, cfg.maxMedia);
  const overflow = sms.mediaUrls.slice(cfg.maxMedia);
  const text = overflow.length > 0 ? [sms.body, ...overflow].filter(Boolean).join("\n") : sms.body;
  const parts = splitForProvider(text, cfg.maxBody);
  const log = ctx.log.child({
    provider: cfg.provider.toLowerCase(),
    to: maskPhone(sms.to),
    parts: parts.length,
  });
  const sids: string[] = [];

  for (let i = 0; i < parts.length; i++) {
    const form = new URLSearchParams();
    form.set("To", sms.to);
    if (cfg.messagingServiceSid) form.set("MessagingServiceSid", cfg.messagingServiceSid);
    else form.set("From", sms.from);
    const part = parts[i] as string;
    if (part) form.set("Body", part);
    if (i === 0) for (const url of media) form.append("MediaUrl", url);
    if (sms.statusCallbackUrl) form.set("StatusCallback", sms.statusCallbackUrl);

    let result: SendResult;
    if (opts.signal.aborted) {
      result = {
        kind: "retryable",
        code: "deadline",
        reason: `deadline passed before part ${i + 1} was sent`,
      };
    } else {
      try {
        const res = await ctx.http.request({
          method: "POST",
          url: cfg.messagesUrl,
          headers: {
            authorization: basic(cfg.username, cfg.password),
            "content-type": "application/x-www-form-urlencoded",
            accept: "application/json",
          },
          body: form.toString(),
          signal: opts.signal,
        });
        result = classify(res, cfg, ctx.now().getTime());
      } catch (err) {
        const what = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
        if (opts.signal.aborted) {
          result = {
            kind: "retryable",
            code: "deadline",
            reason: `deadline passed before ${cfg.provider} answered`,
          };
        } else if (isNetworkError(err)) {
          result = {
            kind: "retryable",
            code: "network",
            reason: `could not reach ${cfg.provider} (${what})`,
          };
        } else {
          result = {
            kind: "failed",
            code: "request_error",
            reason: `request to ${cfg.provider} not made (${what})`,
          };
        }
      }
    }

    if (result.kind === "sent") {
      sids.push(result.providerId);
      log.debug({ part: i + 1, sid: result.providerId }, "message part accepted");
      continue;
    }
    if (i === 0) {
      log.warn(
        { result: result.kind, code: "code" in result ? result.code : undefined, reason: result.reason },
        "send failed",
      );
      return result;
    }
    // Earlier parts are on their way to the handset: a retry would send them twice.
    const code = ("code" in result && result.code) || "partial";
    log.error({ sent: i, code, reason: result.reason }, "send failed part-way");
    return {
      kind: "failed",
      code,
      reason: `sent ${i} of ${parts.length} parts; part ${i + 1} failed: ${result.reason}`,
    };
  }

  log.info({ sid: sids[0] }, "message accepted");
  const sent: SendResult = { kind: "sent", providerId: sids[0] as string };
  if (sids.length > 1) sent.providerIds = sids;
  return sent;
}
