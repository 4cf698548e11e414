import { formatIsoTimestamp, type IncomingSms } from "../protocol/payloads.js";
import type { Channel } from "./channels.js";

/** The helpdesk id of a provider message: stable, so every retry and duplicate is idempotent downstream. */
export function helpdeskId(provider: string, providerMessageId: string): string {
  return `${provider}:${providerMessageId}`;
}

/** Serialises the helpdesk-bound SMS once; these exact bytes are stored, signed and sent. */
export function helpdeskPayload(
  channel: Channel,
  m: {
    id: string;
    direction: "inbound" | "outbound";
    customer: string;
    channelNumber: string;
    body: string;
    attachments: string[];
    threadId: string | undefined;
    createdAt: number;
  },
): Buffer {
  const name = channel.config.name;
  const us = name ? { name, phone: m.channelNumber } : { phone: m.channelNumber };
  const them = { phone: m.customer };
  const payload: IncomingSms = {
    id: m.id,
    direction: m.direction,
    to: m.direction === "inbound" ? us : them,
    from: m.direction === "inbound" ? them : us,
    body: m.body,
    ...(m.attachments.length ? { attachments: m.attachments } : {}),
    ...(m.threadId ? { thread_id: m.threadId } : {}),
    created_at: formatIsoTimestamp(new Date(m.createdAt)),
  };
  return Buffer.from(JSON.stringify(payload), "utf8");
}
