// The benches' Twilio account, and the inbound webhook every ingest bench sends: a Twilio form post, signed,
// each one a different message.
import { computeSignature } from "../src/providers/twilio/signature.js";

export const ACCOUNT = "AC0123456789abcdef0123456789abcdef";
export const TOKEN = "bench-twilio-auth-token";
export const PHONE = "+16501234567";
/** The bridge's configured public URL: Twilio signs the URL it posted to, so the bridge checks against this. */
export const PUBLIC = "https://sms.example.test";
export const INBOUND_PATH = "/channels/bench/inbound";

export interface Post {
  method: "POST";
  path: string;
  headers: Record<string, string>;
  body: string;
}

let seq = 0;

/** A fresh MessageSid, body and signature every call (the bridge stores each; a repeat would be a duplicate). */
export function twilioWebhook(): Post {
  const i = seq++;
  const sid = `SM${i.toString(16).padStart(32, "0")}`;
  const params: Array<[string, string]> = [
    ["ToCountry", "US"],
    ["SmsMessageSid", sid],
    ["NumMedia", "0"],
    ["SmsSid", sid],
    ["SmsStatus", "received"],
    ["Body", `Hello from customer ${i % 1000}, message ${i}`],
    ["To", PHONE],
    ["NumSegments", "1"],
    ["MessageSid", sid],
    ["AccountSid", ACCOUNT],
    ["From", `+1510555${String(i % 10_000).padStart(4, "0")}`],
    ["ApiVersion", "2010-04-01"],
  ];
  return {
    method: "POST",
    path: INBOUND_PATH,
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      "x-twilio-signature": computeSignature(TOKEN, PUBLIC + INBOUND_PATH, params),
    },
    body: new URLSearchParams(params).toString(),
  };
}
