import type { Logger } from "pino";
import type { OutgoingSms, SendResult } from "../providers/types.js";
import type { Store } from "../store/store.js";
import type { Channel } from "./channels.js";
import { startDeadline } from "./deadline.js";
import type { Metrics } from "./metrics.js";

/** The HTTP answer for a send that did not go out, in words a staff member understands. */
export interface SendAnswer {
  status: number;
  body: Record<string, unknown>;
  retryAfterMs?: number;
  /** Only for `sent`. */
  result?: Extract<SendResult, { kind: "sent" }>;
  /** true when the SMS may have gone out: the answer must be kept, the send never repeated. */
  final: boolean;
}

/**
 * Sends one SMS through a channel's provider under a deadline and maps the result to the bridge's answers:
 * 201 sent · 422 permanent (opted out, invalid number, provider rejected) · 502/503 retryable · 504 deadline.
 */
export async function sendThroughProvider(
  deps: { store: Store; metrics: Metrics; log: Logger; now: () => number },
  ch: Channel,
  sms: OutgoingSms,
  deadlineMs: number,
): Promise<SendAnswer> {
  const optOut = await deps.store.optOut(ch.id, sms.to);
  if (optOut) {
    deps.metrics.providerSends.inc({ channel: ch.id, provider: ch.adapter.type, outcome: "opted_out" });
    return {
      status: 422,
      final: true,
      body: {
        error: `Not sent: ${sms.to} opted out of SMS from this number (they texted "${optOut.keyword}" on ${new Date(optOut.at).toISOString()}). They can text START to opt back in.`,
        reason: "opted_out",
      },
    };
  }
  // A timer cleared once the provider answered (AbortSignal.timeout's would still fire later, building a
  // DOMException for every reply already answered), on a reused controller (deadline.ts says why).
  const deadline = startDeadline(deadlineMs, () => new DOMException("provider deadline", "TimeoutError"));
  let result: SendResult;
  let timedOut = false;
  try {
    result = await ch.adapter.send(sms, { signal: deadline.signal });
  } catch (err) {
    if (deadline.signal.aborted) result = { kind: "retryable", reason: "deadline" };
    else {
      deps.log.error({ err, channel: ch.id }, "provider adapter threw");
      result = { kind: "retryable", reason: `provider call failed: ${(err as Error).message}` };
    }
  } finally {
    // Read before end(): once ended, the signal may serve another call.
    timedOut = deadline.signal.aborted;
    deadline.end();
  }
  if (timedOut && result.kind !== "sent") {
    // The provider may have accepted it after we stopped waiting: the outcome is unknown, so never resend.
    deps.metrics.providerSends.inc({ channel: ch.id, provider: ch.adapter.type, outcome: "timeout" });
    return {
      status: 504,
      final: true,
      body: {
        error: `The SMS provider did not answer within ${deadlineMs} ms. The message may or may not have been sent; check before sending it again.`,
        reason: "deadline",
      },
    };
  }
  switch (result.kind) {
    case "sent":
      deps.metrics.providerSends.inc({ channel: ch.id, provider: ch.adapter.type, outcome: "sent" });
      return { status: 201, final: true, result, body: { id: result.providerId } };
    case "optedOut":
      deps.metrics.providerSends.inc({ channel: ch.id, provider: ch.adapter.type, outcome: "opted_out" });
      await deps.store.setOptOut(ch.id, sms.to, true, `provider:${result.code}`, deps.now());
      return {
        status: 422,
        final: true,
        body: {
          error: `Not sent: the carrier reports that ${sms.to} has opted out of SMS from this number (${result.reason}, code ${result.code}).`,
          reason: "opted_out",
          code: result.code,
        },
      };
    case "failed":
      deps.metrics.providerSends.inc({ channel: ch.id, provider: ch.adapter.type, outcome: "failed" });
      return {
        status: 422,
        final: true,
        body: {
          error: `Not sent: the SMS provider refused it: ${result.reason} (code ${result.code}).`,
          reason: "rejected",
          code: result.code,
        },
      };
    case "retryable": {
      deps.metrics.providerSends.inc({ channel: ch.id, provider: ch.adapter.type, outcome: "retryable" });
      const network = /network|ECONN|socket|fetch failed|provider call failed/i.test(result.reason);
      return {
        status: network ? 502 : 503,
        final: false,
        ...(result.retryAfterMs !== undefined ? { retryAfterMs: result.retryAfterMs } : {}),
        body: {
          error: `Not sent: the SMS provider is temporarily unavailable (${result.reason}). Nothing was sent; try again.`,
          reason: "retryable",
          ...(result.code ? { code: result.code } : {}),
        },
      };
    }
  }
}
