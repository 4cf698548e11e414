import type { IncomingHttpHeaders } from "node:http";

/**
 * The URL a provider called, as it must be reconstructed for signature checks (Twilio, Plivo sign it):
 * `server.publicUrl` when set (the origin and any path prefix a proxy adds), else the forwarded headers when
 * the bridge is configured to trust its proxy, else what the request itself says.
 */
export function publicRequestUrl(
  req: { url: string; headers: IncomingHttpHeaders },
  opts: { publicUrl?: string; trustProxy: boolean },
): string {
  // The regular expression only when there is a slash to trim: this runs for every provider webhook.
  if (opts.publicUrl)
    return (opts.publicUrl.endsWith("/") ? opts.publicUrl.replace(/\/+$/, "") : opts.publicUrl) + req.url;
  const first = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v)?.split(",")[0]?.trim();
  if (opts.trustProxy) {
    const proto = first(req.headers["x-forwarded-proto"]) ?? "https";
    const host = first(req.headers["x-forwarded-host"]) ?? first(req.headers.host) ?? "localhost";
    return `${proto}://${host}${req.url}`;
  }
  return `http://${first(req.headers.host) ?? "localhost"}${req.url}`;
}
