import { createHmac, timingSafeEqual } from "node:crypto";
import { Transform } from "node:stream";
import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";
import { request } from "undici";
import { sendError } from "../protocol/fastify.js";
import type { MediaAccess } from "../providers/types.js";
import type { Channel } from "./channels.js";

/**
 * Media proxy: when a provider's media URLs need credentials (Twilio with HTTP auth on media) or expire, the
 * helpdesk gets `<publicUrl>/media/<token>` instead. The token is signed and expires; the bridge fetches the
 * file with the channel's credentials — only from that provider's media hosts, within a size limit and a
 * content-type allow-list — and streams it through.
 */

export interface MediaProxyOptions {
  ttlMs: number;
  maxBytes: number;
  /** Allowed content types; an entry ending in "/" allows the whole family ("image/"). */
  contentTypes: string[];
}

export const DEFAULT_MEDIA: MediaProxyOptions = {
  ttlMs: 30 * 24 * 3_600_000,
  maxBytes: 10 * 1024 * 1024,
  contentTypes: [
    "image/",
    "video/",
    "audio/",
    "application/pdf",
    "text/vcard",
    "text/x-vcard",
    "text/calendar",
    "text/plain",
  ],
};

const MAX_REDIRECTS = 3;

function keyFor(ch: Channel): Buffer {
  // Derived from the channel's helpdesk secret: every instance of a scaled-out bridge agrees without new config.
  return createHmac("sha256", ch.config.reamaze.secrets[0]!).update("smsbridge media proxy v1").digest();
}

export function hostAllowed(media: MediaAccess, url: URL): boolean {
  const h = url.hostname.toLowerCase();
  return media.hosts.some((allowed) => {
    const a = allowed.toLowerCase();
    return a.startsWith(".") ? h.endsWith(a) || h === a.slice(1) : h === a;
  });
}

export function mediaToken(ch: Channel, url: string, expiresAt: number): string {
  const body = Buffer.from(JSON.stringify({ c: ch.id, u: url, x: Math.floor(expiresAt / 1000) })).toString(
    "base64url",
  );
  const mac = createHmac("sha256", keyFor(ch)).update(body).digest("base64url");
  return `${body}.${mac}`;
}

export function readMediaToken(
  channels: Map<string, Channel>,
  token: string,
  now: number,
): { ch: Channel; url: URL } | { error: string; status: number } {
  const [body, mac] = token.split(".");
  if (!body || !mac) return { status: 404, error: "not a media link" };
  let claims: { c?: unknown; u?: unknown; x?: unknown };
  try {
    claims = JSON.parse(Buffer.from(body, "base64url").toString("utf8"));
  } catch {
    return { status: 404, error: "not a media link" };
  }
  const ch = typeof claims.c === "string" ? channels.get(claims.c) : undefined;
  if (!ch || typeof claims.u !== "string" || typeof claims.x !== "number")
    return { status: 404, error: "not a media link" };
  const expected = createHmac("sha256", keyFor(ch)).update(body).digest();
  const got = Buffer.from(mac, "base64url");
  if (got.length !== expected.length || !timingSafeEqual(got, expected))
    return { status: 404, error: "not a media link" };
  if (claims.x * 1000 < now) return { status: 410, error: "this media link has expired" };
  return { ch, url: new URL(claims.u) };
}

export function proxiedUrl(ch: Channel, url: string, baseUrl: string, now: number, ttlMs: number): string {
  const media = ch.adapter.media;
  if (!media) return url;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return url;
  }
  if (!hostAllowed(media, parsed)) return url;
  return `${baseUrl.replace(/\/+$/, "")}/media/${mediaToken(ch, url, now + ttlMs)}`;
}

function typeAllowed(contentType: string, allowed: string[]): boolean {
  const t = contentType.split(";")[0]!.trim().toLowerCase();
  return allowed.some((a) => (a.endsWith("/") ? t.startsWith(a) : t === a));
}

export function registerMediaProxy(
  app: FastifyInstance,
  deps: { channels: Map<string, Channel>; now: () => number; log: Logger; opts: MediaProxyOptions },
): void {
  // A wildcard, not `:token`: Fastify refuses path parameters over 100 characters with 414, and a token carries a
  // whole provider URL (Twilio's are ~150 characters).
  app.get<{ Params: { "*": string } }>("/media/*", async (req, reply) => {
    const found = readMediaToken(deps.channels, req.params["*"], deps.now());
    if ("error" in found) return sendError(reply, found.status, found.error);
    const media = found.ch.adapter.media;
    if (!media || !hostAllowed(media, found.url))
      return sendError(reply, 403, "media host not allowed for this channel");
    let url = found.url;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const res = await request(url, {
        method: "GET",
        headers: media.headers(url),
        signal: AbortSignal.timeout(30_000),
      }).catch((err: Error) => err);
      if (res instanceof Error) {
        deps.log.warn({ err: res, channel: found.ch.id, host: url.host }, "media fetch failed");
        return sendError(reply, 502, "could not fetch the media from the provider");
      }
      if (res.statusCode >= 300 && res.statusCode < 400 && res.headers.location) {
        await res.body.dump();
        const next = new URL(String(res.headers.location), url);
        // Credentials are decided per URL by the adapter; a redirect may only go to https (CDN) hosts.
        if (next.protocol !== "https:" && !hostAllowed(media, next))
          return sendError(reply, 502, "provider redirected media to an insecure URL");
        url = next;
        continue;
      }
      if (res.statusCode !== 200) {
        await res.body.dump();
        return sendError(
          reply,
          res.statusCode === 404 || res.statusCode === 410 ? 404 : 502,
          `provider answered ${res.statusCode} for this media`,
        );
      }
      const type = String(res.headers["content-type"] ?? "application/octet-stream");
      if (!typeAllowed(type, deps.opts.contentTypes)) {
        await res.body.dump();
        return sendError(reply, 415, `media type ${type.split(";")[0]} is not allowed`);
      }
      const length = Number(res.headers["content-length"] ?? Number.NaN);
      if (length > deps.opts.maxBytes) {
        await res.body.dump();
        return sendError(reply, 413, `media is larger than ${deps.opts.maxBytes} bytes`);
      }
      reply
        .type(type)
        .header("cache-control", "private, max-age=3600")
        .header("x-content-type-options", "nosniff");
      if (Number.isFinite(length)) {
        // Declared size within the limit: stream it through; a body longer than declared is cut off.
        let size = 0;
        const limited = new Transform({
          transform(chunk: Buffer, _enc, cb) {
            size += chunk.length;
            cb(size > length ? new Error("media body longer than its content-length") : null, chunk);
          },
        });
        return reply.header("content-length", String(length)).send(res.body.pipe(limited));
      }
      // No declared size: buffer up to the limit, so an oversized file still gets a clean 413.
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length;
        if (size > deps.opts.maxBytes) {
          res.body.destroy();
          return sendError(reply, 413, `media is larger than ${deps.opts.maxBytes} bytes`);
        }
        chunks.push(chunk as Buffer);
      }
      return reply.send(Buffer.concat(chunks));
    }
    return sendError(reply, 502, "too many redirects fetching the media");
  });
}
