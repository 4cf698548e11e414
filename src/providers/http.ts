import { Agent, type Dispatcher } from "undici";
import { exchange } from "../protocol/exchange.js";

/** What a provider adapter's API call gets back: enough to classify, small enough to keep. */
export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

export interface HttpRequest {
  method: "GET" | "POST" | "PUT" | "DELETE";
  url: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  signal?: AbortSignal;
}

export interface HttpClient {
  request(req: HttpRequest): Promise<HttpResponse>;
}

/** Thrown by a guarded client when code tries to reach a host the guard forbids (tests: loopback only). */
export class ForbiddenHost extends Error {
  override name = "ForbiddenHost";
}

const MAX_ANSWER = 256 * 1024;

/**
 * undici with one keep-alive pool per client. `guard` sees every URL before it is requested; the provider
 * test harness uses it to prove no real network call is made.
 */
export function createHttpClient(
  opts: { dispatcher?: Dispatcher; guard?: (url: URL) => void } = {},
): HttpClient {
  const dispatcher = opts.dispatcher ?? new Agent({ keepAliveTimeout: 30_000, connections: 64 });
  return {
    async request(req) {
      const url = new URL(req.url);
      opts.guard?.(url);
      const res = await exchange(
        dispatcher,
        {
          url,
          method: req.method,
          ...(req.headers ? { headers: req.headers } : {}),
          ...(req.body !== undefined ? { body: req.body } : {}),
          ...(req.signal ? { signal: req.signal } : {}),
        },
        MAX_ANSWER,
      );
      return { status: res.status, headers: res.headers, text: res.body.toString("utf8") };
    },
  };
}

/** True for errors that mean "could not talk to the provider" (retryable), not "the provider said no". */
export function isNetworkError(err: unknown): boolean {
  return !(err instanceof ForbiddenHost);
}
