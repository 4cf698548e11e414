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
import { type Params, paramsFrom } from "./signature.js";

/**
 * Plivo's webhooks: the message_url of an application (incoming SMS/MMS,
 * https://www.plivo.com/docs/messaging/api/message/handling-incoming) and the `url` given when sending (status
 * callbacks, https://www.plivo.com/docs/messaging/api/message/message-status-callbacks). Both arrive as
 * form fields on POST, or as query parameters when the method configured is GET. Numbers come without '+'.
 */

function header(req: RawRequest, name: string): string {
  const v = req.headers[name];
  return (Array.isArray(v) ? v[0] : v) ?? "";
}

/**
 * The webhook's parameters: the form (or JSON) body for POST, the query string for GET or an empty body.
 * Throws BadWebhook for a body that is neither.
 */
export function webhookParams(req: RawRequest): Params {
  const text = req.body.toString("utf8");
  if (req.method.toUpperCase() === "GET" || text.trim() === "") {
    let url: URL;
    try {
      url = new URL(req.url);
    } catch {
      throw new BadWebhook("Plivo webhook has no body and its URL cannot be read");
    }
    return paramsFrom(url.searchParams);
  }
  const type = header(req, "content-type").toLowerCase();
  if (type.includes("json") || (!type.includes("form") && text.trimStart().startsWith("{"))) {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new BadWebhook(`Plivo webhook body is not valid JSON: ${(e as Error).message}`);
    }
    if (!json || typeof json !== "object" || Array.isArray(json)) {
      throw new BadWebhook("Plivo webhook JSON body must be an object of fields");
    }
    const out: Params = {};
    for (const [k, v] of Object.entries(json)) {
      if (v === null || v === undefined) continue;
      out[k] = Array.isArray(v) ? v.map(String) : [typeof v === "object" ? JSON.stringify(v) : String(v)];
    }
    return out;
  }
  return paramsFrom(new URLSearchParams(text));
}

function first(p: Params, key: string): string | undefined {
  const v = p[key]?.[0]?.trim();
  return v ? v : undefined;
}

/** Plivo timestamps look like "2024-03-04 10:20:30.123456" (UTC) or carry an offset; → ISO 8601. */
export function plivoTime(raw: string | undefined): string | undefined {
  if (!raw) return undefined;
  const m = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?\s*(Z|[+-]\d{2}:?\d{2})?$/.exec(
    raw.trim(),
  );
  if (!m) return undefined;
  const ms = (m[3] ?? "").padEnd(3, "0").slice(0, 3);
  let zone = m[4] ?? "Z";
  if (zone !== "Z" && !zone.includes(":")) zone = `${zone.slice(0, 3)}:${zone.slice(3)}`;
  const t = Date.parse(`${m[1]}T${m[2]}.${ms}${zone}`);
  return Number.isNaN(t) ? undefined : new Date(t).toISOString();
}

/** Plivo's message error codes (https://www.plivo.com/docs/messaging/troubleshooting/error-codes). */
export const ERROR_REASONS: Record<string, string> = {
  "10": "Invalid message",
  "20": "Network error",
  "30": "Spam detected",
  "40": "Invalid source number",
  "50": "Invalid destination number",
  "60": "Loop detected",
  "70": "Destination permanently unavailable",
  "80": "Destination temporarily unavailable",
  "90": "No route available",
  "100": "Prohibited by carrier",
  "110": "Message too long",
  "200": "Source number blocked by STOP from destination number (the recipient opted out)",
  "201": "Outbound messages from US toll-free numbers to Canadian destination numbers are blocked",
  "300": "Failed to dispatch message",
  "420": "Message expired",
  "450": "Destination country barred (enable it in the console's Geo Permissions)",
  "900": "Insufficient credit",
  "910": "Account disabled",
  "1000": "Unknown error",
};

/** Plivo's error code for a recipient who opted out (replied STOP). */
export const OPTED_OUT_CODE = "200";

const STATES: Record<string, DeliveryState> = {
  queued: "queued",
  sent: "sent",
  delivered: "delivered",
  undelivered: "undelivered",
  failed: "failed",
  // Older callbacks: the carrier refused the message (regulations).
  rejected: "failed",
  read: "read",
};

