import { readFile } from "node:fs/promises";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { diagnoseSignature } from "../protocol/diagnose.js";
import { requireSigned, sendError, signedBody } from "../protocol/fastify.js";
import { type IncomingSms, parseIsoTimestamp, validateIncomingSms } from "../protocol/payloads.js";
import { SIGNATURE_HEADER_LC } from "../protocol/signature.js";
import type { SandboxChannel } from "./config.js";
import {
  ApiError,
  type ChaosState,
  type SandboxEvent,
  type SandboxModel,
  toVerdict,
  truncate,
} from "./model.js";

declare module "fastify" {
  interface FastifyRequest {
    sandbox: {
      channel?: SandboxChannel;
      notes: string[];
      chaos?: boolean;
      messageId?: number;
      conversation?: string;
    } | null;
  }
}

const REDACTED_HEADERS = new Set(["authorization", "proxy-authorization", "cookie"]);

function headerRecord(h: FastifyRequest["headers"]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined) continue;
    out[k] = REDACTED_HEADERS.has(k) ? "[redacted]" : Array.isArray(v) ? v.join(", ") : v;
  }
  return out;
}

function payloadText(payload: unknown): string {
  if (typeof payload === "string") return payload;
  if (Buffer.isBuffer(payload)) return payload.toString("utf8");
  return "";
}

/** `/incoming/sms`: the protocol endpoint, in its own scope so bodies stay raw bytes until verified. */
export async function incomingRoutes(
  app: FastifyInstance,
  opts: { model: SandboxModel; bodyLimit: number },
): Promise<void> {
  const { model, bodyLimit } = opts;
  await signedBody(app, { bodyLimit });
  app.decorateRequest("sandbox", null);
  app.addHook("onRequest", async (req) => {
    req.sandbox = { notes: [] };
  });

  // Every answer, whatever produced it (chaos, the signature plugin, 413 from the parser), lands in the log.
  app.addHook("onSend", async (req, reply, payload) => {
    const state = req.sandbox ?? { notes: [] };
    const bytes = req.signed?.bytes ?? (Buffer.isBuffer(req.body) ? req.body : undefined);
    const channel = state.channel;
    const header = req.headers[SIGNATURE_HEADER_LC];
    let signature = null;
    if (channel && bytes) signature = toVerdict(diagnoseSignature(bytes, header, channel.secrets));
    const body = bytes
      ? truncate(bytes)
      : { body: reply.statusCode === 413 ? `(not kept: over the ${bodyLimit}-byte limit)` : "" };
    model.logRequest({
      kind: "incoming",
      at: new Date().toISOString(),
      method: req.method,
      url: req.url,
      headers: headerRecord(req.headers),
      ...body,
      status: reply.statusCode,
      answer: payloadText(payload),
      duration_ms: Math.round(reply.elapsedTime),
      channel: channel ? { id: channel.id, name: channel.name, phone: channel.phone } : null,
      signature,
      notes: state.notes,
      ...(state.messageId !== undefined ? { message_id: state.messageId } : {}),
      ...(state.conversation ? { conversation: state.conversation } : {}),
      ...(state.chaos ? { chaos: true } : {}),
    });
    return payload;
  });

  const chaos = async (req: FastifyRequest, reply: FastifyReply) => {
    const rule = model.chaos.incoming;
    if (!rule || Math.random() >= rule.probability) return;
    if (rule.delay_ms > 0) await new Promise((r) => setTimeout(r, rule.delay_ms));
    if (rule.status === undefined) {
      req.sandbox?.notes.push(`chaos: delayed ${rule.delay_ms} ms`);
      return;
    }
    if (req.sandbox) {
      req.sandbox.chaos = true;
      req.sandbox.notes.push(`chaos: answered ${rule.status} without processing`);
    }
    if (rule.retry_after !== undefined) reply.header("retry-after", String(rule.retry_after));
    return sendError(
      reply,
      rule.status,
      `chaos: simulated ${rule.status} from the sandbox (DELETE /api/chaos or the inbox's chaos switch turns it off)`,
    );
  };

  const phoneField = (json: unknown): { field: string; phone: unknown } => {
    const o = (json && typeof json === "object" ? json : {}) as Record<string, unknown>;
    const field = o.direction === "outbound" ? "from" : "to";
    const party = o[field];
    return {
      field,
      phone: party && typeof party === "object" ? (party as Record<string, unknown>).phone : undefined,
    };
  };

  app.post(
    "/incoming/sms",
    {
      preHandler: [
        chaos,
        requireSigned<IncomingSms>({
          validate: validateIncomingSms,
          secrets: (req, json) => {
            const { field, phone } = phoneField(json);
            if (typeof phone !== "string") {
              return {
                status: 422,
                error: `invalid payload: ${field}.phone: required (the channel is found by its number${field === "from" ? ", which is from.phone for direction outbound" : ""})`,
              };
            }
            if (!/^\+[1-9]\d{1,14}$/.test(phone)) {
              return { status: 422, error: `invalid payload: ${field}.phone: not E.164 (e.g. +16501234567)` };
            }
            const channel = model.channelByPhone(phone);
            if (!channel) return undefined;
            if (req.sandbox) req.sandbox.channel = channel;
            return channel.secrets;
          },
          unknown: (json) => {
            const { field, phone } = phoneField(json);
            const known = model.config.channels.map((c) => c.phone).join(", ");
            return `no channel has the number ${String(phone)} (${field}.phone${field === "from" ? ", direction outbound" : ""}); the sandbox's channels: ${known}`;
          },
        }),
      ],
    },
    async (req, reply) => {
      const sms = req.signed?.payload as IncomingSms;
      const channel = req.sandbox?.channel as SandboxChannel;
      const r = model.ingest(channel, sms);
      if (req.sandbox) {
        req.sandbox.notes.push(...r.notes);
        req.sandbox.messageId = r.message.id;
        req.sandbox.conversation = r.conversation.slug;
      }
      return reply.code(r.duplicate ? 200 : 201).send({
        ok: true,
        duplicate: r.duplicate,
        message: r.message,
        conversation: { slug: r.conversation.slug, thread_ids: r.conversation.thread_ids },
        notes: r.notes,
      });
    },
  );
}

