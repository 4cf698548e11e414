import { z } from "zod";
import { maskPhone, toE164 } from "../../core/phone.js";
import { parseRetryAfter } from "../../protocol/retry-after.js";
import { isNetworkError } from "../http.js";
import {
  BadWebhook,
  type DeliveryState,
  type ProviderAdapter,
  type ProviderContext,
  type ProviderEvent,
  type ProviderFactory,
  type RawRequest,
  type SendResult,
} from "../types.js";
import { verifySimulatorSignature } from "./signature.js";

export {
  createSimulatorSignature,
  SIGNATURE_HEADER,
  TIMESTAMP_HEADER,
  TOLERANCE_SECONDS,
  verifySimulatorSignature,
} from "./signature.js";

/**
 * The `simulator` provider: a real adapter whose carrier is the customer-phone simulator served by the bridge
 * itself (see network.ts). It signs, verifies, sends and fails like a real provider, so the whole loop can be
 * exercised with no account anywhere.
 */

export const DEFAULT_SECRET = "simulator-secret";

export const simulatorConfig = z.object({
  secret: z.string().min(1, "must not be empty").default(DEFAULT_SECRET),
  apiBaseUrl: z
    .string()
    .regex(/^https?:\/\/[^\s]+$/, "must be an http(s) URL, e.g. http://127.0.0.1:8080/simulator/provider")
    .optional(),
});

export type SimulatorConfig = z.infer<typeof simulatorConfig>;

const STATES = ["queued", "sent", "delivered", "undelivered", "failed"] as const;

const phone = (field: string) =>
  z.string().transform((v, ctx) => {
    const e164 = toE164(v);
    if (!e164) {
      ctx.addIssue({
        code: "custom",
        message: `${field} must be a phone number in E.164, e.g. +16505550123`,
      });
      return z.NEVER;
    }
    return e164;
  });

const messageWebhook = z.object({
  type: z.literal("message"),
  id: z.string().min(1),
  from: phone("from"),
  to: phone("to"),
  body: z.string(),
  media: z.array(z.object({ url: z.string().min(1), content_type: z.string().optional() })).default([]),
  sent_at: z.string().optional(),
});

const statusWebhook = z.object({
  type: z.literal("status"),
  id: z.string().min(1),
  status: z.enum(STATES),
  error_code: z.union([z.string(), z.number()]).optional(),
  error_message: z.string().optional(),
  at: z.string().optional(),
});

const webhook = z.discriminatedUnion("type", [messageWebhook, statusWebhook]);

export type SimulatorMessageWebhook = z.input<typeof messageWebhook>;
export type SimulatorStatusWebhook = z.input<typeof statusWebhook>;

function describeIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`).join("; ");
}

export function parseSimulatorWebhook(body: Buffer): ProviderEvent[] {
  let json: unknown;
  try {
    json = JSON.parse(body.toString("utf8"));
  } catch (e) {
    throw new BadWebhook(`simulator webhook is not JSON: ${(e as Error).message}`);
  }
  const parsed = webhook.safeParse(json);
  if (!parsed.success) throw new BadWebhook(`simulator webhook is invalid: ${describeIssues(parsed.error)}`);
  const w = parsed.data;
  if (w.type === "message") {
    return [
      {
        kind: "message",
        providerMessageId: w.id,
        from: w.from,
        to: w.to,
        body: w.body,
        attachments: w.media.map((m) =>
          m.content_type ? { url: m.url, contentType: m.content_type } : { url: m.url },
        ),
        ...(w.sent_at ? { createdAt: w.sent_at } : {}),
      },
    ];
  }
  return [
    {
      kind: "status",
      providerMessageId: w.id,
      state: w.status satisfies DeliveryState,
      providerStatus: w.status,
      ...(w.error_code !== undefined ? { errorCode: String(w.error_code) } : {}),
      ...(w.error_message ? { errorMessage: w.error_message } : {}),
      ...(w.at ? { at: w.at } : {}),
    },
  ];
}

interface CarrierError {
  code?: string;
  message?: string;
}

function readJson(text: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function carrierError(text: string): CarrierError {
  const j = readJson(text);
  return {
    ...(typeof j?.code === "string" ? { code: j.code } : {}),
    ...(typeof j?.message === "string" ? { message: j.message } : {}),
  };
}

/** Maps the carrier API's answer to a SendResult (exported for tests and for the docs' table). */
export function classifySend(
  status: number,
  text: string,
  retryAfter: string | string[] | undefined,
  now: Date,
): SendResult {
  if (status >= 200 && status < 300) {
    const id = readJson(text)?.id;
    if (typeof id === "string" && id) return { kind: "sent", providerId: id };
    // The carrier accepted something; retrying could send twice, so this is a permanent failure to look at.
    return {
      kind: "failed",
      code: "bad_response",
      reason: `simulator answered ${status} without a message id`,
    };
  }
  const err = carrierError(text);
  const detail = err.message ? `: ${err.message}` : "";
  if (status === 429 || status === 408 || status >= 500) {
    const retryAfterMs = parseRetryAfter(retryAfter, now.getTime());
    return {
      kind: "retryable",
      reason: `simulator answered ${status}${detail}`,
      ...(err.code ? { code: err.code } : {}),
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    };
  }
  if (status === 403 && err.code === "opted_out") {
    return { kind: "optedOut", code: "opted_out", reason: `the customer opted out${detail}` };
  }
  if (status === 401) {
    return {
      kind: "failed",
      code: "unauthorized",
      reason:
        "the simulator refused the channel's secret; set provider.secret to the simulator channel's secret",
    };
  }
  return {
    kind: "failed",
    code: err.code ?? `http_${status}`,
    reason: `simulator answered ${status}${detail}`,
  };
}

export function createSimulatorAdapter(config: SimulatorConfig, ctx: ProviderContext): ProviderAdapter {
  const apiBaseUrl = (config.apiBaseUrl ?? `${new URL(ctx.urls.inbound).origin}/simulator/provider`).replace(
    /\/+$/,
    "",
  );
  const log = ctx.log.child({ provider: "simulator" });
  return {
    type: "simulator",
    verify(req: RawRequest) {
      return verifySimulatorSignature(config.secret, req.headers, req.body, ctx.now());
    },
    parse(req: RawRequest) {
      return parseSimulatorWebhook(req.body);
    },
    async send(sms, opts) {
      const body = JSON.stringify({
        from: sms.from,
        to: sms.to,
        body: sms.body,
        media_urls: sms.mediaUrls,
        status_callback: sms.statusCallbackUrl ?? ctx.urls.status,
      });
      const headers: Record<string, string> = {
        "content-type": "application/json",
        authorization: `Bearer ${config.secret}`,
      };
      if (sms.idempotencyKey) headers["idempotency-key"] = sms.idempotencyKey;
      let result: SendResult;
      try {
        const res = await ctx.http.request({
          method: "POST",
          url: `${apiBaseUrl}/messages`,
          headers,
          body,
          signal: opts.signal,
        });
        result = classifySend(res.status, res.text, res.headers["retry-after"], ctx.now());
      } catch (e) {
        const message = (e as Error).message;
        result = isNetworkError(e)
          ? { kind: "retryable", reason: `could not reach the simulator at ${apiBaseUrl}: ${message}` }
          : { kind: "failed", code: "forbidden_host", reason: message };
      }
      log.debug(
        {
          to: maskPhone(sms.to),
          result: result.kind,
          reason: "reason" in result ? result.reason : undefined,
        },
        "simulator send",
      );
      return result;
    },
  };
}

export const simulatorProvider: ProviderFactory<typeof simulatorConfig> = {
  type: "simulator",
  config: simulatorConfig,
  secretKeys: ["secret"],
  create: createSimulatorAdapter,
};
