import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type RequestListener,
  type Server,
  type ServerResponse,
} from "node:http";
import type { Logger } from "pino";
import type { ErrorBody } from "../protocol/signed.js";
import type { HttpAnswer } from "../providers/types.js";

/**
 * The webhook routes of a channel served straight from node:http, in front of Fastify, which serves every other
 * route: the provider's (`/channels/:id/inbound`, `/channels/:id/status`) and the helpdesk's staff replies
 * (`/channels/:id/reamaze`). Why: they carry every message, and Fastify's request and reply objects, hooks,
 * promise wrapping and router cost ~8–10 µs of a core per request on top of node:http's own ~19 (a route that
 * only reads the body and answers; measured with wrk, docs/performance-history.md, round 14). What Fastify did
 * for these routes is done here the same way: the raw body up to `bodyLimit` (413 beyond it, from the
 * Content-Length before reading), JSON `{error}` answers, 500 for anything unexpected, 503 once the server is
 * closing, HEAD served as GET on the provider routes. Anything else falls through to Fastify.
 */
export interface WebhookHttp {
  /** Serves the request and returns true if it is a webhook; false leaves it to the next listener. */
  listener: (req: IncomingMessage, res: ServerResponse) => boolean;
  /** From now on every webhook gets 503 (the provider or helpdesk retries elsewhere or later). */
  close(): void;
}

/** The provider's two routes of a channel. */
export type ProviderRoute = "inbound" | "status";
/** Every route served here: the provider's, and the helpdesk's staff-reply webhook. */
export type WebhookRoute = ProviderRoute | "reamaze";

/** A webhook as it arrived: the request target (path and query), headers and raw body. */
export interface WebhookRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export type WebhookHandler = (
  route: WebhookRoute,
  channelId: string,
  req: WebhookRequest,
) => Promise<HttpAnswer>;

/** The bridge's error answer (`ErrorBody`, as protocol/fastify.ts sendError writes it) without Fastify. */
export function errorAnswer(
  status: number,
  error: string | ErrorBody,
  headers?: Record<string, string>,
): HttpAnswer {
  const body: ErrorBody = typeof error === "string" ? { error } : error;
  return {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
    body: JSON.stringify(body),
  };
}

const ROUTE = /^\/channels\/([^/]+)\/(inbound|status|reamaze)$/;

/** The route and (percent-decoded) channel id of a request target, as Fastify's router would match them. */
export function matchWebhookRoute(url: string): { route: WebhookRoute; channelId: string } | undefined {
  // Cheap test first: every request to the bridge passes here.
  if (!url.startsWith("/channels/")) return undefined;
  const q = url.indexOf("?");
  const m = ROUTE.exec(q === -1 ? url : url.slice(0, q));
  if (!m) return undefined;
  let channelId: string;
  try {
    channelId = decodeURIComponent(m[1] as string);
  } catch {
    return undefined; // malformed percent-encoding: Fastify answers it (400)
  }
  return { route: m[2] as WebhookRoute, channelId };
}

/** Methods each route answers; the rest fall through to Fastify (404). GET webhooks are Vonage's. */
function routeTakes(route: WebhookRoute, method: string | undefined): boolean {
  if (method === "POST") return true;
  return route !== "reamaze" && (method === "GET" || method === "HEAD");
}

export function webhookHttp(opts: { bodyLimit: number; handle: WebhookHandler; log: Logger }): WebhookHttp {
  let closing = false;
  const { bodyLimit, handle, log } = opts;

  const serve = (
    res: ServerResponse,
    route: WebhookRoute,
    channelId: string,
    req: IncomingMessage,
    body: Buffer,
  ) => {
    handle(route, channelId, {
      method: req.method as string,
      url: req.url as string,
      headers: req.headers,
      body,
    }).then(
      (answer) => send(res, answer),
      (err: unknown) => {
        log.error({ err, channel: channelId, route }, "request failed");
        send(res, errorAnswer(500, "internal error"));
      },
    );
  };

  return {
    close() {
      closing = true;
    },
    listener(req, res) {
      const match = matchWebhookRoute(req.url as string);
      if (!match) return false;
      const method = req.method;
      if (!routeTakes(match.route, method)) return false;
      if (closing) {
        send(res, errorAnswer(503, "the bridge is shutting down; retry later", { "retry-after": "5" }));
        return true;
      }
      // GET webhooks (Vonage) carry their data in the URL; a body, if any, is not read (Node discards it).
      if (method !== "POST") {
        serve(res, match.route, match.channelId, req, EMPTY);
        return true;
      }
      readBody(req, bodyLimit, (err, body) => {
        if (err) return send(res, err);
        serve(res, match.route, match.channelId, req, body as Buffer);
      });
      return true;
    },
  };
}

const EMPTY = Buffer.alloc(0);

function tooLarge(limit: number): HttpAnswer {
  return errorAnswer(413, `body is larger than the limit of ${limit} bytes`);
}

/** The whole body, copied (a chunk is a view of the socket's read buffer, which must not be kept). */
function readBody(
  req: IncomingMessage,
  limit: number,
  done: (err: HttpAnswer | undefined, body?: Buffer) => void,
) {
  const declared = Number(req.headers["content-length"]);
  if (declared > limit) return done(tooLarge(limit));
  const chunks: Buffer[] = [];
  let length = 0;
  const onData = (chunk: Buffer) => {
    length += chunk.length;
    if (length > limit) {
      // The rest keeps flowing with no listener and is dropped; the client still reads the answer.
      stop();
      return done(tooLarge(limit));
    }
    chunks.push(chunk);
  };
  const onEnd = () => {
    stop();
    done(undefined, Buffer.concat(chunks, length)); // a new buffer even for one chunk
  };
  const onError = () => {
    stop();
    done(errorAnswer(400, "the request body was not received completely"));
  };
  const stop = () => {
    req.off("data", onData);
    req.off("end", onEnd);
    req.off("error", onError);
  };
  req.on("data", onData);
  req.on("end", onEnd);
  req.on("error", onError);
}

function send(res: ServerResponse, a: HttpAnswer): void {
  if (res.headersSent || res.destroyed) return;
  const body = a.body ?? "";
  // Not `{ ...a.headers, "content-length": … }`: on Node 20 a literal that starts with a spread costs ~0.4 µs
  // per property after it (store.ts claimedAtInsert); this runs for every webhook. (Nor setHeader before
  // writeHead, which sends writeHead down node:http's slower merging path.)
  res.writeHead(a.status, Object.assign({ "content-length": Buffer.byteLength(body) }, a.headers));
  res.end(body);
}

/**
 * A `serverFactory` for Fastify: its node:http server with the webhook routes in front. Sets the timeouts
 * Fastify sets on a server it makes itself (it does not when given a factory).
 */
export function serverWithWebhooks(webhooks: WebhookHttp) {
  return (
    fastifyHandler: RequestListener,
    o: {
      keepAliveTimeout?: number;
      requestTimeout?: number;
      connectionTimeout?: number;
      maxRequestsPerSocket?: number;
    },
  ): Server => {
    const server = createServer((req, res) => {
      if (!webhooks.listener(req, res)) fastifyHandler(req, res);
    });
    if (o.keepAliveTimeout !== undefined) server.keepAliveTimeout = o.keepAliveTimeout;
    if (o.requestTimeout !== undefined) server.requestTimeout = o.requestTimeout;
    server.setTimeout(o.connectionTimeout ?? 0);
    if (o.maxRequestsPerSocket && o.maxRequestsPerSocket > 0)
      server.maxRequestsPerSocket = o.maxRequestsPerSocket;
    return server;
  };
}
