import type { Writable } from "node:stream";
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

/** Where log lines go: a stream, or pino's own fast destination (`pino.destination`). */
type Sink = { write(line: string): unknown; flush?(cb?: (err?: Error) => void): unknown };

/**
 * A line filter that replaces every configured secret value with [REDACTED] before it is written. Path-based
 * redaction cannot know where a secret might be interpolated (an error message, a URL); this can. A plain
 * object, not a Transform stream: pino writes one string per line and a stream hop cost more than the scrub.
 */
export function scrubber(secrets: readonly string[], out: Sink): Sink {
  const values = [...new Set(secrets.filter((s) => s.length >= 4))].sort((a, b) => b.length - a.length);
  if (values.length === 0) return out;
  return {
    write(line: string) {
      for (const v of values) if (line.includes(v)) line = line.split(v).join("[REDACTED]");
      return out.write(line);
    },
    flush: (cb) => (out.flush ? out.flush(cb) : cb?.()),
  };
}

export function createLogger(
  opts: { level?: string; secrets?: readonly string[]; destination?: Writable } = {},
): Logger {
  // Standard output through sonic-boom, asynchronously: lines written while a write is in flight go out
  // together in the next one (one syscall for many lines under load). `close()` flushes what is pending.
  const out: Sink = opts.destination ?? pino.destination({ dest: 1, sync: false });
  return pino(
    {
      level: opts.level ?? "info",
      redact: { paths: REDACT, censor: "[REDACTED]" },
      base: { service: "smsbridge" },
    },
    scrubber(opts.secrets ?? [], out) as Writable,
  );
}
