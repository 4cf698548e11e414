import type { Writable } from "node:stream";
import pino, { type Logger } from "pino";

/** Headers that carry credentials or signatures; pino blanks them wherever a request is logged. */
export const REDACT = [
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
];

const CENSOR = "[REDACTED]";

/** Keys blanked in any object of a line or of a child logger's bindings: what pino's `*.authToken` … paths did. */
const SECRET_KEYS = ["authToken", "apiKey", "apiSecret", "secret", "secrets"];

/**
 * Blanks SECRET_KEYS in the line's top-level objects, on copies (the caller's objects are left as they were),
 * and returns the line's object itself when there is nothing to blank. Not pino's wildcard paths: pino 10's
 * redaction parses every path again on each call, for each top-level key of each line — 17% of what a staff
 * reply allocates and 4–5 µs of its CPU, for keys that almost never appear (docs/performance-history.md,
 * round 11). The header paths above stay with pino: they cost only on lines that carry `req` or `headers`.
 */
export function blankSecretKeys<T extends Record<string, unknown>>(obj: T): T {
  let out: Record<string, unknown> | undefined;
  for (const key in obj) {
    const value: unknown = obj[key];
    if (value === null || typeof value !== "object" || !SECRET_KEYS.some((k) => Object.hasOwn(value, k)))
      continue;
    // Same prototype and own properties, so an Error stays an Error for pino's serializer; the blanked keys are
    // replaced in the descriptors, so a frozen object is copied too.
    const props = Object.getOwnPropertyDescriptors(value) as Record<string, PropertyDescriptor>;
    // Accessors are read on the original: an Error's `stack` is one on Node 24, whose getter finds nothing on a copy.
    for (const [k, d] of Object.entries(props)) {
      if (d.get)
        props[k] = {
          value: readOrUndefined(value, k),
          enumerable: d.enumerable ?? false,
          writable: true,
          configurable: true,
        };
    }
    for (const k of SECRET_KEYS) {
      const d = props[k];
      if (d)
        props[k] = { value: CENSOR, enumerable: d.enumerable ?? false, writable: true, configurable: true };
    }
    const copy = Object.create(Object.getPrototypeOf(value), props) as Record<string, unknown>;
    out ??= { ...obj };
    out[key] = copy;
  }
  return (out ?? obj) as T;
}

function readOrUndefined(o: object, key: string): unknown {
  try {
    return Reflect.get(o, key);
  } catch {
    return undefined;
  }
}

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
  const out: Sink = opts.destination ?? stdoutDestination();
  const logger = pino(
    {
      level: opts.level ?? "info",
      redact: { paths: REDACT, censor: CENSOR },
      formatters: { log: blankSecretKeys },
      base: { service: "smsbridge" },
    },
    scrubber(opts.secrets ?? [], out) as Writable,
  );
  // pino applies `formatters.bindings` to the root's bindings only; a child's go through `child()`, which every
  // descendant inherits from this instance.
  type Child = (this: Logger, bindings: pino.Bindings, options?: object) => Logger;
  const pinoChild = logger.child as unknown as Child;
  const child: Child = function (bindings, options) {
    return pinoChild.call(this, blankSecretKeys(bindings), options);
  };
  logger.child = child as unknown as Logger["child"];
  return logger;
}

const BUFFER_BYTES = 4096;
const FLUSH_EVERY_MS = 100;
let stdoutSink: ReturnType<typeof pino.destination> | undefined;

/**
 * Standard output through sonic-boom, asynchronously and buffered: lines go out once 4 KiB are waiting or
 * every 100 ms, whichever comes first, and when the bridge closes. Unbuffered, each line on a quiet bridge
 * was its own write on libuv's thread pool: over the staff-reply bench, 84.5k thread switches in the bridge
 * instead of 21.1k, and 29.8k write calls instead of 313. One per process (loggers share it, so their lines
 * never interleave mid-line). pino writes what is still buffered synchronously when the process exits
 * (logger.test.ts checks that).
 */
function stdoutDestination(): ReturnType<typeof pino.destination> {
  stdoutSink ??= pino.destination({
    dest: 1,
    sync: false,
    minLength: BUFFER_BYTES,
    periodicFlush: FLUSH_EVERY_MS,
  });
  return stdoutSink;
}

type Level = "fatal" | "error" | "warn" | "info" | "debug" | "trace";
type LogFn = (...args: unknown[]) => void;

/**
 * Fastify's `childLoggerFactory`: a request's logger (`req.log`, with its `reqId`) is built on its first
 * use, not for every request. pino's `child()` serialises and redacts the bindings each time, ~1.5% of the
 * bridge's main thread while ingesting webhooks, and almost no request logs anything (request logging is off;
 * routes log what matters themselves).
 */
export function lazyRequestLogger<L extends RequestLogger<L>>(
  parent: L,
  bindings: pino.Bindings,
  opts: { level?: string },
): L {
  // Fastify checks for the methods LazyLogger has; nothing else of pino's Logger is used through `req.log`.
  return new LazyLogger(parent, bindings, opts) as unknown as L;
}

/** What `lazyRequestLogger` needs of the parent: pino's Logger and Fastify's base logger both have it. */
type RequestLogger<L> = Record<Level, LogFn> & {
  child(bindings: pino.Bindings, opts?: { level?: string }): L;
  level: string;
};

// One object per request, its methods on the prototype: cheaper than the child it stands in for.
class LazyLogger<L extends RequestLogger<L>> {
  private real: L | undefined;
  constructor(
    private readonly parent: L,
    private readonly bindings: pino.Bindings,
    private readonly opts: { level?: string },
  ) {}
  private get logger(): L {
    this.real ??= this.parent.child(this.bindings, this.opts);
    return this.real;
  }
  fatal(...args: unknown[]) {
    this.logger.fatal(...args);
  }
  error(...args: unknown[]) {
    this.logger.error(...args);
  }
  warn(...args: unknown[]) {
    this.logger.warn(...args);
  }
  info(...args: unknown[]) {
    this.logger.info(...args);
  }
  debug(...args: unknown[]) {
    this.logger.debug(...args);
  }
  trace(...args: unknown[]) {
    this.logger.trace(...args);
  }
  child(bindings: pino.Bindings, opts?: { level?: string }): L {
    return this.logger.child(bindings, opts);
  }
  get level(): string {
    return this.real ? this.real.level : (this.opts.level ?? this.parent.level);
  }
  set level(value: string) {
    this.logger.level = value;
  }
}
