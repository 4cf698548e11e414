import type { IncomingHttpHeaders } from "node:http";
import type { Logger } from "pino";
import { maskPhone } from "../core/phone.js";
import {
  BadWebhook,
  type HttpAnswer,
  type InboundMessage,
  type ProviderEvent,
  type StatusUpdate,
} from "../providers/types.js";
import type { Store } from "../store/store.js";
import type { Channel } from "./channels.js";
import type { Forwarder } from "./forwarder.js";
import type { Metrics } from "./metrics.js";
import { helpdeskId, helpdeskPayload } from "./payload.js";
import { errorAnswer, type ProviderRoute, type WebhookRequest } from "./webhook-http.js";

export interface InboundDeps {
  store: Store;
  channels: Map<string, Channel>;
  metrics: Metrics;
  log: Logger;
  now: () => number;
  /** The URL the provider called, from the request target and headers (public-url.ts). */
  publicUrl: (req: { url: string; headers: IncomingHttpHeaders }) => string;
  /** Attachment URL as the helpdesk should see it (a media-proxy URL when the provider's need credentials). */
  attachmentUrl: (ch: Channel, url: string) => string;
  /**
   * The running forwarder, if any: a fresh message is inserted already claimed for it (Forwarder.reserve);
   * one stored unclaimed wakes it to claim.
   */
  forwarder: () => Pick<Forwarder, "wake" | "reserve" | "deliver" | "release"> | undefined;
  maskPhones: boolean;
}

const OK: HttpAnswer = { status: 200, headers: { "content-type": "application/json" }, body: '{"ok":true}' };

/**
 * Provider webhooks: verify → parse → one transaction (dedupe, message, outbox) → the answer for the provider.
 * The provider hears 2xx only after the commit; if the database is down it hears 503 and retries. Framework-
 * free: webhook-http.ts serves it straight from node:http (the hottest route; see there for why).
 */
export function inboundHandler(
  deps: InboundDeps,
): (route: ProviderRoute, channelId: string, req: WebhookRequest) => Promise<HttpAnswer> {
  return async (route, channelId, req) => {
    const ch = deps.channels.get(channelId);
    if (!ch) return errorAnswer(404, `unknown channel "${channelId}"`);
    const raw = { method: req.method, url: deps.publicUrl(req), headers: req.headers, body: req.body };
    const verdict = await ch.adapter.verify(raw);
    if (!verdict.ok) {
      deps.metrics.inbound.inc({ channel: ch.id, result: "rejected" });
      deps.log.warn(
        { channel: ch.id, route, reason: verdict.reason, expected: verdict.expected, url: raw.url },
        "provider webhook failed verification",
      );
      return errorAnswer(verdict.status, verdict.reason);
    }
    let events: ProviderEvent[];
    try {
      events = ch.adapter.parse(raw);
    } catch (e) {
      if (e instanceof BadWebhook) {
        deps.metrics.inbound.inc({ channel: ch.id, result: "rejected" });
        return errorAnswer(400, e.message);
      }
      throw e;
    }
    try {
      // One event, nearly always: no array of promises for it.
      if (events.length === 1) await store(deps, ch, events[0] as ProviderEvent);
      else await Promise.all(events.map((ev) => store(deps, ch, ev)));
    } catch (err) {
      deps.metrics.inbound.inc({ channel: ch.id, result: "error" });
      deps.log.error(
        { err, channel: ch.id },
        "could not store a provider webhook; answering 503 so the provider retries",
      );
      return errorAnswer(503, "storage unavailable; nothing was stored, retry later", { "retry-after": "5" });
    }
    return ch.adapter.ack?.(events) ?? OK;
  };

  function store(d: InboundDeps, ch: Channel, ev: ProviderEvent): Promise<void> | undefined {
    return ev.kind === "message"
      ? storeMessage(d, ch, ev)
      : ev.kind === "status"
        ? storeStatus(d, ch, ev)
        : undefined;
  }
  async function storeMessage(d: InboundDeps, ch: Channel, m: InboundMessage) {
    const received = d.now();
    const parsed = m.createdAt ? Date.parse(m.createdAt) : Number.NaN;
    const createdAt = Number.isNaN(parsed) ? received : parsed;
    const id = helpdeskId(ch.adapter.type, m.providerMessageId);
    const attachments = m.attachments.map((a) => d.attachmentUrl(ch, a.url));
    const forwarder = d.forwarder();
    const claim = forwarder?.reserve(ch.id);
    const r = await d.store
      .ingest({
        channelId: ch.id,
        provider: ch.adapter.type,
        providerMessageId: m.providerMessageId,
        customer: m.from,
        channelNumber: m.to,
        body: m.body,
        createdAt,
        receivedAt: received,
        ...(m.meta ? { meta: m.meta } : {}),
        threading: ch.config.threading,
        payload: (threadId) =>
          helpdeskPayload(ch, {
            id,
            direction: "inbound",
            customer: m.from,
            channelNumber: m.to,
            body: m.body,
            attachments,
            threadId,
            createdAt,
          }),
        ...(claim ? { claim } : {}),
      })
      .catch((err: unknown) => {
        if (claim) forwarder?.release(ch.id);
        throw err;
      });
    // Durable now: a row claimed at insert goes straight to the forwarder; otherwise the loop claims it.
    if (r.status === "stored" && r.claimed) forwarder?.deliver(r.claimed);
    else if (claim) forwarder?.release(ch.id);
    d.metrics.inbound.inc({ channel: ch.id, result: r.status });
    if (r.status === "stored") {
      if (!r.claimed) forwarder?.wake();
      // Per-message lines are debug: at thousands per second they would cost more than the work they log
      // (even building the line when debug is off).
      if (d.log.isLevelEnabled("debug"))
        d.log.debug(
          {
            channel: ch.id,
            id,
            from: d.maskPhones ? maskPhone(m.from) : m.from,
            thread: r.threadId,
            keyword: r.keyword,
          },
          "customer message stored",
        );
    }
  }

  async function storeStatus(d: InboundDeps, ch: Channel, s: StatusUpdate) {
    const at = s.at ? Date.parse(s.at) : d.now();
    const found = await d.store.recordDelivery(ch.id, ch.adapter.type, s.providerMessageId, {
      state: s.state,
      providerStatus: s.providerStatus,
      ...(s.errorCode || s.errorMessage
        ? { error: [s.errorCode, s.errorMessage].filter(Boolean).join(": ") }
        : {}),
      at: Number.isNaN(at) ? d.now() : at,
    });
    d.metrics.deliveryReports.inc({ channel: ch.id, state: s.state });
    d.metrics.inbound.inc({ channel: ch.id, result: "status" });
    const level = s.state === "failed" || s.state === "undelivered" ? "warn" : "debug";
    d.log[level](
      {
        channel: ch.id,
        providerMessageId: s.providerMessageId,
        state: s.state,
        error: s.errorCode,
        known: found,
      },
      "delivery report",
    );
  }
}
