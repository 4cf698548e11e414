import { z } from "zod";
import type { ProviderFactory } from "../types.js";
import { parseTelnyxWebhook } from "./parse.js";
import { createTelnyxSender, DEFAULT_API_BASE } from "./send.js";
import { parsePublicKey, verifyTelnyxSignature } from "./signature.js";

export { mapTelnyxStatus, parseTelnyxWebhook } from "./parse.js";
export { classifyTelnyxAnswer, splitTelnyxBody } from "./send.js";
export { parsePublicKey, publicKeyBase64, signTelnyxWebhook, verifyTelnyxSignature } from "./signature.js";

// Strict, so a misspelt key (messagingProfileID) is reported instead of silently ignored.
const config = z.strictObject({
  // Tolerated in case the whole `provider:` block, type included, is validated.
  type: z.literal("telnyx").optional(),
  apiKey: z
    .string({
      error:
        "apiKey is required: a Telnyx API v2 key (Mission Control Portal → API Keys), best taken from an environment variable",
    })
    .min(1, "apiKey is empty: set it to a Telnyx API v2 key, best taken from an environment variable"),
  publicKey: z
    .string({
      error: "publicKey is required: the base64 Public Key from Mission Control Portal → Keys & Credentials",
    })
    .superRefine((value, check) => {
      try {
        parsePublicKey(value);
      } catch (e) {
        check.addIssue({ code: "custom", message: e instanceof Error ? e.message : String(e) });
      }
    }),
  messagingProfileId: z.string().min(1).optional(),
  apiBaseUrl: z.url({ error: "apiBaseUrl must be an http(s) URL such as https://api.telnyx.com" }).optional(),
});

/**
 * Telnyx Messaging API v2: signed JSON webhooks (Ed25519), `POST /v2/messages` to send. Inbound media URLs
 * are pre-signed and need no credentials, so `media` is left unset (see docs/providers/telnyx.md).
 */
export const telnyxProvider: ProviderFactory<typeof config> = {
  type: "telnyx",
  config,
  // publicKey is public by definition; only the API key grants access.
  secretKeys: ["apiKey"],
  create(cfg, ctx) {
    const key = parsePublicKey(cfg.publicKey);
    const send = createTelnyxSender(
      {
        apiKey: cfg.apiKey,
        apiBaseUrl: cfg.apiBaseUrl ?? DEFAULT_API_BASE,
        ...(cfg.messagingProfileId ? { messagingProfileId: cfg.messagingProfileId } : {}),
      },
      ctx,
    );
    return {
      type: "telnyx",
      // No maxBodyLength: send() splits by encoding itself (10 parts: 1,530 GSM-7 / 670 UCS-2 characters)
      // and reports partial sends.
      verify: (req) => verifyTelnyxSignature(key, req, ctx.now()),
      parse: (req) => parseTelnyxWebhook(req),
      send,
    };
  },
};
