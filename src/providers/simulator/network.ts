import { randomBytes, timingSafeEqual } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { fileURLToPath } from "node:url";
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, RawServerDefault } from "fastify";
import type { Logger } from "pino";
import { request } from "undici";
import { z } from "zod";
import { maskPhone, toE164 } from "../../core/phone.js";
import type { FieldError } from "../../protocol/payloads.js";
import { signedHeaders } from "./signature.js";

export { createSimulatorSignature } from "./signature.js";

/**
 * The customer-phone simulator: the "mobile network" behind the `simulator` provider, served by the bridge
 * under `/simulator`. Customers (a person on the page, or a test) send SMS that arrive at the bridge as signed
 * provider webhooks over real HTTP; the bridge's sends land here through a carrier-like API and show up on the
 * customer's phone, followed by signed delivery reports. Faults make the carrier fail on demand.
 *
 * State lives in memory: it is a development and test tool, not a message store.
 */

export interface SimulatorChannel {
  id: string;
  /** The channel's numbers (E.164); a customer texting one of them reaches this channel. */
  numbers: string[];
  /** Signs webhooks to the bridge and authenticates the bridge's sends (Bearer). */
  secret: string;
  inboundUrl: string;
  statusUrl: string;
}

export interface PhoneNetworkOptions {
  /** Read on every request, so channels added at runtime are found. */
  channels: () => SimulatorChannel[];
  log?: Logger;
  now?: () => Date;
  /** Source of randomness for probabilistic faults (tests pass a fixed one; `next` is the usual way). */
  random?: () => number;
  /** How long a customer's message waits for the bridge to answer (default 10 s). */
  inboundTimeoutMs?: number;
  /** Messages kept in memory; the oldest are dropped beyond this (default 5000). */
  maxMessages?: number;
}

export type MessageStatus = "sending" | "queued" | "sent" | "delivered" | "undelivered" | "failed";

export interface SimulatorMedia {
  url: string;
  content_type: string;
}

export interface SimulatorMessage {
  id: string;
  /** mo: the customer sent it (mobile-originated); mt: the bridge sent it to the customer. */
  direction: "mo" | "mt";
  from: string;
  to: string;
  body: string;
  media: SimulatorMedia[];
  at: string;
  status: MessageStatus;
  channelId: string;
  /** Why it failed, in words a person reads. */
  error?: string;
  errorCode?: string;
}

export const FAULT_KINDS = ["ok", "retryable", "permanent", "opted_out", "undelivered", "slow"] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface Faults {
  permanent: number;
  retryable: number;
  opted_out: number;
  undelivered: number;
  slow: { probability: number; delay_ms: number };
  /** Consumed one per send before any probability is rolled: the deterministic way to make a send fail. */
  next: FaultKind[];
}

export type NetworkEvent = { type: "message"; message: SimulatorMessage } | { type: "reset" };

export interface PhoneNetwork {
  /** Messages oldest first; with `phone`, only those to or from that customer. */
  messages(phone?: string): SimulatorMessage[];
  clear(): void;
  faults(): Faults;
  setFaults(f: Faults): void;
  /** Calls `fn` for every new or updated message; returns the unsubscribe function. */
  subscribe(fn: (e: NetworkEvent) => void): () => void;
}

export const PREFIX = "/simulator";
const DEFAULT_SLOW_MS = 2000;
const MAX_BODY = 1600;
const ANSWER_KEEP = 1024;
const JSON_LIMIT = 256 * 1024;

/** The page's files, at the package root: the same relative path works from src/ (tsx) and dist/ (built). */
export const ASSETS_DIR = fileURLToPath(new URL("../../../assets/simulator/", import.meta.url));
const ASSETS: Record<string, string> = {
  "index.html": "text/html; charset=utf-8",
  "app.js": "text/javascript; charset=utf-8",
  "style.css": "text/css; charset=utf-8",
  "icon.svg": "image/svg+xml",
};
const PAGE_CSP =
  "default-src 'self'; img-src 'self' data: http: https:; media-src http: https:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'self'";

class WebhookTimeout extends Error {
  override name = "WebhookTimeout";
  constructor(ms: number) {
    super(`no answer within ${ms} ms`);
  }
}

function noFaults(): Faults {
  return {
    permanent: 0,
    retryable: 0,
    opted_out: 0,
    undelivered: 0,
    slow: { probability: 0, delay_ms: DEFAULT_SLOW_MS },
    next: [],
  };
}

