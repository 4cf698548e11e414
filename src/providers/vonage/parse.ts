import { normaliseSender, toE164 } from "../../core/phone.js";
import {
  type Attachment,
  BadWebhook,
  type DeliveryState,
  type InboundMessage,
  type ProviderEvent,
  type RawRequest,
  type StatusUpdate,
} from "../types.js";

/**
 * Vonage webhook formats, normalised:
 * - SMS API inbound SMS and delivery receipts (DLR): flat string parameters sent as a GET query, a POST
 *   form or a POST JSON object (the dashboard's "HTTP method" setting decides), numbers without '+'.
 * - Messages API inbound messages and message statuses: POST JSON with `message_uuid`.
 */

export type Params = Record<string, string>;

function header(req: RawRequest, name: string): string {
  const v = req.headers[name];
  return (Array.isArray(v) ? v[0] : v) ?? "";
}

export function queryParams(req: RawRequest): Params {
  const out: Params = {};
  const url = new URL(req.url, "http://placeholder.invalid");
  for (const [k, v] of url.searchParams) out[k] = v;
  return out;
}

function isJsonBody(req: RawRequest): boolean {
  if (/json/i.test(header(req, "content-type"))) return true;
  const first = req.body.toString("utf8").trimStart()[0];
  return first === "{" || first === "[";
}

/** The body as a JSON object, undefined when it is not JSON; BadWebhook when it claims JSON but is not an object. */
export function jsonBody(req: RawRequest): Record<string, unknown> | undefined {
  if (req.body.length === 0 || !isJsonBody(req)) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(req.body.toString("utf8"));
  } catch {
    throw new BadWebhook("body is not valid JSON");
  }
  if (v === null || typeof v !== "object" || Array.isArray(v))
    throw new BadWebhook("JSON body is not an object");
  return v as Record<string, unknown>;
}

/** Scalar fields of an SMS API JSON body as the strings they would be in a form (what Vonage signs). */
function flatten(obj: Record<string, unknown>): Params {
  const out: Params = {};
  for (const [k, v] of Object.entries(obj)) {
    if (typeof v === "string") out[k] = v;
    else if (typeof v === "number" || typeof v === "boolean") out[k] = String(v);
  }
  return out;
}

/** The parameters of an SMS API webhook, from whichever of query, form or JSON carried them. */
export function bodyParams(req: RawRequest): Params {
  if (req.body.length === 0) return {};
  const json = jsonBody(req);
  if (json) return flatten(json);
  const out: Params = {};
  for (const [k, v] of new URLSearchParams(req.body.toString("utf8"))) out[k] = v;
  return out;
}

/**
 * The parameter sets an SMS API request may have been signed over. GET: the query. POST: the body, and body
 * plus query (the SDKs merge them), so a token in the configured URL's query does not break verification.
 */
export function signedParamCandidates(req: RawRequest): Params[] {
  const query = queryParams(req);
  const body = bodyParams(req);
  if (Object.keys(body).length === 0) return [query];
  if (Object.keys(query).length === 0) return [body];
  return [body, { ...query, ...body }];
}

function smsApiParams(req: RawRequest): Params {
  const body = bodyParams(req);
  return Object.keys(body).length > 0 ? { ...queryParams(req), ...body } : queryParams(req);
}

/** "2020-01-01 12:00:00" (UTC, Vonage's message-timestamp) or a unix timestamp → ISO 8601. */
function vonageTime(messageTimestamp: string | undefined, unix: string | undefined): string | undefined {
  const m = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})$/.exec(messageTimestamp?.trim() ?? "");
  if (m) {
    const d = new Date(`${m[1]}T${m[2]}Z`);
    if (!Number.isNaN(d.getTime())) return d.toISOString();
  }
  if (unix && /^\d+$/.test(unix)) return new Date(Number(unix) * 1000).toISOString();
  return undefined;
}

function isoTime(v: unknown): string | undefined {
  if (typeof v !== "string") return undefined;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : new Date(t).toISOString();
}

