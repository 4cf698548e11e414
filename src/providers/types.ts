import type { Logger } from "pino";
import type { z } from "zod";
import type { HttpClient } from "./http.js";

/**
 * The one interface every SMS provider implements (modelled on nyaruka/courier's handlers). Everything a
 * provider-specific module knows stays in `src/providers/<type>/`; the bridge sees only this.
 */

/** A webhook call exactly as the provider made it. */
export interface RawRequest {
  method: string;
  /** The full public URL the provider called (scheme, host, port if any, path and query). */
  url: string;
  /** Header names lower-cased, as Node gives them. */
  headers: Record<string, string | string[] | undefined>;
  /** Raw request body, unparsed. GET webhooks have an empty body and carry their data in the URL. */
  body: Buffer;
}

export type Verdict =
  | { ok: true }
  /** `reason` is safe to return and log; `expected` may say what was expected (a signature, never a secret). */
  | { ok: false; status: 401 | 403; reason: string; expected?: string };

export interface Attachment {
  url: string;
  contentType?: string;
}

/** A message a customer sent, normalised. Phone numbers are E.164. */
export interface InboundMessage {
  kind: "message";
  /** The provider's own id for this message; the helpdesk id becomes `<type>:<providerMessageId>`. */
  providerMessageId: string;
  from: string;
  to: string;
  body: string;
  attachments: Attachment[];
  /** When the provider says the message was received (ISO 8601), if it says. */
  createdAt?: string;
  /** Provider-side metadata worth keeping (segments, carrier…); stored, never forwarded. */
  meta?: Record<string, unknown>;
}

export type DeliveryState =
  | "queued"
  | "sending"
  | "sent"
  | "delivered"
  | "undelivered"
  | "failed"
  | "read"
  | "unknown";

/** A delivery report for a message we sent. */
export interface StatusUpdate {
  kind: "status";
  providerMessageId: string;
  state: DeliveryState;
  /** The provider's raw status word, e.g. Twilio "undelivered", Vonage "expired". */
  providerStatus: string;
  errorCode?: string;
  errorMessage?: string;
  at?: string;
}

/** Something that must be answered but carries no message (e.g. an SNS subscription confirmation). */
export interface IgnoredEvent {
  kind: "ignored";
  reason: string;
}

export type ProviderEvent = InboundMessage | StatusUpdate | IgnoredEvent;

/** The HTTP answer a provider expects to a webhook, e.g. Twilio's empty TwiML. */
export interface HttpAnswer {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

/** Thrown by `parse` when the request verified but its content is not a usable webhook (→ 400, nothing stored). */
export class BadWebhook extends Error {
  override name = "BadWebhook";
}

export interface OutgoingSms {
  /** The channel number (E.164) or the provider's sender id. */
  from: string;
  /** Customer number, E.164. */
  to: string;
  body: string;
  /** Public media URLs; providers without MMS get them appended to the body as links. */
  mediaUrls: string[];
  /** Where the provider should post delivery reports for this message (the channel's status route). */
  statusCallbackUrl?: string;
  /** Stable key for providers that support send idempotency. */
  idempotencyKey?: string;
}

export type SendResult =
  /** `providerIds`: one per part when the provider split the text or we did. */
  | { kind: "sent"; providerId: string; providerIds?: string[] }
  | { kind: "retryable"; reason: string; retryAfterMs?: number; code?: string }
  | { kind: "failed"; reason: string; code: string }
  | { kind: "optedOut"; reason: string; code: string };

export interface SendOptions {
  signal: AbortSignal;
}

/** Credentials and hosts for streaming a provider's media to the helpdesk through the bridge. */
export interface MediaAccess {
  /** Only URLs on these hosts are fetched (exact host names, or ".example.com" for a domain and its subdomains). */
  hosts: string[];
  /** Headers (e.g. Basic auth) the bridge sends when fetching; URLs need the proxy only when this is set. */
  headers(url: URL): Record<string, string>;
}

export interface ProviderAdapter {
  readonly type: string;
  verify(req: RawRequest): Verdict | Promise<Verdict>;
  /** Throws BadWebhook for content that cannot be a webhook. Inbound and status routes both call it. */
  parse(req: RawRequest): ProviderEvent[];
  /** The answer after the events were committed; default `200 {"ok":true}`. */
  ack?(events: ProviderEvent[]): HttpAnswer;
  send(sms: OutgoingSms, opts: SendOptions): Promise<SendResult>;
  /** Set when the provider's media URLs need credentials or expire: the helpdesk then gets proxy URLs. */
  media?: MediaAccess;
  /** Longest body the provider accepts in one request, in characters; longer bodies are split by the bridge. */
  maxBodyLength?: number;
}

export interface ProviderContext {
  /** HTTP client for the provider's API (keep-alive, deadline from SendOptions.signal). */
  http: HttpClient;
  log: Logger;
  now(): Date;
  /** The channel's public URLs, for providers that sign or register them. */
  urls: { inbound: string; status: string };
}

export interface ProviderFactory<S extends z.ZodType = z.ZodType> {
  type: string;
  /** Validates the `provider:` block of a channel (without `type`); errors name the field. */
  config: S;
  /** Config keys that are secrets: redacted from logs and `check-config` output. */
  secretKeys: string[];
  create(config: z.infer<S>, ctx: ProviderContext): ProviderAdapter;
}
