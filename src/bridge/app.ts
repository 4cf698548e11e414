import { createHash, timingSafeEqual } from "node:crypto";
import type { Writable } from "node:stream";
import Fastify, { type FastifyInstance, LogController } from "fastify";
import type { Logger } from "pino";
import { z } from "zod";
import { toE164 } from "../core/phone.js";
import { sendError } from "../protocol/fastify.js";
import { createHttpClient } from "../providers/http.js";
import { type PhoneNetwork, registerPhoneNetwork } from "../providers/simulator/network.js";
import { openStore } from "../store/open.js";
import type { Store } from "../store/store.js";
import { buildChannels, type Channel } from "./channels.js";
import { configSecrets, type LoadedConfig } from "./config.js";
import { registerDevPage } from "./dev-page.js";
import { Forwarder } from "./forwarder.js";
import { inboundHandler } from "./inbound.js";
import { createLogger, lazyRequestLogger } from "./logger.js";
import { DEFAULT_MEDIA, proxiedUrl, registerMediaProxy } from "./media-proxy.js";
import { createMetrics, type Metrics } from "./metrics.js";
import { helpdeskPayload } from "./payload.js";
import { publicRequestUrl } from "./public-url.js";
import { replyHandler } from "./reply.js";
import { RetentionSweeper } from "./retention.js";
import { registerRuntimeMetrics } from "./runtime-metrics.js";
import { sendThroughProvider } from "./send.js";
import { serverWithWebhooks, webhookHttp } from "./webhook-http.js";

export interface StartBridgeOptions {
  loaded: LoadedConfig;
  /** Overrides server.port / server.host (tests use port 0). */
  port?: number;
  host?: string;
  logger?: Logger;
  /** Where JSON logs go when no logger is given (default stdout). */
  logDestination?: Writable;
  now?: () => number;
  /** Default true; tests of the inbound path alone may turn the forwarder off. */
  forwarder?: boolean;
  /** `smsbridge dev`: serve the side-by-side page at /dev/ with the sandbox inbox at this URL. */
  devPage?: { sandboxUrl: string };
}

export interface RunningBridge {
  url: string;
  app: FastifyInstance;
  store: Store;
  channels: Map<string, Channel>;
  forwarder: Forwarder;
  retention: RetentionSweeper;
  metrics: Metrics;
  log: Logger;
  simulator?: PhoneNetwork;
  close(): Promise<void>;
}

const adminSendSchema = z
  .object({
    channel: z.string().optional(),
    from: z.string().optional(),
    to: z.string({ error: "required" }),
    body: z.string({ error: "required" }),
    media: z.array(z.string().regex(/^https?:\/\/\S+$/, { error: "not an http(s) URL" })).optional(),
  })
  .strict();

