import { createHash } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Logger } from "pino";
import { requireSigned } from "../protocol/fastify.js";
import { type StaffReply, validateStaffReply } from "../protocol/payloads.js";
import type { Store } from "../store/store.js";
import type { Channel } from "./channels.js";
import type { Metrics } from "./metrics.js";
import { type SendAnswer, sendThroughProvider } from "./send.js";

export interface ReplyDeps {
  store: Store;
  channels: Map<string, Channel>;
  metrics: Metrics;
  log: Logger;
  now: () => number;
  deadlineMs: number;
}

const WAIT_STEP_MS = 50;

/**
 * The helpdesk's staff-reply webhook, answered synchronously: verify → idempotency (same channel and body
 * bytes within 24 h → the stored answer, never a second SMS) → opt-out → provider send under a deadline.
 */
export function registerReply(scope: FastifyInstance, deps: ReplyDeps): void {
  scope.post(
    "/channels/:id/reamaze",
    {
      preHandler: requireSigned<StaffReply>({
        validate: validateStaffReply,
        secrets: (req) => deps.channels.get((req.params as { id: string }).id)?.config.reamaze.secrets,
        unknown: () => "unknown channel",
        // The channel is in the URL: check the signature on the raw bytes before parsing anything.
        verifyBeforeParse: true,
      }),
    },
    async (req, reply) => {
      const started = performance.now();
      const ch = deps.channels.get((req.params as { id: string }).id)!;
      const answer = await handle(req, ch);
      deps.metrics.replyLatency.observe(
        { channel: ch.id, status: String(answer.status) },
        (performance.now() - started) / 1000,
      );
      return send(reply, answer);
    },
  );

  async function handle(
    req: FastifyRequest,
    ch: Channel,
  ): Promise<{ status: number; body: string; retryAfterMs?: number }> {
    const payload = req.signed!.payload as StaffReply;
    const bytes = req.signed!.bytes;
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

function send(reply: FastifyReply, a: { status: number; body: string; retryAfterMs?: number }) {
  if (a.retryAfterMs !== undefined)
    reply.header("retry-after", String(Math.max(1, Math.ceil(a.retryAfterMs / 1000))));
  return reply.code(a.status).type("application/json").send(a.body);
}