// ---------------------------------------------------------------------------------------------------------
// Input schemas. Errors name the field; phone numbers are normalised to E.164 on the way in.

const e164 = z.string({ error: "must be a string" }).transform((v, ctx) => {
  const n = toE164(v);
  if (!n) {
    ctx.addIssue({
      code: "custom",
      message: `"${v.slice(0, 32)}" is not a phone number; use E.164, e.g. +16505550123`,
    });
    return z.NEVER;
  }
  return n;
});

const httpUrl = z.string().regex(/^https?:\/\/\S+$/, "must be an http(s) URL");

const CONTENT_TYPES: Record<string, string> = {
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  png: "image/png",
  gif: "image/gif",
  webp: "image/webp",
  svg: "image/svg+xml",
  mp4: "video/mp4",
  mp3: "audio/mpeg",
  pdf: "application/pdf",
  vcf: "text/vcard",
  txt: "text/plain",
};

/** A best guess from the URL's extension, as carriers do for MMS without a declared type. */
export function guessContentType(url: string): string {
  let path = url;
  try {
    path = new URL(url).pathname;
  } catch {
    // keep the raw text
  }
  const ext = /\.([a-z0-9]+)$/i.exec(path)?.[1]?.toLowerCase();
  return (ext && CONTENT_TYPES[ext]) || "application/octet-stream";
}

const mediaItem = z.union([
  httpUrl.transform((url) => ({ url, content_type: guessContentType(url) })),
  z.object({ url: httpUrl, content_type: z.string().min(1).optional() }).transform((m) => ({
    url: m.url,
    content_type: m.content_type ?? guessContentType(m.url),
  })),
]);

const customerSend = z
  .object({
    from: e164,
    to: e164,
    body: z
      .string({ error: "must be a string" })
      .max(MAX_BODY, `must be at most ${MAX_BODY} characters`)
      .default(""),
    media: z.array(mediaItem).max(10, "at most 10 attachments").default([]),
  })
  .refine((v) => v.body.trim() !== "" || v.media.length > 0, {
    path: ["body"],
    message: "must not be empty (or send media)",
  });

const carrierSend = z.object({
  from: z.string({ error: "must be a string" }).min(1, "required"),
  to: z.string({ error: "must be a string" }).min(1, "required"),
  body: z.string({ error: "must be a string" }).default(""),
  media_urls: z.array(httpUrl).default([]),
  status_callback: httpUrl.optional(),
});

const probability = z.number({ error: "must be a number between 0 and 1" }).min(0).max(1);
const faultsInput = z.strictObject({
  permanent: probability.optional(),
  retryable: probability.optional(),
  opted_out: probability.optional(),
  undelivered: probability.optional(),
  slow: z
    .strictObject({
      probability: probability.optional(),
      delay_ms: z.number().int().min(0).max(120_000, "must be at most 120000 (two minutes)").optional(),
    })
    .optional(),
  next: z.array(z.enum(FAULT_KINDS)).max(10_000).optional(),
});

function fieldErrors(error: z.ZodError): FieldError[] {
  return error.issues.map((issue) => {
    const path = issue.path.length ? issue.path.map(String).join(".") : "(root)";
    const missing = issue.code === "invalid_type" && (issue as { input?: unknown }).input === undefined;
    return { path, message: missing ? "required" : issue.message };
  });
}

function jsonError(reply: FastifyReply, status: number, body: Record<string, unknown>): FastifyReply {
  return reply.code(status).type("application/json").send(body);
}