/** Starts `smsbridge serve`: migrations, HTTP routes, the forwarder. */
export async function startBridge(opts: StartBridgeOptions): Promise<RunningBridge> {
  const { config } = opts.loaded;
  const log =
    opts.logger ??
    createLogger({
      level: config.log.level,
      secrets: configSecrets(opts.loaded),
      ...(opts.logDestination ? { destination: opts.logDestination } : {}),
    });
  const now = opts.now ?? Date.now;
  const metrics = createMetrics();
  const store = openStore(config.database, {
    onWalSync: (s) => metrics.walSync.observe(s),
    backgroundNice: config.server.backgroundNice,
  });
  try {
    const applied = await store.migrate();
    if (applied.length) log.info({ applied }, "database migrations applied");
  } catch (err) {
    await store.close().catch(() => {});
    throw new Error(`database ${redactUrl(config.database)}: ${(err as Error).message}`);
  }
  const channels = new Map<string, Channel>();
  let forwarder: Forwarder | undefined;
  // Known after listen (port 0 in tests); read at request time.
  const baseUrlRef = { value: config.server.publicUrl ?? "" };
  // Built once: this runs for every provider webhook (publicRequestUrl trims a trailing slash, when there is one).
  const publicUrlOpts = {
    ...(config.server.publicUrl ? { publicUrl: config.server.publicUrl } : {}),
    trustProxy: config.server.trustProxy,
  };
  // Provider webhooks and staff replies: raw bytes, verified before anything parses them, served in front of
  // Fastify.
  const inbound = inboundHandler({
    store,
    channels,
    metrics,
    log,
    now,
    publicUrl: (req) => publicRequestUrl(req, publicUrlOpts),
    attachmentUrl: (ch, url) => proxiedUrl(ch, url, baseUrlRef.value, now(), DEFAULT_MEDIA.ttlMs),
    forwarder: () => forwarder,
    maskPhones: config.log.maskPhones,
  });
  const reply = replyHandler({ store, channels, metrics, log, now, deadlineMs: config.reply.deadlineMs });
  const webhooks = webhookHttp({
    bodyLimit: config.server.bodyLimit,
    log,
    handle: (route, channelId, req) =>
      route === "reamaze" ? reply(channelId, req) : inbound(route, channelId, req),
  });
  // Fastify types its logger as FastifyBaseLogger; pino's Logger is one, but the generics don't say so.
  const app = Fastify({
    loggerInstance: log,
    // Per-request log lines cost throughput; routes log what matters themselves.
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: lazyRequestLogger,
    bodyLimit: config.server.bodyLimit,
    trustProxy: config.server.trustProxy,
    forceCloseConnections: true,
    serverFactory: serverWithWebhooks(webhooks),
  }) as unknown as FastifyInstance;
  app.addHook("preClose", (done) => {
    webhooks.close();
    done();
  });

  registerMediaProxy(app, { channels, now, log, opts: DEFAULT_MEDIA });

  app.get("/healthz", async () => ({ ok: true }));
  app.get("/readyz", async (_req, reply) => {
    const r = await store.ready();
    return r.ok ? { ok: true } : reply.code(503).send({ ok: false, error: r.reason });
  });
  app.get("/metrics", async (_req, reply) => {
    try {
      const stats = await store.channelStats();
      const t = now();
      for (const ch of channels.values()) {
        const s = stats.find((x) => x.channelId === ch.id);
        metrics.outboxDepth.set({ channel: ch.id }, s?.pending ?? 0);
        metrics.outboxDead.set({ channel: ch.id }, s?.dead ?? 0);
        metrics.outboxOldest.set(
          { channel: ch.id },
          s?.oldestPendingAt ? Math.max(0, (t - s.oldestPendingAt) / 1000) : 0,
        );
      }
    } catch (err) {
      log.warn({ err }, "could not read outbox statistics for /metrics");
    }
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  // Other systems sending an SMS through a channel; the helpdesk gets a copy (direction "outbound").
  app.post("/api/messages", async (req, reply) => {
    if (!config.adminToken)
      return sendError(reply, 404, "the admin API is disabled: set adminToken in the config");
    const auth = req.headers.authorization ?? "";
    if (!timingSafeEqualString(auth, `Bearer ${config.adminToken}`))
      return sendError(reply, 401, "missing or wrong bearer token");
    const parsed = adminSendSchema.safeParse(req.body);
    if (!parsed.success) {
      const errors = parsed.error.issues.map((i) => ({
        path: i.path.join(".") || "(root)",
        message: i.message,
      }));
      return sendError(
        reply,
        422,
        `invalid request: ${errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`,
        errors,
      );
    }
    const b = parsed.data;
    const ch = b.channel
      ? channels.get(b.channel)
      : channels.size === 1
        ? [...channels.values()][0]
        : undefined;
    if (!ch)
      return sendError(
        reply,
        b.channel ? 404 : 422,
        b.channel
          ? `unknown channel "${b.channel}"`
          : "channel: required when more than one channel is configured",
      );
    const to = toE164(b.to);
    if (!to) return sendError(reply, 422, `to: "${b.to}" is not a phone number (E.164, e.g. +15105559999)`);
    const from = b.from ?? [...ch.numbers][0]!;
    if (!ch.numbers.has(from))
      return sendError(reply, 422, `from: ${from} is not a number of channel "${ch.id}"`);
    const answer = await sendThroughProvider(
      { store, metrics, log, now },
      ch,
      { from, to, body: b.body, mediaUrls: b.media ?? [], statusCallbackUrl: ch.urls.status },
      config.reply.deadlineMs,
    );
    if (!answer.result) {
      if (answer.retryAfterMs !== undefined)
        reply.header("retry-after", String(Math.ceil(answer.retryAfterMs / 1000)));
      return reply.code(answer.status).send(answer.body);
    }
    const createdAt = now();
    const providerId = answer.result.providerId;
    const sent = await store.recordSent({
      channelId: ch.id,
      direction: "outbound",
      provider: ch.adapter.type,
      customer: to,
      channelNumber: from,
      body: b.body,
      providerIds: answer.result.providerIds ?? [providerId],
      createdAt,
      payload: (threadId) =>
        helpdeskPayload(ch, {
          id: `${ch.adapter.type}:${providerId}`,
          direction: "outbound",
          customer: to,
          channelNumber: from,
          body: b.body,
          attachments: b.media ?? [],
          threadId,
          createdAt,
        }),
    });
    forwarder?.wake();
    return reply.code(201).send({
      id: providerId,
      message_id: sent.messageId,
      ...(sent.threadId ? { thread_id: sent.threadId } : {}),
    });
  });

  if (opts.devPage) registerDevPage(app, opts.devPage.sandboxUrl);

  let simulator: PhoneNetwork | undefined;
  let localBase = "";
  const simulated = () =>
    [...channels.values()]
      .filter((c) => c.adapter.type === "simulator")
      .map((c) => {
        const local = `${localBase}/channels/${c.id}`;
        const p = opts.loaded.providers.get(c.id)?.config as { secret: string };
        return {
          id: c.id,
          numbers: [...c.numbers],
          secret: p.secret,
          inboundUrl: `${local}/inbound`,
          statusUrl: `${local}/status`,
        };
      });
  if ([...opts.loaded.providers.values()].some((p) => p.type === "simulator")) {
    simulator = registerPhoneNetwork(app, { channels: simulated, log });
  }

  const port = opts.port ?? config.server.port;
  const host = opts.host ?? config.server.host;
  await app.listen({ port, host });
  const runtimeMetrics = registerRuntimeMetrics(metrics.registry);
  const addr = app.server.address();
  const actualPort = typeof addr === "object" && addr ? addr.port : port;
  const loopHost =
    host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
  localBase = `http://${loopHost}:${actualPort}`;
  const baseUrl = config.server.publicUrl ?? localBase;
  baseUrlRef.value = baseUrl;
  for (const [id, ch] of buildChannels(opts.loaded, baseUrl, {
    http: createHttpClient(),
    log,
    now: () => new Date(now()),
  })) {
    channels.set(id, ch);
  }
  forwarder = new Forwarder(store, channels, config.forwarder, metrics, log, now, {
    threadNice: config.server.backgroundNice,
  });
  const forwards = opts.forwarder !== false && config.forwarder.enabled;
  if (forwards) forwarder.start();
  else if (!config.forwarder.enabled)
    log.warn(
      "forwarder.enabled is false: this instance stores webhooks and sends staff replies but delivers nothing to the helpdesk; another instance on the same database must run the forwarder",
    );
  const retention = new RetentionSweeper(store, config.retention, metrics, log, now);
  retention.start();
  const fwRef = forwarder;
  // Other instances (PostgreSQL) commit rows too: their NOTIFY wakes this forwarder; polling is the backstop.
  // An instance that does not forward has nothing to wake, and keeps no connection for it.
  const unlisten = forwards
    ? store.onOutboxChange(
        () => fwRef.wake(),
        (err) =>
          log.warn({ err: err.message }, "outbox notifications interrupted; polling until they are back"),
      )
    : async () => {};
  log.info(
    {
      url: localBase,
      publicUrl: config.server.publicUrl,
      channels: [...channels.keys()],
      database: redactUrl(config.database),
    },
    "smsbridge listening",
  );

  const fw = forwarder;
  return {
    url: localBase,
    app,
    store,
    channels,
    forwarder: fw,
    retention,
    metrics,
    log,
    ...(simulator ? { simulator } : {}),
    async close() {
      await unlisten();
      await retention.stop();
      await fw.stop();
      await app.close();
      await store.close();
      runtimeMetrics.stop();
      // Log lines still buffered in the asynchronous destination.
      await new Promise<void>((r) => log.flush(() => r()));
    },
  };
}

/** Compares digests so neither the length nor the content of the token leaks through timing. */
function timingSafeEqualString(a: string, b: string): boolean {
  const digest = (v: string) => createHash("sha256").update(v).digest();
  return timingSafeEqual(digest(a), digest(b));
}

/** postgres://user:password@host/db → postgres://user:***@host/db */
export function redactUrl(u: string): string {
  return u.replace(/(\/\/[^:/@]+:)[^@]*@/, "$1***@");
}
