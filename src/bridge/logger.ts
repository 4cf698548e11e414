import { Transform, type Writable } from "node:stream";
import pino, { type Logger } from "pino";

/** Headers that carry credentials or signatures; pino blanks them wherever a request is logged. */
const REDACT = [
  "req.headers.authorization",
  "req.headers.cookie",
  'req.headers["x-reamaze-hmac-sha256"]',
  'req.headers["x-twilio-signature"]',
  'req.headers["x-signalwire-signature"]',
  'req.headers["x-plivo-signature-v2"]',
  'req.headers["x-plivo-signature-v3"]',
  'req.headers["telnyx-signature-ed25519"]',
  'req.headers["x-simulator-signature"]',
  "headers.authorization",
  "*.authToken",
  "*.apiKey",
  "*.apiSecret",
  "*.secret",
  "*.secrets",
];

/**
 * A line filter that replaces every configured secret value with [REDACTED] before it is written. Path-based
 * redaction cannot know where a secret might be interpolated (an error message, a URL); this can.
 */
export function scrubber(secrets: readonly string[], out: Writable): Writable {
  const values = [...new Set(secrets.filter((s) => s.length >= 4))].sort((a, b) => b.length - a.length);
  if (values.length === 0) return out;
  const t = new Transform({
    transform(chunk, _enc, cb) {
      let line = chunk.toString();
      for (const v of values) if (line.includes(v)) line = line.split(v).join("[REDACTED]");
      cb(null, line);
    },
  });
  t.pipe(out);
  return t;
}

export function createLogger(
  opts: { level?: string; secrets?: readonly string[]; destination?: Writable } = {},
): Logger {
  const out = opts.destination ?? process.stdout;
  return pino(
    {
      level: opts.level ?? "info",
      redact: { paths: REDACT, censor: "[REDACTED]" },
      base: { service: "smsbridge" },
    },
    scrubber(opts.secrets ?? [], out),
  );
}