function ourNumber(raw: string): string {
  return toE164(raw) ?? normaliseSender(raw);
}

function required(p: Params, key: string, what: string): string {
  const v = p[key];
  if (v === undefined || v.trim() === "") throw new BadWebhook(`${what} without ${key}`);
  return v;
}

function smsApiInbound(p: Params): ProviderEvent {
  const messageId = required(p, "messageId", "Vonage inbound SMS");
  const msisdn = required(p, "msisdn", "Vonage inbound SMS");
  const to = required(p, "to", "Vonage inbound SMS");
  const type = p.type ?? "text";
  if (type === "binary")
    return { kind: "ignored", reason: `Vonage binary SMS ${messageId} has no text to forward` };
  if (p.text === undefined)
    throw new BadWebhook(`Vonage inbound SMS ${messageId} of type ${type} without text`);
  const meta: Record<string, unknown> = { type };
  if (p.keyword) meta.keyword = p.keyword;
  // Parts of a long SMS arrive separately; each is its own message, the concat info says how they belong.
  if (p.concat === "true" || p["concat-ref"] !== undefined) {
    meta.concat = { ref: p["concat-ref"], total: Number(p["concat-total"]), part: Number(p["concat-part"]) };
  }
  const msg: InboundMessage = {
    kind: "message",
    providerMessageId: messageId,
    from: normaliseSender(msisdn),
    to: ourNumber(to),
    body: p.text,
    attachments: [],
    meta,
  };
  const at = vonageTime(p["message-timestamp"], p.timestamp);
  if (at) msg.createdAt = at;
  return msg;
}

/** DLR `status` → our state. accepted: handed on, not yet delivered; buffered: held for a later attempt. */
const DLR_STATES: Record<string, DeliveryState> = {
  delivered: "delivered",
  accepted: "sent",
  buffered: "sending",
  expired: "undelivered",
  undelivered: "undelivered",
  failed: "failed",
  rejected: "failed",
  unknown: "unknown",
};

/** DLR err-code meanings (developer.vonage.com, "Delivery receipts"). 9 is also how an opted-out recipient shows. */
export const DLR_ERRORS: Record<string, string> = {
  "1": "Unknown: not delivered, no reason could be determined",
  "2": "Absent Subscriber - Temporary",
  "3": "Absent Subscriber - Permanent",
  "4": "Call Barred by User",
  "5": "Portability Error",
  "6": "Anti-Spam Rejection",
  "7": "Handset Busy",
  "8": "Network Error",
  "9": "Illegal Number: the recipient asked not to receive messages from this sender (opted out)",
  "10": "Illegal Message",
  "11": "Unroutable",
  "12": "Destination Unreachable",
  "13": "Subscriber Age Restriction",
  "14": "Number Blocked by Carrier",
  "15": "Prepaid Insufficient Funds",
  "16": "Gateway Quota Exceeded",
  "50": "Entity Filter",
  "51": "Header Filter",
  "52": "Content Filter",
  "53": "Consent Filter",
  "54": "Regulation Error",
  "99": "General Error",
};

function smsApiReceipt(p: Params): StatusUpdate {
  const messageId = required(p, "messageId", "Vonage delivery receipt");
  const status = (p.status ?? "").toLowerCase();
  const update: StatusUpdate = {
    kind: "status",
    providerMessageId: messageId,
    state: DLR_STATES[status] ?? "unknown",
    providerStatus: p.status ?? "",
  };
  const err = p["err-code"];
  if (err !== undefined && err !== "" && err !== "0") {
    update.errorCode = err;
    update.errorMessage = DLR_ERRORS[err] ?? `Vonage DLR error ${err}`;
  }
  const at = vonageTime(p["message-timestamp"], p.timestamp);
  if (at) update.at = at;
  return update;
}

function str(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (typeof v === "number") return String(v);
  return undefined;
}

/** Messages API v1 sends numbers as strings; the older v0.1 format as `{type, number}`. */
function number(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && "number" in v) return str((v as { number: unknown }).number);
  return undefined;
}

