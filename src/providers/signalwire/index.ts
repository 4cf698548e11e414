import { z } from "zod";
import { sendLaml } from "../twilio/rest.js";
import { TWILIO_SIGNATURE_HEADER, verifyTwilioStyle } from "../twilio/signature.js";
import { parseTwilioWebhook, twimlAck } from "../twilio/webhook.js";
import type { MediaAccess, ProviderAdapter, ProviderFactory } from "../types.js";

/**
 * SignalWire through its Compatibility (LaML / cXML) API, which copies Twilio's: the same webhook parameters,
 * the same signature algorithm and the same Messages resource. What differs lives here: the signature header
 * (X-SignalWire-Signature, X-Twilio-Signature also accepted), the key (the project's Signing Key, not the API
 * token), repeated parameters signed in the order sent (not sorted or de-duplicated), the per-space API host,
 * Basic auth with Project ID and API token, and at most 8 media per message.
 */

export const SIGNALWIRE_SIGNATURE_HEADER = "X-SignalWire-Signature";
/** "Can be up to 1600 characters" (Compatibility API, Create a Message). */
export const SIGNALWIRE_MAX_BODY = 1600;
/** "MediaUrl … can be specified multiple times for up to 8 media items." */
export const SIGNALWIRE_MAX_MEDIA = 8;
/**
 * 21610: recipient replied STOP, the Twilio code the Compatibility API reuses. 30004 ("Carrier Responded as
 * Undeliverable – Opt Out") arrives only in status callbacks, so it is not a send answer.
 */
export const SIGNALWIRE_OPT_OUT_CODES: readonly string[] = ["21610"];

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

export const signalwireConfig = z.strictObject({
  projectId: z
    .string()
    .regex(UUID, "must be the Project ID from the SignalWire Dashboard (API page), a UUID"),
  apiToken: z.string().min(1, "must be an API token of the project (Dashboard → API → API Tokens)"),
  signingKey: z
    .string()
    .min(1, "must be the project's Signing Key (Dashboard → API); it signs SignalWire's webhooks"),
  spaceUrl: z
    .string()
    .transform((v) =>
      v
        .trim()
        .replace(/^https?:\/\//i, "")
        .replace(/\/+$/, ""),
    )
    .pipe(
      z
        .string()
        .regex(/^[a-z0-9-]+(\.[a-z0-9-]+)+(:\d+)?$/i, "must be your Space URL, e.g. example.signalwire.com"),
    ),
  apiBaseUrl: z
    .string()
    .regex(/^https?:\/\/[^\s/]+(\/[^\s]*)?$/, "must be an http(s) URL, e.g. https://example.signalwire.com")
    .optional(),
});

export type SignalwireConfig = z.infer<typeof signalwireConfig>;

/**
 * MMS media live on SignalWire hosts; with "Protect Message Media URLs" on they need the project's API
 * credentials. Only SignalWire's own hosts over HTTPS ever get them.
 */
function signalwireMedia(cfg: SignalwireConfig): MediaAccess {
  const space = cfg.spaceUrl.replace(/:\d+$/, "");
  const auth = `Basic ${Buffer.from(`${cfg.projectId}:${cfg.apiToken}`, "utf8").toString("base64")}`;
  return {
    hosts: [space, ".signalwire.com"],
    headers(url): Record<string, string> {
      const ours = url.hostname === space || url.hostname.endsWith(".signalwire.com");
      return ours && url.protocol === "https:" ? { authorization: auth } : {};
    },
  };
}

export const signalwireProvider: ProviderFactory<typeof signalwireConfig> = {
  type: "signalwire",
  config: signalwireConfig,
  secretKeys: ["apiToken", "signingKey"],
  create(cfg, ctx): ProviderAdapter {
    const base = (cfg.apiBaseUrl ?? `https://${cfg.spaceUrl}`).replace(/\/+$/, "");
    const messagesUrl = `${base}/api/laml/2010-04-01/Accounts/${cfg.projectId}/Messages.json`;
    return {
      type: "signalwire",
      maxBodyLength: SIGNALWIRE_MAX_BODY,
      media: signalwireMedia(cfg),
      verify(req) {
        return verifyTwilioStyle(req, {
          key: cfg.signingKey,
          headers: [SIGNALWIRE_SIGNATURE_HEADER, TWILIO_SIGNATURE_HEADER],
          arrays: "as-sent",
          acceptHexBodySignature: true,
          provider: "SignalWire",
        });
      },
      parse(req) {
        return parseTwilioWebhook(req, "SignalWire");
      },
      ack() {
        return twimlAck();
      },
      send(sms, opts) {
        return sendLaml(
          sms,
          opts,
          {
            provider: "SignalWire",
            messagesUrl,
            username: cfg.projectId,
            password: cfg.apiToken,
            maxMedia: SIGNALWIRE_MAX_MEDIA,
            maxBody: SIGNALWIRE_MAX_BODY,
            optOutCodes: SIGNALWIRE_OPT_OUT_CODES,
          },
          ctx,
        );
      },
    };
  },
};
