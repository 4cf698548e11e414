/**
 * Carrier-standard SMS keywords (CTIA; the same lists Twilio and others honour). A message that is exactly
 * one keyword — case-insensitive, surrounding whitespace and punctuation ignored — changes the customer's
 * opt-out state. The message is still forwarded so staff see it.
 */
export type KeywordAction = "opt-out" | "opt-in" | "help";

const OPT_OUT = new Set(["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"]);
const OPT_IN = new Set(["START", "YES", "UNSTOP"]);
const HELP = new Set(["HELP", "INFO"]);

export function keywordAction(body: string): KeywordAction | undefined {
  const word = body
    .trim()
    .replace(/^[\s\p{P}]+|[\s\p{P}]+$/gu, "")
    .toUpperCase();
  if (OPT_OUT.has(word)) return "opt-out";
  if (OPT_IN.has(word)) return "opt-in";
  if (HELP.has(word)) return "help";
  return undefined;
}
