import { z } from "zod";
import { normaliseSender } from "../../core/phone.js";
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
 * Telnyx API v2 messaging webhooks: JSON `{data:{event_type, id, occurred_at, payload}, meta?}`.
 * `message.received` is an inbound SMS/MMS; `message.sent`, `message.finalized` (and `message.read` for
 * channels that report it) are delivery reports for a message we sent, the state in `payload.to[].status`.
 * Field names follow the API reference (developers.telnyx.com/api-reference/callbacks) and the official
 * SDK's `MessagingInboundMessagePayload` / `OutboundMessagePayload` types.
 */

const address = z.object({
  phone_number: z.string().nullish(),
  status: z.string().nullish(),
  carrier: z.string().nullish(),
  line_type: z.string().nullish(),
});

const apiError = z.object({
  code: z.union([z.string(), z.number()]).nullish(),
  title: z.string().nullish(),
  detail: z.string().nullish(),
});

const messagePayload = z.object({
  id: z.string().min(1),
  type: z.string().nullish(),
  direction: z.string().nullish(),
  from: address.nullish(),
  // SMS/MMS carry an array of recipients; WhatsApp one E.164 string.
  to: z.union([z.array(address), z.string()]).nullish(),
  text: z.string().nullish(),
  media: z.array(z.object({ url: z.string().min(1), content_type: z.string().nullish() })).nullish(),
  received_at: z.string().nullish(),
  sent_at: z.string().nullish(),
  completed_at: z.string().nullish(),
  errors: z.array(apiError).nullish(),
  parts: z.number().nullish(),
  encoding: z.string().nullish(),
  messaging_profile_id: z.string().nullish(),
  autoresponse_type: z.string().nullish(),
});

const envelope = z.object({
  data: z.object({
    event_type: z.string().min(1),
    id: z.string().nullish(),
    occurred_at: z.string().nullish(),
    payload: z.unknown(),
  }),
});

type MessagePayload = z.infer<typeof messagePayload>;

const STATUS_EVENTS = new Set(["message.sent", "message.finalized", "message.read"]);

/**
 * Telnyx recipient statuses (OutboundMessagePayload.To.status) → ours. `delivery_failed` means the carrier
 * could not deliver (undelivered); `sending_failed` that it never left Telnyx (failed). `delivery_unconfirmed`
 * means the carrier took it and sent no receipt, so "sent" is the last thing known.
 */
const STATES: Record<string, DeliveryState> = {
  queued: "queued",
  sending: "sending",
  sent: "sent",
  delivered: "delivered",
  delivery_unconfirmed: "sent",
  delivery_failed: "undelivered",
  expired: "undelivered",
  sending_failed: "failed",
  read: "read",
};

export function mapTelnyxStatus(status: string): DeliveryState {
  return STATES[status] ?? "unknown";
}

function issues(err: z.ZodError, prefix: string): string {
  return err.issues
    .slice(0, 5)
    .map((i) => `${[prefix, ...i.path.map(String)].join(".")}: ${i.message}`)
    .join("; ");
}

/** ISO 8601 in UTC, or undefined for a missing or unreadable time (a bad timestamp must not lose a message). */
function isoTime(...candidates: (string | null | undefined)[]): string | undefined {
  for (const c of candidates) {
    if (!c) continue;
    const t = Date.parse(c);
    if (!Number.isNaN(t)) return new Date(t).toISOString();
  }
  return undefined;
}

function firstRecipient(p: MessagePayload): z.infer<typeof address> | undefined {
  if (typeof p.to === "string") return { phone_number: p.to };
  return p.to?.[0];
}

export function parseTelnyxWebhook(req: Pick<RawRequest, "body">): ProviderEvent[] {
  const text = req.body.toString("utf8");
  if (!text.trim()) throw new BadWebhook("empty body: Telnyx API v2 webhooks are JSON");
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new BadWebhook(
      "body is not JSON: Telnyx API v2 webhooks are JSON; set the messaging profile's webhook API version to 2",
    );
  }
  const env = envelope.safeParse(json);
  if (!env.success) {
    throw new BadWebhook(
      `not a Telnyx API v2 webhook (expected {"data":{"event_type",…,"payload"}}): ${issues(env.error, "body")}`,
    );
  }
  const data = env.data.data;
  const isInbound = data.event_type === "message.received";
  if (!isInbound && !STATUS_EVENTS.has(data.event_type)) {
    return [
      { kind: "ignored", reason: `Telnyx event ${data.event_type} carries no message or delivery report` },
    ];
  }
  const parsed = messagePayload.safeParse(data.payload);
  if (!parsed.success)
    throw new BadWebhook(`Telnyx ${data.event_type}: ${issues(parsed.error, "data.payload")}`);
  const p = parsed.data;
  return [isInbound ? inbound(p, data.id, data.occurred_at) : status(p, data.event_type, data.occurred_at)];
}

function inbound(
  p: MessagePayload,
  eventId: string | null | undefined,
  occurredAt?: string | null,
): ProviderEvent {
  const type = p.type?.toUpperCase();
  // The bridge carries SMS; RCS and WhatsApp on the same profile are acknowledged, not forwarded.
  if (type && type !== "SMS" && type !== "MMS") {
    return { kind: "ignored", reason: `Telnyx ${type} message ${p.id} is not SMS/MMS` };
  }
  const from = p.from?.phone_number?.trim();
  if (!from) throw new BadWebhook("Telnyx message.received: data.payload.from.phone_number is missing");
  const to = firstRecipient(p)?.phone_number?.trim();
  if (!to) throw new BadWebhook("Telnyx message.received: data.payload.to[0].phone_number is missing");
  const attachments: Attachment[] = (p.media ?? []).map((m) =>
    m.content_type ? { url: m.url, contentType: m.content_type } : { url: m.url },
  );
  const msg: InboundMessage = {
    kind: "message",
    providerMessageId: p.id,
    from: normaliseSender(from),
    to: normaliseSender(to),
    body: p.text ?? "",
    attachments,
    meta: compact({
      type: p.type,
      parts: p.parts,
      encoding: p.encoding,
      messagingProfileId: p.messaging_profile_id,
      eventId,
      carrier: p.from?.carrier,
      lineType: p.from?.line_type,
      // START/STOP/HELP: Telnyx already answered and (for STOP) blocks further sends to this number.
      autoresponseType: p.autoresponse_type,
    }),
  };
  const createdAt = isoTime(p.received_at, occurredAt);
  if (createdAt) msg.createdAt = createdAt;
  return msg;
}

function status(p: MessagePayload, eventType: string, occurredAt?: string | null): StatusUpdate {
  const recipient = firstRecipient(p);
  const raw = recipient?.status ?? (eventType === "message.read" ? "read" : undefined);
  if (!raw) throw new BadWebhook(`Telnyx ${eventType}: data.payload.to[0].status is missing`);
  const update: StatusUpdate = {
    kind: "status",
    providerMessageId: p.id,
    state: mapTelnyxStatus(raw),
    providerStatus: raw,
  };
  const err = p.errors?.[0];
  if (err) {
    if (err.code !== undefined && err.code !== null) update.errorCode = String(err.code);
    const text = [err.title, err.detail].filter(Boolean).join(": ");
    if (text) update.errorMessage = text;
  }
  const at = isoTime(occurredAt, p.completed_at, p.sent_at);
  if (at) update.at = at;
  return update;
}

function compact(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== null));
}