function statusEvent(p: Params): StatusUpdate {
  const status = first(p, "Status") ?? "";
  // ParentMessageUUID is documented as "same as MessageUUID" for now; when it differs it names the message we sent.
  const id = first(p, "ParentMessageUUID") ?? first(p, "MessageUUID");
  if (!id) throw new BadWebhook("Plivo status callback has no MessageUUID");
  const word = status.toLowerCase();
  const state = STATES[word] ?? "unknown";
  const code = first(p, "ErrorCode");
  const hasError = code !== undefined && !/^0+$/.test(code);
  const at =
    (state === "delivered" || state === "undelivered" || state === "read"
      ? plivoTime(first(p, "DeliveryReportTime"))
      : undefined) ??
    (state === "sent" || state === "failed" ? plivoTime(first(p, "SentTime")) : undefined) ??
    (state === "queued" ? plivoTime(first(p, "QueuedTime")) : undefined) ??
    plivoTime(first(p, "MessageTime"));
  return {
    kind: "status",
    providerMessageId: id,
    state,
    providerStatus: status,
    ...(hasError ? { errorCode: code, errorMessage: ERROR_REASONS[code] ?? `Plivo error ${code}` } : {}),
    ...(at ? { at } : {}),
  };
}

/** Media0…MediaN (Plivo's support article) or Media1…MediaN (its API reference), in index order. */
function attachments(p: Params): Attachment[] {
  const media = Object.keys(p)
    .map((k) => /^Media(\d+)$/.exec(k))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ index: Number(m[1]), url: first(p, m[0]) }))
    .filter((m): m is { index: number; url: string } => m.url !== undefined)
    .sort((a, b) => a.index - b.index);
  // WhatsApp media carry their type in MimeType; MMS media carry none.
  const mime = first(p, "MimeType");
  return media.map((m) => (mime && media.length === 1 ? { url: m.url, contentType: mime } : { url: m.url }));
}

const META_KEYS = [
  "Type",
  "Units",
  "TotalRate",
  "TotalAmount",
  "MessageIntent",
  "PowerpackUUID",
  "MediaCount",
];

function messageEvent(p: Params): InboundMessage {
  const id = first(p, "MessageUUID");
  const fromRaw = first(p, "From");
  const toRaw = first(p, "To");
  const missing = [!id && "MessageUUID", !fromRaw && "From", !toRaw && "To"].filter(Boolean);
  if (missing.length > 0 || !id || !fromRaw || !toRaw) {
    throw new BadWebhook(
      `Plivo message webhook is missing ${missing.join(", ")}; point the Plivo application's message_url at ` +
        "/channels/<id>/inbound and the send callback at /channels/<id>/status",
    );
  }
  const to = toE164(toRaw);
  if (!to) throw new BadWebhook(`Plivo message webhook "To" is not a phone number: "${toRaw.slice(0, 32)}"`);
  const from = normaliseSender(fromRaw);
  // SMS carry the text in Text, MMS and WhatsApp in Body.
  const body = p.Text?.[0] ?? p.Body?.[0] ?? "";
  const media = attachments(p);
  const declared = first(p, "MediaCount");
  if (declared !== undefined && !/^\d+$/.test(declared)) {
    throw new BadWebhook(`Plivo message webhook MediaCount must be a number, got "${declared.slice(0, 16)}"`);
  }
  const meta: Record<string, unknown> = {};
  for (const k of META_KEYS) {
    const v = first(p, k);
    if (v !== undefined) meta[k] = v;
  }
  const createdAt = plivoTime(first(p, "MessageTime"));
  return {
    kind: "message",
    providerMessageId: id,
    from,
    to,
    body,
    attachments: media,
    ...(createdAt ? { createdAt } : {}),
    ...(Object.keys(meta).length > 0 ? { meta } : {}),
  };
}

/** One event per webhook: a status update when it carries `Status`, else an incoming message. */
export function parsePlivoWebhook(req: RawRequest): ProviderEvent[] {
  const p = webhookParams(req);
  if (Object.keys(p).length === 0) throw new BadWebhook("Plivo webhook carries no fields");
  if (first(p, "Status") !== undefined) return [statusEvent(p)];
  return [messageEvent(p)];
}
