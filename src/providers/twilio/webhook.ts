import { normaliseSender } from "../../core/phone.js";
import {
  type Attachment,
  BadWebhook,
  type DeliveryState,
  type HttpAnswer,
  type InboundMessage,
  type ProviderEvent,
  type RawRequest,
  type StatusUpdate,
} from "../types.js";
import { formParams, isJson } from "./signature.js";

/**
 * Twilio's messaging webhooks (https://www.twilio.com/docs/messaging/guides/webhook-request) and status
 * callbacks (https://www.twilio.com/docs/messaging/guides/track-outbound-message-status). SignalWire LaML sends
 * the same parameters. Both come as a POST form by default, as URL query parameters when the number is set to
 * GET, and as JSON where the URL then carries bodySHA256.
 */

/** The empty TwiML document: "received, no reply". Twilio would send any <Message> in it as an SMS. */
export const EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>';

export function twimlAck(): HttpAnswer {
  return { status: 200, headers: { "content-type": "text/xml; charset=utf-8" }, body: EMPTY_TWIML };
}

/** Twilio's message statuses (Message resource `status` enum) mapped to ours. */
const STATES: Record<string, DeliveryState> = {
  accepted: "queued",
  scheduled: "queued",
  queued: "queued",
  sending: "sending",
  sent: "sent",
  delivered: "delivered",
  undelivered: "undelivered",
  failed: "failed",
  // A canceled scheduled message was never sent.
  canceled: "failed",
  read: "read",
};

export function mapStatus(status: string): DeliveryState {
  return STATES[status.toLowerCase()] ?? "unknown";
}

/** The webhook's parameters: the URL query, overlaid with the form or JSON body. */
export function webhookParams(req: RawRequest, provider: string): Map<string, string> {
  const params = new Map<string, string>();
  const q = req.url.indexOf("?");
  if (q !== -1) {
    for (const [k, v] of new URLSearchParams(req.url.slice(q + 1).split("#")[0])) params.set(k, v);
  }
  if (req.method.toUpperCase() === "GET" || req.body.length === 0) return params;
  if (isJson(req)) {
    let doc: unknown;
    try {
      doc = JSON.parse(req.body.toString("utf8"));
    } catch {
      throw new BadWebhook(`${provider} webhook body is not valid JSON`);
    }
    if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
      throw new BadWebhook(`${provider} webhook JSON must be an object of parameters`);
    }
    for (const [k, v] of Object.entries(doc)) {
      if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") params.set(k, String(v));
    }
    return params;
  }
  // Repeated form fields are not part of these webhooks; the last value wins.
  for (const [k, v] of formParams(req.body)) params.set(k, v);
  return params;
}

const MAX_MEDIA = 20;

function attachments(p: Map<string, string>, provider: string): Attachment[] {
  const raw = p.get("NumMedia");
  let count = 0;
  if (raw !== undefined && raw !== "") {
    if (!/^\d+$/.test(raw) || Number(raw) > MAX_MEDIA) {
      throw new BadWebhook(
        `${provider} webhook NumMedia must be a count of media (0-${MAX_MEDIA}), got "${raw}"`,
      );
    }
    count = Number(raw);
  }
  // Some senders omit NumMedia; take every MediaUrl{N} that is there.
  while (count < MAX_MEDIA && p.has(`MediaUrl${count}`)) count++;
  const out: Attachment[] = [];
  for (let i = 0; i < count; i++) {
    const url = p.get(`MediaUrl${i}`);
    if (!url) throw new BadWebhook(`${provider} webhook says NumMedia=${count} but MediaUrl${i} is missing`);
    const contentType = p.get(`MediaContentType${i}`);
    out.push(contentType ? { url, contentType } : { url });
  }
  return out;
}

function messageSid(p: Map<string, string>): string | undefined {
  return p.get("MessageSid") || p.get("SmsMessageSid") || p.get("SmsSid") || undefined;
}

function address(p: Map<string, string>, name: string, provider: string): string {
  const v = p.get(name)?.trim();
  if (!v) throw new BadWebhook(`${provider} webhook is missing ${name}`);
  return normaliseSender(v);
}

const META_KEYS: Record<string, string> = {
  AccountSid: "accountSid",
  MessagingServiceSid: "messagingServiceSid",
  NumSegments: "numSegments",
  NumMedia: "numMedia",
  FromCountry: "fromCountry",
  ToCountry: "toCountry",
  OptOutType: "optOutType",
  ApiVersion: "apiVersion",
};

/**
 * Turns one webhook into events: a status callback (it carries MessageStatus) becomes a StatusUpdate, an
 * incoming message an InboundMessage. Throws BadWebhook for anything else.
 */
export function parseTwilioWebhook(req: RawRequest, provider: string): ProviderEvent[] {
  const p = webhookParams(req, provider);
  const sid = messageSid(p);
  const messageStatus = p.get("MessageStatus");

  if (messageStatus && !/^receiv(ed|ing)$/i.test(messageStatus)) {
    if (!sid) throw new BadWebhook(`${provider} status callback is missing MessageSid`);
    const update: StatusUpdate = {
      kind: "status",
      providerMessageId: sid,
      state: mapStatus(messageStatus),
      providerStatus: messageStatus,
    };
    const code = p.get("ErrorCode");
    if (code && code !== "0") update.errorCode = code;
    const text = p.get("ErrorMessage");
    if (text) update.errorMessage = text;
    return [update];
  }

  if (!sid) {
    throw new BadWebhook(
      `${provider} webhook has neither MessageSid nor MessageStatus: it is not a messaging webhook`,
    );
  }
  const meta: Record<string, unknown> = {};
  for (const [param, key] of Object.entries(META_KEYS)) {
    const v = p.get(param);
    if (v) meta[key] = v;
  }
  const message: InboundMessage = {
    kind: "message",
    providerMessageId: sid,
    from: address(p, "From", provider),
    to: address(p, "To", provider),
    body: p.get("Body") ?? "",
    attachments: attachments(p, provider),
  };
  // Twilio's form webhooks carry no time; JSON deliveries may (`timestamp`, ISO 8601).
  const at = p.get("Timestamp") ?? p.get("timestamp");
  if (at && !Number.isNaN(Date.parse(at))) message.createdAt = new Date(at).toISOString();
  if (Object.keys(meta).length > 0) message.meta = meta;
  return [message];
}
