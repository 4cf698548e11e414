import { z } from "zod";
import type { MediaAccess, ProviderAdapter, ProviderFactory } from "../types.js";
import { sendLaml, TWILIO_OPT_OUT_CODES } from "./rest.js";
import { TWILIO_SIGNATURE_HEADER, verifyTwilioStyle } from "./signature.js";
import { parseTwilioWebhook, twimlAck } from "./webhook.js";

export { computeSignature, TWILIO_SIGNATURE_HEADER } from "./signature.js";
export { EMPTY_TWIML } from "./webhook.js";

export const TWILIO_API_BASE = "https://api.twilio.com";
/** Twilio's limit for Body in one request (https://www.twilio.com/docs/messaging/api/message-resource). */
export const TWILIO_MAX_BODY = 1600;
/** MediaUrl may be given up to 10 times per message. */
export const TWILIO_MAX_MEDIA = 10;

const httpUrl = z
  .string()
  .regex(/^https?:\/\/[^\s/]+(\/[^\s]*)?$/, "must be an http(s) URL, e.g. https://api.twilio.com");

export const twilioConfig = z.strictObject({
  accountSid: z
    .string()
    .regex(
      /^AC[0-9a-fA-F]{32}$/,
      "must be the Account SID from the Twilio Console: AC followed by 32 hex characters",
    ),
  authToken: z
    .string()
    .min(1, "must be the Auth Token from the Twilio Console (it also signs Twilio's webhooks)"),
  messagingServiceSid: z
    .string()
    .regex(/^MG[0-9a-fA-F]{32}$/, "must be a Messaging Service SID: MG followed by 32 hex characters")
    .optional(),
  apiBaseUrl: httpUrl.optional(),
});

export type TwilioConfig = z.infer<typeof twilioConfig>;

/**
 * Media of incoming MMS: MediaUrl points at api.twilio.com, which redirects to a short-lived CDN URL. With
 * "Enforce HTTP Auth on Media URLs" on, the first request needs the account's Basic credentials; the CDN URL it
 * redirects to is pre-signed and must not get them.
 */
function twilioMedia(cfg: TwilioConfig, base: URL): MediaAccess {
  const apiHosts = new Set(["api.twilio.com", base.hostname]);
  const auth = `Basic ${Buffer.from(`${cfg.accountSid}:${cfg.authToken}`, "utf8").toString("base64")}`;
  return {
    hosts: [...apiHosts, ".twiliocdn.com", "s3-external-1.amazonaws.com"],
    headers(url): Record<string, string> {
      // Edge/region API hosts look like api.dublin.ie1.twilio.com.
      const api = apiHosts.has(url.hostname) || /^api\.[a-z0-9.-]+\.twilio\.com$/.test(url.hostname);
      return api && url.protocol === "https:" ? { authorization: auth } : {};
    },
  };
}

export const twilioProvider: ProviderFactory<typeof twilioConfig> = {
  type: "twilio",
  config: twilioConfig,
  secretKeys: ["authToken"],
  create(cfg, ctx): ProviderAdapter {
    const base = new URL((cfg.apiBaseUrl ?? TWILIO_API_BASE).replace(/\/+$/, ""));
    const messagesUrl = `${base.href.replace(/\/+$/, "")}/2010-04-01/Accounts/${cfg.accountSid}/Messages.json`;
    return {
      type: "twilio",
      maxBodyLength: TWILIO_MAX_BODY,
      media: twilioMedia(cfg, base),
      verify(req) {
        return verifyTwilioStyle(req, {
          key: cfg.authToken,
          headers: [TWILIO_SIGNATURE_HEADER],
          arrays: "sorted-unique",
          provider: "Twilio",
        });
      },
      parse(req) {
        return parseTwilioWebhook(req, "Twilio");
      },
      ack() {
        return twimlAck();
      },
      send(sms, opts) {
        return sendLaml(
          sms,
          opts,
          {
            provider: "Twilio",
            messagesUrl,
            username: cfg.accountSid,
            password: cfg.authToken,
            ...(cfg.messagingServiceSid ? { messagingServiceSid: cfg.messagingServiceSid } : {}),
            maxMedia: TWILIO_MAX_MEDIA,
            maxBody: TWILIO_MAX_BODY,
            optOutCodes: TWILIO_OPT_OUT_CODES,
          },
          ctx,
        );
      },
    };
  },
};
