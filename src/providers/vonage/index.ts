import { createPrivateKey, type KeyObject } from "node:crypto";
import { z } from "zod";
import type { ProviderAdapter, ProviderFactory, RawRequest, Verdict } from "../types.js";
import { jsonBody, parseWebhook, signedParamCandidates } from "./parse.js";
import { createSender, MESSAGES_API_MAX, SMS_API_MAX } from "./send.js";
import { applicationJwt, verifySmsSignature, verifyWebhookJwt } from "./signature.js";

/**
 * Vonage (formerly Nexmo): the SMS API (`api: sms`, default) and the Messages API (`api: messages`).
 * Webhooks of both APIs are accepted on the same routes whatever `api` says, because the dashboard decides
 * separately which API delivers inbound SMS; the scheme is chosen by the request (JWT header or `sig`).
 */

/** Env vars often hold a PEM with literal "\n"; turn them back into newlines. */
function pem(v: string): string {
  return v.includes("\\n") ? v.replace(/\\n/g, "\n") : v;
}

const config = z
  .object({
    apiKey: z.string().min(1),
    apiSecret: z.string().min(1),
    signatureSecret: z.string().min(1),
    signatureMethod: z.enum(["md5hash", "md5", "sha1", "sha256", "sha512"]).default("md5hash"),
    api: z.enum(["sms", "messages"]).default("sms"),
    applicationId: z.string().min(1).optional(),
    privateKey: z.string().min(1).transform(pem).optional(),
    apiBaseUrl: z.url().optional(),
  })
  .superRefine((c, ctx) => {
    if (c.api !== "messages") return;
    if (!c.applicationId) {
      ctx.addIssue({
        code: "custom",
        path: ["applicationId"],
        message: "required when api is messages (the Vonage application id)",
      });
    }
    if (!c.privateKey) {
      ctx.addIssue({
        code: "custom",
        path: ["privateKey"],
        message: "required when api is messages (the application's private key, PEM)",
      });
    }
  })
  .superRefine((c, ctx) => {
    if (!c.privateKey) return;
    try {
      createPrivateKey(c.privateKey);
    } catch {
      // Never echo the value: it is a private key.
      ctx.addIssue({
        code: "custom",
        path: ["privateKey"],
        message: "not a PEM private key (-----BEGIN PRIVATE KEY----- …)",
      });
    }
  });

export type VonageConfig = z.infer<typeof config>;

/** A Messages API webhook (JSON with message_uuid) must carry the JWT, whatever else it has. */
function isMessagesApiBody(req: RawRequest): boolean {
  try {
    return typeof jsonBody(req)?.message_uuid === "string";
  } catch {
    return false;
  }
}

function header(req: RawRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export const vonageProvider: ProviderFactory<typeof config> = {
  type: "vonage",
  config,
  secretKeys: ["apiKey", "apiSecret", "signatureSecret", "privateKey"],
  create(cfg, ctx): ProviderAdapter {
    const privateKey: KeyObject | undefined = cfg.privateKey ? createPrivateKey(cfg.privateKey) : undefined;
    const defaultBase = cfg.api === "messages" ? "https://api.nexmo.com" : "https://rest.nexmo.com";
    const baseUrl = (cfg.apiBaseUrl ?? defaultBase).replace(/\/+$/, "");
    const send = createSender(
      {
        api: cfg.api,
        apiKey: cfg.apiKey,
        apiSecret: cfg.apiSecret,
        applicationId: cfg.applicationId,
        privateKey,
        baseUrl,
      },
      ctx,
    );
    const nowSeconds = () => Math.floor(ctx.now().getTime() / 1000);

    const adapter: ProviderAdapter = {
      type: "vonage",
      maxBodyLength: cfg.api === "messages" ? MESSAGES_API_MAX : SMS_API_MAX,
      verify(req): Verdict {
        const auth = header(req, "authorization");
        if ((auth && /^Bearer\s/i.test(auth)) || isMessagesApiBody(req)) {
          return verifyWebhookJwt(auth, req.body, cfg.signatureSecret, nowSeconds());
        }
        let candidates: Record<string, string>[];
        try {
          candidates = signedParamCandidates(req);
        } catch {
          return {
            ok: false,
            status: 401,
            reason: "missing sig parameter: body is not readable form or JSON",
          };
        }
        return verifySmsSignature(candidates, cfg.signatureSecret, cfg.signatureMethod, nowSeconds());
      },
      parse: parseWebhook,
      // Vonage wants 200 or 204; anything else and it resends for 24 hours.
      ack: () => ({ status: 204 }),
      send,
      // Inbound MMS media lives on Vonage's media servers for 48 hours, and behind an application JWT when
      // "Secure Inbound Media" is on: the bridge proxies it, with the JWT when an application is configured.
      media: {
        hosts: [".nexmo.com", ".vonage.com"],
        headers(): Record<string, string> {
          if (!cfg.applicationId || !privateKey) return {};
          return { authorization: `Bearer ${applicationJwt(cfg.applicationId, privateKey, nowSeconds())}` };
        },
      },
    };
    return adapter;
  },
};