const MEDIA_KEYS = ["image", "audio", "video", "file", "vcard"] as const;

function messagesInbound(o: Record<string, unknown>): ProviderEvent {
  const uuid = str(o.message_uuid)!;
  const channel =
    str(o.channel) ?? (o.from && typeof o.from === "object" ? str((o.from as { type?: unknown }).type) : "");
  if (channel !== "sms" && channel !== "mms") {
    return {
      kind: "ignored",
      reason: `Vonage ${channel || "unknown"} channel message ${uuid}: only sms and mms are bridged`,
    };
  }
  const from = number(o.from);
  const to = number(o.to);
  if (!from || !to) throw new BadWebhook(`Vonage Messages API message ${uuid} without from/to`);
  const attachments: Attachment[] = [];
  let caption: string | undefined;
  for (const key of MEDIA_KEYS) {
    const media = o[key];
    if (media && typeof media === "object") {
      const url = str((media as { url?: unknown }).url);
      if (!url) throw new BadWebhook(`Vonage ${channel} ${key} in ${uuid} without url`);
      attachments.push({ url });
      caption ??= str((media as { caption?: unknown }).caption);
    }
  }
  const text = str(o.text);
  if (text === undefined && attachments.length === 0) {
    throw new BadWebhook(
      `Vonage ${channel} message ${uuid} (message_type ${String(o.message_type)}) has neither text nor media`,
    );
  }
  const meta: Record<string, unknown> = { channel, messageType: str(o.message_type) };
  const sms = o.sms as { num_messages?: unknown; keyword?: unknown } | undefined;
  if (sms && typeof sms === "object") {
    if (sms.num_messages !== undefined) meta.numMessages = Number(sms.num_messages);
    if (typeof sms.keyword === "string") meta.keyword = sms.keyword;
  }
  const msg: InboundMessage = {
    kind: "message",
    providerMessageId: uuid,
    from: normaliseSender(from),
    to: ourNumber(to),
    body: text ?? caption ?? "",
    attachments,
    meta,
  };
  const at = isoTime(o.timestamp);
  if (at) msg.createdAt = at;
  return msg;
}

const MESSAGE_STATES: Record<string, DeliveryState> = {
  submitted: "sent",
  delivered: "delivered",
  read: "read",
  rejected: "failed",
  undeliverable: "undelivered",
};

function messagesStatus(o: Record<string, unknown>): StatusUpdate {
  const status = str(o.status) ?? "";
  const update: StatusUpdate = {
    kind: "status",
    providerMessageId: str(o.message_uuid)!,
    state: MESSAGE_STATES[status] ?? "unknown",
    providerStatus: status,
  };
  const error = o.error as { type?: unknown; title?: unknown; detail?: unknown } | undefined;
  if (error && typeof error === "object") {
    // `title` carries the numeric code (e.g. 1000), `type` the same code as a URL fragment.
    const code = str(error.title) ?? str(error.type)?.split("#")[1];
    if (code) update.errorCode = code;
    const detail = str(error.detail);
    if (detail) update.errorMessage = detail;
  }
  const at = isoTime(o.timestamp);
  if (at) update.at = at;
  return update;
}

/** All Vonage webhooks, inbound and status alike. */
export function parseWebhook(req: RawRequest): ProviderEvent[] {
  const json = jsonBody(req);
  if (json && typeof json.message_uuid === "string") {
    return [typeof json.status === "string" ? messagesStatus(json) : messagesInbound(json)];
  }
  const p = smsApiParams(req);
  if (p.status !== undefined) return [smsApiReceipt(p)];
  if (p.msisdn !== undefined || p.messageId !== undefined) return [smsApiInbound(p)];
  throw new BadWebhook(
    "not a Vonage webhook: expected an inbound SMS (msisdn, to, messageId, text), a delivery receipt (messageId, status) or a Messages API JSON body (message_uuid)",
  );
}
