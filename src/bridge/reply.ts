import { createHash } from "node:crypto";
import type { Logger } from "pino";
import { type StaffReply, validateStaffReply } from "../protocol/payloads.js";
import { SIGNATURE_HEADER_LC } from "../protocol/signature.js";
import { checkSigned } from "../protocol/signed.js";
import type { HttpAnswer } from "../providers/types.js";
import type { Store } from "../store/store.js";
import type { Channel } from "./channels.js";
import type { Metrics } from "./metrics.js";
import { type SendAnswer, sendThroughProvider } from "./send.js";
import { errorAnswer, type WebhookRequest } from "./webhook-http.js";

export interface ReplyDeps {
  store: Store;
  channels: Map<string, Channel>;
  metrics: Metrics;
  log: Logger;
  now: () => number;
  deadlineMs: number;
}

const WAIT_STEP_MS = 50;
const JSON_TYPE = { "content-type": "application/json; charset=utf-8" };

/**
 * The helpdesk's staff-reply webhook (`/channels/:id/reamaze`), answered synchronously: verify → idempotency (same
 * channel and body bytes within 24 h → the stored answer, never a second SMS) → opt-out → provider send under a
 * deadline. Framework-free: webhook-http.ts serves it from node:http, beside the provider routes.
 */
export function replyHandler(
  deps: ReplyDeps,
): (channelId: string, req: WebhookRequest) => Promise<HttpAnswer> {
  return async (channelId, req) => {
    const ch = deps.channels.get(channelId);
    // The channel is in the URL: the signature is checked on the raw bytes before anything parses them.
    const checked = await checkSigned(req.body, req.headers[SIGNATURE_HEADER_LC], {
      validate: validateStaffReply,
      secrets: () => ch?.config.reamaze.secrets,
      unknown: () => "unknown channel",
      verifyBeforeParse: true,
    });
    if (!checked.ok) return errorAnswer(checked.status, checked.body);
    const started = performance.now();
    const answer = await handle(checked.payload, req.body, ch as Channel);
    deps.metrics.replyLatency.observe(
      { channel: channelId, status: String(answer.status) },
      (performance.now() - started) / 1000,
    );
    return {
      status: answer.status,
      headers:
        answer.retryAfterMs === undefined
          ? JSON_TYPE
          : { ...JSON_TYPE, "retry-after": String(Math.max(1, Math.ceil(answer.retryAfterMs / 1000))) },
      body: answer.body,
    };
  };

  async function handle(
    payload: StaffReply,
    bytes: Buffer,
    ch: Channel,
  ): Promise<{ status: number; body: string; retryAfterMs?: number }> {
    if (!ch.numbers.has(payload.from.phone)) {
      return json(422, {
        error: `from.phone ${payload.from.phone} is not a number of channel "${ch.id}" (${[...ch.numbers].join(", ")}); check the channel's phone number in the helpdesk.`,
      });
    }
    const hash = createHash("sha256").update(bytes).digest("hex");
    const leaseMs = deps.deadlineMs + 5_000;
    let claimStarted = performance.now();
    let claim = await deps.store.claimReply(ch.id, hash, deps.now(), leaseMs);
    // The same reply arriving while the first copy is being sent: wait for its answer rather than send twice.
    const waitUntil = deps.now() + deps.deadlineMs;
    while (claim.kind === "busy" && deps.now() < waitUntil) {
      await new Promise((r) => setTimeout(r, WAIT_STEP_MS));
      claimStarted = performance.now();
      claim = await deps.store.claimReply(ch.id, hash, deps.now(), leaseMs);
    }
    if (claim.kind === "done") return { status: claim.status, body: claim.body };
    if (claim.kind === "busy")
      return json(503, { error: "The same reply is still being sent; try again in a moment." }, 1_000);
    if (claim.kind === "interrupted") {
      return json(409, {
        error:
          "An earlier attempt at this exact reply was interrupted and may have been sent. Check the customer's phone; edit the text to send it again.",
      });
    }
    const claimed = performance.now();
    let answer: SendAnswer;
    try {
      answer = await sendThroughProvider(
        deps,
        ch,
        {
          from: payload.from.phone,
          to: payload.to.phone,
          body: payload.body,
          mediaUrls: payload.attachments ?? [],
          statusCallbackUrl: ch.urls.status,
          idempotencyKey: hash,
        },
        deps.deadlineMs,
      );
    } catch (err) {
      await deps.store.abandonReply(ch.id, hash).catch(() => {});
      throw err;
    }
    if (!answer.final) {
      await deps.store.abandonReply(ch.id, hash);
      return json(answer.status, answer.body, answer.retryAfterMs);
    }
    const out = json(answer.status, answer.body);
    if (answer.result) {
      const answered = performance.now();
      // The sent message and the stored answer commit together: one disk sync on the reply path.
      await deps.store.recordSent(
        {
          channelId: ch.id,
          direction: "reply",
          provider: ch.adapter.type,
          customer: payload.to.phone,
          channelNumber: payload.from.phone,
          body: payload.body,
          threadId: payload.thread_id ?? null,
          providerIds: answer.result.providerIds ?? [answer.result.providerId],
          createdAt: deps.now(),
          adoptThread: true,
        },
        { hash, status: out.status, body: out.body },
      );
      // Where a sent reply's time went (operations.md): the claim includes the WAL sync before the SMS.
      const phase = deps.metrics.replyPhase;
      phase.observe({ channel: ch.id, phase: "claim" }, (claimed - claimStarted) / 1000);
      phase.observe({ channel: ch.id, phase: "provider" }, (answered - claimed) / 1000);
      phase.observe({ channel: ch.id, phase: "record" }, (performance.now() - answered) / 1000);
      deps.log.info(
        { channel: ch.id, conversation: payload.conversation.slug, providerId: answer.result.providerId },
        "staff reply sent",
      );
    } else {
      deps.log.warn(
        {
          channel: ch.id,
          conversation: payload.conversation.slug,
          status: answer.status,
          reason: answer.body.reason,
        },
        "staff reply not sent",
      );
      await deps.store.finishReply(ch.id, hash, out.status, out.body);
    }
    return out;
  }
}

function json(status: number, body: Record<string, unknown>, retryAfterMs?: number) {
  return { status, body: JSON.stringify(body), ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
}