function invalid(reply: FastifyReply, what: string, error: z.ZodError): FastifyReply {
  const errors = fieldErrors(error);
  return jsonError(reply, 422, {
    error: `invalid ${what}: ${errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`,
    errors,
  });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

// ---------------------------------------------------------------------------------------------------------

/**
 * Registers the simulator under `/simulator` in its own encapsulated scope (its JSON parser and error handler
 * do not leak into the bridge's routes). Returns a handle on the in-memory network.
 */
export function registerPhoneNetwork<L extends FastifyBaseLogger>(
  // Generic over the logger type so an app created with a pino instance (`loggerInstance`) fits too.
  app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, L>,
  opts: PhoneNetworkOptions,
): PhoneNetwork {
  const now = opts.now ?? (() => new Date());
  const random = opts.random ?? Math.random;
  const inboundTimeoutMs = opts.inboundTimeoutMs ?? 10_000;
  const maxMessages = opts.maxMessages ?? 5000;
  const log: FastifyBaseLogger = (opts.log ?? app.log).child({ component: "simulator" });

  let messages: SimulatorMessage[] = [];
  const byId = new Map<string, SimulatorMessage>();
  const idempotent = new Map<string, string>();
  let faults = noFaults();
  const listeners = new Set<(e: NetworkEvent) => void>();
  // Aborted when the app closes: pending webhooks, slow faults and timers stop instead of holding it open.
  const closing = new AbortController();
  const timers = new Set<NodeJS.Timeout>();
  const streams = new Set<ServerResponse>();

  const emit = (e: NetworkEvent) => {
    for (const fn of listeners) {
      try {
        fn(e);
      } catch (err) {
        log.warn({ err }, "simulator event listener failed");
      }
    }
  };

  const add = (m: SimulatorMessage): SimulatorMessage => {
    messages.push(m);
    byId.set(m.id, m);
    if (messages.length > maxMessages) {
      for (const old of messages.splice(0, messages.length - maxMessages)) byId.delete(old.id);
    }
    emit({ type: "message", message: { ...m } });
    return m;
  };

  const update = (id: string, patch: Partial<Pick<SimulatorMessage, "status" | "error" | "errorCode">>) => {
    const m = byId.get(id);
    if (!m) return;
    Object.assign(m, patch);
    emit({ type: "message", message: { ...m } });
  };

  const customerOf = (m: SimulatorMessage) => (m.direction === "mo" ? m.from : m.to);

  const network: PhoneNetwork = {
    messages: (phone) =>
      (phone ? messages.filter((m) => customerOf(m) === phone) : messages).map((m) => ({ ...m })),
    clear() {
      messages = [];
      byId.clear();
      idempotent.clear();
      emit({ type: "reset" });
    },
    faults: () => structuredClone(faults),
    setFaults(f) {
      faults = structuredClone(f);
    },
    subscribe(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
  };

  const channelOwning = (number: string) =>
    opts.channels().find((c) => c.numbers.some((n) => (toE164(n) ?? n) === number));

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      if (closing.signal.aborted) return resolve();
      const onClose = () => resolve();
      const t = setTimeout(() => {
        timers.delete(t);
        closing.signal.removeEventListener("abort", onClose);
        resolve();
      }, ms);
      timers.add(t);
      closing.signal.addEventListener("abort", onClose, { once: true });
    });

  /** One fault for this send: the `next` queue first, else independent rolls of each probability. */
  const drawFault = (): { kind: Exclude<FaultKind, "slow">; slow: boolean } => {
    const queued = faults.next.shift();
    if (queued) return queued === "slow" ? { kind: "ok", slow: true } : { kind: queued, slow: false };
    const slow = faults.slow.probability > 0 && random() < faults.slow.probability;
    for (const kind of ["permanent", "retryable", "opted_out", "undelivered"] as const) {
      if (faults[kind] > 0 && random() < faults[kind]) return { kind, slow };
    }
    return { kind: "ok", slow };
  };

  const inflight = new Set<AbortController>();
  /**
   * POSTs signed bytes with a deadline. One controller per request, aborted on timeout or when the app closes
   * (rather than AbortSignal.any over a long-lived signal, which Node 20 does not release promptly).
   */
  const postWebhook = async (url: string, secret: string, bytes: Buffer, timeoutMs: number) => {
    const ctl = new AbortController();
    inflight.add(ctl);
    const timer = setTimeout(() => ctl.abort(new WebhookTimeout(timeoutMs)), timeoutMs);
    try {
      const res = await request(url, {
        method: "POST",
        headers: signedHeaders(secret, bytes, now()),
        body: bytes,
        signal: ctl.signal,
      });
      return { status: res.statusCode, text: (await res.body.text()).slice(0, ANSWER_KEEP) };
    } catch (e) {
      throw ctl.signal.reason instanceof WebhookTimeout ? ctl.signal.reason : e;
    } finally {
      clearTimeout(timer);
      inflight.delete(ctl);
    }
  };

  /** POSTs a signed status webhook; failures are only logged, as a carrier would. */
  const postStatus = async (
    channel: SimulatorChannel,
    url: string,
    m: SimulatorMessage,
    status: MessageStatus,
    error?: { code: string; message: string },
  ) => {
    update(m.id, { status, ...(error ? { error: error.message, errorCode: error.code } : {}) });
    const payload = {
      type: "status",
      id: m.id,
      status,
      ...(error ? { error_code: error.code, error_message: error.message } : {}),
      at: now().toISOString(),
    };
    const bytes = Buffer.from(JSON.stringify(payload));
    try {
      const res = await postWebhook(url, channel.secret, bytes, 10_000);
      if (res.status >= 300) {
        log.warn(
          { id: m.id, status, answer: res.status, body: res.text.slice(0, 200) },
          "status callback refused",
        );
      }
    } catch (err) {
      if (!closing.signal.aborted)
        log.warn({ id: m.id, status, err: (err as Error).message }, "status callback failed");
    }
  };

  const deliverLater = (
    channel: SimulatorChannel,
    m: SimulatorMessage,
    callback: string | undefined,
    undelivered: boolean,
  ) => {
    // A carrier reports asynchronously: the bridge must already have the send's answer when reports arrive.
    const t = setTimeout(
      async () => {
        timers.delete(t);
        const report = async (status: MessageStatus, error?: { code: string; message: string }) => {
          if (closing.signal.aborted) return;
          if (callback) await postStatus(channel, callback, m, status, error);
          else update(m.id, { status, ...(error ? { error: error.message, errorCode: error.code } : {}) });
        };
        await report("sent");
        if (undelivered) {
          await report("undelivered", {
            code: "30003",
            message: "simulated: the handset is unreachable (faults.undelivered)",
          });
        } else {
          await report("delivered");
        }
      },
      Math.floor(random() * 20),
    );
    timers.add(t);
  };

  app.register(
    async (scope) => {
      // Only JSON here, with a modest limit; the bridge's own parsers are untouched outside this scope.
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser(
        "application/json",
        { parseAs: "string", bodyLimit: JSON_LIMIT },
        (_req, body, done) => {
          if (body === "") return done(null, undefined);
          try {
            done(null, JSON.parse(body as string));
          } catch (e) {
            const err = new Error(`malformed JSON: ${(e as Error).message}`) as Error & {
              statusCode: number;
            };
            err.statusCode = 400;
            done(err, undefined);
          }
        },
      );
      scope.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) => {
        if (err.code === "FST_ERR_CTP_BODY_TOO_LARGE") {
          return jsonError(reply, 413, { error: `body is larger than ${JSON_LIMIT} bytes` });
        }
        if (err.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE") {
          return jsonError(reply, 415, { error: "send JSON with Content-Type: application/json" });
        }
        const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
        if (status >= 500) log.error({ err }, "simulator request failed");
        return jsonError(reply, status, {
          error: status >= 500 ? "internal error in the simulator" : err.message,
        });
      });
      scope.setNotFoundHandler((req, reply) =>
        jsonError(reply, 404, { error: `no simulator route ${req.method} ${req.url.split("?")[0]}` }),
      );
      scope.addHook("preClose", async () => {
        closing.abort();
        for (const c of inflight) c.abort();
        for (const t of timers) clearTimeout(t);
        timers.clear();
        for (const s of streams) s.end();
        streams.clear();
      });

      // --- the page -------------------------------------------------------------------------------------
      const asset = async (name: string, reply: FastifyReply) => {
        const type = ASSETS[name];
        if (!type) return jsonError(reply, 404, { error: `no simulator asset ${name}` });
        let content: Buffer;
        try {
          content = await readFile(`${ASSETS_DIR}${name}`);
        } catch {
          return jsonError(reply, 500, {
            error: `the simulator page is missing (${ASSETS_DIR}${name}); reinstall the package, which ships assets/`,
          });
        }
        reply.header("cache-control", "no-cache").header("x-content-type-options", "nosniff");
        if (name === "index.html") reply.header("content-security-policy", PAGE_CSP);
        return reply.type(type).send(content);
      };
      scope.get("/", (_req, reply) => asset("index.html", reply));
      scope.get<{ Params: { name: string } }>("/:name", (req, reply) => asset(req.params.name, reply));

      // --- customers --------------------------------------------------------------------------------------
      scope.get("/api/channels", async () => ({
        channels: opts.channels().map((c) => ({ id: c.id, numbers: c.numbers.map((n) => toE164(n) ?? n) })),
      }));

      scope.post("/api/messages", async (req, reply) => {
        if (!isObject(req.body))
          return jsonError(reply, 400, { error: "send a JSON object {from, to, body, media?}" });
        const parsed = customerSend.safeParse(req.body);
        if (!parsed.success) return invalid(reply, "message", parsed.error);
        const { from, to, body, media } = parsed.data;
        const channel = channelOwning(to);
        if (!channel) {
          const known = opts
            .channels()
            .flatMap((c) => c.numbers)
            .join(", ");
          return jsonError(reply, 404, {
            error: `no simulator channel has the number ${to}; send to one of: ${known || "(no simulator channels configured)"}`,
          });
        }
        const m = add({
          id: `SIM${randomBytes(12).toString("hex")}`,
          direction: "mo",
          from,
          to,
          body,
          media,
          at: now().toISOString(),
          status: "sending",
          channelId: channel.id,
        });
        const payload = { type: "message", id: m.id, from, to, body, media, sent_at: m.at };
        const bytes = Buffer.from(JSON.stringify(payload));
        try {
          const res = await postWebhook(channel.inboundUrl, channel.secret, bytes, inboundTimeoutMs);
          if (res.status >= 200 && res.status < 300) {
            update(m.id, { status: "delivered" });
            log.info(
              { id: m.id, from: maskPhone(from), channel: channel.id },
              "customer message accepted by the bridge",
            );
            return reply.code(201).send({ message: byId.get(m.id) ?? m });
          }
          const error = `the bridge answered ${res.status} to the inbound webhook`;
          update(m.id, { status: "failed", error });
          log.warn(
            { id: m.id, channel: channel.id, answer: res.status },
            "bridge refused a customer message",
          );
          return jsonError(reply, 502, {
            error,
            bridge: { status: res.status, body: res.text },
            message: byId.get(m.id) ?? m,
          });
        } catch (e) {
          const timedOut = e instanceof WebhookTimeout;
          const error = timedOut
            ? `the bridge did not answer within ${inboundTimeoutMs} ms (${channel.inboundUrl})`
            : `could not reach the bridge at ${channel.inboundUrl}: ${(e as Error).message}`;
          update(m.id, { status: "failed", error });
          log.warn(
            { id: m.id, channel: channel.id, err: (e as Error).message },
            "customer message not delivered",
          );
          return jsonError(reply, timedOut ? 504 : 502, { error, message: byId.get(m.id) ?? m });
        }
      });

      scope.get<{ Querystring: { phone?: string } }>("/api/messages", async (req, reply) => {
        const raw = req.query.phone;
        if (raw === undefined || raw === "") return { messages: network.messages() };
        const phone = toE164(raw);
        if (!phone) {
          return jsonError(reply, 422, {
            error: `invalid query: phone: "${raw.slice(0, 32)}" is not a phone number; use E.164, e.g. +16505550123`,
            errors: [{ path: "phone", message: "not a phone number" }],
          });
        }
        return { messages: network.messages(phone) };
      });

      scope.delete("/api/messages", async (_req, reply) => {
        network.clear();
        return reply.code(204).send();
      });

      scope.get("/api/phones", async () => {
        // Messages are kept in arrival order, so the position of a phone's last message is its recency:
        // timestamps can tie within a millisecond, and a status update may change `at` later.
        const phones = new Map<
          string,
          { phone: string; count: number; last: SimulatorMessage; order: number }
        >();
        messages.forEach((m, order) => {
          const phone = customerOf(m);
          const p = phones.get(phone);
          if (p) {
            p.count++;
            p.last = m;
            p.order = order;
          } else phones.set(phone, { phone, count: 1, last: m, order });
        });
        return {
          phones: [...phones.values()]
            .sort((a, b) => b.order - a.order)
            .map(({ order: _order, ...p }) => ({ ...p, last: { ...p.last } })),
        };
      });

      // Server-Sent Events, so the page updates live.
      scope.get("/api/events", (req, reply) => {
        reply.hijack();
        const res = reply.raw;
        res.writeHead(200, {
          "content-type": "text/event-stream; charset=utf-8",
          "cache-control": "no-cache, no-transform",
          connection: "keep-alive",
          "x-accel-buffering": "no",
        });
        res.write("retry: 2000\n\nevent: ready\ndata: {}\n\n");
        const unsubscribe = network.subscribe((e) => {
          res.write(`event: ${e.type}\ndata: ${JSON.stringify(e.type === "message" ? e.message : {})}\n\n`);
        });
        const ping = setInterval(() => res.write(": ping\n\n"), 15_000);
        ping.unref();
        streams.add(res);
        req.raw.on("close", () => {
          unsubscribe();
          clearInterval(ping);
          streams.delete(res);
        });
      });

      // --- faults -----------------------------------------------------------------------------------------
      scope.get("/api/faults", async () => network.faults());
      scope.put("/api/faults", async (req, reply) => {
        if (!isObject(req.body))
          return jsonError(reply, 400, { error: 'send a JSON object, e.g. {"retryable": 0.2}' });
        const parsed = faultsInput.safeParse(req.body);
        if (!parsed.success) return invalid(reply, "faults", parsed.error);
        const f = parsed.data;
        faults = {
          permanent: f.permanent ?? 0,
          retryable: f.retryable ?? 0,
          opted_out: f.opted_out ?? 0,
          undelivered: f.undelivered ?? 0,
          slow: { probability: f.slow?.probability ?? 0, delay_ms: f.slow?.delay_ms ?? DEFAULT_SLOW_MS },
          next: f.next ?? [],
        };
        log.info({ faults: { ...faults, next: faults.next.length } }, "simulator faults set");
        return network.faults();
      });
      scope.delete("/api/faults", async () => {
        faults = noFaults();
        return network.faults();
      });

      // --- the carrier API the adapter's send() calls ----------------------------------------------------
      scope.post("/provider/messages", async (req, reply) => {
        if (!isObject(req.body))
          return jsonError(reply, 400, { code: "rejected", message: "send a JSON object" });
        const parsed = carrierSend.safeParse(req.body);
        if (!parsed.success) {
          const errors = fieldErrors(parsed.error);
          return jsonError(reply, 400, {
            code: "rejected",
            message: errors.map((e) => `${e.path}: ${e.message}`).join("; "),
            errors,
          });
        }
        const input = parsed.data;
        const from = toE164(input.from) ?? input.from;
        const channel = channelOwning(from);
        if (!channel) {
          return jsonError(reply, 400, {
            code: "rejected",
            message: `from ${input.from} is not a number of any simulator channel; list it in the channel's numbers`,
          });
        }
        const auth = req.headers.authorization ?? "";
        const token = /^Bearer\s+(.+)$/i.exec(auth)?.[1]?.trim() ?? "";
        if (!token || !sameSecret(token, channel.secret)) {
          return jsonError(reply, 401, {
            code: "unauthorized",
            message: `missing or wrong Bearer secret for the channel of ${from}`,
          });
        }
        const to = toE164(input.to);
        if (!to) {
          return jsonError(reply, 400, {
            code: "invalid_number",
            message: `to "${input.to.slice(0, 32)}" is not a valid phone number`,
          });
        }
        if (input.body.trim() === "" && input.media_urls.length === 0) {
          return jsonError(reply, 400, { code: "rejected", message: "body is empty and there is no media" });
        }
        if (input.body.length > MAX_BODY) {
          return jsonError(reply, 400, {
            code: "rejected",
            message: `body is longer than ${MAX_BODY} characters`,
          });
        }
        const key = req.headers["idempotency-key"];
        const idemKey = typeof key === "string" && key ? `${channel.id}:${key}` : undefined;
        const seen = idemKey ? idempotent.get(idemKey) : undefined;
        if (seen) return reply.code(201).send({ id: seen, status: byId.get(seen)?.status ?? "queued" });

        const fault = drawFault();
        if (fault.slow) await sleep(faults.slow.delay_ms);
        const base = {
          id: `SM${randomBytes(16).toString("hex")}`,
          direction: "mt" as const,
          from,
          to,
          body: input.body,
          media: input.media_urls.map((url) => ({ url, content_type: guessContentType(url) })),
          at: now().toISOString(),
          channelId: channel.id,
        };
        const refuse = (status: number, code: string, message: string) => {
          add({ ...base, status: "failed", error: message, errorCode: code });
          log.info({ to: maskPhone(to), channel: channel.id, fault: fault.kind }, "simulated send failure");
          return jsonError(reply, status, { code, message });
        };
        switch (fault.kind) {
          case "retryable":
            reply.header("retry-after", "1");
            return refuse(503, "unavailable", "simulated temporary failure (faults.retryable); retry later");
          case "permanent":
            return refuse(400, "rejected", "simulated permanent rejection (faults.permanent)");
          case "opted_out":
            return refuse(
              403,
              "opted_out",
              `simulated: ${to} has opted out of messages from ${from} (faults.opted_out)`,
            );
          default: {
            const m = add({ ...base, status: "queued" });
            if (idemKey) idempotent.set(idemKey, m.id);
            deliverLater(channel, m, input.status_callback, fault.kind === "undelivered");
            log.info({ id: m.id, to: maskPhone(to), channel: channel.id }, "simulated send accepted");
            return reply.code(201).send({ id: m.id, status: "queued" });
          }
        }
      });
    },
    { prefix: PREFIX },
  );

  return network;
}