const httpUrl = z.string().refine((v) => /^https?:\/\/[^\s]+$/i.test(v), { error: "not an http(s) URL" });

const replySchema = z
  .object({
    body: z.string({ error: "required (the text to send)" }),
    attachments: z.array(httpUrl, { error: "must be a list of URLs" }).optional(),
    staff_email: z.string({ error: "must be a string" }).optional(),
  })
  .strict()
  .refine((v) => v.body.trim() !== "" || (v.attachments ?? []).length > 0, {
    error: "empty: write a body, attach a URL, or both",
    path: ["body"],
  });

const chaosSchema = z
  .object({
    incoming: z
      .object({
        status: z.number().int().min(100).max(599, { error: "an HTTP status, 100-599" }).optional(),
        probability: z.number().min(0).max(1, { error: "between 0 and 1" }).default(1),
        delay_ms: z.number().int().min(0).max(120_000, { error: "at most 120000" }).default(0),
        retry_after: z.number().int().min(0).optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

const clockSchema = z
  .object({
    now: z
      .string()
      .refine((v) => parseIsoTimestamp(v) !== undefined, {
        error: "not ISO 8601 (e.g. 2026-01-01T12:00:00Z)",
      })
      .optional(),
    advance_ms: z.number().int().optional(),
  })
  .strict()
  .refine((v) => v.now !== undefined || v.advance_ms !== undefined, {
    error: "send now (ISO 8601) or advance_ms",
  });

function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body ?? {});
  if (!r.success) {
    const msg = r.error.issues
      .map((i) => `${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`)
      .join("; ");
    throw new ApiError(422, `invalid request: ${msg}`);
  }
  return r.data;
}

function idParam(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw new ApiError(404, `no such id ${v}`);
  return n;
}

/** The REST API, the event stream and the inbox UI. */
export async function apiRoutes(
  app: FastifyInstance,
  opts: { model: SandboxModel; assetsDir: URL },
): Promise<void> {
  const { model, assetsDir } = opts;

  app.setErrorHandler((err: Error & { statusCode?: number }, req, reply) => {
    if (err instanceof ApiError) return sendError(reply, err.status, err.message);
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    if (status >= 500) req.log.error({ err }, "request failed");
    return sendError(reply, status, status >= 500 ? "internal error" : err.message);
  });
  app.setNotFoundHandler((req, reply) => sendError(reply, 404, `no route ${req.method} ${req.url}`));

  app.get("/api/channels", async () => ({
    channels: model.config.channels.map((c) => ({
      id: c.id,
      name: c.name,
      phone: c.phone,
      webhook_url: c.webhookUrl ?? null,
      secrets: c.secrets.length,
    })),
    staff: model.config.staff,
  }));

  app.get<{ Querystring: Record<string, string | undefined> }>("/api/conversations", async (req) => {
    const q = req.query;
    return {
      conversations: model.conversations({
        channel: q.channel || undefined,
        customer: q.customer || q.customer_phone || undefined,
        assignee: q.assignee || undefined,
        q: q.q || q.text || undefined,
        limit: q.limit ? Number(q.limit) || undefined : undefined,
      }),
    };
  });

  app.get<{ Params: { slug: string } }>("/api/conversations/:slug", async (req) => {
    const c = model.conversation(req.params.slug);
    if (!c) throw new ApiError(404, `no conversation ${req.params.slug}`);
    return { conversation: c };
  });

  app.post<{ Params: { slug: string } }>("/api/conversations/:slug/messages", async (req, reply) => {
    const input = parseBody(replySchema, req.body);
    const r = await model.reply(req.params.slug, { ...input, attachments: input.attachments ?? [] });
    return reply.code(201).send(r);
  });

  app.put<{ Params: { slug: string } }>("/api/conversations/:slug/assignee", async (req) => {
    const { email } = parseBody(z.object({ email: z.string().nullable() }).strict(), req.body);
    return { conversation: model.assign(req.params.slug, email) };
  });

  app.get<{ Params: { id: string } }>("/api/messages/:id", async (req) => {
    const m = model.message(idParam(req.params.id));
    if (!m) throw new ApiError(404, `no message ${req.params.id}`);
    return { message: m };
  });

  app.post<{ Params: { id: string } }>("/api/messages/:id/retry", async (req) =>
    model.retry(idParam(req.params.id)),
  );

  app.get<{ Querystring: { limit?: string; kind?: string } }>("/api/requests", async (req) => ({
    requests: model.requests(Number(req.query.limit) || 100, req.query.kind),
  }));

  app.get<{ Params: { id: string } }>("/api/requests/:id", async (req) => {
    const e = model.request(idParam(req.params.id));
    if (!e) throw new ApiError(404, `no request ${req.params.id} (the log keeps the newest entries only)`);
    return { request: e };
  });

  app.get("/api/chaos", async () => ({ chaos: model.chaos }));
  app.put("/api/chaos", async (req) => {
    const chaos = parseBody(chaosSchema, req.body) as ChaosState;
    model.setChaos(chaos);
    return { chaos };
  });
  app.delete("/api/chaos", async () => {
    model.setChaos({});
    return { chaos: {} };
  });

  app.get("/api/clock", async () => ({ clock: model.clock() }));
  app.put("/api/clock", async (req) => {
    const body = parseBody(clockSchema, req.body);
    const base = body.now !== undefined ? (parseIsoTimestamp(body.now) as Date).getTime() : model.now();
    model.setClock(base + (body.advance_ms ?? 0));
    return { clock: model.clock() };
  });
  app.delete("/api/clock", async () => {
    model.setClock(undefined);
    return { clock: model.clock() };
  });

  app.delete("/api/data", async () => {
    model.clear();
    return { ok: true };
  });

  app.get("/api/events", (req, reply) => {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-transform",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    res.write(
      `retry: 2000\n\nevent: hello\ndata: ${JSON.stringify({ clock: model.clock(), chaos: model.chaos })}\n\n`,
    );
    const onEvent = (e: SandboxEvent) => {
      res.write(`event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
    };
    // A comment line now and then keeps proxies and idle timeouts from closing a quiet stream.
    const ping = setInterval(() => res.write(": ping\n\n"), 15_000);
    model.events.on("event", onEvent);
    const stop = () => {
      clearInterval(ping);
      model.events.off("event", onEvent);
    };
    req.raw.on("close", stop);
    res.on("error", stop);
  });

  // The inbox: plain files read per request, so editing them needs no restart and no build step.
  const assets: Record<string, string> = {
    "index.html": "text/html; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
  };
  const serve = async (name: string, reply: FastifyReply) => {
    const type = assets[name];
    if (!type) return sendError(reply, 404, `no asset ${name}`);
    const text = await readFile(new URL(name, assetsDir));
    return reply.type(type).header("cache-control", "no-cache").send(text);
  };
  app.get("/", async (_req, reply) => serve("index.html", reply));
  app.get<{ Params: { name: string } }>("/assets/:name", async (req, reply) => serve(req.params.name, reply));
  app.get("/favicon.ico", async (_req, reply) => serve("favicon.svg", reply));
}
